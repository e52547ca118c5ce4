"""Turning a photo or scan of one handwritten digit into an MNIST-style 28x28 image.

MNIST digits are white ink on black, their bounding box scaled into 20x20 keeping the
aspect ratio (anti-aliased), and placed in 28x28 so that the centre of mass of the ink
falls on pixel (14, 14). A photo of a digit is dark ink on light, unevenly lit, tinted
paper, anywhere in a frame of any size. :func:`prepare_image` bridges the two with
numpy and TensorFlow's own image ops only:

1. read and decode the file safely (PNG, JPEG, BMP, GIF or WebP, told by their magic
   bytes; sizes and memory checked from the headers before decoding; huge JPEGs
   decoded at a reduced scale; EXIF orientation applied: see
   :mod:`lenet_mnist.images.decode`), composite
   transparency onto a background that contrasts with the ink, convert to grayscale and
   reduce so the longer side is at most 1024 pixels, in bands, so memory stays bounded;
2. decide the polarity from the tails of the histogram (the paper is the bulk of the
   pixels; the ink is the long tail on one side) and make the ink the bright side;
3. fit the paper with a robust quadratic surface (iteratively excluding ink) and
   remove it: dividing by it for dark ink on paper, where lighting is multiplicative,
   subtracting it for light ink on a dark ground;
4. threshold relative to the ink's contrast (Otsu's method, bounded by the noise
   level) with a soft ramp that keeps anti-aliased edges, and drop specks: connected
   ink components far lighter than the heaviest one;
5. normalize the stroke width toward MNIST's (thicken hairlines, thin strokes wider
   than 2.8 px at MNIST's scale), crop to the ink's bounding box, scale it into 20x20
   with area averaging, renormalize so the strongest ink is 1, and place it in 28x28 by
   its centre of mass.

Scans smaller than 40 px (8x8, 16x16) are enlarged before step 2 and padded with the
paper's level (:mod:`lenet_mnist.images.normalize` has these steps and their measured
effect).
"""

from __future__ import annotations

import math
import os
from typing import Final, TypeAlias

import numpy as np
import numpy.typing as npt

from lenet_mnist._util.image_array import as_picture
from lenet_mnist.errors import ImageError
from lenet_mnist.images.decode import MAX_PIXELS as MAX_PIXELS  # the one pixel budget
from lenet_mnist.images.decode import decode_picture, read_picture_bytes
from lenet_mnist.images.normalize import (
    ALL_STEPS,
    SCAN_SIZE,
    PrepareSteps,
    normalize_stroke,
    pad_with_paper,
    upsample_small,
)

__all__ = ["CENTRE", "MAX_PIXELS", "WORKING_SIZE", "ImageInput", "prepare_image"]

#: What :func:`prepare_image` accepts: a file path, encoded file bytes, or pixels.
ImageInput: TypeAlias = "str | os.PathLike[str] | bytes | bytearray | memoryview | npt.ArrayLike"

#: The longer side of the working image; larger inputs are reduced first.
WORKING_SIZE: Final = 1024
#: MNIST's centre of mass, in pixel indices (measured: 13.996, 14.007 over its training set).
CENTRE: Final = 14.0
_BOX: Final = 20
_SIZE: Final = 28
_COMPONENT_GRID: Final = 160
_FIT_GRID: Final = 32
_MIN_CONTRAST: Final = 0.05
_LUMA: Final = np.array([0.299, 0.587, 0.114], np.float32)


# --------------------------------------------------------------------------- decoding


def _decode(data: bytes) -> npt.NDArray[np.uint8]:
    return decode_picture(data, reduce_to=WORKING_SIZE)


def _read(image: str | os.PathLike[str]) -> npt.NDArray[np.uint8]:
    return decode_picture(read_picture_bytes(image), reduce_to=WORKING_SIZE)


# ----------------------------------------------------------------- pixels to grayscale


def _background_for_alpha(pixels: npt.NDArray[np.generic], full: float) -> float:
    """The colour to composite transparency onto: the opposite of the opaque ink's."""
    step = max(1, int(math.sqrt(pixels.shape[0] * pixels.shape[1] / 250_000)))
    sample = pixels[::step, ::step].astype(np.float32) / np.float32(full)
    alpha = sample[..., 3]
    if float(alpha.min()) >= 1.0:
        return 1.0
    luma = sample[..., :3] @ _LUMA
    weight = float(alpha.sum())
    mean = float((luma * alpha).sum()) / weight if weight > 0 else 0.0
    # Strokes drawn on a transparent canvas: dark strokes go on white, light ones on black.
    return 1.0 if mean < 0.5 else 0.0


