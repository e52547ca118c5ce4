"""The model's input from what :func:`lenet_mnist.predict_digits` accepts: files, bytes, arrays."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from lenet_mnist._util.image_array import as_image_batch, is_mnist_form
from lenet_mnist.errors import ImageError
from lenet_mnist.images.prepare import ImageInput, prepare_image

__all__ = ["images_to_batch"]

_FILE_TYPES: Final = (str, os.PathLike, bytes, bytearray, memoryview)


def _one_image(item: object) -> npt.NDArray[np.float32]:
    """One image of a list as ``(28, 28, 1)``: MNIST-form as it is, else prepared."""
    if isinstance(item, _FILE_TYPES):
        return prepare_image(item)[..., np.newaxis]
    array = np.asarray(item)
    if array.shape in ((28, 28), (28, 28, 1)):
        single: npt.NDArray[np.float32] = as_image_batch(array)[0]
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
       (white ink on black, centred) and used as it is, by the library's image rule
       (integers 0..255, floats in [0, 1]); any other ``(H, W)``, ``(H, W, 1)``,
       ``(H, W, 3)`` or ``(H, W, 4)`` array is one picture, prepared by
       :func:`lenet_mnist.prepare_image`. So a 28x28 *photo* (dark on light,
       off-centre) must go through ``prepare_image`` explicitly.

    Raises:
        ImageError: An empty list, or an image that cannot be used (a ``ValueError``).
        FileNotFoundError: A path that does not exist.

    Example:
        >>> import numpy as np
        >>> images_to_batch([np.zeros((28, 28), np.uint8), np.ones((28, 28, 1))]).shape
        (2, 28, 28, 1)
    """
    if isinstance(images, _FILE_TYPES):
        return prepare_image(images)[np.newaxis, :, :, np.newaxis]
    if isinstance(images, list | tuple):
        if not images:
            raise ImageError("images is an empty list, got []")
        if any(isinstance(item, _FILE_TYPES) or np.ndim(item) >= 2 for item in images):
            return np.stack([_one_image(item) for item in images])
    try:
        array = np.asarray(images)
    except (ValueError, TypeError) as error:
        raise ImageError(f"images must be a numeric array ({error}), got {images!r:.80}") from error
    if not is_mnist_form(array.shape) and (
        array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))
    ):
        return prepare_image(array)[np.newaxis, :, :, np.newaxis]
    return as_image_batch(array)
