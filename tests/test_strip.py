"""Issue 15: the ``predict --show`` strip, with captions, written as PNG or JPEG by suffix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

import lenet_mnist as lm
from lenet_mnist.images.font import GLYPH_HEIGHT, GLYPHS, render_text, text_width
from lenet_mnist.images.strip import STRIP_FORMATS, check_strip_path, save_image_strip

PNG = b"\x89PNG\r\n\x1a\n"
JPEG = b"\xff\xd8\xff"


def _decode(path: Path) -> np.ndarray:
    return tf.io.decode_image(path.read_bytes(), channels=1).numpy()[..., 0]


def test_captions_add_a_row_of_text_under_each_image(tmp_path: Path) -> None:
    images = np.zeros((3, 28, 28), np.float32)
    plain = _decode(save_image_strip(images, tmp_path / "plain.png", zoom=1))
    captioned = _decode(
        save_image_strip(images, tmp_path / "c.png", zoom=1, captions=["7 99%", "1 5%", "0 100%"])
    )
    assert plain.shape == (32, 92)
    assert captioned.shape == (32 + GLYPH_HEIGHT + 2, 92)
    # The images are black; every white pixel is caption ink, under the images.
    ink_rows = np.nonzero((captioned == 255).any(axis=1))[0]
    assert ink_rows.min() >= 2 + 28
    # Each caption is drawn centred under its own image, exactly as the font draws it.
    mask = render_text("7 99%")
    left = 2 + (28 - mask.shape[1]) // 2
    drawn = captioned[2 + 28 + 1 : 2 + 28 + 1 + GLYPH_HEIGHT, left : left + mask.shape[1]]
    np.testing.assert_array_equal(drawn == 255, mask)


@pytest.mark.parametrize(("suffix", "magic"), [(".png", PNG), (".jpg", JPEG), (".JPEG", JPEG)])
def test_the_suffix_picks_the_format(tmp_path: Path, suffix: str, magic: bytes) -> None:
    path = save_image_strip(np.zeros((2, 28, 28)), tmp_path / f"s{suffix}")
    assert path.read_bytes()[: len(magic)] == magic


def test_one_suffix_rule_refused_up_front(tmp_path: Path) -> None:
    assert set(STRIP_FORMATS) == {".png", ".jpg", ".jpeg"}
    with pytest.raises(
        ValueError, match=r"image strips must end in one of .jpeg, .jpg, .png, got 's.gif'"
    ):
        check_strip_path("s.gif")
    with pytest.raises(ValueError, match=r"got 's\.pdf'"):
        save_image_strip(np.zeros((1, 28, 28)), "s.pdf")
    assert not Path("s.pdf").exists()


@pytest.mark.parametrize(
    ("captions", "error", "match"),
    [
        (["1"], ValueError, r"need one caption per image \(2\), got 1"),
        (["1", "12345678"], ValueError, "must fit under a 28-pixel image.*got '12345678'"),
        (["1", "ab"], ValueError, "captions may use only .*got 'ab'"),
        ("12", TypeError, "captions must be a sequence of str"),
    ],
)
def test_bad_captions(tmp_path: Path, captions: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        save_image_strip(np.zeros((2, 28, 28)), tmp_path / "s.png", captions=captions)  # type: ignore[arg-type]
    assert not (tmp_path / "s.png").exists()


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet=sorted(GLYPHS), max_size=7))
def test_the_font_draws_every_caption_in_its_width(text: str) -> None:
    mask = render_text(text)
    assert mask.shape == (GLYPH_HEIGHT, text_width(text))
    assert text_width(text) <= 28
    # A blank column separates the glyphs, so neighbours never touch.
    for k in range(1, len(text)):
        assert not mask[:, 4 * k - 1].any()


def test_the_digit_glyphs_are_all_different() -> None:
    shapes = {render_text(d).tobytes() for d in "0123456789"}
    assert len(shapes) == 10


def test_the_strip_is_a_public_name() -> None:
    assert lm.save_image_strip is save_image_strip
