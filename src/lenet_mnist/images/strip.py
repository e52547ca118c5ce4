"""Image strips: 28x28 images side by side in one PNG or JPEG, as the model sees them."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from lenet_mnist._util.atomic import atomic_write
from lenet_mnist._util.checks import check_positive_int
from lenet_mnist._util.image_array import as_image_batch
from lenet_mnist._util.paths import check_suffix
from lenet_mnist.images.font import GLYPH_HEIGHT, render_text, text_width

__all__ = ["STRIP_FORMATS", "check_strip_path", "save_image_strip"]

_MNIST_SIZE: Final = 28
_GAP: Final = 2
_GRID_GRAY: Final = 0.35
# A caption row: the 5-pixel font and a gap under it.
_CAPTION_HEIGHT: Final = GLYPH_HEIGHT + _GAP
_JPEG_QUALITY: Final = 95

#: The file suffixes :func:`save_image_strip` writes, with the format each one picks
#: (the same suffix rule as the figures of :mod:`lenet_mnist.report`: a suffix picks
#: the format, and only formats the writer can write are accepted).
STRIP_FORMATS: Final = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}


def check_strip_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a ``Path`` if :func:`save_image_strip` can write it (by suffix).

    Raises:
        ValueError: Another suffix than ``.png``, ``.jpg`` or ``.jpeg``.

    Example:
        >>> check_strip_path("seen.jpg").name
        'seen.jpg'
    """
    return check_suffix(path, STRIP_FORMATS, "image strips")


def _check_captions(captions: Sequence[str] | None, count: int) -> list[str] | None:
    if captions is None:
        return None
    if isinstance(captions, str) or not all(isinstance(c, str) for c in captions):
        raise TypeError(f"captions must be a sequence of str, got {captions!r}")
    if len(captions) != count:
        raise ValueError(f"need one caption per image ({count}), got {len(captions)}")
    for caption in captions:
        render_text(caption)  # raises for characters the font lacks
        if text_width(caption) > _MNIST_SIZE:
            raise ValueError(
                f"captions must fit under a 28-pixel image (7 characters), got {caption!r}"
            )
    return list(captions)


def save_image_strip(
    images: npt.ArrayLike,
    path: str | os.PathLike[str],
    *,
    columns: int = 10,
    zoom: int = 4,
    captions: Sequence[str] | None = None,
) -> Path:
    """Write 28x28 images side by side into one PNG or JPEG, as the model sees them.

    Written with TensorFlow alone (no plotting library): white ink on black, each
    image framed by a gray grid, and with ``captions`` a line of text under each
    image in a small built-in font (digits, ``%``, ``.``, ``-``, ``?`` and spaces;
    e.g. ``"7 99%"``, the predicted digit and its probability).

    Args:
        images: ``(N, 28, 28)`` or ``(N, 28, 28, 1)`` floats in [0, 1] (white ink on
            black), such as :func:`prepare_image`'s results stacked; ``N >= 1``.
        path: Where to write the picture; the suffix picks the format (``.png``,
            ``.jpg`` or ``.jpeg``; see :data:`STRIP_FORMATS`). Written to a temporary
            file, then renamed.
        columns: Images per row.
        zoom: Each pixel becomes a ``zoom`` x ``zoom`` square (1 to 16).
        captions: One short caption per image (at most 7 characters), or ``None``.

    Returns:
        The path written.

    Raises:
        ValueError: Bad images (an ``ImageError``: the library's image rule), a
            suffix other than ``.png``/``.jpg``/``.jpeg``, ``columns``/``zoom`` out of
            range, or captions of another count, too long or with other characters.
        TypeError: ``captions`` is not a sequence of strings.

    Example:
        >>> import numpy as np, tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     save_image_strip(np.zeros((3, 28, 28)), pathlib.Path(tmp) / "s.png",
        ...                      captions=["7 99%", "1 50%", "0 12%"]).name
        's.png'
    """
    import tensorflow as tf

    target = check_strip_path(path)
    check_positive_int("columns", columns)
    check_positive_int("zoom", zoom)
    if zoom > 16:
        raise ValueError(f"zoom must be at most 16, got {zoom}")
    batch = as_image_batch(images)[..., 0]
    count = batch.shape[0]
    texts = _check_captions(captions, count)
    cols = min(columns, count)
    rows = math.ceil(count / cols)
    cell_w = _MNIST_SIZE + _GAP
    cell_h = cell_w + (_CAPTION_HEIGHT if texts is not None else 0)
    # A mid-gray grid between the images so each one's 28x28 frame is visible.
    sheet = np.full((rows * cell_h + _GAP, cols * cell_w + _GAP), _GRID_GRAY, np.float32)
    for i in range(count):
        r, c = divmod(i, cols)
        top, left = _GAP + r * cell_h, _GAP + c * cell_w
        sheet[top : top + _MNIST_SIZE, left : left + _MNIST_SIZE] = batch[i]
        if texts is not None:
            mask = render_text(texts[i])
            x = left + (_MNIST_SIZE - mask.shape[1]) // 2
            y = top + _MNIST_SIZE + _GAP - 1
            region = sheet[y : y + GLYPH_HEIGHT, x : x + mask.shape[1]]
            region[mask] = 1.0
    sheet = np.repeat(np.repeat(sheet, zoom, axis=0), zoom, axis=1)
    pixels = np.round(sheet * 255).astype(np.uint8)[:, :, np.newaxis]
    if STRIP_FORMATS[target.suffix.lower()] == "jpeg":
        encoded = tf.io.encode_jpeg(pixels, quality=_JPEG_QUALITY).numpy()
    else:
        encoded = tf.io.encode_png(pixels).numpy()
    return atomic_write(target, lambda tmp: tmp.write_bytes(encoded))
