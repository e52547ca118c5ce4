"""save_model (atomic) and load_model (checked config, safe mode, clear errors)."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from lenet_mnist import build_lenet, compile_model, load_model, predict_digits, save_model
from lenet_mnist.errors import ModelFileError, UnsafeModelError


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .keras file of the functional seed network, saved once for the module."""
    return save_model(build_lenet("seed", seed=0), tmp_path_factory.mktemp("m") / "seed.keras")


def _rewrite(source: Path, target: Path, edit: Callable[[Any], Any]) -> Path:
    """Copy a .keras zip, replacing config.json by ``edit(config)``."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "config.json":
                data = json.dumps(edit(json.loads(data))).encode()
            zout.writestr(item, data)
    return target


def _layer(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(layer for layer in config["config"]["layers"] if layer["name"] == name)


def test_round_trip(tmp_path: Path) -> None:
    model = compile_model(build_lenet("seed", seed=0))
    path = save_model(model, tmp_path / "sub" / "dir" / "model.keras")
    assert path == tmp_path / "sub" / "dir" / "model.keras"
    loaded = load_model(path)
    images = np.random.default_rng(0).integers(0, 256, size=(8, 28, 28), dtype=np.uint8)
    np.testing.assert_array_equal(
        predict_digits(loaded, images).logits, predict_digits(model, images).logits
    )
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert loaded.optimizer is not None
    assert isinstance(loaded.optimizer, keras.optimizers.Adam)


def test_save_leaves_no_temporary_files(tmp_path: Path) -> None:
    model = build_lenet("seed", seed=0)
    save_model(model, tmp_path / "a.keras")
    save_model(model, str(tmp_path / "a.keras"))  # overwriting is fine too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.keras"]


def test_failed_save_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "m.keras"
    save_model(build_lenet("seed", seed=0), target)
    before = target.read_bytes()
    model = build_lenet("seed", seed=1)

    def broken_save(self: keras.Model, filepath: object, *args: object, **kwargs: object) -> None:
        Path(str(filepath)).write_bytes(b"half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(type(model), "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_model(model, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


def test_save_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"model files must end in \.keras, got '.*model\.h5'"):
        save_model(build_lenet(), tmp_path / "model.h5")
    with pytest.raises(TypeError, match=r"model must be a keras\.Model, got str"):
        save_model("model", tmp_path / "m.keras")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"model file not found: .*nope\.keras"):
        load_model(tmp_path / "nope.keras")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match=r"expected a \.keras model file, got a directory"):
        load_model(tmp_path)


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "m.keras"
    path.write_bytes(b"definitely not a zip archive")
    with pytest.raises(ModelFileError, match=rf"{path}: not a \.keras model file"):
        load_model(path)


def test_zip_without_config(tmp_path: Path) -> None:
    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", "{}")
    with pytest.raises(
        ModelFileError, match=r"not a \.keras model file \(no config\.json inside\)"
    ):
        load_model(path)


def test_config_not_json(tmp_path: Path) -> None:
    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as archive:
        # All three members: an archive with any other set is refused before parsing.
        archive.writestr("metadata.json", "{}")
        archive.writestr("config.json", "{not json")
        archive.writestr("model.weights.h5", b"")
    with pytest.raises(ModelFileError, match=r"config\.json is not valid JSON"):
        load_model(path)


def test_model_file_error_is_a_value_error() -> None:
    assert issubclass(ModelFileError, ValueError)
    assert issubclass(UnsafeModelError, ModelFileError)


def test_lambda_layer_is_refused(saved: Path, tmp_path: Path) -> None:
    def add_lambda(config: dict[str, Any]) -> dict[str, Any]:
        _layer(config, "flatten").update(
            {
                "class_name": "Lambda",
                "config": {
                    "name": "flatten",
                    "function": {
                        "class_name": "__lambda__",
                        "config": {"code": "4wEAAAAAAAAA", "defaults": None, "closure": None},
                    },
                },
            }
        )
        return config

    path = _rewrite(saved, tmp_path / "lambda.keras", add_lambda)
    with pytest.raises(UnsafeModelError, match=r"refusing to load a Lambda layer"):
        load_model(path)


def test_real_lambda_model_is_refused(tmp_path: Path) -> None:
    # A file Keras itself writes for a Lambda layer (its bytecode inside).
    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.Lambda(lambda x: x * 2.0, name="double")(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(UnsafeModelError, match="Lambda"):
        load_model(path)


@pytest.mark.parametrize(
    "module", ["os", "builtins", "kerasx.layers", "lenet_mnistx", "evil.keras"]
)
def test_foreign_module_is_refused(saved: Path, tmp_path: Path, module: str) -> None:
    def foreign(config: dict[str, Any]) -> dict[str, Any]:
        _layer(config, "fc1")["module"] = module
        return config

    path = _rewrite(saved, tmp_path / "foreign.keras", foreign)
    with pytest.raises(
        UnsafeModelError,
        match=rf"refusing to load 'Dense' from module '{module}' at config\.layers\[6\]: only",
    ):
        load_model(path)


def test_nested_foreign_object_is_refused(saved: Path, tmp_path: Path) -> None:
    def foreign_initializer(config: dict[str, Any]) -> dict[str, Any]:
        _layer(config, "conv1")["config"]["kernel_initializer"] = {
            "module": "subprocess",
            "class_name": "Popen",
            "config": {"args": ["true"]},
        }
        return config

    path = _rewrite(saved, tmp_path / "init.keras", foreign_initializer)
    with pytest.raises(UnsafeModelError, match="'Popen' from module 'subprocess'"):
        load_model(path)


def test_serialized_function_is_refused(saved: Path, tmp_path: Path) -> None:
    def code_activation(config: dict[str, Any]) -> dict[str, Any]:
        _layer(config, "fc1")["config"]["activation"] = {
            "module": "keras.activations",
            "class_name": "__lambda__",
            "config": {"code": "4wEAAAAAAAAA"},
        }
        return config

    path = _rewrite(saved, tmp_path / "code.keras", code_activation)
    with pytest.raises(
        UnsafeModelError, match=r"refusing to load serialized Python code \('__lambda__'\)"
    ):
        load_model(path)


def test_allowed_modules_still_load(saved: Path, tmp_path: Path) -> None:
    # The check must not refuse what save_model itself writes, nor a rewritten copy of it.
    copy = _rewrite(saved, tmp_path / "copy.keras", lambda config: config)
    assert load_model(copy).count_params() == 121_930


def test_unknown_layer_is_refused(saved: Path, tmp_path: Path) -> None:
    def unknown_layer(config: dict[str, Any]) -> dict[str, Any]:
        _layer(config, "fc1")["class_name"] = "NoSuchLayer"
        return config

    path = _rewrite(saved, tmp_path / "unknown.keras", unknown_layer)
    with pytest.raises(UnsafeModelError, match=r"'NoSuchLayer' from module 'keras\.layers'"):
        load_model(path)


def test_keras_failure_becomes_model_file_error(tmp_path: Path) -> None:
    # Within the allow-list, but FusedBatchNorm itself refuses the value while Keras
    # rebuilds the model. (save_model writes FusedBatchNorm as BatchNormalization, so
    # the file is written by Keras itself, as a file of 0.1.0.dev0 was.)
    source = tmp_path / "fast.keras"
    keras.saving.save_model(build_lenet("fast", seed=0), source)

    def bad_momentum(config: dict[str, Any]) -> dict[str, Any]:
        _layer(config, "pool1_bn")["config"]["momentum"] = 1.5
        return config

    path = _rewrite(source, tmp_path / "momentum.keras", bad_momentum)
    with pytest.raises(
        ModelFileError, match=rf"{path}: cannot load the model: .*momentum must lie in \[0, 1\)"
    ):
        load_model(path)


def test_safe_mode_false_loads_a_trusted_lambda(tmp_path: Path) -> None:
    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.Lambda(lambda x: x * 2.0, name="double")(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    model = load_model(path, safe_mode=False)
    out = model(np.full((1, 28, 28, 1), 0.25, np.float32))
    np.testing.assert_allclose(np.asarray(out), 0.5)


def test_safe_mode_must_be_bool(saved: Path) -> None:
    with pytest.raises(TypeError, match="safe_mode must be a bool, got int"):
        load_model(saved, safe_mode=0)  # type: ignore[arg-type]
