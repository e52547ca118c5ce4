"""Files saved by lenet-mnist 0.1.0.dev0 (the flat layout) still load and predict the same.

0.1.0.dev0 wrote the library's classes with their module paths of that time
(``lenet_mnist.batch_norm``, ``lenet_mnist.lenet``); the files are otherwise what Keras writes for
the model today (``save_model`` now writes FusedBatchNorm as BatchNormalization, so
the test writes with Keras itself). It rewrites a new file's paths to the old ones, so
it needs no binary fixture, and checks the loaded model's predictions.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

import lenet_mnist as lm

OLD_MODULES = {
    "lenet_mnist.models.batch_norm": "lenet_mnist.batch_norm",
    "lenet_mnist.models.lenet": "lenet_mnist.lenet",
}


def _as_old_file(path: Path) -> Path:
    """Rewrite the module paths in ``path``'s config to the 0.1.0.dev0 ones."""
    old = path.with_name("old-" + path.name)
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(old, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "config.json":
                text = data.decode()
                for new, previous in OLD_MODULES.items():
                    text = text.replace(f'"{new}"', f'"{previous}"')
                data = text.encode()
            target.writestr(info, data)
    return old


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: lm.compile_model(lm.build_lenet("fast", seed=0)), id="fast"),
        pytest.param(lambda: lm.build_lenet("robust", seed=0), id="robust"),
        pytest.param(lambda: lm.build_recipe_model("fast", seed=0), id="fast-bf16"),
        pytest.param(lambda: lm.LeNet(), id="LeNet"),
    ],
)
def test_a_file_with_the_old_module_paths_loads_and_predicts_the_same(tmp_path, build) -> None:
    model = build()
    images = np.random.default_rng(0).random((8, 28, 28, 1)).astype(np.float32)
    expected = lm.predict_digits(model, images).logits
    if getattr(model, "optimizer", None) is not None:
        model.optimizer.build(model.trainable_variables)  # as save_model does
    keras.saving.save_model(model, tmp_path / "m.keras")
    old = _as_old_file(tmp_path / "m.keras")
    text = json.dumps(json.loads(zipfile.ZipFile(old).read("config.json")))
    assert not any(f'"{new}"' in text for new in OLD_MODULES)
    assert any(f'"{previous}"' in text for previous in OLD_MODULES.values())
    loaded = lm.load_model(old)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(lm.predict_digits(loaded, images).logits, expected)
