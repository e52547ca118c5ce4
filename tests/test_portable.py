"""Models saved by the library load in plain Keras; float32 copies for the exporters.

The plain-Keras tests run a separate Python that never imports lenet_mnist (it checks
``sys.modules``), as a user of the files would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import lenet_mnist as lm
from lenet_mnist.models.portable import float32_copy, load_weights, standard_copy
from lenet_mnist.recipes import precision_policy

VARIANTS = ["seed", "lenet5", "robust", "fast"]
_X = np.random.default_rng(0).random((6, 28, 28, 1), dtype=np.float32)
_Y = np.arange(6) % 10


def _build(variant: str, mixed: bool) -> keras.Model:
    with precision_policy(mixed):
        model = lm.build_lenet(variant, seed=0)
    return lm.compile_model(model)


def _stepped(model: keras.Model) -> keras.Model:
    """``model`` after two training steps: moved statistics and non-zero Adam moments."""
    for _ in range(2):
        model.train_on_batch(_X, _Y)
    return model


def _run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("mixed", [False, True], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_standard_copy_has_keras_layers_the_same_weights_and_outputs(
    variant: str, mixed: bool
) -> None:
    model = _stepped(_build(variant, mixed))
    copy = standard_copy(model)
    fused = {layer.name for layer in model.layers if isinstance(layer, lm.FusedBatchNorm)}
    assert (copy is model) == (not fused)
    assert not any(isinstance(layer, lm.FusedBatchNorm) for layer in copy.layers)
    for name in fused:
        layer, original = copy.get_layer(name), model.get_layer(name)
        assert type(layer) is keras.layers.BatchNormalization
        assert (layer.momentum, layer.epsilon) == (original.momentum, original.epsilon)
        assert layer.dtype_policy.name == original.dtype_policy.name
    assert [layer.name for layer in copy.layers] == [layer.name for layer in model.layers]
    for a, b in zip(copy.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert copy.optimizer is model.optimizer
    # In bfloat16 Keras's layer normalizes in float32, the fused kernel in bfloat16.
    tolerance = 1e-3 if mixed else 1e-5
    np.testing.assert_allclose(copy(_X).numpy(), model(_X).numpy(), rtol=tolerance, atol=tolerance)


def test_every_variant_saved_by_the_library_loads_in_plain_keras(tmp_path: Path) -> None:
    expected = {}
    models = {
        f"{v}-{p}": _build(v, p == "bfloat16") for v in VARIANTS for p in ("float32", "bfloat16")
    }
    models.update({f"recipe-{r}": lm.build_recipe_model(r, seed=0) for r in lm.RECIPES})
    for name, model in models.items():
        _stepped(model)
        lm.save_model(model, tmp_path / f"{name}.keras")
        np.save(tmp_path / f"{name}.npy", model(_X).numpy())
        expected[name] = {
            "policy": model.layers[1].dtype_policy.name,
            "optimizer": [np.asarray(v).tolist() for v in model.optimizer.variables[:3]],
        }
    np.save(tmp_path / "x.npy", _X)
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    out = _run_python(
        f"""
        import json, sys
        from pathlib import Path
        import keras, numpy as np
        root = Path({str(tmp_path)!r})
        x = np.load(root / "x.npy")
        expected = json.loads((root / "expected.json").read_text())
        for name, want in expected.items():
            model = keras.saving.load_model(root / f"{{name}}.keras")
            tolerance = 1e-5 if want["policy"] == "float32" else 1e-3
            np.testing.assert_allclose(
                model(x).numpy(), np.load(root / f"{{name}}.npy"), rtol=tolerance, atol=tolerance
            )
            conv = model.layers[1]
            assert conv.dtype_policy.name == want["policy"], name
            assert int(model.optimizer.iterations) == 2, name
            for got, wanted in zip(model.optimizer.variables[:3], want["optimizer"]):
                np.testing.assert_array_equal(np.asarray(got), np.asarray(wanted))
            print(name)
        assert not any(m.startswith("lenet_mnist") for m in sys.modules), "imported lenet_mnist"
        """
    )
    assert out.split() == list(expected)


@pytest.mark.parametrize("first", ["lenet_mnist", "keras"])
def test_import_lenet_mnist_registers_its_classes_in_either_order(
    tmp_path: Path, first: str
) -> None:
    lm.save_model(lm.LeNet(), tmp_path / "lenet.keras")
    # A file that names FusedBatchNorm itself, as Keras's own save writes it.
    lm.build_lenet("fast", seed=0).save(tmp_path / "fused.keras")
    imports = (
        "import lenet_mnist\nassert 'keras' not in sys.modules\nimport keras"
        if first == "lenet_mnist"
        else "import keras\nimport lenet_mnist"
    )
    out = _run_python(
        f"import sys\n{imports}\n"
        "import numpy as np\n"
        f"for name in ('lenet', 'fused'):\n"
        f"    model = keras.saving.load_model({str(tmp_path)!r} + f'/{{name}}.keras')\n"
        "    print(type(model).__name__, tuple(model(np.zeros((1, 28, 28, 1), 'float32')).shape))\n"
    )
    assert out.split("\n")[:2] == ["LeNet (1, 10)", "Functional (1, 10)"]


def test_lenet_mnist_load_model_gives_keras_batch_norm_back(tmp_path: Path) -> None:
    model = _stepped(_build("fast", mixed=True))
    loaded = lm.load_model(lm.save_model(model, tmp_path / "fast.keras"))
    assert type(loaded.get_layer("pool2_bn")) is keras.layers.BatchNormalization
    assert loaded.get_layer("pool2_bn").momentum == 0.9
    np.testing.assert_allclose(loaded(_X).numpy(), model(_X).numpy(), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    ("variant", "old_format"), [("robust", False), ("fast", False), ("fast", True)]
)
def test_load_weights_restores_weights_and_optimizer_bit_for_bit(
    tmp_path: Path, variant: str, old_format: bool
) -> None:
    model = _stepped(_build(variant, mixed=False))
    path = tmp_path / "ckpt.keras"
    if old_format:  # a checkpoint written before save_model wrote standard layers
        model.save(path)
    else:
        lm.save_model(model, path)
    fresh = _build(variant, mixed=False)
    fresh.optimizer.build(fresh.trainable_variables)
    load_weights(fresh, path)
    assert isinstance(fresh.layers[2 if variant == "robust" else 3], lm.FusedBatchNorm)
    for a, b in zip(fresh.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(fresh.optimizer.variables, model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    if variant == "robust":
        return  # its dropout draws differ between two models; "fast" has none
    # Training goes on from the same state, in the fused layers.
    _stepped(fresh), _stepped(model)
    for a, b in zip(fresh.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("variant", VARIANTS)
def test_float32_copy_of_a_bfloat16_model(variant: str) -> None:
    model = _stepped(_build(variant, mixed=True))
    copy = float32_copy(model)
    assert all(layer.compute_dtype == "float32" for layer in copy.layers)
    assert [layer.name for layer in copy.layers] == [layer.name for layer in model.layers]
    for a, b in zip(copy.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # bfloat16 keeps about 3 significant digits.
    np.testing.assert_allclose(copy(_X).numpy(), model(_X).numpy(), rtol=0.05, atol=0.05)
    float_model = _build(variant, mixed=False)
    assert float32_copy(float_model) is float_model


def test_float32_copy_of_a_subclassed_model() -> None:
    with precision_policy(True):
        model = lm.LeNet()
    assert model.get_layer("conv1").compute_dtype == "bfloat16"
    copy = float32_copy(model)
    assert isinstance(copy, lm.LeNet)
    assert copy.get_layer("conv1").compute_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    np.testing.assert_allclose(copy(_X).numpy(), model(_X).numpy(), rtol=0.05, atol=0.05)
