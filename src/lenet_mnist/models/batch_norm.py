"""``FusedBatchNorm``: batch normalization of images by TensorFlow's fused kernel.

``keras.layers.BatchNormalization`` computes batch moments with separate reductions
and, under bfloat16 mixed precision, first casts its whole input to float32. On this
project's 2-core CPU that made a two-epoch training of a small network about twice
as slow as the same network without normalization. TensorFlow's ``FusedBatchNormV3``
kernel (oneDNN on x86) normalizes bfloat16 ``NHWC`` images in one pass, forward and
backward; the layer below uses it and keeps the same state as Keras's layer (``gamma``,
``beta``, ``moving_mean``, ``moving_variance``, all float32).
"""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf

__all__ = ["FusedBatchNorm"]


@keras.saving.register_keras_serializable(package="lenet_mnist")
class FusedBatchNorm(keras.layers.Layer):  # type: ignore[misc]
    """Batch normalization over the last (channel) axis of ``(batch, H, W, C)`` images.

    Training (``training=True`` and the layer trainable) normalizes by the batch's
    mean and variance per channel and moves the moving statistics towards them
    (``moving = momentum * moving + (1 - momentum) * batch``); inference normalizes by
    the moving statistics. Then ``y = gamma * x_hat + beta``. Like
    ``keras.layers.BatchNormalization``, the state is float32 and is never rounded
    to the compute dtype, and ``trainable=False`` means inference mode.

    Args:
        momentum: Weight of the old moving statistics in each update, in [0, 1).
        epsilon: Added to the variance before its square root, > 0 (TensorFlow's
            kernel raises values below 1.001e-5 to that).
        **kwargs: Passed to ``keras.layers.Layer`` (``name``, ``dtype`` ...).

    Call:
        ``(batch, H, W, C)`` float32 or bfloat16 images -> the same shape and dtype.

    Raises:
        ValueError: Bad ``momentum`` or ``epsilon``; at build, an input that is not
            4-D or whose channel count is unknown.
        TypeError: ``momentum`` or ``epsilon`` is not a number.

    Example:
        >>> import numpy as np
        >>> layer = FusedBatchNorm(momentum=0.9)
        >>> x = np.random.default_rng(0).normal(3.0, 2.0, (8, 4, 4, 2)).astype("float32")
        >>> y = layer(x, training=True)
        >>> bool(abs(float(np.mean(y))) < 1e-4), [round(float(v), 1) for v in layer.moving_mean.numpy()]
        (True, [0.3, 0.3])
    """

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, **kwargs: Any) -> None:
        for name, value in (("momentum", momentum), ("epsilon", epsilon)):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
        if not (math.isfinite(epsilon) and epsilon > 0.0):
            raise ValueError(f"epsilon must be a finite number > 0, got {epsilon!r}")
        super().__init__(**kwargs)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

    def build(self, input_shape: Any) -> None:  # noqa: D102 - Keras API
        shape = tuple(input_shape)
        if len(shape) != 4 or shape[-1] is None:
            raise ValueError(
                f"FusedBatchNorm needs (batch, H, W, C) inputs with a known C, got {shape}"
            )
        channels = (int(shape[-1]),)

        # autocast=False: under mixed precision the layer reads its float32 state as
        # it is; a moving average rounded to bfloat16 every step would drift.
        def state(name: str, initializer: str, *, trainable: bool = True) -> Any:
            return self.add_weight(
                shape=channels,
                initializer=initializer,
                name=name,
                trainable=trainable,
                autocast=False,
            )

        self.gamma = state("gamma", "ones")
        self.beta = state("beta", "zeros")
        self.moving_mean = state("moving_mean", "zeros", trainable=False)
        self.moving_variance = state("moving_variance", "ones", trainable=False)
        self.built = True

    def call(self, inputs: Any, training: bool | None = None) -> Any:  # noqa: D102 - Keras API
        gamma = tf.cast(self.gamma, tf.float32)
        beta = tf.cast(self.beta, tf.float32)
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, is_training=True
            )
            # The kernel returns the unbiased (n - 1) variance; Keras's layer, whose
            # state this one shares, keeps the biased (n) one.
            count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
            variance = tf.where(count > 1.0, variance * (count - 1.0) / count, 0.0)
            self.moving_mean.assign(
                self.momentum * tf.cast(self.moving_mean, tf.float32) + (1.0 - self.momentum) * mean
            )
            self.moving_variance.assign(
                self.momentum * tf.cast(self.moving_variance, tf.float32)
                + (1.0 - self.momentum) * variance
            )
            return outputs
        outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            gamma,
            beta,
            mean=tf.cast(self.moving_mean, tf.float32),
            variance=tf.cast(self.moving_variance, tf.float32),
            epsilon=self.epsilon,
            is_training=False,
        )
        return outputs

    def compute_output_shape(self, input_shape: Any) -> Any:  # noqa: D102 - Keras API
        return input_shape

    def get_config(self) -> dict[str, Any]:  # noqa: D102 - Keras API
        config: dict[str, Any] = super().get_config()
        config.update({"momentum": self.momentum, "epsilon": self.epsilon})
        return config
