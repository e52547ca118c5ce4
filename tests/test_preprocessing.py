"""prepare_image: MNIST's form from pictures of any size, polarity, lighting and format."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lenet_mnist import ImageError, build_lenet, predict_digits, prepare_image, save_image_strip
from lenet_mnist.images.batch import images_to_batch
from lenet_mnist.images.prepare import CENTRE


def _centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    total = image.sum()
    ys, xs = np.mgrid[0:28, 0:28]
    return float((image * ys).sum() / total), float((image * xs).sum() / total)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference, allowing a one-pixel shift (centring rounds to whole pixels)."""
    return min(
        float(np.abs(np.roll(a, (dy, dx), axis=(0, 1)) - b).mean())
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    )


def _bbox_size(image: np.ndarray) -> tuple[int, int]:
    rows = np.flatnonzero(image.any(axis=1))
    cols = np.flatnonzero(image.any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def _ring(
    height: int, width: int, cy: float, cx: float, ry: float, rx: float, t: float
) -> np.ndarray:
    """Ink coverage (0..1) of an elliptical ring, like a handwritten zero."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    r = np.sqrt(((ys - cy) / ry) ** 2 + ((xs - cx) / rx) ** 2)
    # Ink has a crisp edge: full coverage across the stroke, a one-pixel ramp at its sides.
    return np.clip(t / 2 + 0.5 - np.abs(r - 1.0) * min(ry, rx), 0.0, 1.0)


def _paper(
    coverage: np.ndarray, paper: float = 0.85, ink: float = 0.15, gradient: float = 0.0
) -> np.ndarray:
    """Dark ink on light paper lit from the left; uint8."""
    light = 1.0 - gradient * np.linspace(0, 1, coverage.shape[1])[np.newaxis, :]
    image = (paper * (1 - coverage) + ink * coverage) * light
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


@st.composite
def _pictures(draw: st.DrawFn) -> tuple[np.ndarray, bool]:
    height = draw(st.integers(24, 300))
    width = draw(st.integers(24, 300))
    ry = draw(st.floats(0.2, 0.45)) * height
    rx = draw(st.floats(0.2, 0.45)) * width
    cy = draw(st.floats(ry + 1, height - ry - 1))
    cx = draw(st.floats(rx + 1, width - rx - 1))
    thickness = max(1.0, draw(st.floats(0.05, 0.3)) * min(ry, rx))
    coverage = _ring(height, width, cy, cx, ry, rx, thickness)
    gradient = draw(st.floats(0.0, 0.4))
    dark = draw(st.booleans())
    image = _paper(coverage, gradient=gradient)
    return (image if dark else 255 - image), dark


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_pictures())
def test_output_is_mnist_form(picture: tuple[np.ndarray, bool]) -> None:
    image, _ = picture
    out = prepare_image(image)
    assert out.shape == (28, 28)
    assert out.dtype == np.float32
    assert out.min() >= 0.0
    assert out.max() == pytest.approx(1.0)
    height, width = _bbox_size(out > 0)
    assert max(height, width) <= 20
    assert max(height, width) >= 19  # the longer side is scaled to the 20-pixel box
    com_y, com_x = _centre_of_mass(out)
    assert abs(com_y - CENTRE) <= 0.5 + 1e-4
    assert abs(com_x - CENTRE) <= 0.5 + 1e-4  # half a pixel, up to float rounding


def test_polarity_does_not_matter() -> None:
    coverage = _ring(120, 100, 60, 50, 40, 25, 6)
    dark_on_light = prepare_image(_paper(coverage))
    light_on_dark = prepare_image(255 - _paper(coverage))
    assert _distance(dark_on_light, light_on_dark) < 0.01


def test_uneven_light_and_tint_are_removed() -> None:
    coverage = _ring(160, 200, 70, 120, 50, 30, 7)
    clean = prepare_image(_paper(coverage))
    rgb = np.stack([_paper(coverage, paper=p, gradient=0.5) for p in (0.9, 0.8, 0.6)], axis=-1)
    assert _distance(prepare_image(rgb), clean) < 0.03


def test_a_lone_speck_is_ignored() -> None:
    coverage = _ring(200, 200, 90, 100, 60, 40, 8)
    clean = prepare_image(_paper(coverage))
    coverage[185:188, 10:13] = 1.0  # a 3x3 speck of dust far from the digit
    coverage[5:7, 190:192] = 1.0
    assert np.abs(prepare_image(_paper(coverage)) - clean).max() < 1e-6


def test_a_hairline_is_thickened() -> None:
    coverage = np.zeros((600, 400), np.float32)
    coverage[100:500, 199:200] = 1.0  # a one-pixel line 400 pixels long: a thin "1"
    out = prepare_image(_paper(coverage))
    columns = (out > 0.5).sum(axis=0)
    assert columns.max() >= 15  # still a continuous stroke 20 pixels long
    assert (out > 0.5).sum() >= 1.5 * 20  # and at least ~1.5 pixels wide


def test_transparent_background_is_composited() -> None:
    coverage = _ring(80, 80, 40, 40, 30, 20, 5)
    expected = prepare_image(np.round((1 - coverage) * 255).astype(np.uint8))
    rgba = np.zeros((80, 80, 4), np.uint8)
    rgba[..., 3] = np.round(coverage * 255).astype(np.uint8)  # black strokes, transparent
    assert _distance(prepare_image(rgba), expected) < 0.01
    rgba[..., :3] = 255  # white strokes on a transparent canvas
    assert _distance(prepare_image(rgba), expected) < 0.01
    gray_alpha = tf.io.encode_png(rgba[..., [0, 3]]).numpy()  # a gray + alpha PNG
    assert _distance(prepare_image(gray_alpha), expected) < 0.01


@pytest.mark.parametrize("fmt", ["png", "jpeg", "bmp", "gif"])
def test_files_and_bytes(tmp_path: Path, fmt: str) -> None:
    image = _paper(_ring(90, 70, 45, 35, 35, 22, 5))
    from_array = prepare_image(image)
    if fmt == "png":
        data = tf.io.encode_png(image[..., np.newaxis]).numpy()
    elif fmt == "jpeg":
        data = tf.io.encode_jpeg(image[..., np.newaxis], quality=80).numpy()
    else:
        # TensorFlow encodes neither BMP nor GIF: write the simplest valid files by hand.
        data = _bmp(image) if fmt == "bmp" else _gif(image)
    if fmt == "gif":
        from_array = prepare_image(image // 2 * 2)  # the file's 128 gray levels
    path = tmp_path / f"digit.{fmt}"
    path.write_bytes(data)
    for given_image in (path, str(path), bytearray(data)):
        if fmt == "jpeg":
            assert _distance(prepare_image(given_image), from_array) < 0.03
        else:
            # Lossless: equal up to float rounding (BMP decodes as RGB, weighted back to gray).
            np.testing.assert_allclose(prepare_image(given_image), from_array, atol=1e-5)


def _bmp(gray: np.ndarray) -> bytes:
    height, width = gray.shape
    row = -(-width * 3 // 4) * 4
    pixels = np.zeros((height, row), np.uint8)
    pixels[:, : width * 3] = np.repeat(gray[::-1], 3, axis=1)
    body = pixels.tobytes()
    header = b"BM" + (54 + len(body)).to_bytes(4, "little") + bytes(4) + (54).to_bytes(4, "little")
    info = np.array([40, width, height], "<i4").tobytes() + np.array([1, 24], "<u2").tobytes()
    info += bytes(24)
    return header + info + body


def _gif(gray: np.ndarray) -> bytes:
    # 128 gray levels, each 7-bit code written uncompressed (a clear code every 126 codes).
    height, width = gray.shape
    palette = np.repeat(np.arange(128, dtype=np.uint8) * 2, 3).tobytes()
    codes = (gray // 2).ravel().astype(np.int64).tolist()
    stream: list[int] = []
    for i, code in enumerate(codes):
        if i % 126 == 0:
            stream.append(128)
        stream.append(code)
    stream.append(129)
    bits = "".join(format(code, "08b")[::-1] for code in stream)
    bits += "0" * (-len(bits) % 8)
    data = bytes(int(bits[i : i + 8][::-1], 2) for i in range(0, len(bits), 8))
    blocks = b"".join(
        bytes([len(data[i : i + 255])]) + data[i : i + 255] for i in range(0, len(data), 255)
    )
    screen = np.array([width, height], "<u2").tobytes() + bytes([0xF6, 0, 0])
    image = b"," + bytes(4) + np.array([width, height], "<u2").tobytes() + b"\x00"
    return b"GIF89a" + screen + palette + image + b"\x07" + blocks + b"\x00;"


def test_blank_images_have_no_ink() -> None:
    with pytest.raises(ImageError, match="no ink found"):
        prepare_image(np.full((50, 80), 200, np.uint8))
    lit = _paper(np.zeros((120, 160), np.float32), gradient=0.5)  # a gradient is not ink
    with pytest.raises(ImageError, match="no ink found"):
        prepare_image(lit)
    noise = np.random.default_rng(0).normal(0.8, 0.03, (200, 200)).clip(0, 1)
    with pytest.raises(ValueError, match="no ink found"):
        prepare_image(noise.astype(np.float32))


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros(10, np.uint8), r"must have shape .*got \(10,\)"),
        (np.zeros((10, 10, 2), np.uint8), r"must have shape .*got \(10, 10, 2\)"),
        (np.zeros((2, 10, 10, 1), np.uint8), r"must have shape .*got \(2, 10, 10, 1\)"),
        (np.zeros((0, 10), np.uint8), r"image is empty, got shape \(0, 10, 1\)"),
        (np.zeros((10, 10), bool), "got dtype bool"),
        (np.zeros((10, 10), complex), "got dtype complex128"),
        (np.full((10, 10), np.nan, np.float32), "NaN or infinite"),
        (np.full((10, 10), 2.0), r"must lie in \[0, 1\].*got values in \[2, 2\]"),
        (np.full((10, 10), 300, np.int32), r"0..255, got values in \[300, 300\]"),
        ([["a"]], "got dtype <U1"),
    ],
)
def test_bad_arrays(image: object, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        prepare_image(image)  # type: ignore[arg-type]


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(
        ImageError, match=r"not a readable picture .*PNG, JPEG, BMP, GIF or WebP.*got 20 bytes"
    ):
        prepare_image(b"this is not an image")
    with pytest.raises(ImageError, match="not an image \\(empty\\), got 0 bytes"):
        prepare_image(b"")
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(ImageError, match=r"notes\.png: not a readable"):
        prepare_image(text)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(tf.io.encode_png(np.zeros((40, 40, 1), np.uint8)).numpy()[:60])
    with pytest.raises(ImageError, match=r"cut\.png: not a readable"):
        prepare_image(truncated)
    with pytest.raises(FileNotFoundError, match=r"image file not found: .*missing\.png"):
        prepare_image(tmp_path / "missing.png")
    with pytest.raises(IsADirectoryError, match="expected an image file, got a directory"):
        prepare_image(tmp_path)


def test_decompression_bomb_is_refused() -> None:
    header = (
        b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + np.array([40000, 40000], ">u4").tobytes()
    )
    with pytest.raises(ImageError, match=r"too large to decode .*got 40000x40000"):
        prepare_image(header + b"\x08\x00\x00\x00\x00" + bytes(20))


def test_huge_image_is_bounded_in_time_and_memory() -> None:
    # Built in uint8 directly: a float copy of the input would dwarf what is measured.
    paper = np.round(215 * (1 - 0.3 * np.linspace(0, 1, 6000))).astype(np.uint8)
    image = np.tile(paper, (6000, 1))
    image[1000:5000, 2900:3300] = paper[2900:3300] // 5  # a thick "1"
    expected = prepare_image(image[::10, ::10])
    tracemalloc.start()
    started = time.perf_counter()
    out = prepare_image(image)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert _distance(out, expected) < 0.03
    assert peak < 120e6  # the 36 MB input is reduced in bands, never converted whole
    assert elapsed < 30  # about a second on an idle core
    jpeg = tf.io.encode_jpeg(image[..., np.newaxis], quality=85).numpy()
    del image
    started = time.perf_counter()
    assert _distance(prepare_image(jpeg), expected) < 0.03
    assert time.perf_counter() - started < 30


def test_save_image_strip(tmp_path: Path) -> None:
    images = np.random.default_rng(0).uniform(0, 1, (13, 28, 28)).astype(np.float32)
    path = save_image_strip(images, tmp_path / "sub" / "strip.png", columns=5, zoom=2)
    decoded = tf.io.decode_png(path.read_bytes()).numpy()
    assert decoded.shape == ((3 * 30 + 2) * 2, (5 * 30 + 2) * 2, 1)
    assert np.abs(decoded[4:60:2, 4:60:2, 0] / 255 - images[0]).max() <= 0.5 / 255 + 1e-6
    assert not list((tmp_path / "sub").glob(".*"))
    with pytest.raises(ValueError, match="zoom must be at most 16, got 17"):
        save_image_strip(images, tmp_path / "x.png", zoom=17)
    with pytest.raises(ValueError, match="columns must be at least 1, got 0"):
        save_image_strip(images, tmp_path / "x.png", columns=0)
    with pytest.raises(ValueError, match="images must have shape"):
        save_image_strip(np.zeros((5, 5)), tmp_path / "x.png")


def test_predict_digits_routes_pictures_through_prepare_image(tmp_path: Path) -> None:
    model = build_lenet(seed=0)
    photo = _paper(_ring(90, 70, 45, 35, 35, 22, 5))
    prepared = prepare_image(photo)
    path = tmp_path / "zero.png"
    path.write_bytes(tf.io.encode_png(photo[..., np.newaxis]).numpy())
    expected = predict_digits(model, prepared).logits[0]
    for given_image in (photo, path, str(path), path.read_bytes(), np.stack([photo] * 3, -1)):
        np.testing.assert_allclose(
            predict_digits(model, given_image).logits[0], expected, atol=1e-4
        )
    mnist_form = np.zeros((28, 28), np.uint8)
    mnist_form[4:24, 12:16] = 255
    mixed = predict_digits(model, [path, mnist_form, photo])
    assert len(mixed) == 3
    np.testing.assert_allclose(mixed.logits[0], expected, atol=1e-4)
    np.testing.assert_allclose(mixed.logits[2], expected, atol=1e-4)
    # MNIST-form arrays are used exactly as given: no recentring, no renormalizing.
    np.testing.assert_array_equal(
        images_to_batch(mnist_form)[0, :, :, 0], mnist_form / np.float32(255)
    )
    np.testing.assert_array_equal(
        images_to_batch([mnist_form])[0, :, :, 0], mnist_form / np.float32(255)
    )
    assert images_to_batch(np.zeros((5, 28, 28, 1), np.float32)).shape == (5, 28, 28, 1)
    with pytest.raises(ValueError, match=r"images is an empty list, got \[\]"):
        predict_digits(model, [])
    with pytest.raises(ValueError, match=r"images must have shape .*got \(2, 3, 40, 40\)"):
        predict_digits(model, np.zeros((2, 3, 40, 40), np.uint8))
    with pytest.raises(FileNotFoundError, match="image file not found"):
        predict_digits(model, [path, tmp_path / "nope.jpg"])
