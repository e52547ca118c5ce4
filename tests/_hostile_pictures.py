"""Hostile and valid pictures built by hand (struct/zlib), and a cost meter.

Shared by tests/test_picture_safety.py and benchmarks/picture_attacks.py, so the table
in the benchmark measures exactly the files the tests refuse. Nothing here is a binary
fixture: every file is made from a few parameters.

Run as a script, ``python tests/_hostile_pictures.py PATH`` calls
``lenet_mnist.prepare_image(PATH)`` once in this fresh process and prints one JSON line:
the outcome, the wall and CPU time of the call and its peak RSS (``VmHWM``, reset just before the
call) above the RSS after importing lenet_mnist and TensorFlow.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()

# ------------------------------------------------------------------------------- PNG


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(
    pixels: np.ndarray, *, extra: list[tuple[bytes, bytes]] = (), colour: int | None = None
) -> bytes:
    """An 8-bit PNG of ``pixels`` ((H, W) gray or (H, W, C), C = 2, 3, 4)."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    height, width, channels = pixels.shape
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels] if colour is None else colour
    rows = np.concatenate(
        [np.zeros((height, 1), np.uint8), pixels.reshape(height, -1).astype(np.uint8)], axis=1
    )
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    chunks = [png_chunk(b"IHDR", ihdr)]
    chunks += [png_chunk(kind, data) for kind, data in extra]
    chunks += [png_chunk(b"IDAT", zlib.compress(rows.tobytes())), png_chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def png_declaring(width: int, height: int, colour: int = 6) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height``; its data is a few zero rows."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    body = zlib.compress(bytes(4096))
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", body)
        + png_chunk(b"IEND", b"")
    )


