"""Predicting digits with a trained model.

:func:`predict_digits` takes MNIST-form arrays as they are and anything else -- image
files, their bytes, photos as arrays -- through :func:`lenet_mnist.prepare_image`.
:func:`predict_digits` runs the model through a ``tf.function`` compiled once per
model for a fixed input signature ``(None, 28, 28, 1)`` float32, instead of
``model.predict``, whose per-call setup costs tens of milliseconds. A single image goes
through a second function, compiled by XLA for the shape ``(1, 28, 28, 1)`` on its
first use (a few hundred milliseconds, once): XLA runs the whole network as one
operation, where TensorFlow's executor hands each of a dozen tiny operations between
threads, and that took a single image from about 0.6-0.75 ms to 0.35-0.47 ms on the
development machine's two cores. A model XLA cannot compile keeps the first function.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from lenet_mnist.images.batch import images_to_batch
from lenet_mnist.images.prepare import ImageInput

__all__ = ["UNSURE_BELOW", "DigitPredictions", "predict_digits"]

#: The recommended :meth:`DigitPredictions.confident` threshold for the pretrained model:
#: a top probability under it flags the answer as "not sure". Measured with
#: ``scripts/calibrate_pretrained.py`` on 2,190 validation pictures (photos and small
#: scans of MNIST training digits 55,000-59,999, typeface pictures): 0.9 flags 4.8% of
#: them, catches 74% of the errors and leaves 0.53% errors among the rest (2.0% in all);
#: on the clean held-out digits it flags 1.2% and leaves 0.12%.
UNSURE_BELOW: Final = 0.9

# Large inputs run in chunks so memory stays bounded whatever the batch size. 1024
# images keep a layer's activations near the CPU's caches: 1.4-1.8x the throughput of
# 4096 on the 10,000 test images here (benchmarks/benchmark.py measures it).
_CHUNK: Final = 1024


@dataclass(frozen=True)
class DigitPredictions:
    """What :func:`predict_digits` returns, one row per input image.

    Attributes:
        digits: ``(N,)`` int64, the most likely class of each image (argmax).
        probabilities: ``(N, 10)`` float32 softmax rows; each sums to 1.
        logits: ``(N, 10)`` float32, the model's raw outputs.

    How sure the model is: ``probabilities`` are calibrated for
    :func:`lenet_mnist.pretrained` (its logits are temperature-scaled), so
    :attr:`confidence` near 0.9 means right about 9 times in 10 on data like its
    validation set. :meth:`confident` flags answers below a threshold as "not sure".
    """

    digits: npt.NDArray[np.int64]
    probabilities: npt.NDArray[np.float32]
    logits: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return int(self.digits.shape[0])

    @property
    def confidence(self) -> npt.NDArray[np.float32]:
        """``(N,)`` float32, the probability of each predicted digit, in [0, 1]."""
        return np.asarray(self.probabilities.max(axis=-1), np.float32)

    def confident(self, threshold: float = UNSURE_BELOW) -> npt.NDArray[np.bool_]:
        """``(N,)`` bool: True where the top probability is at least ``threshold``.

        The rest are the "not sure" answers, worth a second look or a retake. The
        default :data:`UNSURE_BELOW` is measured for the pretrained model (see its
        comment for the fraction flagged and the error rate among the rest).

        Args:
            threshold: In [0, 1]; 0 trusts everything, 1 almost nothing.

        Raises:
            ValueError: ``threshold`` is not a number in [0, 1].

        Example:
            >>> import numpy as np
            >>> p = np.array([[0.97, 0.03], [0.55, 0.45]], np.float32)
            >>> result = DigitPredictions(np.array([0, 0]), p, np.log(p))
            >>> result.confident(0.9).tolist(), result.confident(0.5).tolist()
            ([True, False], [True, True])
        """
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not 0.0 <= threshold <= 1.0
        ):
            raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
        return np.asarray(self.confidence >= threshold, np.bool_)


class _Predictor:
    """The compiled functions :func:`predict_digits` runs for one model."""

    def __init__(self, model: keras.Model) -> None:
        # A weak reference: a strong one in the cached value would keep the key, and so
        # every model ever passed to predict_digits, alive forever.
        model_ref = weakref.ref(model)

        def forward(batch: tf.Tensor) -> tf.Tensor:
            # Only traced from predict_digits, which holds the model, so it is alive.
            live = model_ref()
            if live is None:  # pragma: no cover
                raise ReferenceError("the model of this predictor was deleted")
            logits = tf.cast(live(batch, training=False), tf.float32)
            # One output tensor, logits then probabilities: one copy out instead of two.
            return tf.concat([logits, tf.nn.softmax(logits, axis=-1)], axis=-1)

        # Concrete functions of one signature each: calling one skips tf.function's
        # per-call trace lookup (measured ~0.4 of ~0.7 ms).
        self._any: Callable[[tf.Tensor], tf.Tensor] = tf.function(
            forward,
            input_signature=[tf.TensorSpec(shape=(None, 28, 28, 1), dtype=tf.float32)],
            reduce_retracing=True,
        ).get_concrete_function()
        self._one_function = tf.function(
            forward,
            input_signature=[tf.TensorSpec(shape=(1, 28, 28, 1), dtype=tf.float32)],
            jit_compile=True,
        )
        self._one: Callable[[tf.Tensor], tf.Tensor] | None = None
        self._one_failed = False

    def __call__(self, batch: tf.Tensor) -> tf.Tensor:
        if batch.shape[0] != 1 or self._one_failed:
            return self._any(batch)
        if self._one is not None:
            return self._one(batch)
        try:
            one = self._one_function.get_concrete_function()
            outputs = one(batch)  # XLA compiles here, on the first call
        except (tf.errors.OpError, NotImplementedError):
            # Layers or operations XLA cannot compile: keep to the executor.
            self._one_failed = True
            return self._any(batch)
        self._one = one
        return outputs


_PREDICTORS: weakref.WeakKeyDictionary[keras.Model, _Predictor] = weakref.WeakKeyDictionary()


def _predictor(model: keras.Model) -> _Predictor:
    predictor = _PREDICTORS.get(model)
    if predictor is None:
        predictor = _Predictor(model)
        _PREDICTORS[model] = predictor
    return predictor


def predict_digits(
    model: keras.Model, images: ImageInput | Sequence[ImageInput]
) -> DigitPredictions:
    """Recognize the digit in each image.

    Args:
        model: A model taking ``(batch, 28, 28, 1)`` float32 images and returning
            logits, such as :func:`build_lenet`'s, :class:`LeNet` or
            :func:`lenet_mnist.pretrained`.
        images: MNIST-form arrays -- one image or a batch, ``(28, 28)``,
            ``(28, 28, 1)``, ``(N, 28, 28)`` or ``(N, 28, 28, 1)``, white ink on black
            as in MNIST; integer dtypes are 0..255 pixels, float dtypes [0, 1] -- are
            used as they are. Anything else goes through
            :func:`lenet_mnist.prepare_image` first: an image file path or its bytes,
            any other ``(H, W[, C])`` picture array, or a list of such (see
            :func:`~lenet_mnist.images.batch.images_to_batch` for the exact rule).

    Returns:
        :class:`DigitPredictions` with ``digits`` (N,), ``probabilities`` (N, 10) and
        ``logits`` (N, 10); N is 1 for a single image.

    Raises:
        ValueError: Bad images, an ``ImageError`` (see the library's image rule and
            :func:`lenet_mnist.prepare_image`, whose ``ImageError`` is a ``ValueError``).
        FileNotFoundError: An image path that does not exist.
        TypeError: ``model`` is not a ``keras.Model``.

    Example:
        >>> import numpy as np
        >>> from lenet_mnist import build_lenet
        >>> result = predict_digits(build_lenet(seed=0), np.zeros((3, 28, 28), np.uint8))
        >>> result.digits.shape, result.probabilities.shape
        ((3,), (3, 10))
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    batch = images_to_batch(images)
    run = _predictor(model)
    if batch.shape[0] <= _CHUNK:
        both = run(tf.constant(batch)).numpy()
    else:
        both = np.concatenate(
            [
                run(tf.constant(batch[start : start + _CHUNK])).numpy()
                for start in range(0, batch.shape[0], _CHUNK)
            ]
        )
    classes = both.shape[1] // 2
    logits_all, probs_all = both[:, :classes], both[:, classes:]
    return DigitPredictions(
        digits=np.argmax(probs_all, axis=-1).astype(np.int64, copy=False),
        probabilities=probs_all,
        logits=logits_all,
    )
