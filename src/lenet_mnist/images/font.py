"""A tiny 3x5 bitmap font for captions in pictures written without matplotlib (internal).

The image strip (:mod:`lenet_mnist.images.strip`) must write its pictures with
TensorFlow alone, and its captions are only digits and percentages, so fifteen glyphs
drawn here are simpler and more predictable than a font file or an optional plotting
library (the same bytes with or without matplotlib installed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["GLYPHS", "GLYPH_HEIGHT", "GLYPH_WIDTH", "render_text", "text_width"]

GLYPH_WIDTH: Final = 3
GLYPH_HEIGHT: Final = 5
# One blank column between glyphs.
_ADVANCE: Final = GLYPH_WIDTH + 1

_ROWS: Final[Mapping[str, tuple[str, ...]]] = {
    "0": ("###", "#.#", "#.#", "#.#", "###"),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"),
    "3": ("###", "..#", "###", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"),
    "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"),
    "7": ("###", "..#", ".#.", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"),
    "9": ("###", "#.#", "###", "..#", "###"),
    "%": ("#.#", "..#", ".#.", "#..", "#.#"),
    ".": ("...", "...", "...", "...", ".#."),
    "-": ("...", "...", "###", "...", "..."),
    "?": ("###", "..#", ".#.", "...", ".#."),
    " ": ("...", "...", "...", "...", "..."),
}

#: The characters :func:`render_text` draws.
GLYPHS: Final = frozenset(_ROWS)


def text_width(text: str) -> int:
    """Width in pixels of ``text`` drawn by :func:`render_text`.

    Example:
        >>> text_width("7 99%")
        19
    """
    return max(0, len(text) * _ADVANCE - 1)


def render_text(text: str) -> npt.NDArray[np.bool_]:
    """Draw ``text`` as a ``(5, text_width(text))`` bool mask (``True``: ink).

    Raises:
        ValueError: A character the font does not have; the message lists the ones it has.

    Example:
        >>> render_text("1").astype(int).tolist()[0]
        [0, 1, 0]
    """
    unknown = sorted(set(text) - GLYPHS)
    if unknown:
        raise ValueError(
            f"captions may use only {''.join(sorted(GLYPHS))!r}, got {text!r} (with {unknown})"
        )
    mask = np.zeros((GLYPH_HEIGHT, text_width(text)), np.bool_)
    for k, char in enumerate(text):
        glyph = np.array([[c == "#" for c in row] for row in _ROWS[char]], np.bool_)
        mask[:, k * _ADVANCE : k * _ADVANCE + GLYPH_WIDTH] = glyph
    return mask
