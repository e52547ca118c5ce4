"""What an image array is, for every function of the library (internal).

One rule, used by :func:`lenet_mnist.train`, :func:`lenet_mnist.predict_digits`,
:func:`lenet_mnist.prepare_image`, :func:`lenet_mnist.load_mnist`, the plots and the
exports:

* **The scale follows the dtype, never the values.** Integer arrays (uint8 or any other
  integer dtype) hold pixels 0..255; floating arrays hold pixels in [0, 1]. Anything
  else (bool, complex, strings, objects) is refused.
* **Every value is checked.** NaN, infinities and values outside the scale are refused.
* **MNIST form** is one image ``(28, 28)`` / ``(28, 28, 1)`` or a batch ``(N, 28, 28)``
  / ``(N, 28, 28, 1)`` with ``N >= 1`` (:func:`as_image_batch`). A *picture* to be
  prepared may have any size, ``(H, W)`` or ``(H, W, C)`` with C in 1, 3, 4
  (:func:`as_picture`).

Every refusal is an :class:`~lenet_mnist.errors.ImageError`, a ``ValueError``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from lenet_mnist.errors import ImageError

__all__ = [
    "MNIST_SHAPE",
    "as_image_batch",
    "as_picture",
    "as_unit_range",
    "is_mnist_form",
    "pixel_scale",
]

#: One image as the networks take it: height, width, channels.
MNIST_SHAPE: Final = (28, 28, 1)
_SINGLE: Final = ((28, 28), (28, 28, 1))


def _as_array(images: npt.ArrayLike, what: str) -> npt.NDArray[np.generic]:
    try:
        return np.asarray(images)
    except (ValueError, TypeError) as error:
        raise ImageError(
            f"{what} must be a numeric array ({error}), got {type(images).__name__}"
        ) from error


def pixel_scale(array: npt.NDArray[np.generic], what: str = "images") -> float:
    """Check every value of ``array`` against the rule; return its full scale, 255 or 1.

    Args:
        array: Pixels of any shape (an empty array passes the value checks).
        what: What to call the array in messages.

    Returns:
        ``255.0`` for integer dtypes, ``1.0`` for floating ones.

    Raises:
        ImageError: A dtype that is neither integer nor floating, NaN or infinite
            values, or values outside 0..255 (integers) or [0, 1] (floats).

    Example:
        >>> import numpy as np
        >>> pixel_scale(np.array([0, 255], np.int32)), pixel_scale(np.zeros(3, np.float16))
        (255.0, 1.0)
    """
    kind = array.dtype.kind
    if kind not in "uif":
        raise ImageError(
            f"{what} must be a numeric array (integers 0..255 or floats in [0, 1]), "
            f"got dtype {array.dtype}"
        )
    if array.size == 0 or array.dtype == np.uint8:
        # uint8 holds exactly 0..255: nothing to check, and the one-image path is hot.
        return 255.0 if kind in "ui" else 1.0
    if kind == "f":
        # min and max propagate NaN and show infinities: two passes check everything.
        low, high = float(array.min()), float(array.max())
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ImageError(f"{what} contain NaN or infinite values, got non-finite pixels")
        if low < 0.0 or high > 1.0:
            hint = " (0..255 pixels must be an integer array such as uint8)" if high > 1.0 else ""
            raise ImageError(
                f"float {what} must lie in [0, 1]{hint}, got values in [{low:g}, {high:g}]"
            )
        return 1.0
    low_i, high_i = int(array.min()), int(array.max())
    if low_i < 0 or high_i > 255:
        raise ImageError(f"integer {what} must lie in 0..255, got values in [{low_i}, {high_i}]")
    return 255.0


def is_mnist_form(shape: tuple[int, ...]) -> bool:
    """Whether ``shape`` is one MNIST-form image or a batch of them (any ``N``).

    Example:
        >>> is_mnist_form((5, 28, 28)), is_mnist_form((28, 28, 3))
        (True, False)
    """
    return shape in _SINGLE or (
        len(shape) in (3, 4) and shape[1:3] == (28, 28) and shape[3:] in ((), (1,))
    )


def as_image_batch(images: npt.ArrayLike, what: str = "images") -> npt.NDArray[np.float32]:
    """Check MNIST-form images and return them as the networks' input.

    Args:
        images: One image ``(28, 28)`` or ``(28, 28, 1)``, or a batch ``(N, 28, 28)`` or
            ``(N, 28, 28, 1)``, ``N >= 1``: integers 0..255 or floats in [0, 1] (an
            array, or anything ``numpy.asarray`` accepts, such as a tensor).
        what: What to call the images in messages (``"train images"``, ...).

    Returns:
        ``(N, 28, 28, 1)`` float32 in [0, 1]: integer pixels divided by 255; a float32
        input of that shape is returned as it is (no copy).

    Raises:
        ImageError: A wrong shape, an empty batch, or values the rule refuses (see
            :func:`pixel_scale`).

    Example:
        >>> import numpy as np
        >>> batch = as_image_batch(np.full((28, 28), 255, np.uint8))
        >>> batch.shape, batch.dtype, float(batch.max())
        ((1, 28, 28, 1), dtype('float32'), 1.0)
    """
    array = _as_array(images, what)
    shape = array.shape
    if shape in _SINGLE:
        array = array.reshape(1, *MNIST_SHAPE)
    elif len(shape) == 3 and shape[1:] == (28, 28):
        array = array[..., np.newaxis]
    elif not (len(shape) == 4 and shape[1:] == MNIST_SHAPE):
        raise ImageError(
            f"{what} must have shape (28, 28), (28, 28, 1), (N, 28, 28) or (N, 28, 28, 1), "
            f"got {shape}"
        )
    if array.shape[0] == 0:
        raise ImageError(f"{what} is an empty batch, got shape {shape}")
    return as_unit_range(array, what)


def as_unit_range(array: npt.NDArray[np.generic], what: str = "images") -> npt.NDArray[np.float32]:
    """Check every value of ``array`` by the rule; return it as float32 in [0, 1], same shape.

    Integer pixels are divided by 255; a float32 array is returned as it is (no copy).

    Raises:
        ImageError: Values the rule refuses (see :func:`pixel_scale`).

    Example:
        >>> import numpy as np
        >>> [round(float(v), 3) for v in as_unit_range(np.array([0, 51, 255], np.uint8))]
        [0.0, 0.2, 1.0]
    """
    if pixel_scale(array, what) == 255.0:
        scaled = array.astype(np.float32)
        scaled /= np.float32(255.0)  # in place: one allocation, the same values
        return scaled
    return array.astype(np.float32, copy=False)


def as_picture(image: npt.ArrayLike, what: str = "image") -> tuple[npt.NDArray[np.generic], float]:
    """Check a picture of any size; return it as ``(H, W, C)`` and its full scale.

    Args:
        image: ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` (RGB) or ``(H, W, 4)`` (RGBA)
            pixels, by the same value rule as :func:`as_image_batch`.
        what: What to call the picture in messages.

    Returns:
        ``(pixels, scale)``: the pixels, unconverted (a large picture is converted a
        band at a time by its user), with a channel axis; ``scale`` is 255 or 1.

    Raises:
        ImageError: Another shape, an empty picture, or refused values.

    Example:
        >>> import numpy as np
        >>> pixels, scale = as_picture(np.zeros((40, 30), np.uint8))
        >>> pixels.shape, scale
        ((40, 30, 1), 255.0)
    """
    array = _as_array(image, what)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ImageError(
            f"{what} must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
            f"got {np.shape(image)}"
        )
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ImageError(f"{what} is empty, got shape {array.shape}")
    return array, pixel_scale(array, what)
