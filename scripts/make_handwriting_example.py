"""Make the README's example: a photo-like picture of an MNIST test digit, and what the model sees.

    LENET_MNIST_DATA=/path/to/mnist python scripts/make_handwriting_example.py

Writes ``docs/images/handwritten-digit.jpg`` (dark ink on tinted paper, lit unevenly
from one corner, with paper grain, off-centre, slightly rotated, JPEG) and
``docs/images/handwritten-digit-prepared.png`` (``prepare_image``'s 28x28 result,
zoomed 6x), then prints the pretrained model's answer for the JPEG.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import tensorflow as tf

from lenet_mnist import load_mnist, predict_digits, prepare_image, pretrained, save_image_strip

OUT = Path(__file__).resolve().parents[1] / "docs/images"
INDEX = 15  # a "5" from the MNIST test set
HEIGHT, WIDTH = 300, 400


def main() -> None:
    rng = np.random.default_rng(18)
    data = load_mnist(download=False)
    digit = data.test_images[INDEX, :, :, 0].astype(np.float32)
    # Canvas -> digit coordinates: the 20x20 box becomes 170 px, rotated 6 degrees, right of centre.
    scale, theta, cy, cx = 170 / 20, math.radians(6), 140.0, 250.0
    cos, sin = math.cos(theta) / scale, math.sin(theta) / scale
    transform = [
        cos,
        sin,
        13.5 - (cos * cx + sin * cy),
        -sin,
        cos,
        13.5 - (-sin * cx + cos * cy),
        0,
        0,
    ]
    coverage = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.constant(digit[None, :, :, None]),
        transforms=tf.constant([transform], tf.float32),
        output_shape=tf.constant([HEIGHT, WIDTH]),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    ).numpy()[0]
    coverage = np.clip((coverage - 0.25) * 2.5, 0, 1)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    # Light from the top left corner, falling off towards the bottom right, plus grain.
    light = 1.0 - 0.45 * np.hypot(ys / HEIGHT, xs / WIDTH) / math.sqrt(2)
    grain = tf.image.resize(
        rng.normal(0, 0.02, (HEIGHT // 4, WIDTH // 4, 1)), (HEIGHT, WIDTH)
    ).numpy()
    paper = np.array([0.95, 0.90, 0.78], np.float32)  # yellowish
    ink = np.array([0.12, 0.13, 0.25], np.float32)  # blue-black ballpoint
    image = (paper * (1 - coverage) + ink * coverage) * light[..., None] + grain
    image += rng.normal(0, 0.015, image.shape)
    pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    OUT.mkdir(parents=True, exist_ok=True)
    photo = OUT / "handwritten-digit.jpg"
    photo.write_bytes(tf.io.encode_jpeg(pixels, quality=80).numpy())
    prepared = prepare_image(photo)
    save_image_strip(prepared[None], OUT / "handwritten-digit-prepared.png", zoom=6)
    result = predict_digits(pretrained(), photo)
    label = int(data.test_labels[INDEX])
    print(
        f"label {label}; predicted {int(result.digits[0])} (p={result.probabilities[0].max():.4f})"
    )


if __name__ == "__main__":
    main()