def _to_gray(
    band: npt.NDArray[np.generic], full: float, background: float
) -> npt.NDArray[np.float32]:
    values = band.astype(np.float32) / np.float32(full)
    channels = values.shape[2]
    gray = values[..., 0] if channels in (1, 2) else values[..., :3] @ _LUMA
    if channels == 4:
        alpha = values[..., 3]
        gray = gray * alpha + np.float32(background) * (1.0 - alpha)
    return np.clip(gray, 0.0, 1.0).astype(np.float32, copy=False)


def _working_gray(pixels: npt.NDArray[np.generic], full: float) -> npt.NDArray[np.float32]:
    """Grayscale in [0, 1] (bright = light), longer side at most :data:`WORKING_SIZE`."""
    background = _background_for_alpha(pixels, full) if pixels.shape[2] == 4 else 1.0
    height, width = pixels.shape[:2]
    factor = math.ceil(max(height, width) / WORKING_SIZE)
    if factor == 1:
        return _to_gray(pixels, full, background)
    # Block means (an area filter), a band of rows at a time: bounded memory for any size.
    out_h, out_w = math.ceil(height / factor), math.ceil(width / factor)
    out = np.empty((out_h, out_w), np.float32)
    rows_per_band = factor * 32
    # ... and of at most about a megapixel, so a very wide picture is bounded too.
    cols_per_band = factor * max(1, 2**20 // (rows_per_band * factor))
    for start in range(0, height, rows_per_band):
        for left in range(0, width, cols_per_band):
            band = pixels[start : start + rows_per_band, left : left + cols_per_band]
            gray = _to_gray(band, full, background)
            pad_h = -gray.shape[0] % factor
            pad_w = -gray.shape[1] % factor
            if pad_h or pad_w:
                gray = np.pad(gray, ((0, pad_h), (0, pad_w)), mode="edge")
            blocks = gray.reshape(gray.shape[0] // factor, factor, gray.shape[1] // factor, factor)
            top, first = start // factor, left // factor
            out[top : top + blocks.shape[0], first : first + blocks.shape[2]] = blocks.mean(
                axis=(1, 3)
            )
    return out


# ------------------------------------------------------------------ ink and background


def _block_reduce(
    image: npt.NDArray[np.float32], grid: int, how: str
) -> tuple[npt.NDArray[np.float32], int]:
    """Reduce ``image`` by an integer factor so its longer side is at most ``grid``."""
    factor = max(1, math.ceil(max(image.shape) / grid))
    if factor == 1:
        return image, 1
    pad_h, pad_w = -image.shape[0] % factor, -image.shape[1] % factor
    padded = np.pad(image, ((0, pad_h), (0, pad_w)), mode="edge")
    h, w = padded.shape[0] // factor, padded.shape[1] // factor
    blocks = padded.reshape(h, factor, w, factor).transpose(0, 2, 1, 3).reshape(h, w, -1)
    if how == "median":
        return np.median(blocks, axis=2).astype(np.float32), factor
    if how == "max":
        return blocks.max(axis=2), factor
    return blocks.sum(axis=2, dtype=np.float32), factor


def _quadratic_terms(
    ys: npt.NDArray[np.float32], xs: npt.NDArray[np.float32]
) -> list[npt.NDArray[np.float32]]:
    return [np.ones_like(ys), ys, xs, ys * ys, ys * xs, xs * xs]


def _fit_background(bright_ink: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """A smooth quadratic surface through the ground of an image whose ink is bright."""
    height, width = bright_ink.shape
    # Medians of blocks of a strided sample: the ground's shape needs no more detail.
    step = max(1, min(height, width) // (_FIT_GRID * 8))
    grid, factor = _block_reduce(bright_ink[::step, ::step], _FIT_GRID, "median")
    factor *= step
    gh, gw = grid.shape
    # Block centres in normalized coordinates of the full image, in [-1, 1].
    ys = ((np.arange(gh, dtype=np.float32) + 0.5) * factor / height) * 2 - 1
    xs = ((np.arange(gw, dtype=np.float32) + 0.5) * factor / width) * 2 - 1
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    design = np.stack([t.ravel() for t in _quadratic_terms(yy, xx)], axis=1).astype(np.float64)
    target = grid.ravel().astype(np.float64)
    keep = np.ones(target.shape, bool)
    coef: npt.NDArray[np.float64] = np.zeros(design.shape[1])
    for _ in range(6):
        if keep.sum() < design.shape[1] * 2:
            break
        coef = np.asarray(np.linalg.lstsq(design[keep], target[keep], rcond=None)[0], np.float64)
        residual = target - design @ coef
        spread = 1.4826 * float(np.median(np.abs(residual[keep]))) + 1e-3
        # Ink is the bright side: exclude it generously, and only mild dark outliers.
        new_keep = (residual < 2.5 * spread) & (residual > -6 * spread)
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    full_y = ((np.arange(height, dtype=np.float32) + 0.5) / height) * 2 - 1
    full_x = ((np.arange(width, dtype=np.float32) + 0.5) / width) * 2 - 1
    fy, fx = full_y[:, np.newaxis], full_x[np.newaxis, :]
    surface = np.zeros((height, width), np.float32)
    for c, term in zip(coef, _quadratic_terms(fy, fx), strict=True):
        surface += np.float32(c) * term
    return surface


def _box3(image: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    padded = np.pad(image, 1, mode="edge")
    h, w = image.shape
    total = np.zeros_like(image)
    for dy in range(3):
        for dx in range(3):
            total += padded[dy : dy + h, dx : dx + w]
    return total / np.float32(9)


def _otsu(values: npt.NDArray[np.float32], high: float) -> float:
    counts, edges = np.histogram(values, bins=128, range=(0.0, high))
    centres = (edges[:-1] + edges[1:]) / 2
    weight0 = np.cumsum(counts)
    weight1 = weight0[-1] - weight0
    sum0 = np.cumsum(counts * centres)
    mean0 = sum0 / np.maximum(weight0, 1)
    mean1 = (sum0[-1] - sum0) / np.maximum(weight1, 1)
    between = weight0 * weight1 * (mean0 - mean1) ** 2
    return float(edges[int(np.argmax(between)) + 1])


def _noise(image: npt.NDArray[np.float32]) -> float:
    """Standard deviation of pixel noise, from differences of horizontal neighbours.

    Neighbours differ by noise alone except at edges, so the median of their absolute
    differences ignores the content, however much of the image the ink covers.
    """
    step = max(1, image.shape[0] // 200)
    differences = np.diff(image[::step], axis=1)
    if differences.size == 0:
        return 0.0
    return 1.4826 * float(np.median(np.abs(differences))) / math.sqrt(2)


def _ink(gray: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Ink strength in [0, 1] (0 = ground) of a working grayscale image."""
    step = max(1, int(math.sqrt(gray.size / 250_000)))
    low, median, high = (float(v) for v in np.percentile(gray[::step, ::step], [1, 50, 99]))
    dark_tail, light_tail = median - low, high - median
    if max(dark_tail, light_tail) < 1.5 * min(dark_tail, light_tail) + 0.02:
        # Too little ink to show in the percentiles (a hairline on a large page): compare
        # the extremes, smoothed so single noisy pixels cannot decide.
        smooth = _box3(gray)
        dark_tail, light_tail = median - float(smooth.min()), float(smooth.max()) - median
    dark_ink = dark_tail > light_tail
    bright = (np.float32(1) - gray) if dark_ink else gray
    ground = _fit_background(bright)
    # The quadratic extrapolates below the darkest paper where ink covers a side (an 8x8
    # scan): nothing is darker than that, so such a dip is not ink.
    ground = np.maximum(ground, np.float32(np.percentile(bright[::step, ::step], 1)))
    if dark_ink:
        # Light reflected by the paper is multiplicative: ink / paper is lighting-free.
        paper = np.maximum(np.float32(1) - ground, np.float32(0.05))
        raw = (bright - ground) / paper
    else:
        raw = bright - ground
    noise = _noise(raw)
    ink = np.clip(raw, 0.0, 1.0).astype(np.float32, copy=False)
    # Smoothed, a stroke keeps its contrast while noise-only maxima stay below ~1.5 sigma.
    contrast = float(_box3(ink).max())
    if contrast < _MIN_CONTRAST or contrast < 4 * noise:
        raise ImageError(
            "no ink found: the image is blank or its marks are too faint to tell from the "
            f"paper, got contrast {contrast:.3f} over noise {noise:.3f}"
        )
    threshold = _otsu(ink, contrast)
    threshold = min(max(threshold, 0.25 * contrast, 4 * noise), 0.7 * contrast)
    width = 0.25 * contrast
    lo = max(threshold - width, 3 * noise)
    hi = max(threshold + width, lo + 1e-3)
    ramp: npt.NDArray[np.float32] = np.clip((ink - lo) / np.float32(hi - lo), 0.0, 1.0)
    return ramp.astype(np.float32, copy=False)


def _runs(mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.intp], ...]:
    """Horizontal runs of True: row, start column and end column (exclusive) of each."""
    edges = np.diff(np.pad(mask, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)
    return rows, starts, ends


def _drop_specks_in(ink: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    present, factor = _block_reduce((ink > 0).astype(np.float32), _COMPONENT_GRID, "max")
    mass, _ = _block_reduce(ink, _COMPONENT_GRID, "sum")
    rows, starts, ends = _runs(present > 0)
    count = len(rows)
    # Union-find over runs: 8-connected runs of neighbouring rows belong together.
    parent = list(range(count))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    row_first = np.searchsorted(rows, np.arange(present.shape[0] + 1))
    for r in range(present.shape[0] - 1):
        a, a_end = int(row_first[r]), int(row_first[r + 1])
        b, b_end = a_end, int(row_first[r + 2])
        while a < a_end and b < b_end:
            if starts[a] <= ends[b] and starts[b] <= ends[a]:
                root_a, root_b = find(a), find(b)
                if root_a != root_b:
                    parent[max(root_a, root_b)] = min(root_a, root_b)
            if ends[a] < ends[b]:
                a += 1
            else:
                b += 1
    roots = np.array([find(i) for i in range(count)], np.intp)
    cumulative = np.pad(np.cumsum(mass, axis=1), ((0, 0), (1, 0)))
    run_mass = cumulative[rows, ends] - cumulative[rows, starts]
    totals = np.bincount(roots, weights=run_mass, minlength=count)
    keep_run = totals[roots] >= 0.05 * totals.max()
    keep = np.zeros(present.shape, bool)
    for r, start, end in zip(rows[keep_run], starts[keep_run], ends[keep_run], strict=True):
        keep[r, start:end] = True
    if factor > 1:
        keep = np.repeat(np.repeat(keep, factor, axis=0), factor, axis=1)
    return np.where(keep[: ink.shape[0], : ink.shape[1]], ink, np.float32(0))


def _drop_specks(ink: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Keep the connected ink components at least 5% as heavy as the heaviest one."""
    top, bottom, left, right = _bbox(ink)
    out = np.zeros_like(ink)
    out[top:bottom, left:right] = _drop_specks_in(ink[top:bottom, left:right])
    return out


# --------------------------------------------------------------- into MNIST's frame


def _resize(image: npt.NDArray[np.float32], height: int, width: int) -> npt.NDArray[np.float32]:
    import tensorflow as tf

    shrink = height <= image.shape[0] and width <= image.shape[1]
    resized = tf.image.resize(
        image[:, :, np.newaxis],
        (height, width),
        method="area" if shrink else "bilinear",
        antialias=True,
    )
    return np.asarray(resized.numpy()[:, :, 0], np.float32)


def _bbox(ink: npt.NDArray[np.float32]) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _into_frame(ink: npt.NDArray[np.float32], steps: PrepareSteps) -> npt.NDArray[np.float32]:
    top, bottom, left, right = _bbox(ink)
    scale = _BOX / max(bottom - top, right - left)
    ink = normalize_stroke(ink, scale, thicken=steps.thicken, thin=steps.thin)
    if not ink.any():
        raise ImageError("no ink left after normalizing the stroke width, got an empty result")
    top, bottom, left, right = _bbox(ink)
    scale = _BOX / max(bottom - top, right - left)
    crop = ink[top:bottom, left:right]
    height = max(1, round(crop.shape[0] * scale))
    width_px = max(1, round(crop.shape[1] * scale))
    small = np.clip(_resize(crop, height, width_px), 0.0, None)
    peak = float(small.max())
    if peak <= 0:
        raise ImageError("no ink left after scaling to 20x20, got an empty result")
    small /= np.float32(peak)
    ys = np.arange(height, dtype=np.float64)
    xs = np.arange(width_px, dtype=np.float64)
    total = float(small.sum())
    if steps.centre_of_mass:
        com_y = float(small.sum(axis=1) @ ys) / total
        com_x = float(small.sum(axis=0) @ xs) / total
    else:
        com_y, com_x = (height - 1) / 2, (width_px - 1) / 2
    top_out = round(CENTRE - com_y)
    left_out = round(CENTRE - com_x)
    frame = np.zeros((_SIZE, _SIZE), np.float32)
    # Clip the placed image to the frame (only a very lopsided digit reaches an edge).
    y0, x0 = max(top_out, 0), max(left_out, 0)
    y1, x1 = min(top_out + height, _SIZE), min(left_out + width_px, _SIZE)
    frame[y0:y1, x0:x1] = small[y0 - top_out : y1 - top_out, x0 - left_out : x1 - left_out]
    return np.clip(frame, 0.0, 1.0)


def prepare_image(image: ImageInput) -> npt.NDArray[np.float32]:
    """Turn a picture of one handwritten digit into an MNIST-style 28x28 image.

    The steps are described in the module documentation: grayscale, polarity, removal
    of the (unevenly lit, tinted) paper, thresholding relative to the ink's contrast,
    dropping specks, cropping to the ink, scaling into 20x20 keeping the aspect ratio,
    and centring by the centre of mass at pixel (14, 14), as MNIST was made. Inputs
    larger than 1024 pixels on a side are reduced first, so time and memory stay
    bounded (a 6000x6000 photo takes about a second).

    Args:
        image: One of

            * a path (``str`` or ``os.PathLike``) to a PNG, JPEG, BMP, GIF or WebP
              file (at most 32 MiB, a regular file: not a device or FIFO; the first
              frame of an animation), turned upright by its EXIF orientation;
            * the bytes of such a file (``bytes``, ``bytearray``, ``memoryview``);
            * pixels: an array (or anything ``numpy.asarray`` accepts) of shape
              ``(H, W)``, ``(H, W, 1)`` (grayscale), ``(H, W, 3)`` (RGB) or
              ``(H, W, 4)`` (RGBA: transparent parts are composited onto white for dark
              strokes, onto black for light ones). Integer dtypes hold 0..255, float
              dtypes [0, 1]. Either polarity: dark ink on light paper or light on dark.

    Returns:
        A ``(28, 28)`` float32 array in [0, 1], white ink on black: the strongest ink
        is 1, the ink's bounding box fits in 20x20 and its centre of mass is within
        half a pixel of (14, 14) (row, column indices).

    Raises:
        FileNotFoundError: A path that does not exist.
        IsADirectoryError: A path that is a directory.
        ImageError: (a ``ValueError``) bytes or a file that are not a readable image
            (or not a regular file, or over 32 MiB), an image too large to decode (a
            frame over 100 megapixels, or a decoder needing over 160 MiB), a wrong dtype or shape,
            NaN or infinite pixels, values outside 0..255 or [0, 1], or an image with no
            ink (blank, or marks too faint to tell from the paper's noise).

    Example:
        >>> import numpy as np
        >>> paper = np.full((120, 90), 230, np.uint8)   # light paper
        >>> paper[30:90, 40:48] = 20                      # a dark vertical stroke: a "1"
        >>> digit = prepare_image(paper)
        >>> digit.shape, digit.dtype, float(digit.max())
        ((28, 28), dtype('float32'), 1.0)
        >>> [int(v) for v in np.argwhere(digit > 0.5).mean(axis=0).round()]
        [14, 14]
    """
    if isinstance(image, str | os.PathLike):
        try:
            return _prepare(_read(image))
        except ImageError as error:
            # Name the file: a command line run over many files must say which one failed.
            raise ImageError(f"{os.fspath(image)}: {error}") from None
    if isinstance(image, bytes | bytearray | memoryview):
        return _prepare(_decode(bytes(image)))
    return _prepare(image)


def _prepare(image: npt.ArrayLike, steps: PrepareSteps = ALL_STEPS) -> npt.NDArray[np.float32]:
    pixels, full = as_picture(image)
    gray = _working_gray(pixels, full)
    scan = max(gray.shape) < SCAN_SIZE
    if steps.upsample_small:
        gray = upsample_small(gray)
    if steps.pad and scan:
        gray = pad_with_paper(gray)
    ink = _drop_specks(_ink(gray))
    if steps.pad and not scan and _touches_edge(ink) and _evenly_lit(gray):
        # Ink cut by the frame of an evenly lit picture (an enlarged scan): fit the paper
        # again with a margin, so the cut stroke is ink and not paper. (A margin of one
        # level beside a lighting gradient would itself look like faint ink.)
        ink = _drop_specks(_ink(pad_with_paper(gray)))
    return _into_frame(ink, steps)


def _evenly_lit(gray: npt.NDArray[np.float32]) -> bool:
    ring = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
    low, high = np.percentile(ring, [25, 75])
    return bool(high - low < 0.05)


def _touches_edge(ink: npt.NDArray[np.float32]) -> bool:
    strong = ink > 0.5
    return bool(strong[0].any() or strong[-1].any() or strong[:, 0].any() or strong[:, -1].any())
