"""Steps that bring pictures unlike MNIST's closer to it: small scans, edges, stroke width.

:func:`lenet_mnist.prepare_image` calls these around its own steps:

* :func:`upsample_small`: a scan, a picture smaller than :data:`SCAN_SIZE` pixels on its
  longer side (8x8, 16x16), is enlarged smoothly to :data:`MIN_WORKING` *before* the
  paper's noise is estimated: on an 8x8 scan every pair of neighbours differs by an edge, so the noise
  estimate of the raw pixels is as large as the ink's contrast and the digit would be
  refused as "no ink";
* :func:`pad_with_paper`: a margin of the paper's own level around a scan, so the
  background fit sees paper on every side and a stroke that touches the scan's edge
  (most of an 8x8 digit does) is ink, not paper. ``prepare_image`` also pads a larger
  picture whose ink touches its edge when its border is evenly lit (an enlarged scan);
  beside a lighting gradient a margin of one level would itself look like faint ink;
* :func:`normalize_stroke`: strokes are brought toward MNIST's width. MNIST's strokes,
  measured with :func:`stroke_width` on its first 20,000 training images at 28x28, are
  1.98 px wide (median; 10th-90th percentile 1.42-2.77 px). Hairlines are thickened (a
  dilation) and strokes wider than :data:`THICK` are thinned (an erosion) toward
  :data:`TARGET_WIDTH`.

:class:`PrepareSteps` switches each step (and the framing's centre of mass) on or off; it
exists to measure each step's effect (``scripts/eval_handwriting.py --ablate``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "ALL_STEPS",
    "MIN_WORKING",
    "SCAN_SIZE",
    "TARGET_WIDTH",
    "THICK",
    "THIN",
    "PrepareSteps",
    "normalize_stroke",
    "pad_with_paper",
    "stroke_width",
    "upsample_small",
]

#: Scans are enlarged so their longer side is at least this (pixels).
MIN_WORKING: Final = 112
#: MNIST's median stroke width at 28x28 (pixels), the thinning target.
TARGET_WIDTH: Final = 2.0
#: Pictures whose longer side is smaller than this are scans: enlarged first, and padded
#: with one paper level.
SCAN_SIZE: Final = 40
#: Strokes wider than this at MNIST's scale (pixels; MNIST's 90th percentile) are thinned.
THICK: Final = 2.8
#: Strokes thinner than this at MNIST's scale (pixels) are thickened.
THIN: Final = 1.5


@dataclass(frozen=True)
class PrepareSteps:
    """Which of the optional steps :func:`lenet_mnist.prepare_image` runs (all by default).

    Attributes:
        upsample_small: Enlarge scans (under :data:`SCAN_SIZE`) to :data:`MIN_WORKING` first.
        pad: Surround the picture with a margin of paper.
        thicken: Dilate hairlines toward MNIST's stroke width.
        thin: Erode strokes wider than :data:`THICK` toward :data:`TARGET_WIDTH`.
        centre_of_mass: Centre by the ink's centre of mass, as MNIST (else by its box).
    """

    upsample_small: bool = True
    pad: bool = True
    thicken: bool = True
    thin: bool = True
    centre_of_mass: bool = True


def upsample_small(gray: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Enlarge a scan (longer side under :data:`SCAN_SIZE`) to :data:`MIN_WORKING` pixels.

    ``gray`` is (H, W) float32 in [0, 1]; a scan is enlarged (bicubic) by the smallest
    integer factor that makes its longer side at least :data:`MIN_WORKING`, clipped to
    [0, 1]. A larger picture is returned as it is (the same object): enlarging pictures
    of 40-111 px measured no better on photos and worse on typeface pictures.
    """
    import tensorflow as tf

    longer = max(gray.shape)
    if longer >= SCAN_SIZE:
        return gray
    factor = math.ceil(MIN_WORKING / longer)
    size = (gray.shape[0] * factor, gray.shape[1] * factor)
    resized = tf.image.resize(gray[:, :, np.newaxis], size, method="bicubic")
    big: npt.NDArray[np.float32] = np.asarray(resized.numpy()[:, :, 0], np.float32)
    return np.clip(big, np.float32(0), np.float32(1))


def pad_with_paper(gray: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """``gray`` (H, W) with a margin of paper, 1/8 of its longer side, on every side.

    The margin has one level, the median of the picture's outermost pixels: the paper's,
    as long as strokes cover less than half of the picture's border (scans are evenly
    lit, so one level is enough).

    Returns:
        The padded picture, float32; its middle is ``gray`` unchanged.
    """
    height, width = gray.shape
    margin = max(2, math.ceil(max(height, width) / 8))
    ring = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
    paper = float(np.median(ring))
    return np.pad(gray, margin, mode="constant", constant_values=paper).astype(np.float32)


def stroke_width(ink: npt.NDArray[np.float32]) -> float:
    """Mean stroke width in pixels of an ink map: twice its area over its perimeter.

    Ink is where the map exceeds 0.5; no ink gives 0. A stroke of width w and length
    L >> w gives about w.
    """
    mask = ink > 0.5
    area = float(mask.sum())
    if area == 0:
        return 0.0
    edges = float((mask[1:, :] != mask[:-1, :]).sum() + (mask[:, 1:] != mask[:, :-1]).sum())
    edges += float(mask[0].sum() + mask[-1].sum() + mask[:, 0].sum() + mask[:, -1].sum())
    return 2.0 * area / max(edges, 1.0)


def _pool(image: npt.NDArray[np.float32], size: int, erode: bool) -> npt.NDArray[np.float32]:
    import tensorflow as tf

    sign = -1.0 if erode else 1.0
    tensor = tf.constant(sign * image[np.newaxis, :, :, np.newaxis])
    return np.asarray(sign * tf.nn.max_pool2d(tensor, size, 1, "SAME").numpy()[0, :, :, 0])


def normalize_stroke(
    ink: npt.NDArray[np.float32], scale: float, *, thicken: bool = True, thin: bool = True
) -> npt.NDArray[np.float32]:
    """Dilate or erode ``ink`` (H, W, values in [0, 1]) toward MNIST's stroke width.

    Args:
        ink: The ink map, cropped or not (any size).
        scale: MNIST pixels per pixel of ``ink`` (20 over the longer side of the ink's box).
        thicken: Dilate when the width at MNIST's scale is under :data:`THIN`.
        thin: Erode when it is over :data:`THICK`, toward :data:`TARGET_WIDTH`; an erosion
            that would remove more than 70% of the ink (strokes of very uneven width) is
            made smaller until it does not.

    Returns:
        The new ink map, same shape, float32.
    """
    width = stroke_width(ink) * scale
    if thicken and 0 < width < THIN:
        # Hairlines would shrink to faint, broken traces.
        return _pool(ink, max(2, round((TARGET_WIDTH - width) / scale) + 1), erode=False)
    if thin and width > THICK:
        size = round((width - TARGET_WIDTH) / scale) + 1
        total = float(ink.sum())
        while size >= 2:
            thinner = _pool(ink, size, erode=True)
            if float(thinner.sum()) >= 0.3 * total:
                return thinner
            size = size * 2 // 3
    return ink


#: Every step on: what :func:`lenet_mnist.prepare_image` runs.
ALL_STEPS: Final = PrepareSteps()
