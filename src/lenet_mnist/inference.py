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

import os
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from lenet_mnist.preprocessing import ImageInput, prepare_image

__all__ = ["DigitPredictions", "as_model_input", "images_to_batch", "predict_digits"]

# Large inputs run in chunks so memory stays bounded whatever the batch size. 1024
# images keep a layer's activations near the CPU's caches: 1.4-1.8x the throughput of
# 4096 on the 10,000 test images here (benchmarks/benchmark.py measures it).
_CHUNK: Final = 1024
_Outputs = tuple[tf.Tensor, tf.Tensor]


@dataclass(frozen=True)
class DigitPredictions:
    """What :func:`predict_digits` returns, one row per input image.

    Attributes:
        digits: ``(N,)`` int64, the most likely class of each image (argmax).
        probabilities: ``(N, 10)`` float32 softmax rows; each sums to 1.
        logits: ``(N, 10)`` float32, the model's raw outputs.
    """

    digits: npt.NDArray[np.int64]
    probabilities: npt.NDArray[np.float32]
    logits: npt.NDArray[np.float32]

    def __len__(self) -> int:
        return int(self.digits.shape[0])


def as_model_input(images: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Check images and return them as the model's input, ``(N, 28, 28, 1)`` float32 in [0, 1].

    The rule for telling the pixel scale apart is the dtype, never the values:
    integer arrays (uint8 and any other integer dtype) hold pixels 0..255 and are
    divided by 255; floating arrays hold pixels in [0, 1] and are used as they are.

    Accepted shapes: one image ``(28, 28)`` or ``(28, 28, 1)``; a batch
    ``(N, 28, 28)`` or ``(N, 28, 28, 1)`` with ``N >= 1``.

    Args:
        images: An array (or anything ``numpy.asarray`` accepts, such as a tensor).

    Returns:
        A float32 array of shape ``(N, 28, 28, 1)``.

    Raises:
        ValueError: A wrong shape, an empty batch, NaN or infinite values, integer
            values outside 0..255 or float values outside [0, 1], or a non-numeric
            dtype (bool, complex, strings, objects).

    Example:
        >>> import numpy as np
        >>> as_model_input(np.full((28, 28), 255, np.uint8)).max()
        np.float32(1.0)
    """
    try:
        array = np.asarray(images)
    except (ValueError, TypeError) as error:
        raise ValueError(f"images must be a numeric array: {error}") from error
    kind = array.dtype.kind
    if kind not in "uif":
        raise ValueError(
            "images must be a numeric array (integers 0..255 or floats in [0, 1]), "
            f"got dtype {array.dtype}"
        )
    shape = array.shape
    if shape in ((28, 28), (28, 28, 1)):
        array = array.reshape(1, 28, 28, 1)
    elif len(shape) == 3 and shape[1:] == (28, 28):
        array = array[..., np.newaxis]
    elif not (len(shape) == 4 and shape[1:] == (28, 28, 1)):
        raise ValueError(
            "images must have shape (28, 28), (28, 28, 1), (N, 28, 28) or (N, 28, 28, 1), "
            f"got {shape}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"images is an empty batch, got shape {shape}")
    if kind == "f":
        if not np.isfinite(array).all():
            raise ValueError("images contain NaN or infinite values, got non-finite pixels")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            hint = " (0..255 pixels must be an integer array such as uint8)" if high > 1.0 else ""
            raise ValueError(
                f"float images must lie in [0, 1]{hint}, got values in [{low:g}, {high:g}]"
            )
        return array.astype(np.float32, copy=False)
    low_i, high_i = int(array.min()), int(array.max())
    if low_i < 0 or high_i > 255:
        raise ValueError(f"integer images must lie in 0..255, got values in [{low_i}, {high_i}]")
    return array.astype(np.float32) / np.float32(255.0)


_FILE_TYPES: Final = (str, os.PathLike, bytes, bytearray, memoryview)


def _is_mnist_form(shape: tuple[int, ...]) -> bool:
    return shape in ((28, 28), (28, 28, 1)) or (
        len(shape) in (3, 4) and shape[1:3] == (28, 28) and shape[3:] in ((), (1,))
    )


def _one_image(item: object) -> npt.NDArray[np.float32]:
    """One image of a list as ``(28, 28, 1)``: MNIST-form as it is, else prepared."""
    if isinstance(item, _FILE_TYPES):
        return prepare_image(item)[..., np.newaxis]
    array = np.asarray(item)
    if array.shape in ((28, 28), (28, 28, 1)):
        single: npt.NDArray[np.float32] = as_model_input(array)[0]
        return single
    return prepare_image(array)[..., np.newaxis]


def images_to_batch(images: ImageInput | Sequence[ImageInput]) -> npt.NDArray[np.float32]:
    """The model's input ``(N, 28, 28, 1)`` float32 for what :func:`predict_digits` accepts.

    The rule, in order:

    1. A path (``str``, ``os.PathLike``) or encoded bytes: one image file, prepared by
       :func:`lenet_mnist.prepare_image`.
    2. A list or tuple holding paths, bytes or arrays of two or more dimensions: one
       image per item, each by rules 1 and 3.
    3. An array whose shape is MNIST's -- ``(28, 28)``, ``(28, 28, 1)``,
       ``(N, 28, 28)`` or ``(N, 28, 28, 1)`` -- is taken as already preprocessed
       (white ink on black, centred) and used as it is (see :func:`as_model_input`);
       any other ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` array is one
       picture, prepared by :func:`lenet_mnist.prepare_image`. So a 28x28 *photo*
       (dark on light, off-centre) must go through ``prepare_image`` explicitly.

    Raises:
        ValueError: An empty list, or an image that cannot be used (see
            :func:`as_model_input` and :func:`lenet_mnist.prepare_image`).
        FileNotFoundError: A path that does not exist.
    """
    if isinstance(images, _FILE_TYPES):
        return prepare_image(images)[np.newaxis, :, :, np.newaxis]
    if isinstance(images, list | tuple):
        if not images:
            raise ValueError("images is an empty list, got []")
        if any(isinstance(item, _FILE_TYPES) or np.ndim(item) >= 2 for item in images):
            return np.stack([_one_image(item) for item in images])
    try:
        array = np.asarray(images)
    except (ValueError, TypeError) as error:
        raise ValueError(f"images must be a numeric array: {error}") from error
    if not _is_mnist_form(array.shape) and (
        array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))
    ):
        return prepare_image(array)[np.newaxis, :, :, np.newaxis]
    return as_model_input(array)


def _direct(concrete: Any) -> Callable[[tf.Tensor], _Outputs]:
    """``concrete`` (a ``ConcreteFunction``) as a function of one tensor, called directly."""
    # ConcreteFunction._call_flat (TensorFlow 2.18 to 2.21 at least) runs the function
    # on its flat tensors. The public call first binds the arguments to the signature
    # in Python: ~0.1 ms of a ~0.5 ms one-image prediction here. Should a TensorFlow
    # release drop the method, the public call is used.
    call_flat = getattr(concrete, "_call_flat", None)
    if call_flat is None:  # pragma: no cover - not in the supported TensorFlow releases
        return concrete  # type: ignore[no-any-return]
    captured = list(concrete.captured_inputs)

    def call(batch: tf.Tensor) -> _Outputs:
        return call_flat([batch], captured)  # type: ignore[no-any-return]

    return call


class _Predictor:
    """The compiled functions :func:`predict_digits` runs for one model."""

    def __init__(self, model: keras.Model) -> None:
        # A weak reference: a strong one in the cached value would keep the key, and so
        # every model ever passed to predict_digits, alive forever.
        model_ref = weakref.ref(model)

        def forward(batch: tf.Tensor) -> _Outputs:
            # Only traced from predict_digits, which holds the model, so it is alive.
            live = model_ref()
            if live is None:  # pragma: no cover
                raise ReferenceError("the model of this predictor was deleted")
            logits = tf.cast(live(batch, training=False), tf.float32)
            return logits, tf.nn.softmax(logits, axis=-1)

        # Concrete functions of one signature each: calling one skips tf.function's
        # per-call trace lookup (measured ~0.4 of ~0.7 ms).
        self._any = _direct(
            tf.function(
                forward,
                input_signature=[tf.TensorSpec(shape=(None, 28, 28, 1), dtype=tf.float32)],
                reduce_retracing=True,
            ).get_concrete_function()
        )
        self._one_function = tf.function(
            forward,
            input_signature=[tf.TensorSpec(shape=(1, 28, 28, 1), dtype=tf.float32)],
            jit_compile=True,
        )
        self._one: Callable[[tf.Tensor], _Outputs] | None = None
        self._one_failed = False

    def __call__(self, batch: tf.Tensor) -> _Outputs:
        if batch.shape[0] != 1 or self._one_failed:
            return self._any(batch)
        if self._one is not None:
            return self._one(batch)
        try:
            one = _direct(self._one_function.get_concrete_function())
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
            :func:`images_to_batch` for the exact rule).

    Returns:
        :class:`DigitPredictions` with ``digits`` (N,), ``probabilities`` (N, 10) and
        ``logits`` (N, 10); N is 1 for a single image.

    Raises:
        ValueError: Bad images (see :func:`as_model_input` and
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
    logits_parts: list[npt.NDArray[np.float32]] = []
    prob_parts: list[npt.NDArray[np.float32]] = []
    for start in range(0, batch.shape[0], _CHUNK):
        logits, probs = run(tf.constant(batch[start : start + _CHUNK]))
        logits_parts.append(logits.numpy())
        prob_parts.append(probs.numpy())
    logits_all = logits_parts[0] if len(logits_parts) == 1 else np.concatenate(logits_parts)
    probs_all = prob_parts[0] if len(prob_parts) == 1 else np.concatenate(prob_parts)
    return DigitPredictions(
        digits=np.argmax(probs_all, axis=-1).astype(np.int64),
        probabilities=probs_all,
        logits=logits_all,
    )
