"""compile_model and train: the tutorial's recipe, argument checks, real-data accuracy."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from lenet_mnist import ImageError, LeNet, MnistData, build_lenet, compile_model, train

HISTORY_KEYS = {"loss", "accuracy", "val_loss", "val_accuracy"}


@pytest.fixture
def compiled() -> keras.Model:
    return compile_model(build_lenet("seed", seed=0))


def test_compile_model_is_the_tutorials() -> None:
    model = build_lenet("seed", seed=0)
    assert compile_model(model) is model
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
    assert model.loss.get_config()["from_logits"] is True
    compile_model(model, learning_rate=0.01)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    compile_model(model, learning_rate=1)  # an int is a number too


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"learning_rate": 0.0},
            ValueError,
            r"learning_rate must be a finite positive number, got 0\.0",
        ),
        ({"learning_rate": -1e-3}, ValueError, r"got -0\.001"),
        ({"learning_rate": math.nan}, ValueError, "got nan"),
        ({"learning_rate": math.inf}, ValueError, "got inf"),
        ({"learning_rate": "0.001"}, TypeError, "learning_rate must be a float, got str"),
        ({"learning_rate": True}, TypeError, "learning_rate must be a float, got bool"),
    ],
)
def test_compile_model_errors(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        compile_model(build_lenet(), **kwargs)  # type: ignore[arg-type]


def test_compile_model_needs_a_model() -> None:
    with pytest.raises(TypeError, match=r"model must be a keras\.Model, got str"):
        compile_model("seed")  # type: ignore[arg-type]


def test_train_returns_the_history(compiled: keras.Model, tiny_data: MnistData) -> None:
    history = train(compiled, tiny_data, epochs=2, batch_size=16, seed=0, verbose=0)
    assert isinstance(history, keras.callbacks.History)
    assert set(history.history) == HISTORY_KEYS
    for key in HISTORY_KEYS:
        values = history.history[key]
        assert len(values) == 2
        assert all(math.isfinite(v) for v in values)
    assert all(0.0 <= v <= 1.0 for v in history.history["val_accuracy"])
    # The synthetic classes are trivially separable: the second epoch must have learned.
    assert history.history["loss"][1] < history.history["loss"][0]


class _StopAtOnce(keras.callbacks.Callback):
    def on_train_batch_end(self, batch: int, logs: object = None) -> None:
        self.model.stop_training = True


def test_train_defaults_are_the_tutorials(compiled: keras.Model, tiny_data: MnistData) -> None:
    # Stopped after one step: only the schedule Keras was given matters here.
    history = train(compiled, tiny_data, verbose=0, callbacks=[_StopAtOnce()])
    assert history.params["epochs"] == 10
    assert history.params["steps"] == 2  # 64 images in batches of 32


def test_train_accepts_uint8_images_without_channel_axis(tiny_data: MnistData) -> None:
    raw = MnistData(
        np.round(tiny_data.train_images[..., 0] * 255).astype(np.uint8),
        tiny_data.train_labels.astype(np.int64),
        np.round(tiny_data.test_images[..., 0] * 255).astype(np.uint8),
        tiny_data.test_labels,
    )
    model = compile_model(LeNet())
    history = train(model, raw, epochs=1, batch_size=32, verbose=0)
    assert set(history.history) == HISTORY_KEYS


def test_train_needs_a_compiled_model(tiny_data: MnistData) -> None:
    with pytest.raises(TypeError, match=r"model must be compiled first .* got an uncompiled model"):
        train(build_lenet(), tiny_data)
    with pytest.raises(TypeError, match=r"model must be a keras\.Model, got NoneType"):
        train(None, tiny_data)  # type: ignore[arg-type]


def _with(data: MnistData, **changes: object) -> MnistData:
    return data._replace(**changes)


@pytest.mark.parametrize(
    ("change", "kwargs", "error", "message"),
    [
        ({}, {"epochs": 0}, ValueError, "epochs must be at least 1, got 0"),
        ({}, {"epochs": 1.5}, TypeError, "epochs must be an int, got float"),
        ({}, {"batch_size": 0}, ValueError, "batch_size must be at least 1, got 0"),
        ({}, {"batch_size": True}, TypeError, "batch_size must be an int, got bool"),
        ({}, {"verbose": 3}, ValueError, "verbose must be 'auto', 0, 1 or 2, got 3"),
        ({}, {"verbose": True}, ValueError, "got True"),
        ({}, {"seed": "1"}, TypeError, "seed must be an int or None, got str"),
        (
            {"train_images": np.zeros((4, 28, 28, 3), np.float32)},
            {},
            ValueError,
            r"train images must have shape \(28, 28\), \(28, 28, 1\), \(N, 28, 28\) or "
            r"\(N, 28, 28, 1\), got \(4, 28, 28, 3\)",
        ),
        (
            {"test_images": np.zeros((4, 32, 32), np.float32)},
            {},
            ValueError,
            r"test images must have shape .* got \(4, 32, 32\)",
        ),
        (
            {"train_labels": np.zeros(5, np.uint8)},
            {},
            ValueError,
            r"train labels must have shape \(64,\) to match the images, got \(5,\)",
        ),
        (
            {
                "test_images": np.zeros((0, 28, 28, 1), np.float32),
                "test_labels": np.zeros(0, np.uint8),
            },
            {},
            ValueError,
            r"test images is an empty batch, got shape \(0, 28, 28, 1\)",
        ),
        (
            {"train_labels": np.zeros(64, np.float32)},
            {},
            TypeError,
            "train labels must be integers, got dtype float32",
        ),
        (
            {"train_images": np.full((64, 28, 28), 256, np.int16)},
            {},
            ImageError,
            r"integer train images must lie in 0..255, got values in \[256, 256\]",
        ),
        (
            {"train_images": np.full((64, 28, 28, 1), np.nan, np.float32)},
            {},
            ImageError,
            "train images contain NaN or infinite values",
        ),
        (
            {"test_images": np.full((32, 28, 28, 1), 2.0, np.float32)},
            {},
            ImageError,
            r"float test images must lie in \[0, 1\] \(0..255 pixels must be an integer array",
        ),
        (
            {"train_images": np.zeros((64, 28, 28), bool)},
            {},
            ImageError,
            "train images must be a numeric array .* got dtype bool",
        ),
    ],
)
def test_train_argument_errors(
    compiled: keras.Model,
    tiny_data: MnistData,
    change: dict[str, object],
    kwargs: dict[str, object],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        train(compiled, _with(tiny_data, **change), **kwargs)  # type: ignore[arg-type]


def test_train_needs_four_arrays(compiled: keras.Model, tiny_data: MnistData) -> None:
    with pytest.raises(TypeError, match="data must be an MnistData, got tuple"):
        train(compiled, tuple(tiny_data)[:2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="data must be an MnistData, got dict"):
        train(compiled, dict(tiny_data._asdict()))  # type: ignore[arg-type]


@pytest.mark.slow
def test_one_epoch_on_real_mnist_reaches_98_percent(real_data: MnistData) -> None:
    model = compile_model(build_lenet("seed", seed=0))
    history = train(model, real_data, epochs=1, batch_size=32, seed=0, verbose=0)
    assert len(history.history["val_accuracy"]) == 1
    assert history.history["val_accuracy"][0] >= 0.98
