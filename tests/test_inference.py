"""predict_digits: invariants over inputs, every accepted form, errors."""

from __future__ import annotations

import gc
import sys
import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lenet_mnist import ImageError, build_lenet, predict_digits
from lenet_mnist.inference import DigitPredictions

# Tolerance for comparing the same image run alone and within a batch: the CPU kernels
# may sum in a different order for a different batch size.
ATOL = 1e-5


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return build_lenet("seed", seed=0)


def _check_invariants(result: DigitPredictions, n: int) -> None:
    assert len(result) == n
    assert result.digits.shape == (n,)
    assert result.digits.dtype == np.int64
    assert result.probabilities.shape == result.logits.shape == (n, 10)
    assert result.probabilities.dtype == result.logits.dtype == np.float32
    assert np.all(result.probabilities >= 0)
    assert np.all(result.probabilities <= 1)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(result.digits, result.probabilities.argmax(axis=1))
    shifted = result.logits - result.logits.max(axis=1, keepdims=True)
    softmax = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(result.probabilities, softmax, rtol=1e-5, atol=1e-6)


def _same_answer(a: DigitPredictions, b: DigitPredictions) -> None:
    np.testing.assert_allclose(a.logits, b.logits, rtol=0, atol=ATOL)
    np.testing.assert_allclose(a.probabilities, b.probabilities, rtol=0, atol=ATOL)
    # The digit is the same unless two classes are tied within the tolerance.
    rows = np.arange(len(a))
    assert np.all(a.logits[rows, b.digits] >= a.logits.max(axis=1) - ATOL)


@given(
    hnp.arrays(
        np.uint8,
        st.tuples(st.integers(1, 4), st.just(28), st.just(28)),
        elements=st.integers(0, 255),
    )
)
@settings(max_examples=30, deadline=None)
def test_every_accepted_form_gives_the_same_answer(model: keras.Model, batch: np.ndarray) -> None:
    n = batch.shape[0]
    reference = predict_digits(model, batch)
    _check_invariants(reference, n)
    as_float = batch.astype(np.float32) / np.float32(255)
    # The same pixels in the same batch: exactly the same numbers.
    for same in (batch[..., None], as_float, as_float[..., None], batch.astype(np.int64)):
        result = predict_digits(model, same)
        np.testing.assert_array_equal(result.logits, reference.logits)
        np.testing.assert_array_equal(result.digits, reference.digits)
    # float64 input: the float32 conversion may round a pixel differently by one ulp.
    _same_answer(predict_digits(model, as_float.astype(np.float64)), reference)
    # One image at a time, with and without the channel axis and a batch axis.
    for i in range(n):
        for single in (batch[i], batch[i, :, :, None], batch[i : i + 1], as_float[i]):
            one = predict_digits(model, single)
            _check_invariants(one, 1)
            rows = DigitPredictions(
                reference.digits[i : i + 1],
                reference.probabilities[i : i + 1],
                reference.logits[i : i + 1],
            )
            _same_answer(one, rows)


@given(hnp.arrays(np.float32, (2, 28, 28), elements=st.floats(0, 1, width=32)))
@settings(max_examples=20, deadline=None)
def test_invariants_on_float_images(model: keras.Model, batch: np.ndarray) -> None:
    _check_invariants(predict_digits(model, batch), 2)


