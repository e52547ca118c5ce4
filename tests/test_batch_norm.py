"""FusedBatchNorm: the same mathematics and state as Keras's BatchNormalization."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from lenet_mnist import FusedBatchNorm, build_lenet, load_model, save_model
from lenet_mnist.recipes import precision_policy


def _pair(momentum: float = 0.9, epsilon: float = 1e-3) -> tuple[FusedBatchNorm, keras.Layer]:
    fused = FusedBatchNorm(momentum=momentum, epsilon=epsilon)
    reference = keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon)
    for layer in (fused, reference):
        layer.build((None, 5, 5, 3))
    gamma = np.array([0.5, 1.0, 2.0], np.float32)
    beta = np.array([-1.0, 0.0, 0.25], np.float32)
    for layer in (fused, reference):
        layer.set_weights([gamma, beta, np.zeros(3, np.float32), np.ones(3, np.float32)])
    return fused, reference


def _images(seed: int, shape: tuple[int, ...] = (6, 5, 5, 3)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(2.0, 3.0, shape).astype(np.float32)


def test_training_and_inference_match_keras_batch_normalization() -> None:
    fused, reference = _pair()
    for step in range(3):
        x = _images(step)
        np.testing.assert_allclose(
            fused(x, training=True).numpy(),
            reference(x, training=True).numpy(),
            rtol=1e-4,
            atol=1e-4,
        )
    # Both keep the biased (n) batch variance in the moving statistics.
    np.testing.assert_allclose(
        fused.moving_mean.numpy(), reference.moving_mean.numpy(), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        fused.moving_variance.numpy(), reference.moving_variance.numpy(), rtol=1e-5
    )
    x = _images(9)
    np.testing.assert_allclose(
        fused(x, training=False).numpy(), reference(x, training=False).numpy(), rtol=1e-4, atol=1e-4
    )


def test_gradients_match_keras_batch_normalization() -> None:
    fused, reference = _pair()
    x = tf.constant(_images(4))
    grads = []
    for layer in (fused, reference):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=True) ** 3)
        grads.append(tape.gradient(loss, [x, *layer.trainable_weights]))
    for ours, theirs in zip(*grads, strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-3, atol=1e-3)


@settings(max_examples=15, deadline=None)
@given(
    batch=st.integers(2, 6),
    size=st.integers(1, 6),
    channels=st.integers(1, 4),
    shift=st.floats(-50, 50),
    scale=st.floats(0.01, 100),
)
def test_training_output_is_normalized_per_channel(
    batch: int, size: int, channels: int, shift: float, scale: float
) -> None:
    layer = FusedBatchNorm(epsilon=1e-5)
    rng = np.random.default_rng(batch * 100 + size * 10 + channels)
    x = (rng.normal(0.0, 1.0, (batch, size, size, channels)) * scale + shift).astype(np.float32)
    y = layer(x, training=True).numpy().reshape(-1, channels)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-3)
    spread = x.reshape(-1, channels).std(axis=0)
    # The variance is the batch's own (plus epsilon), so each channel comes out with
    # unit spread unless the channel is (nearly) constant.
    expected = spread / np.sqrt(spread**2 + 1e-5)
    np.testing.assert_allclose(y.std(axis=0), expected, rtol=2e-2, atol=1e-3)


def test_mixed_precision_computes_in_bfloat16_and_keeps_float32_state() -> None:
    with precision_policy(True):
        layer = FusedBatchNorm(momentum=0.5)
    x = tf.constant(_images(1), tf.bfloat16)
    y = layer(x, training=True)
    assert y.dtype == tf.bfloat16
    assert all(w.dtype == "float32" for w in layer.weights)
    # Two updates whose exact result needs more than bfloat16's 8 significant bits.
    layer.moving_mean.assign(np.full(3, 1.0 + 2**-12, np.float32))
    layer(x, training=True)
    batch_mean = tf.reduce_mean(tf.cast(x, tf.float32), axis=(0, 1, 2)).numpy()
    np.testing.assert_allclose(
        layer.moving_mean.numpy(), 0.5 * (1.0 + 2**-12) + 0.5 * batch_mean, rtol=1e-6
    )


def test_a_single_value_per_channel_updates_with_zero_variance_not_nan() -> None:
    layer = FusedBatchNorm(momentum=0.75)
    layer(np.array([[[[2.0, -4.0]]]], np.float32), training=True)
    np.testing.assert_allclose(layer.moving_mean.numpy(), [0.5, -1.0])
    np.testing.assert_allclose(layer.moving_variance.numpy(), [0.75, 0.75])


def test_a_frozen_layer_normalizes_by_its_moving_statistics() -> None:
    layer = FusedBatchNorm()
    layer.build((None, 2, 2, 1))
    layer.set_weights([np.ones(1), np.zeros(1), np.full(1, 3.0), np.full(1, 4.0)])
    layer.trainable = False
    x = np.full((1, 2, 2, 1), 5.0, np.float32)
    np.testing.assert_allclose(
        layer(x, training=True).numpy(), (5.0 - 3.0) / np.sqrt(4.0 + 1e-3), rtol=1e-5
    )
    assert layer.moving_mean.numpy().tolist() == [3.0]


def test_the_fast_network_round_trips_through_a_safe_model_file(tmp_path) -> None:
    with precision_policy(True):
        model = build_lenet("fast", seed=0)
    x = np.random.default_rng(0).random((4, 28, 28, 1), np.float32)
    model(x, training=True)  # move the moving statistics away from their initial values
    loaded = load_model(save_model(model, tmp_path / "fast.keras"))
    # Saved as the standard layer it is equivalent to, so plain Keras loads the file.
    assert type(loaded.get_layer("pool2_bn")) is keras.layers.BatchNormalization
    assert loaded.get_layer("pool2_bn").momentum == 0.9
    for name in ("pool1_bn", "pool2_bn"):
        for a, b in zip(loaded.get_layer(name).weights, model.get_layer(name).weights, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    # Keras's layer normalizes bfloat16 inputs in float32, the fused kernel in bfloat16.
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"momentum": 1.0}, ValueError, r"momentum must lie in \[0, 1\), got 1.0"),
        ({"momentum": -0.1}, ValueError, r"momentum must lie in \[0, 1\), got -0.1"),
        ({"momentum": "0.9"}, TypeError, "momentum must be a number, got str"),
        ({"epsilon": 0.0}, ValueError, "epsilon must be a finite number > 0, got 0.0"),
        ({"epsilon": float("nan")}, ValueError, "epsilon must be a finite number > 0, got nan"),
        ({"epsilon": True}, TypeError, "epsilon must be a number, got bool"),
    ],
)
def test_bad_arguments_are_refused(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        FusedBatchNorm(**kwargs)


def test_inputs_that_are_not_images_are_refused() -> None:
    with pytest.raises(ValueError, match=r"needs \(batch, H, W, C\) inputs .*got \(None, 8\)"):
        FusedBatchNorm().build((None, 8))
    with pytest.raises(ValueError, match=r"with a known C, got \(None, 4, 4, None\)"):
        FusedBatchNorm().build((None, 4, 4, None))
