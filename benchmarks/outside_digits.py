"""Handwritten digits from outside MNIST, and the validation pictures used to choose steps.

Two kinds of sets, kept apart on purpose:

* **Report sets** (never used to choose anything): scikit-learn's ``load_digits`` (43
  writers' digits scanned at 8x8, the UCI "optdigits" test part), passed as 8x8 arrays and
  as smooth 176x176 pictures; and digits typed in half of the handwriting-like typefaces
  of Debian's ``fonts-*`` packages installed here, on tinted, unevenly lit paper, rotated,
  40-120 px.
* **Validation sets** (for choosing ``prepare_image``'s steps): MNIST *training* digits
  (the last 5,000, which the calibration also holds out) rendered as photos the way
  ``tests/handwriting.py`` does, some with heavier strokes; the same digits reduced to
  small 8x8 and 16x16 scans the way optdigits and semeion were made; and the *other* half
  of the typefaces.

Everything is seeded. Fonts are split by family (alternate families in sorted order), so
no typeface is in both halves.
"""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from handwriting import Style, photo, random_style

#: Typefaces that imitate handwriting, from Debian packages (fonts-comic-neue,
#: fonts-dkg-handwriting, fonts-breip, fonts-bwht, fonts-dancingscript, fonts-femkeklaver,
#: fonts-humor-sans, fonts-kaushanscript, fonts-kristi, fonts-ecolier-court,
#: fonts-cabinsketch, fonts-rufscript, fonts-havana, fonts-joscelyn,
#: fonts-levien-typoscript, fonts-lobster, fonts-leckerli-one, fonts-opendyslexic).
FONT_PACKAGES = (
    "fonts-comic-neue fonts-dkg-handwriting fonts-breip fonts-bwht fonts-dancingscript "
    "fonts-femkeklaver fonts-humor-sans fonts-kaushanscript fonts-kristi fonts-ecolier-court "
    "fonts-cabinsketch fonts-rufscript fonts-havana fonts-joscelyn fonts-levien-typoscript "
    "fonts-lobster fonts-leckerli-one fonts-opendyslexic"
)
_FONT_DIRS = (
    "opentype/bwht",
    "opentype/comic-neue",
    "opentype/dancingscript",
    "opentype/havana",
    "opentype/joscelyn",
    "opentype/kaushanscript",
    "opentype/levien",
    "opentype/lobster",
    "opentype/opendyslexic",
    "truetype/breip",
    "truetype/cabinsketch",
    "truetype/ecolier-court",
    "truetype/femkeklaver",
    "truetype/fifthhorseman",
    "truetype/humor-sans",
    "truetype/kristi",
    "truetype/leckerli-one",
    "truetype/rufscript",
)


@dataclass(frozen=True)
class Sample:
    """One picture of a digit: what ``predict_digits`` is given, and the true digit."""

    source: str
    image: bytes | np.ndarray
    label: int


def font_files(half: str) -> list[Path]:
    """The typeface files of one half, ``"validation"`` or ``"report"``, that have digits."""
    families = [d for d in sorted(_FONT_DIRS) if (Path("/usr/share/fonts") / d).is_dir()]
    chosen = families[0::2] if half == "validation" else families[1::2]
    files: list[Path] = []
    for family in chosen:
        files += sorted(
            p for p in (Path("/usr/share/fonts") / family).iterdir() if p.suffix in (".ttf", ".otf")
        )
    return [f for f in files if _has_digits(f)]


