"""Reading pictures from untrusted sources: regular files only, five formats, bounded cost.

A small picture file can cost far more than its size: a few kilobytes of PNG, GIF or
WebP can declare a frame of billions of pixels, and a path can name ``/dev/zero`` or a
FIFO. This module reads and decodes a picture only after checking, from the file's own
headers, everything the decoder will allocate:

1. the file is opened once (``O_NONBLOCK``, so a FIFO cannot block the open), checked
   with ``fstat`` on the open descriptor to be a regular file no larger than the size
   cap, and read once;
2. the format is PNG, JPEG, BMP, GIF or WebP, told by its magic bytes, never by the file
   name; anything else is refused, naming what it looks like;
3. the declared size of every frame (PNG IHDR; every JPEG SOF marker; the BMP header,
   negative heights included; the GIF logical screen and every image descriptor; the
   WebP VP8/VP8L/VP8X canvas and every ANMF frame) is checked against
   :data:`MAX_PIXELS`, and the memory the decoder will need (its output, the coefficient
   buffers of multi-scan JPEGs, the GIF raster, the canvases of an animated WebP)
   against :data:`MAX_DECODE_BYTES`;
4. TensorFlow decodes the picture (the first frame of an animation; huge JPEGs at 1/2,
   1/4 or 1/8 scale while decoding), and the decoded shape is checked against the
   headers;
5. the EXIF orientation (JPEG APP1, PNG ``eXIf``, WebP ``EXIF``) is applied, so a photo
   taken sideways comes out upright. A malformed EXIF block counts as no orientation.

Every refusal is an :class:`~lenet_mnist.errors.ImageError` (a ``ValueError``) with a
one-line message ending in what was received; TensorFlow's own error text is reduced to
its core sentence.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import os
import re
import stat
import struct
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from lenet_mnist.errors import ImageError

__all__ = [
    "FORMATS",
    "MAX_DECODE_BYTES",
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "PictureHeader",
    "apply_orientation",
    "decode_picture",
    "parse_header",
    "read_picture_bytes",
]

#: The formats read, in the order of the error messages.
FORMATS: Final = ("PNG", "JPEG", "BMP", "GIF", "WebP")
#: The largest picture file read, in bytes (checked with ``fstat`` before reading).
MAX_FILE_BYTES: Final = 32 * 2**20
#: The most pixels any frame or canvas of a picture may declare (a decompression bomb guard).
MAX_PIXELS: Final = 100_000_000
#: The most memory a decoder may need for one picture, estimated from its headers, in bytes.
MAX_DECODE_BYTES: Final = 128 * 2**20

# Bounds on the header walks, so a file of tiny chunks or segments costs little time.
_MAX_CHUNKS: Final = 4096
_MAX_JPEG_SCANS: Final = 40
_PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"
_PNG_DEPTHS: Final = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_BMP_HEADERS: Final = (40, 52, 56, 108, 124)
_JPEG_SOF: Final = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
_JPEG_PROGRESSIVE: Final = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
# The next marker after entropy-coded data: 0xFF followed by neither a stuffed zero, a
# restart marker nor another fill byte (a run of fill bytes matches at its last one).
_JPEG_NEXT_MARKER: Final = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_EXIF_PREFIX: Final = b"Exif\x00\x00"
_TF_NOISE: Final = re.compile(r"\{\{[^}]*\}\}\s*|\s*\[Op:[^\]]*\].*$")


# ------------------------------------------------------------------------------ files


def read_picture_bytes(path: str | os.PathLike[str], *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """Read a picture file once, refusing anything but a regular file of bounded size.

    Args:
        path: The file. Symbolic links are followed; what they lead to is checked.
        max_bytes: The largest file read, in bytes (default :data:`MAX_FILE_BYTES`).

    Returns:
        The file's bytes (at most ``max_bytes``).

    Raises:
        FileNotFoundError: Nothing at ``path`` (or a parent is not a directory).
        IsADirectoryError: ``path`` is a directory.
        PermissionError: The file cannot be opened for reading.
        ImageError: ``path`` is a device, FIFO or socket, or the file is larger than
            ``max_bytes`` (checked before reading, and again while reading).
        TypeError, ValueError: ``max_bytes`` is not an int >= 1.

    Example:
        >>> read_picture_bytes("/dev/zero")
        Traceback (most recent call last):
        ...
        lenet_mnist.errors.ImageError: not a regular file, got a character device
    """
    from lenet_mnist._util.checks import check_positive_int

    check_positive_int("max_bytes", max_bytes)
    name = os.fspath(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(name, flags)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"image file not found: {name}") from None
    except IsADirectoryError:
        raise IsADirectoryError(f"expected an image file, got a directory: {name}") from None
    except OSError as error:
        # A socket (ENXIO) or a device without a driver: say what it is if we can.
        if error.errno in (errno.ENXIO, errno.ENODEV, errno.EOPNOTSUPP):
            raise ImageError(f"not a regular file, got {_file_kind(name)}") from None
        raise
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(f"expected an image file, got a directory: {name}")
        if not stat.S_ISREG(info.st_mode):
            raise ImageError(f"not a regular file, got {_mode_kind(info.st_mode)}")
        if info.st_size > max_bytes:
            raise ImageError(
                f"picture file too large (limit {max_bytes:,} bytes), got {info.st_size:,} bytes"
            )
        # One read returns a whole regular file on Linux: no second copy to join. Reading
        # to the cap plus one byte catches a file that grew since fstat (or /proc files,
        # whose size is 0).
        chunks = [os.read(fd, min(info.st_size, max_bytes) + 1)]
        total = len(chunks[0])
        while chunks[-1] and total <= max_bytes:
            chunks.append(os.read(fd, min(1 << 20, max_bytes + 1 - total)))
            total += len(chunks[-1])
        if total > max_bytes:
            raise ImageError(
                f"picture file too large (limit {max_bytes:,} bytes), got more than "
                f"{max_bytes:,} bytes"
            )
        return chunks[0] if total == len(chunks[0]) else b"".join(chunks)
    finally:
        os.close(fd)


def _mode_kind(mode: int) -> str:
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return f"a special file (mode {stat.filemode(mode)})"


def _file_kind(name: str) -> str:
    try:
        return _mode_kind(Path(name).stat().st_mode)
    except OSError:
        return "a file that cannot be opened"


# ---------------------------------------------------------------------------- headers


@dataclasses.dataclass(frozen=True)
class PictureHeader:
    """What a picture's headers declare, checked against the limits.

    Attributes:
        format: One of :data:`FORMATS`.
        width: Width of the image decoded, in pixels (a GIF's first frame, a WebP canvas).
        height: Height of the image decoded, in pixels.
        channels: Channels of the decoded array: 1 (gray), 3 (RGB) or 4 (RGBA).
        sizes: ``(width, height)`` of every canvas, frame and frame header declared.
        orientation: The EXIF orientation, 1..8 (1 when absent or malformed).
        ratio: The JPEG scale denominator (1, 2, 4 or 8) used while decoding; else 1.
        decode_bytes: The memory the decoder needs, estimated from the headers.
        payload: The bytes handed to the decoder (a GIF is cut after its first frame).
    """

    format: str
    width: int
    height: int
    channels: int
    sizes: tuple[tuple[int, int], ...]
    orientation: int
    ratio: int
    decode_bytes: int
    payload: bytes = dataclasses.field(repr=False)

    @property
    def decoded_shape(self) -> tuple[int, int, int]:
        """The ``(height, width, channels)`` the decoder must return."""
        return (
            -(-self.height // self.ratio),
            -(-self.width // self.ratio),
            self.channels,
        )


class _RefusalError(Exception):
    """A header problem, turned into an :class:`ImageError` naming what was received."""


def _received(data: bytes) -> str:
    text = _as_text(data)
    if text is not None:
        preview = text if len(text) <= 24 else text[:24] + "..."
        return f"{len(data):,} bytes: {preview!r}"
    return f"{len(data):,} bytes starting {data[:8]!r}"


def _as_text(data: bytes) -> str | None:
    """The start of ``data`` as text if it looks like text (UTF-8, printable), else None."""
    head = data[:512]
    for cut in range(4):  # a multi-byte character may be cut at the end of the sample
        try:
            text = head[: len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if text and all(c.isprintable() or c in "\t\n\r\f\v" for c in text):
            return text
        return None
    return None


_OTHER_FORMATS: Final = (
    (b"II*\x00", "a TIFF picture"),
    (b"MM\x00*", "a TIFF picture"),
    (b"\xff\x0a", "a JPEG XL picture"),
    (b"\x00\x00\x00\x0cJXL ", "a JPEG XL picture"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x1f\x8b", "a gzip file"),
    (b"\x89HDF", "an HDF5 file"),
    (b"\x7fELF", "an executable"),
    (b"8BPS", "a Photoshop file"),
    (b"\x00\x00\x01\x00", "a Windows icon"),
    (b"GIF8", "a GIF of an unknown version"),
    (b"RIFF", "a RIFF file that is not WebP"),
)


def _looks_like(data: bytes) -> str:
    if len(data) < 12:
        for magic, name in (
            (_PNG_MAGIC, "PNG"),
            (b"\xff\xd8\xff", "JPEG"),
            (b"GIF89a", "GIF"),
            (b"GIF87a", "GIF"),
        ):
            if magic.startswith(data):
                return f"a truncated {name} file"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"hevc"):
            return "a HEIC picture"
        if brand in (b"avif", b"avis"):
            return "an AVIF picture"
        return "an MP4/QuickTime file"
    for magic, name in _OTHER_FORMATS:
        if data.startswith(magic):
            return name
    if _as_text(data) is not None:
        return "text"
    return "an unknown format"


def _sniff(data: bytes) -> str | None:
    if data.startswith(_PNG_MAGIC):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    # "BM" alone starts too many text files: the header size must be a BMP one too.
    if data.startswith(b"BM") and (
        len(data) < 18 or struct.unpack_from("<I", data, 14)[0] in (12, 64, *_BMP_HEADERS)
    ):
        return "BMP"
    return None


def parse_header(
    data: bytes,
    *,
    max_pixels: int = MAX_PIXELS,
    max_decode_bytes: int = MAX_DECODE_BYTES,
    reduce_to: int | None = None,
) -> PictureHeader:
    r"""Read and check a picture's headers without decoding any pixels.

    Args:
        data: The bytes of a picture file.
        max_pixels: The most pixels a frame or canvas may declare.
        max_decode_bytes: The most memory the decoder may need, in bytes.
        reduce_to: JPEGs are decoded at 1/2, 1/4 or 1/8 scale while their longer side
            stays at least this long (None: full scale).

    Returns:
        The checked :class:`PictureHeader`.

    Raises:
        ImageError: Not one of the five formats, truncated or malformed headers, a frame
            over ``max_pixels`` or a decoder needing more than ``max_decode_bytes``.
        TypeError, ValueError: ``data`` is not bytes, or a limit is not an int >= 1.

    Example:
        >>> import struct, zlib
        >>> ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
        >>> png = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
        ...        + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)))
        >>> parse_header(png)
        Traceback (most recent call last):
        ...
        lenet_mnist.errors.ImageError: PNG picture too large to decode (limit 100,000,000 pixels per frame), got 100000x100000
    """
    from lenet_mnist._util.checks import check_positive_int

    check_positive_int("max_pixels", max_pixels)
    check_positive_int("max_decode_bytes", max_decode_bytes)
    if reduce_to is not None:
        check_positive_int("reduce_to", reduce_to)
    if not isinstance(data, bytes):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    if not data:
        raise ImageError("not an image (empty), got 0 bytes")
    fmt = _sniff(data)
    if fmt is None:
        raise ImageError(
            f"not a readable picture (this looks like {_looks_like(data)}; "
            f"PNG, JPEG, BMP, GIF or WebP expected), got {_received(data)}"
        )
    parser = _PARSERS[fmt]
    try:
        header = parser(data, max_pixels, reduce_to)
    except _RefusalError as refusal:
        raise ImageError(f"{refusal}, got {_received(data)}") from None
    except (struct.error, IndexError):
        raise ImageError(
            f"not a readable {fmt} picture (truncated or malformed header), got {_received(data)}"
        ) from None
    if header.decode_bytes > max_decode_bytes:
        raise ImageError(
            f"{fmt} picture needs too much memory to decode (limit {max_decode_bytes:,} "
            f"bytes), got {header.width}x{header.height} needing {header.decode_bytes:,} bytes"
        )
    return header


def _bad(fmt: str, reason: str) -> _RefusalError:
    return _RefusalError(f"not a readable {fmt} picture ({reason})")


def _check_size(fmt: str, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageError(
            f"{fmt} picture too large to decode (limit {max_pixels:,} pixels per frame), "
            f"got {width}x{height}"
        )


def _parse_png(data: bytes, max_pixels: int, reduce_to: int | None) -> PictureHeader:
    length, kind = struct.unpack_from(">I4s", data, 8)
    if kind != b"IHDR" or length != 13:
        raise _bad("PNG", "its first chunk is not a 13-byte IHDR")
    width, height, depth, colour, _, _, interlace = struct.unpack_from(">IIBBBBB", data, 16)
    if not (1 <= width < 2**31 and 1 <= height < 2**31):
        raise _bad("PNG", f"invalid size {width}x{height}")
    _check_size("PNG", width, height, max_pixels)
    if depth not in _PNG_DEPTHS.get(colour, ()) or interlace > 1:
        raise _bad("PNG", f"bit depth {depth} with colour type {colour}")
    # Walk the chunks before the image data: transparency and EXIF live there. An APNG
    # (acTL) is read as its default image, the only one TensorFlow's decoder sees.
    transparency, exif = False, None
    pos = 33
    for _ in range(_MAX_CHUNKS):
        if pos + 8 > len(data):
            raise _bad("PNG", "truncated before its image data")
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"IDAT":
            break
        if kind == b"IEND":
            raise _bad("PNG", "no image data")
        if pos + 12 + length > len(data):
            raise _bad("PNG", f"truncated in its {kind.decode('latin-1')!r} chunk")
        if kind == b"tRNS":
            transparency = True
        elif kind == b"eXIf" and exif is None:
            exif = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    # Gray + alpha is decoded as RGBA, so its transparency composites like any other.
    channels = 4 if colour in (4, 6) or transparency else (1 if colour == 0 else 3)
    return PictureHeader(
        format="PNG",
        width=width,
        height=height,
        channels=channels,
        sizes=((width, height),),
        orientation=_exif_orientation(exif),
        ratio=1,
        decode_bytes=width * height * channels,
        payload=data,
    )


def _parse_jpeg(data: bytes, max_pixels: int, reduce_to: int | None) -> PictureHeader:
    # (width, height, sampling factors of each component, progressive) of every SOF.
    frames: list[tuple[int, int, list[tuple[int, int]], bool]] = []
    scans = 0
    exif: bytes | None = None
    pos = 2
    for _ in range(_MAX_CHUNKS):
        if pos >= len(data):
            break  # no end marker: the decoder decides whether the data suffices
        if data[pos] != 0xFF:
            raise _bad("JPEG", f"no marker at byte {pos:,}")
        while data[pos] == 0xFF:
            pos += 1
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            continue
        if marker == 0xD8:
            raise _bad("JPEG", "a second start-of-image marker")
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > len(data):
            raise _bad("JPEG", f"truncated in the segment of marker 0x{marker:02X}")
        segment = data[pos + 2 : pos + length]
        if marker in _JPEG_SOF:
            _, height, width, count = struct.unpack_from(">BHHB", segment)
            if height == 0 or width == 0:
                raise _bad("JPEG", f"frame size {width}x{height} (a DNL height is not supported)")
            _check_size("JPEG", width, height, max_pixels)
            if count not in (1, 3, 4) or len(segment) < 6 + 3 * count:
                raise _bad("JPEG", f"{count} colour components")
            sampling = [(segment[7 + 3 * i] >> 4, segment[7 + 3 * i] & 15) for i in range(count)]
            if any(not (1 <= h <= 4 and 1 <= v <= 4) for h, v in sampling):
                raise _bad("JPEG", "invalid sampling factors")
            frames.append((width, height, sampling, marker in _JPEG_PROGRESSIVE))
        elif marker == 0xDA:
            if not frames:
                raise _bad("JPEG", "image data before the frame header")
            scans += 1
            if scans > _MAX_JPEG_SCANS:
                raise _bad("JPEG", f"more than {_MAX_JPEG_SCANS} scans")
            found = _JPEG_NEXT_MARKER.search(data, pos + length)
            pos = found.start() if found else len(data)
            continue
        elif marker == 0xE1 and exif is None and segment.startswith(_EXIF_PREFIX):
            exif = segment[len(_EXIF_PREFIX) :]
        pos += length
    else:
        raise _bad("JPEG", f"more than {_MAX_CHUNKS:,} segments")
    if not frames or scans == 0:
        raise _bad("JPEG", "no frame header" if not frames else "no image data")
    width, height, sampling, progressive = frames[0]
    ratio = 1
    if reduce_to is not None:
        # libjpeg scales by 1/2, 1/4 or 1/8 while decoding: far less memory and time.
        while ratio < 8 and max(height, width) // (ratio * 2) >= reduce_to:
            ratio *= 2
    channels = 1 if len(sampling) == 1 else 3
    need = -(-width // ratio) * -(-height // ratio) * channels
    if progressive or scans > 1:
        # A multi-scan JPEG is buffered whole: 64 coefficients of 2 bytes per 8x8 block
        # of every component, at full resolution whatever the scale of the output.
        h_max = max(h for h, _ in sampling)
        v_max = max(v for _, v in sampling)
        mcu_x = math.ceil(width / (8 * h_max))
        mcu_y = math.ceil(height / (8 * v_max))
        need += sum(mcu_x * h * mcu_y * v for h, v in sampling) * 128
    return PictureHeader(
        format="JPEG",
        width=width,
        height=height,
        channels=channels,
        sizes=tuple((w, h) for w, h, _, _ in frames),
        orientation=_exif_orientation(exif),
        ratio=ratio,
        decode_bytes=need,
        payload=data,
    )


def _parse_bmp(data: bytes, max_pixels: int, reduce_to: int | None) -> PictureHeader:
    offset, header_size = struct.unpack_from("<II", data, 10)
    if header_size not in _BMP_HEADERS:
        raise _bad("BMP", f"a {header_size}-byte header (OS/2 BMPs are not read)")
    width, height, _, bits, compression = struct.unpack_from("<iiHHI", data, 18)
    if width <= 0 or height in (0, -(2**31)):
        raise _bad("BMP", f"invalid size {width}x{height}")
    rows = abs(height)  # negative: stored top-down
    _check_size("BMP", width, rows, max_pixels)
    if bits not in (8, 24, 32):
        raise _bad("BMP", f"{bits} bits per pixel; 8, 24 or 32 are read")
    if compression not in (0, 3):
        raise _bad("BMP", f"compression method {compression}; only uncompressed BMPs are read")
    channels = bits // 8
    row_bytes = (channels * width + 3) // 4 * 4
    expected = offset + row_bytes * rows
    if expected != len(data):
        raise _bad("BMP", f"its header declares {expected:,} bytes of file")
    return PictureHeader(
        format="BMP",
        width=width,
        height=rows,
        channels=channels,
        sizes=((width, height),),
        orientation=1,
        ratio=1,
        decode_bytes=width * rows * channels,
        payload=data,
    )


def _parse_gif(data: bytes, max_pixels: int, reduce_to: int | None) -> PictureHeader:
    screen_w, screen_h, packed = struct.unpack_from("<HHB", data, 6)
    _check_size("GIF", screen_w, screen_h, max_pixels)
    pos = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
    # Sub-blocks hold at most 255 bytes; a file of 1-byte sub-blocks would make this
    # walk slow, so it may take a few times as many as a normal encoder writes.
    budget = [len(data) // 128 + 4096]

    def skip_sub_blocks(pos: int) -> int:
        while True:
            size = data[pos]
            pos += 1 + size
            if size == 0:
                return pos
            budget[0] -= 1
            if budget[0] < 0:
                raise _bad("GIF", "too many data sub-blocks")

    frames: list[tuple[int, int]] = []
    first_end = 0
    while True:
        kind = data[pos]
        if kind == 0x3B:  # trailer
            break
        if kind == 0x21:  # extension: label, then sub-blocks
            pos = skip_sub_blocks(pos + 2)
        elif kind == 0x2C:  # image descriptor
            _, _, width, height, flags = struct.unpack_from("<HHHHB", data, pos + 1)
            if width == 0 or height == 0:
                raise _bad("GIF", f"an empty {width}x{height} frame")
            _check_size("GIF", width, height, max_pixels)
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            if not 1 <= data[pos] <= 11:
                raise _bad("GIF", f"LZW code size {data[pos]}")
            pos = skip_sub_blocks(pos + 1)
            if not frames:
                first_end = pos
            frames.append((width, height))
        else:
            raise _bad("GIF", f"unexpected block 0x{kind:02X} at byte {pos:,}")
    if not frames:
        raise _bad("GIF", "no image in it")
    width, height = frames[0]
    # TensorFlow's GIF decoder reads every frame into memory before returning the first:
    # it is given the file cut after the first frame (a copy, counted). Its canvas is the
    # frame (TF 2.21) or the logical screen (older versions): count the larger.
    payload = data if len(frames) == 1 and first_end == len(data) - 1 else data[:first_end] + b";"
    canvas = max(width * height, screen_w * screen_h)
    return PictureHeader(
        format="GIF",
        width=width,
        height=height,
        channels=3,
        sizes=((screen_w, screen_h), *frames),
        orientation=1,
        ratio=1,
        decode_bytes=width * height + 3 * canvas + (0 if payload is data else len(payload)),
        payload=payload,
    )


def _vp8_size(chunk: bytes) -> tuple[int, int, bool]:
    if chunk[0] & 1 or chunk[3:6] != b"\x9d\x01\x2a":
        raise _bad("WebP", "a VP8 bitstream that is not a key frame")
    width, height = struct.unpack_from("<HH", chunk, 6)
    return width & 0x3FFF, height & 0x3FFF, False


def _vp8l_size(chunk: bytes) -> tuple[int, int, bool]:
    (bits,) = struct.unpack_from("<I", chunk, 1)
    if chunk[0] != 0x2F or bits >> 29:
        raise _bad("WebP", "a VP8L bitstream with a bad signature")
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool(bits >> 28 & 1)


def _u24(data: bytes, pos: int) -> int:
    if pos + 3 > len(data):
        raise IndexError(pos)
    return int.from_bytes(data[pos : pos + 3], "little")


def _parse_webp(data: bytes, max_pixels: int, reduce_to: int | None) -> PictureHeader:
    (riff_size,) = struct.unpack_from("<I", data, 4)
    end = 8 + riff_size
    if riff_size < 4 or end > len(data):
        raise _bad("WebP", f"its RIFF header declares {end:,} bytes of file")
    chunks: list[tuple[bytes, bytes]] = []
    pos = 12
    while pos + 8 <= end:
        if len(chunks) >= _MAX_CHUNKS:
            raise _bad("WebP", f"more than {_MAX_CHUNKS:,} chunks")
        kind, size = struct.unpack_from("<4sI", data, pos)
        if pos + 8 + size > end:
            raise _bad("WebP", f"truncated in its {kind.decode('latin-1')!r} chunk")
        chunks.append((kind, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    if not chunks:
        raise _bad("WebP", "no image in it")
    kind, body = chunks[0]
    sizes: list[tuple[int, int]] = []
    exif: bytes | None = None
    animated = False
    bitstreams = {kind} | {sub for sub, _ in chunks}  # the ANMF frames' added below
    if kind == b"VP8 ":
        width, height, alpha = _vp8_size(body)
    elif kind == b"VP8L":
        width, height, alpha = _vp8l_size(body)
    elif kind == b"VP8X":
        flags = body[0]
        width, height = _u24(body, 4) + 1, _u24(body, 7) + 1
        alpha, animated = bool(flags & 0x10), bool(flags & 0x02)
        _check_size("WebP", width, height, max_pixels)
        for kind, body in chunks[1:]:
            if kind in (b"VP8 ", b"VP8L"):
                w, h, _ = _vp8_size(body) if kind == b"VP8 " else _vp8l_size(body)
                _check_size("WebP", w, h, max_pixels)
                sizes.append((w, h))
            elif kind == b"ANMF":
                x, y = 2 * _u24(body, 0), 2 * _u24(body, 3)
                w, h = _u24(body, 6) + 1, _u24(body, 9) + 1
                _check_size("WebP", w, h, max_pixels)
                if x + w > width or y + h > height:
                    raise _bad("WebP", f"a {w}x{h} frame at ({x}, {y}) outside its canvas")
                sizes.append((w, h))
                # The frame's own bitstream follows (after an optional ALPH chunk).
                inner = 16
                while inner + 8 <= len(body):
                    sub, sub_size = struct.unpack_from("<4sI", body, inner)
                    payload = body[inner + 8 : inner + 8 + sub_size]
                    if sub in (b"VP8 ", b"VP8L"):
                        bitstreams.add(sub)
                        fw, fh, _ = _vp8_size(payload) if sub == b"VP8 " else _vp8l_size(payload)
                        _check_size("WebP", fw, fh, max_pixels)
                        sizes.append((fw, fh))
                        break
                    inner += 8 + sub_size + (sub_size & 1)
            elif kind == b"EXIF" and exif is None:
                exif = body
    else:
        raise _bad("WebP", f"an unknown first chunk {kind.decode('latin-1')!r}")
    if width == 0 or height == 0:
        raise _bad("WebP", f"invalid size {width}x{height}")
    _check_size("WebP", width, height, max_pixels)
    frames = any(kind == b"ANMF" for kind, _ in chunks)
    if animated != frames:
        raise _bad("WebP", "an animation flag without frames, or frames without the flag")
    alpha = alpha or any(kind == b"ALPH" for kind, _ in chunks)
    payload = data
    if animated:
        # TensorFlow 2.21 writes an animation's frames as RGBA whatever the header says:
        # without the alpha flag that overflows its 3-channel output buffer (heap
        # corruption, measured). A copy with the flag set decodes as RGBA, safely.
        payload = data[:20] + bytes([data[20] | 0x10]) + data[21:]
        alpha = True
    channels = 4 if alpha else 3
    # The output plus libwebp's own buffers, measured: up to 4.6 bytes a pixel for a
    # lossless bitstream (its ARGB rows), 2.5 for a lossy one (YUV planes and alpha),
    # 9.4 for an animation (two RGBA canvases besides the frame).
    lossless = b"VP8L" in bitstreams
    per_pixel = channels + (10 if animated else 5 if lossless else 3)
    return PictureHeader(
        format="WebP",
        width=width,
        height=height,
        channels=channels,
        sizes=((width, height), *sizes),
        orientation=_exif_orientation(exif),
        ratio=1,
        decode_bytes=width * height * per_pixel + (len(payload) if animated else 0),
        payload=payload,
    )


_PARSERS: Final = {
    "PNG": _parse_png,
    "JPEG": _parse_jpeg,
    "BMP": _parse_bmp,
    "GIF": _parse_gif,
    "WebP": _parse_webp,
}


# ------------------------------------------------------------------------------- EXIF


def _exif_orientation(exif: bytes | None) -> int:
    """The Orientation tag (0x0112) of IFD0 of a TIFF-structured EXIF block; 1 if none.

    Only IFD0 is read (no IFD links are followed, so cycles cannot loop), its entries
    (at most 65,535) must lie inside the block, and anything malformed counts as no tag.
    """
    if not exif:
        return 1
    if exif.startswith(_EXIF_PREFIX):  # some writers keep JPEG's prefix in PNG and WebP
        exif = exif[len(_EXIF_PREFIX) :]
    if exif[:4] == b"II*\x00":
        order = "<"
    elif exif[:4] == b"MM\x00*":
        order = ">"
    else:
        return 1
    try:
        (ifd,) = struct.unpack_from(order + "I", exif, 4)
        (count,) = struct.unpack_from(order + "H", exif, ifd)
        if ifd + 2 + 12 * count > len(exif):
            return 1  # the entries must lie inside the block
        for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
            tag, kind, number = struct.unpack_from(order + "HHI", exif, entry)
            if tag == 0x0112:
                (value,) = struct.unpack_from(order + "H", exif, entry + 8)
                return value if kind == 3 and number == 1 and 1 <= value <= 8 else 1
    except struct.error:
        return 1
    return 1


def apply_orientation(pixels: npt.NDArray[np.uint8], orientation: int) -> npt.NDArray[np.uint8]:
    """Turn stored pixels upright for an EXIF orientation (1..8); views, no copies.

    The EXIF orientation says where the stored first row and first column belong: 6 is
    a photo taken with the phone turned clockwise (rotate 90 degrees clockwise to
    view), 8 the other way, 3 upside down; 2, 4, 5 and 7 are the mirrored cases.

    Args:
        pixels: ``(H, W, C)`` array as stored in the file.
        orientation: 1..8; anything else is treated as 1.

    Returns:
        The upright array: ``(H, W, C)``, or ``(W, H, C)`` for orientations 5..8.

    Example:
        >>> import numpy as np
        >>> stored = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
        >>> apply_orientation(stored, 6)[..., 0].tolist()
        [[3, 0], [4, 1], [5, 2]]
    """
    swapped = pixels.transpose(1, 0, 2)
    turned: dict[int, npt.NDArray[np.uint8]] = {
        2: pixels[:, ::-1],
        3: pixels[::-1, ::-1],
        4: pixels[::-1],
        5: swapped,
        6: swapped[:, ::-1],
        7: swapped[::-1, ::-1],
        8: swapped[::-1],
    }
    return turned.get(orientation, pixels)


# ----------------------------------------------------------------------------- decode


def decode_picture(
    data: bytes,
    *,
    max_pixels: int = MAX_PIXELS,
    max_decode_bytes: int = MAX_DECODE_BYTES,
    reduce_to: int | None = None,
) -> npt.NDArray[np.uint8]:
    """Decode a PNG, JPEG, BMP, GIF or WebP picture from untrusted bytes, upright.

    The headers are checked first (:func:`parse_header`); TensorFlow decodes only what
    passed, and the decoded shape must be the one the headers declared.

    Args:
        data: The bytes of a picture file.
        max_pixels: The most pixels any frame or canvas may declare.
        max_decode_bytes: The most memory the decoder may need, in bytes.
        reduce_to: JPEGs are decoded at 1/2, 1/4 or 1/8 scale while their longer side
            stays at least this long (None: full scale).

    Returns:
        ``(H, W, C)`` uint8 pixels with C = 1 (gray), 3 (RGB) or 4 (RGBA), the EXIF
        orientation applied. The first frame of an animated GIF or WebP. Possibly a
        read-only view.

    Raises:
        ImageError: Not a readable picture of the five formats (the message names what
            it looks like), a frame over ``max_pixels``, a decoder needing more than
            ``max_decode_bytes``, a decoding error, or a WebP with TensorFlow < 2.20.

    Example:
        >>> import numpy as np, tensorflow as tf
        >>> png = tf.io.encode_png(np.zeros((5, 7, 1), np.uint8)).numpy()
        >>> decode_picture(png).shape
        (5, 7, 1)
        >>> decode_picture(b"hello world")
        Traceback (most recent call last):
        ...
        lenet_mnist.errors.ImageError: not a readable picture (this looks like text; PNG, JPEG, BMP, GIF or WebP expected), got 11 bytes: 'hello world'
    """
    import tensorflow as tf

    header = parse_header(
        data, max_pixels=max_pixels, max_decode_bytes=max_decode_bytes, reduce_to=reduce_to
    )
    fmt, payload = header.format, header.payload
    if fmt == "WebP" and not hasattr(tf.io, "decode_webp"):
        raise ImageError(
            f"WebP pictures need TensorFlow 2.20 or newer (this is {tf.__version__}), "
            f"got {_received(data)}"
        )
    try:
        if fmt == "JPEG":
            tensor = tf.io.decode_jpeg(payload, ratio=header.ratio)
        elif fmt == "PNG":
            tensor = tf.io.decode_png(payload, channels=header.channels)
        elif fmt == "BMP":
            tensor = tf.io.decode_bmp(payload)
        else:  # GIF and WebP: the first frame only
            tensor = tf.io.decode_image(payload, expand_animations=False, dtype=tf.uint8)
    except tf.errors.OpError as error:
        reason = _TF_NOISE.sub("", error.message or type(error).__name__).strip()
        reason = reason.splitlines()[0] if reason else type(error).__name__
        raise ImageError(
            f"not a readable {fmt} picture ({reason}), got {_received(data)}"
        ) from None
    # Zero-copy: the array shares the tensor's buffer.
    pixels = np.asarray(tensor)
    expected = header.decoded_shape
    allowed = {expected[:2]}
    if fmt == "GIF":
        allowed.add(header.sizes[0][::-1])  # older TensorFlow: the logical screen
    if pixels.ndim != 3 or pixels.shape[:2] not in allowed or pixels.shape[2] not in (1, 3, 4):
        raise ImageError(
            f"the {fmt} decoder returned pixels of an unexpected shape "
            f"(expected {expected}), got {pixels.shape}"
        )
    return apply_orientation(pixels, header.orientation)
