"""prepare_image on pictures unlike MNIST's: small scans, ink at the edge, thick strokes."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from lenet_mnist import ImageError, prepare_image
from lenet_mnist.images.normalize import (
    SCAN_SIZE,
    normalize_stroke,
    pad_with_paper,
    stroke_width,
    upsample_small,
)

# A "7" scanned at 8x8 the way scikit-learn's digits are: bright ink, 0..16, touching
# the top, the right and the bottom edges.
SEVEN = np.array(
    [
        [0, 6, 16, 16, 16, 16, 16, 9],
        [0, 3, 8, 8, 8, 10, 16, 6],
        [0, 0, 0, 0, 2, 15, 9, 0],
        [0, 0, 0, 0, 10, 14, 1, 0],
        [0, 0, 0, 3, 16, 6, 0, 0],
        [0, 0, 0, 11, 13, 0, 0, 0],
        [0, 0, 3, 16, 5, 0, 0, 0],
        [0, 0, 7, 15, 1, 0, 0, 0],
    ],
    np.float32,
) / np.float32(16)


def _bbox(image: np.ndarray) -> tuple[int, int]:
    rows = np.flatnonzero((image > 0.3).any(axis=1))
    cols = np.flatnonzero((image > 0.3).any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def test_an_8x8_scan_is_accepted_as_an_array_and_as_a_file() -> None:
    out = prepare_image(SEVEN)
    assert out.shape == (28, 28)
    # The ink's box is scaled to 20 on its longer side: nothing of the 7 was cut.
    assert max(_bbox(out)) in (19, 20, 21)
    png = tf.io.encode_png(np.round((1 - SEVEN) * 255).astype(np.uint8)[..., None]).numpy()
    from_file = prepare_image(bytes(png))
    assert np.abs(from_file - out).mean() < 0.03


def test_a_blank_small_picture_still_has_no_ink() -> None:
    with pytest.raises(ImageError, match="no ink found"):
        prepare_image(np.full((8, 8), 0.8, np.float32))


def test_ink_touching_the_edge_keeps_its_extent() -> None:
    # A "1" running from the top edge to the bottom edge, on unevenly lit paper.
    xs = np.arange(160, dtype=np.float32)[None, :]
    paper = np.broadcast_to(0.6 + 0.3 * xs / 160, (120, 160))
    picture = paper.copy()
    picture[:, 76:86] = 0.1
    out = prepare_image(picture)
    height, width = _bbox(out)
    assert height >= 19
    assert width <= 6


def test_thick_strokes_are_thinned_toward_mnist() -> None:
    picture = np.full((200, 200), 0.9, np.float32)
    ys, xs = np.mgrid[0:200, 0:200]
    radius = np.hypot(ys - 100, xs - 100)
    picture[(radius > 45) & (radius < 85)] = 0.1  # a "0" with a 40 px stroke in 170 px
    out = prepare_image(picture)
    # At MNIST's scale the stroke is 40 * 20 / 170 = 4.7 px; MNIST's is about 2 px.
    assert 1.5 <= stroke_width(out) <= 3.2


@pytest.mark.parametrize("width", [2, 5, 11])
def test_stroke_width_of_a_bar(width: int) -> None:
    bar = np.zeros((300, 40), np.float32)
    bar[:, 10 : 10 + width] = 1.0
    assert stroke_width(bar) == pytest.approx(width, rel=0.05)
    assert stroke_width(np.zeros((5, 5), np.float32)) == 0.0


def test_normalize_stroke_only_changes_strokes_outside_mnists_range() -> None:
    bar = np.zeros((100, 60), np.float32)
    bar[:, 20:30] = 1.0  # 10 px at scale 0.2: 2 MNIST px, already right
    np.testing.assert_array_equal(normalize_stroke(bar, 0.2), bar)
    thinned = normalize_stroke(bar, 0.5)  # 5 MNIST px: thinned
    assert stroke_width(thinned) * 0.5 == pytest.approx(2.0, abs=0.6)
    np.testing.assert_array_equal(normalize_stroke(bar, 0.5, thin=False), bar)
    thickened = normalize_stroke(bar, 0.1)  # 1 MNIST px: thickened
    assert stroke_width(thickened) > stroke_width(bar)


def test_upsample_small_leaves_large_pictures_alone() -> None:
    large = np.zeros((SCAN_SIZE, 30), np.float32)
    assert upsample_small(large) is large
    small = upsample_small(SEVEN)
    assert small.shape == (8 * 14, 8 * 14)
    assert small.min() >= 0.0
    assert small.max() <= 1.0


@settings(max_examples=25, deadline=None)
@given(
    height=st.integers(4, 60),
    width=st.integers(4, 60),
    paper=st.floats(0.0, 1.0),
    seed=st.integers(0, 100),
)
def test_pad_keeps_the_picture_and_surrounds_it_with_paper(
    height: int, width: int, paper: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    picture = np.full((height, width), paper, np.float32)
    column = int(rng.integers(0, width))
    ink = 1.0 - paper
    picture[:, column] = ink  # a stroke across the whole picture, touching both edges
    padded = pad_with_paper(picture)
    margin = (padded.shape[0] - height) // 2
    assert margin >= 2
    assert padded.shape == (height + 2 * margin, width + 2 * margin)
    np.testing.assert_array_equal(padded[margin:-margin, margin:-margin], picture)
    # The stroke covers less than half of the border: the margin is paper, not ink.
    np.testing.assert_array_equal(padded[:margin], np.float32(paper))
    np.testing.assert_array_equal(padded[:, :margin], np.float32(paper))