def _glyph(path: Path, text: str, size: int = 160) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(path), size)
    canvas = Image.new("L", (size * 3, size * 3), 0)
    ImageDraw.Draw(canvas).text((size, size // 2), text, fill=255, font=font)
    return np.asarray(canvas, np.float32) / 255.0


def _has_digits(path: Path) -> bool:
    try:
        missing = _glyph(path, "\uffff", 40)
        glyphs = [_glyph(path, str(d), 40) for d in (0, 1, 8)]
    except OSError:
        return False
    return all(g.sum() > 0 and not np.array_equal(g, missing) for g in glyphs)


def _crop(coverage: np.ndarray) -> np.ndarray:
    rows = np.flatnonzero(coverage.max(axis=1) > 0.05)
    cols = np.flatnonzero(coverage.max(axis=0) > 0.05)
    return coverage[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _paper_picture(coverage: np.ndarray, rng: np.random.Generator) -> bytes:
    """Dark ink of ``coverage`` (cropped, 0..1) on tinted, unevenly lit paper, 40-120 px."""
    from PIL import Image

    side = int(rng.integers(40, 121))
    aspect = rng.uniform(0.7, 1.4)
    height, width = (
        (side, max(24, int(side * aspect)))
        if aspect < 1
        else (
            max(24, int(side / aspect)),
            side,
        )
    )
    glyph = Image.fromarray(np.round(coverage * 255).astype(np.uint8))
    glyph = glyph.rotate(float(rng.uniform(-12, 12)), Image.Resampling.BICUBIC, expand=True)
    target = rng.uniform(0.5, 0.85) * min(height, width)
    factor = target / max(glyph.size)
    glyph = glyph.resize(
        (max(2, round(glyph.size[0] * factor)), max(2, round(glyph.size[1] * factor))),
        Image.Resampling.LANCZOS,
    )
    ink_map = np.zeros((height, width), np.float32)
    g = np.asarray(glyph, np.float32) / 255.0
    gh, gw = min(g.shape[0], height), min(g.shape[1], width)
    top = int(rng.integers(0, height - gh + 1))
    left = int(rng.integers(0, width - gw + 1))
    ink_map[top : top + gh, left : left + gw] = g[:gh, :gw]
    cover = np.clip(ink_map, 0, 1)[..., np.newaxis]
    tint = rng.uniform(0.85, 1.0, size=3)
    paper = rng.uniform(0.75, 0.97) * tint / tint.max()
    ink = rng.uniform(0.05, 0.3) * rng.uniform(0.6, 1.0, size=3)
    image = paper * (1 - cover) + ink * cover
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    direction = math.cos(angle) * xs / width + math.sin(angle) * ys / height
    direction = (direction - direction.min()) / max(float(np.ptp(direction)), 1e-6)
    low = rng.uniform(0.55, 1.0)
    image = image * (low + (1 - low) * direction)[..., np.newaxis]
    image = image + rng.normal(0, rng.uniform(0, 0.03), size=image.shape)
    pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    out = io.BytesIO()
    if rng.random() < 0.5:
        Image.fromarray(pixels).save(out, format="PNG")
    else:
        Image.fromarray(pixels).save(out, format="JPEG", quality=int(rng.integers(60, 96)))
    return out.getvalue()


def font_samples(half: str, per_digit: int, seed: int) -> Iterator[Sample]:
    """``per_digit`` pictures of each digit in each typeface of ``half``."""
    rng = np.random.default_rng(seed)
    for path in font_files(half):
        for digit in range(10):
            coverage = _crop(_glyph(path, str(digit)))
            for _ in range(per_digit):
                yield Sample(f"fonts-{half}", _paper_picture(coverage, rng), digit)


def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 digits: ``(N, 8, 8)`` float32 in [0, 1] (ink bright), labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:  # pragma: no cover
        raise ImportError(
            "the 8x8 report set needs scikit-learn: pip install scikit-learn"
        ) from error
    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


def enlarge(small: np.ndarray, size: int = 176) -> bytes:
    """A smooth ``size``x``size`` PNG of a small bright-ink array, as dark ink on white."""
    from PIL import Image

    pixels = Image.fromarray(np.round((1.0 - small) * 255).astype(np.uint8))
    out = io.BytesIO()
    pixels.resize((size, size), Image.Resampling.BICUBIC).save(out, format="PNG")
    return out.getvalue()


def sklearn_samples() -> Iterator[Sample]:
    images, labels = sklearn_digits()
    for image, label in zip(images, labels, strict=True):
        yield Sample("sklearn-8x8-arrays", image, int(label))
    for image, label in zip(images, labels, strict=True):
        yield Sample("sklearn-8x8-pictures", enlarge(image), int(label))


def small_scan(digit: np.ndarray, size: int, levels: int) -> np.ndarray:
    """An MNIST digit as an optdigits/semeion-like scan: ``size``x``size``, bright ink.

    The ink's bounding box is scaled to fill a ``4 * size`` square (aspect kept),
    binarized, and counted in 4x4 blocks (``levels`` > 1 gray levels; 2 is binary).
    """
    import tensorflow as tf

    coverage = np.asarray(digit, np.float32).reshape(28, 28)  # MNIST floats in [0, 1]
    crop = _crop(coverage)
    big = 4 * size
    factor = big / max(crop.shape)
    h, w = max(1, round(crop.shape[0] * factor)), max(1, round(crop.shape[1] * factor))
    resized = tf.image.resize(crop[..., np.newaxis], (h, w), "bilinear").numpy()[..., 0]
    canvas = np.zeros((big, big), np.float32)
    top, left = (big - h) // 2, (big - w) // 2
    canvas[top : top + h, left : left + w] = resized > 0.5
    blocks = canvas.reshape(size, 4, size, 4).mean(axis=(1, 3))
    return (np.round(blocks * (levels - 1)) / (levels - 1)).astype(np.float32)


def validation_samples(
    images: np.ndarray, labels: np.ndarray, count: int, seed: int
) -> Iterator[Sample]:
    """Pictures for choosing steps, from MNIST *training* digits (give the held-out ones).

    ``count`` photos (a third with strokes thickened by 1-3 px), ``count`` small scans as
    arrays (8x8 with 17 levels, 16x16 binary), ``count // 2`` of those scans enlarged.
    """
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(images), size=count, replace=False)
    for index in picks:
        style: Style = random_style(rng)
        if rng.random() < 1 / 3:
            style = replace(style, stroke=int(rng.integers(1, 4)))
        yield Sample("val-mnist-photos", photo(images[index], style, rng), int(labels[index]))
    picks = rng.choice(len(images), size=count, replace=False)
    for k, index in enumerate(picks):
        size, levels = (8, 17) if k % 2 == 0 else (16, 2)
        scan = small_scan(images[index], size, levels)
        yield Sample("val-small-arrays", scan, int(labels[index]))
        if k % 2 == 0:
            yield Sample("val-small-pictures", enlarge(scan), int(labels[index]))