def png_zeros(width: int, height: int, colour: int = 6) -> bytes:
    """A complete, valid PNG of zeros (compresses ~1000:1): a real decompression bomb."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    packer = zlib.compressobj(9)
    row = bytes(1 + width * channels)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", body)
        + png_chunk(b"IEND", b"")
    )


# ------------------------------------------------------------------------------ EXIF


def exif_tiff(orientation: int, *, big_endian: bool = False) -> bytes:
    """A TIFF-structured EXIF block whose IFD0 holds only the Orientation tag."""
    order = ">" if big_endian else "<"
    head = b"MM\x00*" if big_endian else b"II*\x00"
    entry = struct.pack(order + "HHIH2x", 0x0112, 3, 1, orientation)
    return head + struct.pack(order + "I", 8) + struct.pack(order + "H", 1) + entry + bytes(4)


def jpeg_with_app1(jpeg: bytes, payload: bytes) -> bytes:
    """``jpeg`` with an APP1 segment holding ``payload`` right after its SOI marker."""
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def jpeg_with_orientation(jpeg: bytes, orientation: int, *, big_endian: bool = False) -> bytes:
    return jpeg_with_app1(jpeg, b"Exif\x00\x00" + exif_tiff(orientation, big_endian=big_endian))


# ------------------------------------------------------------------------------ JPEG


def jpeg(pixels: np.ndarray, *, quality: int = 95, progressive: bool = False) -> bytes:
    import tensorflow as tf

    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    return bytes(
        tf.io.encode_jpeg(pixels.astype(np.uint8), quality=quality, progressive=progressive).numpy()
    )


def jpeg_declaring(width: int, height: int, *, progressive: bool = False) -> bytes:
    """A small real JPEG whose SOF marker is patched to declare ``width`` x ``height``."""
    data = bytearray(jpeg(np.full((16, 16, 3), 128, np.uint8), progressive=progressive))
    sof = data.index(b"\xff\xc2" if progressive else b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def jpeg_many_scans(count: int) -> bytes:
    """A progressive JPEG whose last scan is repeated to make ``count`` scans or more."""
    data = jpeg(np.full((64, 64, 3), 128, np.uint8), progressive=True)
    last = data.rindex(b"\xff\xda")
    scan = data[last:-2]
    return data[:-2] + scan * max(0, count - data.count(b"\xff\xda")) + b"\xff\xd9"


# ------------------------------------------------------------------------------- BMP


def bmp(gray: np.ndarray, *, top_down: bool = False) -> bytes:
    """A 24-bit BMP of a gray ``(H, W)`` picture."""
    height, width = gray.shape
    row = -(-width * 3 // 4) * 4
    stored = gray if top_down else gray[::-1]
    pixels = np.zeros((height, row), np.uint8)
    pixels[:, : width * 3] = np.repeat(stored, 3, axis=1)
    return bmp_header(width, -height if top_down else height, 24, len(pixels.tobytes())) + (
        pixels.tobytes()
    )


def bmp_header(width: int, height: int, bits: int = 24, body: int = 0) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 0, body, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + body, 0, 0, 54) + info


# ------------------------------------------------------------------------------- GIF


def gif_image_data(indices: np.ndarray) -> bytes:
    """LZW data for 7-bit colour ``indices``: every code written as is (a clear every 126)."""
    codes: list[int] = []
    for i, code in enumerate(indices.ravel().astype(np.int64).tolist()):
        if i % 126 == 0:
            codes.append(128)
        codes.append(code)
    codes.append(129)
    bits = "".join(format(code, "08b")[::-1] for code in codes)
    bits += "0" * (-len(bits) % 8)
    data = bytes(int(bits[i : i + 8][::-1], 2) for i in range(0, len(bits), 8))
    blocks = b"".join(
        bytes([len(data[i : i + 255])]) + data[i : i + 255] for i in range(0, len(data), 255)
    )
    return b"\x07" + blocks + b"\x00"


def gif_lzw(indices: np.ndarray) -> bytes:
    """Real LZW-compressed data for 7-bit colour ``indices`` (a flat frame takes ~0.2%)."""
    clear, end = 128, 129
    bits = _Bits()
    table: dict[tuple[int, int], int] = {}
    next_code = 130

    def put(code: int) -> None:
        # The decoder's table lags one entry behind: it widens codes when its next
        # free code reaches a power of two.
        bits.put(code, max(8, min(12, (next_code - 1).bit_length())))

    put(clear)
    values = indices.ravel().astype(np.int64).tolist()
    prefix = values[0]
    for value in values[1:]:
        code = table.get((prefix, value))
        if code is not None:
            prefix = code
            continue
        put(prefix)
        if next_code < 4096:
            table[(prefix, value)] = next_code
            next_code += 1
        else:
            put(clear)
            table.clear()
            next_code = 130
        prefix = value
    put(prefix)
    put(end)
    data = bits.data()
    blocks = b"".join(
        bytes([len(data[i : i + 255])]) + data[i : i + 255] for i in range(0, len(data), 255)
    )
    return b"\x07" + blocks + b"\x00"


def gif(
    frames: list[np.ndarray],
    *,
    screen: tuple[int, int] | None = None,
    declared: list[tuple[int, int]] | None = None,
    compress: bool = False,
) -> bytes:
    """A GIF of 7-bit gray frames (values 0..127 map to gray 0..254).

    ``declared`` overrides the (width, height) written in each image descriptor, so a
    descriptor can claim more than its data holds.
    """
    height, width = frames[0].shape
    screen_w, screen_h = screen or (width, height)
    palette = np.repeat(np.arange(128, dtype=np.uint8) * 2, 3).tobytes()
    out = b"GIF89a" + struct.pack("<HHBBB", screen_w, screen_h, 0xF6, 0, 0) + palette
    for i, frame in enumerate(frames):
        w, h = declared[i] if declared else (frame.shape[1], frame.shape[0])
        data = gif_lzw(frame) if compress else gif_image_data(frame)
        out += b"," + struct.pack("<HHHHB", 0, 0, w, h, 0) + data
    return out + b";"


# ------------------------------------------------------------------------------ WebP


class _Bits:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def put(self, value: int, count: int) -> None:
        self.bits.extend((value >> i) & 1 for i in range(count))

    def data(self) -> bytes:
        bits = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(
            sum(bit << j for j, bit in enumerate(bits[i : i + 8])) for i in range(0, len(bits), 8)
        )


def vp8l(width: int, height: int, green: np.ndarray | None = None, *, alpha: int = 255) -> bytes:
    """A lossless VP8L bitstream: one colour, or two green levels given by a 0/1 mask.

    Every prefix code is a "simple" one of one symbol (0 bits per pixel), except green
    when ``green`` is given: two symbols, 0 and 255, one bit per pixel. So a solid
    16383x16383 picture takes a few bytes, as an attacker would write it.
    """
    bits = _Bits()
    bits.put(0x2F, 8)
    bits.put(width - 1, 14)
    bits.put(height - 1, 14)
    bits.put(int(alpha != 255), 1)
    bits.put(0, 3)
    bits.put(0, 1)  # no transform
    bits.put(0, 1)  # no colour cache
    bits.put(0, 1)  # no meta prefix codes

    def simple(symbols: list[int]) -> None:
        bits.put(1, 1)
        bits.put(len(symbols) - 1, 1)
        if symbols[0] < 2:
            bits.put(0, 1)
            bits.put(symbols[0], 1)
        else:
            bits.put(1, 1)
            bits.put(symbols[0], 8)
        if len(symbols) == 2:
            bits.put(symbols[1], 8)

    simple([0, 255] if green is not None else [255])  # green (+ lengths, cache)
    simple([0])  # red
    simple([0])  # blue
    simple([alpha])  # alpha
    simple([0])  # distance
    if green is not None:
        for value in green.ravel().tolist():
            bits.put(int(value), 1)
    return bits.data()


def riff_chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")


def webp(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"WEBP" + b"".join(riff_chunk(kind, data) for kind, data in chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def vp8x(width: int, height: int, flags: int = 0) -> bytes:
    return (
        bytes([flags, 0, 0, 0])
        + (width - 1).to_bytes(3, "little")
        + (height - 1).to_bytes(3, "little")
    )


def webp_declaring(width: int, height: int, *, pad_to: int = 11_000) -> bytes:
    """A VP8X WebP declaring a ``width`` x ``height`` canvas, its one-colour bitstream of
    that size taking a few bytes; padded with an XMP chunk to about ``pad_to`` bytes."""
    core = [(b"VP8X", vp8x(width, height, 0x04)), (b"VP8L", vp8l(width, height))]
    size = len(webp(core))
    return webp([*core, (b"XMP ", b" " * max(0, pad_to - size - 8))])


def anmf(width: int, height: int, bitstream: bytes, x: int = 0, y: int = 0) -> bytes:
    head = (
        (x // 2).to_bytes(3, "little")
        + (y // 2).to_bytes(3, "little")
        + (width - 1).to_bytes(3, "little")
        + (height - 1).to_bytes(3, "little")
        + (100).to_bytes(3, "little")
        + b"\x00"
    )
    return head + riff_chunk(b"VP8L", bitstream)


# --------------------------------------------------------------------- attack classes


def _write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def _digit_frame(width: int, height: int) -> np.ndarray:
    """A flat light frame with one dark vertical stroke (a "1"), 7-bit indices."""
    frame = np.full((height, width), 110, np.uint8)
    frame[height // 5 : height * 4 // 5, width * 9 // 20 : width * 11 // 20] = 10
    return frame


def _gif_many_frames(directory: Path) -> Path:
    # 100 frames of 2000x2000: TensorFlow's decoder alone would hold 400 MB of rasters.
    frame = gif_lzw(_digit_frame(2000, 2000))
    palette = np.repeat(np.arange(128, dtype=np.uint8) * 2, 3).tobytes()
    head = b"GIF89a" + struct.pack("<HHBBB", 2000, 2000, 0xF6, 0, 0) + palette
    descriptor = b"," + struct.pack("<HHHHB", 0, 0, 2000, 2000, 0)
    return _write(directory, "frames.gif", head + (descriptor + frame) * 100 + b";")


def _webp_animation(directory: Path) -> Path:
    canvas = vp8x(8000, 8000, 0x02)
    frame = anmf(8000, 8000, vp8l(8000, 8000))
    data = webp([(b"VP8X", canvas), (b"ANIM", bytes(6)), (b"ANMF", frame)])
    return _write(directory, "anim.webp", data)


def _webp_frame_outside(directory: Path) -> Path:
    frame = anmf(4000, 4000, vp8l(4000, 4000))
    data = webp([(b"VP8X", vp8x(16, 16, 0x02)), (b"ANIM", bytes(6)), (b"ANMF", frame)])
    return _write(directory, "outside.webp", data)


def _fifo(directory: Path) -> Path:
    path = directory / "pipe.png"
    os.mkfifo(path)
    return path


def _sparse(directory: Path) -> Path:
    path = directory / "huge.png"
    with path.open("wb") as out:
        out.write(png(np.zeros((8, 8), np.uint8)))
        out.truncate(64 * 2**30)  # 64 GiB, sparse: no disk used
    return path


def _directory(directory: Path) -> Path:
    path = directory / "folder.png"
    path.mkdir()
    return path


def _phone_photo(directory: Path) -> Path:
    # A 12-megapixel photo of a "1", taken with the phone turned: stored sideways,
    # tagged Orientation=6.
    photo = np.repeat(np.repeat(_digit_frame(400, 300) * 2, 10, axis=0), 10, axis=1)
    return _write(
        directory, "phone.jpg", jpeg_with_orientation(jpeg(np.rot90(photo), quality=85), 6)
    )


def _rgba_at_budget(directory: Path) -> Path:
    # 5700x5700 RGBA: 124 MiB decoded, just under MAX_DECODE_BYTES.
    gray = np.repeat(np.repeat(_digit_frame(570, 570) * 2, 10, axis=0), 10, axis=1)
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    return _write(directory, "rgba.png", png(rgba))


def _progressive_at_budget(directory: Path) -> Path:
    # 4500x4500 progressive 4:4:4: 116 MiB of coefficients buffered by libjpeg.
    import tensorflow as tf

    gray = np.repeat(np.repeat(_digit_frame(450, 450) * 2, 10, axis=0), 10, axis=1)
    data = tf.io.encode_jpeg(
        np.dstack([gray] * 3), quality=80, progressive=True, chroma_downsampling=False
    )
    return _write(directory, "progressive.jpg", bytes(data.numpy()))


def _scans_at_budget(directory: Path) -> Path:
    # 40 scans (the limit) over 4500x4500 4:4:4 blocks: the slowest JPEG let through.
    import tensorflow as tf

    data = bytes(
        tf.io.encode_jpeg(
            np.full((4500, 4500, 3), 128, np.uint8), progressive=True, chroma_downsampling=False
        ).numpy()
    )
    last = data.rindex(b"\xff\xda")
    scan = data[last:-2]
    data = data[:-2] + scan * (40 - data.count(b"\xff\xda")) + b"\xff\xd9"
    return _write(directory, "scans40.jpg", data)


def _baseline_48mpx(directory: Path) -> Path:
    gray = np.repeat(np.repeat(_digit_frame(800, 600) * 2, 10, axis=0), 10, axis=1)
    return _write(directory, "48mpx.jpg", jpeg(gray, quality=85))


def _webp_lossless(directory: Path) -> Path:
    # 4000x4000 lossless, one bit per pixel: 115 MiB decoded with libwebp's buffers.
    mask = _digit_frame(4000, 4000) > 50
    return _write(directory, "big.webp", webp([(b"VP8L", vp8l(4000, 4000, mask))]))


def _wide_png(directory: Path) -> Path:
    # 100 megapixels in a 100000x1000 strip (100 KB of file).
    gray = np.full((1000, 100_000), 200, np.uint8)
    gray[200:800, 50_000:50_300] = 20
    return _write(directory, "wide.png", png(gray))


def _big_file_big_decode(directory: Path) -> Path:
    # A 5600x5600 RGBA PNG of faint noise: a file near the 32 MiB cap that also decodes
    # to near MAX_DECODE_BYTES, the most both can cost at once.
    rng = np.random.default_rng(0)
    gray = np.repeat(np.repeat(_digit_frame(560, 560) * 2, 10, axis=0), 10, axis=1)
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    rgba[..., :3] |= rng.integers(0, 3, (*rgba.shape[:2], 3), dtype=np.uint8)
    return _write(directory, "noise.png", png(rgba))


#: Every attack class: (name, builder of the file in a directory, expected outcome,
#: regex the message must match). "ok" cases must be read correctly.
ATTACKS: list[tuple[str, Any, str, str]] = [
    (
        "webp-vp8x-16383x16383-11kb",
        lambda d: _write(d, "big.webp", webp_declaring(16383, 16383)),
        "ImageError",
        r"WebP picture too large to decode .*got 16383x16383$",
    ),
    (
        "webp-animated-8000x8000-canvas",
        _webp_animation,
        "ImageError",
        r"WebP picture needs too much memory .*got 8000x8000 needing",
    ),
    (
        "webp-frame-outside-canvas",
        _webp_frame_outside,
        "ImageError",
        r"a 4000x4000 frame at \(0, 0\) outside its canvas",
    ),
    (
        "gif-frame-20000x20000-screen-16x16",
        lambda d: _write(
            d,
            "frame.gif",
            gif([np.zeros((2, 2), np.uint8)], screen=(16, 16), declared=[(20000, 20000)]),
        ),
        "ImageError",
        r"GIF picture too large to decode .*got 20000x20000$",
    ),
    (
        "gif-frame-9000x9000-screen-16x16",
        lambda d: _write(
            d,
            "frame81.gif",
            gif([np.zeros((2, 2), np.uint8)], screen=(16, 16), declared=[(9000, 9000)]),
        ),
        "ImageError",
        r"GIF picture needs too much memory .*got 9000x9000 needing",
    ),
    ("gif-100-frames-2000x2000", _gif_many_frames, "ok", ""),
    (
        "png-ihdr-100000x100000",
        lambda d: _write(d, "ihdr.png", png_declaring(100_000, 100_000)),
        "ImageError",
        r"PNG picture too large to decode .*got 100000x100000$",
    ),
    (
        "png-bomb-rgba-10000x10000",
        lambda d: _write(d, "bomb.png", png_zeros(10_000, 10_000, 6)),
        "ImageError",
        r"PNG picture needs too much memory .*got 10000x10000 needing 400,000,000 bytes$",
    ),
    (
        "png-bomb-gray-10000x10000",
        lambda d: _write(d, "gray.png", png_zeros(10_000, 10_000, 0)),
        "ImageError",
        r"no ink found",
    ),
    (
        "jpeg-sof-65535x65535",
        lambda d: _write(d, "sof.jpg", jpeg_declaring(65535, 65535)),
        "ImageError",
        r"JPEG picture too large to decode .*got 65535x65535$",
    ),
    (
        "jpeg-progressive-sof-10000x10000",
        lambda d: _write(d, "prog.jpg", jpeg_declaring(10_000, 10_000, progressive=True)),
        "ImageError",
        r"JPEG picture needs too much memory .*got 10000x10000 needing",
    ),
    (
        "jpeg-1000-scans",
        lambda d: _write(d, "scans.jpg", jpeg_many_scans(1000)),
        "ImageError",
        r"more than 40 scans",
    ),
    (
        "bmp-2147483647x2147483647",
        lambda d: _write(d, "huge.bmp", bmp_header(2**31 - 1, 2**31 - 1) + bytes(64)),
        "ImageError",
        r"BMP picture too large to decode .*got 2147483647x2147483647$",
    ),
    (
        "bmp-height-minus-2147483648",
        lambda d: _write(d, "neg.bmp", bmp_header(16, -(2**31)) + bytes(64)),
        "ImageError",
        r"invalid size 16x-2147483648",
    ),
    (
        "bmp-top-down-100000x100000",
        lambda d: _write(d, "td.bmp", bmp_header(100_000, -100_000) + bytes(64)),
        "ImageError",
        r"BMP picture too large to decode .*got 100000x100000$",
    ),
    (
        "dev-zero",
        lambda d: Path("/dev/zero"),
        "ImageError",
        r"not a regular file, got a character device$",
    ),
    ("fifo", _fifo, "ImageError", r"not a regular file, got a FIFO"),
    ("directory", _directory, "IsADirectoryError", r"got a directory"),
    (
        "sparse-64-gib-file",
        _sparse,
        "ImageError",
        r"picture file too large .*got 68,719,476,736 bytes$",
    ),
    (
        "text-file",
        lambda d: _write(d, "notes.png", b"hello world, this is not a picture\n"),
        "ImageError",
        r"looks like text.*got 35 bytes: 'hello world, this is not\.\.\.'$",
    ),
    ("exif-phone-photo-12mpx-orientation-6", _phone_photo, "ok", ""),
    # Legitimate pictures at the limits: read, within the same bounds.
    ("png-rgba-5700x5700-at-memory-limit", _rgba_at_budget, "ok", ""),
    ("png-rgba-noise-5600x5600-near-file-cap", _big_file_big_decode, "ok", ""),
    ("png-gray-100000x1000-strip", _wide_png, "ok", ""),
    ("jpeg-progressive-4500x4500-at-memory-limit", _progressive_at_budget, "ok", ""),
    ("jpeg-40-scans-4500x4500-at-scan-limit", _scans_at_budget, "ImageError", r"no ink found"),
    ("jpeg-baseline-8000x6000-48mpx", _baseline_48mpx, "ok", ""),
    ("webp-lossless-4000x4000-at-memory-limit", _webp_lossless, "ok", ""),
]


# ------------------------------------------------------------------------------ meter


def measure(target: str | os.PathLike[str], *, timeout: float = 120) -> dict[str, Any]:
    """Run ``prepare_image(target)`` in a fresh process; its outcome, time and peak RSS."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    src = HERE.parents[1] / "src"
    env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, str(HERE), os.fspath(target)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"meter failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _child(target: str) -> None:
    import time

    import tensorflow as tf  # noqa: F401  (part of the baseline)

    import lenet_mnist as lm

    # Reset the kernel's high-water mark to the current RSS (Linux >= 4.0), so the peak
    # read afterwards is the peak of this call, not of the imports before it.
    Path("/proc/self/clear_refs").write_text("5")
    baseline = _status_kib("VmRSS")
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        lm.prepare_image(target)
    except Exception as error:  # the outcome is reported, whatever it is
        outcome, message = type(error).__name__, str(error)
    else:
        outcome, message = "ok", ""
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    peak = _status_kib("VmHWM")
    print(
        json.dumps(
            {
                "outcome": outcome,
                "message": message,
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "peak_mib": (peak - baseline) / 1024,
            }
        )
    )


if __name__ == "__main__":
    _child(sys.argv[1])
