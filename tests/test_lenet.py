"""LeNet (subclassed) against the functional "seed" network; config and .keras round trip."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from lenet_mnist import LeNet, build_lenet, load_model, predict_digits, save_model


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(16, 28, 28), dtype=np.uint8)


def test_same_layers_and_parameters_as_the_functional_network() -> None:
    functional = build_lenet("seed", seed=0)
    subclassed = LeNet()
    assert subclassed.count_params() == functional.count_params() == 121_930
    functional_layers = [layer.name for layer in functional.layers[1:]]  # without the Input
    assert [layer.name for layer in subclassed.layers] == functional_layers
    assert [w.shape for w in subclassed.get_weights()] == [
        w.shape for w in functional.get_weights()
    ]


def test_parity_with_the_functional_network(images: np.ndarray) -> None:
    functional = build_lenet("seed", seed=1)
    subclassed = LeNet()
    subclassed.set_weights(functional.get_weights())
    ours = predict_digits(subclassed, images)
    theirs = predict_digits(functional, images)
    np.testing.assert_array_equal(ours.digits, theirs.digits)
    np.testing.assert_allclose(ours.logits, theirs.logits, rtol=1e-6, atol=1e-6)
    direct = subclassed(images[..., None].astype(np.float32) / np.float32(255))
    np.testing.assert_allclose(np.asarray(direct), theirs.logits, rtol=1e-6, atol=1e-6)
    # And back: the functional network takes the subclassed one's weights.
    fresh = build_lenet("seed", seed=2)
    fresh.set_weights(subclassed.get_weights())
    np.testing.assert_array_equal(predict_digits(fresh, images).digits, theirs.digits)


def test_config_round_trip() -> None:
    model = LeNet(num_classes=7, name="digits")
    config = model.get_config()
    assert config["num_classes"] == 7
    assert config["name"] == "digits"
    clone = LeNet.from_config(config)
    assert isinstance(clone, LeNet)
    assert clone.num_classes == 7
    assert clone.name == "digits"
    assert clone.count_params() == model.count_params()
    assert tuple(clone(np.zeros((1, 28, 28, 1), np.float32)).shape) == (1, 7)


def test_registered_for_serialization() -> None:
    assert keras.saving.get_registered_object("lenet_mnist>LeNet") is LeNet
    assert keras.saving.get_registered_name(LeNet) == "lenet_mnist>LeNet"


def test_keras_round_trip(tmp_path: Path, images: np.ndarray) -> None:
    model = LeNet(num_classes=10)
    model.set_weights(build_lenet("seed", seed=3).get_weights())
    path = save_model(model, tmp_path / "lenet.keras")
    loaded = load_model(path)
    assert type(loaded) is LeNet
    assert loaded.num_classes == 10
    assert loaded.name == model.name
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    before, after = predict_digits(model, images), predict_digits(loaded, images)
    np.testing.assert_array_equal(after.digits, before.digits)
    np.testing.assert_array_equal(after.logits, before.logits)


def test_compiled_round_trip_keeps_the_training_setup(tmp_path: Path) -> None:
    from lenet_mnist import compile_model

    model = compile_model(LeNet(), learning_rate=0.005)
    loaded = load_model(save_model(model, tmp_path / "m.keras"))
    assert isinstance(loaded, LeNet)
    assert isinstance(loaded.optimizer, keras.optimizers.Adam)
    assert float(loaded.optimizer.learning_rate) == pytest.approx(0.005)


@pytest.mark.parametrize(
    ("num_classes", "error", "message"),
    [
        (1, ValueError, "num_classes must be at least 2, got 1"),
        (True, TypeError, "num_classes must be an int, got bool"),
        ("10", TypeError, "num_classes must be an int, got str"),
    ],
)
def test_argument_errors(num_classes: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        LeNet(num_classes=num_classes)  # type: ignore[arg-type]
