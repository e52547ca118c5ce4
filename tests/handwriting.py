"""Photo-like pictures of handwritten digits, made from MNIST test digits (test helper).

A picture is dark ink on tinted, unevenly lit paper: the MNIST digit is scaled,
slightly rotated and placed off-centre on a canvas of its own size and aspect ratio,
blurred a little, given sensor noise, and encoded as PNG or JPEG, in RGB or grayscale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf


@dataclass(frozen=True)
class Style:
    """How one picture is made; :func:`random_style` draws one."""

    height: int
    width: int
    digit_size: float  # the digit's 20x20 box becomes this many pixels
    centre_y: float  # where the digit's box centre goes, in canvas pixels
    centre_x: float
    angle: float  # degrees
    paper: tuple[float, float, float]
    ink: tuple[float, float, float]
    light_low: float  # illumination at the dark end of the gradient
    light_angle: float  # radians
    blur: float  # Gaussian sigma, canvas pixels
    noise: float
    rgb: bool
    jpeg_quality: int | None  # None: PNG
    stroke: int = 0  # > 0 thickens by that many px, < 0 thins


def random_style(rng: np.random.Generator) -> Style:
    # Small canvases keep 1,000 pictures fast; prepare_image's own reduction of large
    # images is tested separately.
    height = int(rng.integers(40, 220))
    width = int(np.clip(height * rng.uniform(0.5, 2.0), 40, 300))
    digit_size = float(rng.uniform(0.35, 0.85) * min(height, width))
    half = digit_size * 0.7  # the 28x28 frame around the 20x20 box
    centre_y = float(rng.uniform(min(half, height / 2), max(height - half, height / 2)))
    centre_x = float(rng.uniform(min(half, width / 2), max(width - half, width / 2)))
    brightness = rng.uniform(0.75, 0.97)
    tint = rng.uniform(0.85, 1.0, size=3)
    tint /= tint.max()
    paper = tuple(float(v) for v in brightness * tint)
    ink_level = rng.uniform(0.05, 0.3)
    ink = tuple(float(v) for v in ink_level * rng.uniform(0.6, 1.0, size=3))
    return Style(
        height=height,
        width=width,
        digit_size=digit_size,
        centre_y=centre_y,
        centre_x=centre_x,
        angle=float(rng.uniform(-8, 8)),
        paper=paper,  # type: ignore[arg-type]
        ink=ink,  # type: ignore[arg-type]
        light_low=float(rng.uniform(0.55, 1.0)),
        light_angle=float(rng.uniform(0, 2 * math.pi)),
        blur=float(rng.uniform(0.0, 1.2) * digit_size / 100),
        noise=float(rng.uniform(0.0, 0.03)),
        rgb=bool(rng.random() < 0.6),
        jpeg_quality=None if rng.random() < 0.4 else int(rng.integers(50, 96)),
    )


def _place(digit: np.ndarray, style: Style) -> np.ndarray:
    """The digit's ink coverage (0..1) on the canvas, by one projective transform."""
    scale = style.digit_size / 20.0  # canvas pixels per MNIST pixel
    theta = math.radians(style.angle)
    cos, sin = math.cos(theta), math.sin(theta)
    # Output (canvas) -> input (28x28) coordinates: rotate about the placed centre.
    a00, a01 = cos / scale, sin / scale
    a10, a11 = -sin / scale, cos / scale
    cx, cy = style.centre_x, style.centre_y
    b0 = 13.5 - (a00 * cx + a01 * cy)
    b1 = 13.5 - (a10 * cx + a11 * cy)
    transform = tf.constant([[a00, a01, b0, a10, a11, b1, 0.0, 0.0]], tf.float32)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.constant(digit[np.newaxis, :, :, np.newaxis], tf.float32),
        transforms=transform,
        output_shape=tf.constant([style.height, style.width]),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    coverage = out.numpy()[0, :, :, 0]
    if style.stroke:
        size = 2 * abs(style.stroke) + 1
        x = tf.constant(coverage[np.newaxis, :, :, np.newaxis])
        x = tf.nn.max_pool2d(x if style.stroke > 0 else -x, size, 1, "SAME")
        coverage = (x if style.stroke > 0 else -x).numpy()[0, :, :, 0]
    # Bilinear upscaling leaves soft ramps; real ink has a crisp edge.
    return np.clip((coverage - 0.25) * 2.5, 0.0, 1.0)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    if sigma < 0.3:
        return image
    radius = max(1, int(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    for axis in (0, 1):
        padded = np.pad(
            image, [(radius, radius) if a == axis else (0, 0) for a in range(image.ndim)], "edge"
        )
        image = sum(
            w * np.take(padded, np.arange(k, k + image.shape[axis]), axis=axis)
            for k, w in enumerate(taps)
        )
    return image


def render(digit: np.ndarray, style: Style, rng: np.random.Generator) -> np.ndarray:
    """The picture as float pixels (H, W, 3) in [0, 1], before encoding."""
    coverage = _place(np.asarray(digit, np.float32).reshape(28, 28), style)[..., np.newaxis]
    paper = np.asarray(style.paper, np.float32)
    ink = np.asarray(style.ink, np.float32)
    image = paper * (1 - coverage) + ink * coverage
    ys, xs = np.mgrid[0 : style.height, 0 : style.width].astype(np.float32)
    direction = (
        np.cos(style.light_angle) * xs / style.width + np.sin(style.light_angle) * ys / style.height
    )
    direction = (direction - direction.min()) / max(float(np.ptp(direction)), 1e-6)
    light = style.light_low + (1 - style.light_low) * direction
    image = _blur(image * light[..., np.newaxis], style.blur)
    image = image + rng.normal(0, style.noise, size=image.shape)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def encode(image: np.ndarray, style: Style) -> bytes:
    pixels = np.round(image * 255).astype(np.uint8)
    if not style.rgb:
        pixels = np.round(pixels.astype(np.float32) @ [0.299, 0.587, 0.114]).astype(np.uint8)[
            ..., np.newaxis
        ]
    if style.jpeg_quality is None:
        return bytes(tf.io.encode_png(pixels).numpy())
    return bytes(tf.io.encode_jpeg(pixels, quality=style.jpeg_quality).numpy())


def photo(digit: np.ndarray, style: Style, rng: np.random.Generator) -> bytes:
    """Encoded file bytes of a photo-like picture of ``digit`` (28x28, white on black)."""
    return encode(render(digit, style, rng), style)