def test_large_batches_run_in_chunks(model: keras.Model, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    whole = predict_digits(model, images)
    monkeypatch.setattr("lenet_mnist.inference._CHUNK", 3)
    chunked = predict_digits(model, images)
    _check_invariants(chunked, 7)
    _same_answer(chunked, whole)


def _probe() -> keras.Model:
    """A model whose 10 logits are the first 10 input pixels of row 0, as it received them."""
    inputs = keras.Input((28, 28, 1))
    dense = keras.layers.Dense(10, use_bias=False)
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    kernel = np.zeros((784, 10), np.float32)
    kernel[np.arange(10), np.arange(10)] = 1.0
    dense.set_weights([kernel])
    return model


def test_the_image_rule_scales_by_dtype() -> None:
    probe = _probe()

    def seen(images: object) -> np.ndarray:
        return predict_digits(probe, images).logits[0, :3]  # type: ignore[arg-type]

    image = np.zeros((28, 28), np.uint8)
    image[0, :2] = (51, 255)
    np.testing.assert_array_equal(seen(image), [np.float32(51) / np.float32(255), 1.0, 0.0])
    np.testing.assert_array_equal(seen(np.full((3, 28, 28, 1), 0.5, np.float64)), [0.5] * 3)
    # Integer dtypes other than uint8 are pixels 0..255 too; the values never decide.
    np.testing.assert_array_equal(seen(np.ones((28, 28), np.int32)), [np.float32(1 / 255)] * 3)
    np.testing.assert_array_equal(seen(np.ones((28, 28), np.float32)), [1.0] * 3)
    np.testing.assert_array_equal(seen(np.zeros((28, 28), np.float16)), [0.0] * 3)
    assert len(predict_digits(probe, [[0] * 28] * 28)) == 1


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((28, 27, 2), np.uint8), r"must have shape .* got \(28, 27, 2\)"),
        (np.zeros((2, 28, 28, 3), np.uint8), r"got \(2, 28, 28, 3\)"),
        (np.zeros((1, 1, 28, 28, 1), np.uint8), r"got \(1, 1, 28, 28, 1\)"),
        (np.zeros(784, np.uint8), r"got \(784,\)"),
        (np.uint8(3), r"got \(\)"),
        (np.zeros((0, 28, 28), np.uint8), r"empty batch, got shape \(0, 28, 28\)"),
        (np.zeros((0, 28, 28, 1), np.float32), r"empty batch"),
        (np.full((28, 28), np.nan, np.float32), "NaN or infinite"),
        (np.full((28, 28), np.inf, np.float64), "NaN or infinite"),
        (
            np.full((28, 28), 255.0, np.float32),
            r"must lie in \[0, 1\] \(0..255 pixels must be an integer array such as uint8\), got values in \[255, 255\]",
        ),
        (
            np.full((28, 28), -0.5, np.float32),
            r"float images must lie in \[0, 1\], got values in \[-0.5, -0.5\]",
        ),
        (
            np.full((28, 28), 256, np.int32),
            r"integer images must lie in 0..255, got values in \[256, 256\]",
        ),
        (np.full((28, 28), -1, np.int16), r"got values in \[-1, -1\]"),
        (np.zeros((28, 28), bool), "got dtype bool"),
        (np.zeros((28, 28), np.complex64), "got dtype complex64"),
        (np.full((28, 28), "a"), "got dtype <U1"),
        (np.full((28, 28), None, dtype=object), "got dtype object"),
        ([[0, 1], [2]], "images must be a numeric array"),
    ],
)
def test_bad_images(model: keras.Model, images: object, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        predict_digits(model, images)  # type: ignore[arg-type]


def test_model_must_be_a_keras_model() -> None:
    with pytest.raises(TypeError, match=r"model must be a keras\.Model, got function"):
        predict_digits(lambda x: x, np.zeros((28, 28), np.uint8))  # type: ignore[arg-type]


@pytest.mark.xfail(
    sys.version_info >= (3, 13),
    reason="on Python 3.13, under pytest only, frames of the first trace keep the model "
    "alive (seen beside TensorFlow's get_concrete_function frame); a plain script frees it",
    strict=False,
)
def test_models_are_not_kept_alive() -> None:
    # The compiled predictor is cached per model; the cache must not keep models alive.
    model = build_lenet("seed", seed=0)
    predict_digits(model, np.zeros((28, 28), np.uint8))
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_predictor_follows_weight_changes(model: keras.Model) -> None:
    images = np.random.default_rng(2).integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    other = build_lenet("seed", seed=5)
    before = predict_digits(other, images)
    other.set_weights(model.get_weights())
    after = predict_digits(other, images)
    np.testing.assert_array_equal(after.logits, predict_digits(model, images).logits)
    assert not np.array_equal(after.logits, before.logits)


def test_one_image_runs_through_xla_and_matches_the_batch_path(model: keras.Model) -> None:
    images = np.random.default_rng(3).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    batch = predict_digits(model, images)
    for i in range(3):
        alone = predict_digits(model, images[i])
        np.testing.assert_allclose(alone.logits, batch.logits[i : i + 1], atol=ATOL)
        np.testing.assert_array_equal(alone.digits, batch.digits[i : i + 1])


def test_one_image_follows_weight_changes_through_xla() -> None:
    image = np.random.default_rng(4).integers(0, 256, size=(28, 28), dtype=np.uint8)
    first, second = build_lenet("seed", seed=1), build_lenet("seed", seed=2)
    before = predict_digits(first, image)
    first.set_weights(second.get_weights())
    np.testing.assert_allclose(
        predict_digits(first, image).logits, predict_digits(second, image).logits, atol=ATOL
    )
    assert not np.allclose(predict_digits(first, image).logits, before.logits)


@keras.saving.register_keras_serializable(package="lenet_mnist_tests")
class _HostCopy(keras.layers.Layer):
    """An identity that runs in Python (tf.numpy_function): XLA cannot compile it."""

    traces = 0

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        _HostCopy.traces += 1
        outputs = tf.numpy_function(lambda a: a.copy(), [inputs], tf.float32)
        return tf.ensure_shape(outputs, inputs.shape)


def test_a_model_xla_cannot_compile_predicts_one_image_without_it() -> None:
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(_HostCopy()(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    image = np.random.default_rng(5).random((28, 28), np.float32)
    alone = predict_digits(model, image)
    pair = predict_digits(model, np.stack([image, image]))
    np.testing.assert_allclose(alone.logits, pair.logits[:1], atol=ATOL)
    # The fallback is remembered: later single images trace nothing again (no XLA retry).
    traced = _HostCopy.traces
    for _ in range(3):
        np.testing.assert_array_equal(predict_digits(model, image).logits, alone.logits)
    assert _HostCopy.traces == traced
