"""Image strips: 28x28 images side by side in one PNG, as the model sees them."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from lenet_mnist._util.atomic import atomic_write
from lenet_mnist._util.checks import check_positive_int
from lenet_mnist._util.image_array import as_image_batch

__all__ = ["save_image_strip"]

_MNIST_SIZE: Final = 28


def save_image_strip(
    images: npt.ArrayLike, path: str | os.PathLike[str], *, columns: int = 10, zoom: int = 4
) -> Path:
    """Write 28x28 images side by side into one PNG, as the model sees them.

    Args:
        images: ``(N, 28, 28)`` or ``(N, 28, 28, 1)`` floats in [0, 1] (white ink on
            black), such as :func:`prepare_image`'s results stacked; ``N >= 1``.
        path: Where to write the PNG (written to a temporary file, then renamed).
        columns: Images per row.
        zoom: Each pixel becomes a ``zoom`` x ``zoom`` square (1 to 16).

    Returns:
        The path written.

    Raises:
        ValueError: Bad images (an ``ImageError``: the library's image rule), or
            ``columns``/``zoom`` out of range.

    Example:
        >>> import numpy as np, tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     save_image_strip(np.zeros((3, 28, 28)), pathlib.Path(tmp) / "s.png").name
        's.png'
    """
    import tensorflow as tf

    check_positive_int("columns", columns)
    check_positive_int("zoom", zoom)
    if zoom > 16:
        raise ValueError(f"zoom must be at most 16, got {zoom}")
    batch = as_image_batch(images)[..., 0]
    count = batch.shape[0]
    cols = min(columns, count)
    rows = math.ceil(count / cols)
    gap = 2
    cell = _MNIST_SIZE + gap
    # A mid-gray grid between the images so each one's 28x28 frame is visible.
    sheet = np.full((rows * cell + gap, cols * cell + gap), 0.35, np.float32)
    for i in range(count):
        r, c = divmod(i, cols)
        sheet[
            gap + r * cell : gap + r * cell + _MNIST_SIZE,
            gap + c * cell : gap + c * cell + _MNIST_SIZE,
        ] = batch[i]
    sheet = np.repeat(np.repeat(sheet, zoom, axis=0), zoom, axis=1)
    pixels = np.round(sheet * 255).astype(np.uint8)[:, :, np.newaxis]
    png = tf.io.encode_png(pixels).numpy()
    return atomic_write(path, lambda tmp: tmp.write_bytes(png))
