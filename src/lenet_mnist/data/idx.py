"""Reading and writing IDX files, the binary format MNIST is published in.

An IDX file is a 4-byte magic number -- two zero bytes, a type code, the number of
dimensions -- followed by one big-endian ``uint32`` per dimension and then the values,
big-endian, in C order. MNIST uses type ``0x08`` (unsigned byte): images are
``(N, 28, 28)`` and labels ``(N,)``.

The reader treats every file as untrusted: a declared size is checked against the
bytes actually present and against a limit *before* any memory is allocated for it,
and a gzip stream is decompressed at most up to that limit, so a small ``.gz`` that
would inflate to gigabytes (a "gzip bomb") is refused early.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Final

import numpy as np
import numpy.typing as npt

from lenet_mnist.errors import ChecksumError, IdxFormatError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "decode_idx",
    "encode_idx",
    "read_file_bytes",
    "read_idx",
    "sha256_hex",
]

#: Largest decompressed IDX file accepted by default: 64 MiB, above MNIST's largest
#: file (47,040,016 bytes) with room to spare, and far below a gzip bomb's size.
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024

# Type code -> numpy dtype (big-endian, as the format stores values).
_TYPE_CODES: Final[dict[int, np.dtype[np.generic]]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_DTYPE_CODES: Final[dict[str, int]] = {
    "uint8": 0x08,
    "int8": 0x09,
    "int16": 0x0B,
    "int32": 0x0C,
    "float32": 0x0D,
    "float64": 0x0E,
}
_GZIP_MAGIC: Final = b"\x1f\x8b"
# NumPy 1.x arrays have at most 32 dimensions (2.x: 64); the header byte allows 255.
_MAX_NDIM: Final = 32
_CHUNK: Final = 1 << 20


def sha256_hex(data: bytes | bytearray | memoryview) -> str:
    """Return the SHA-256 hash of ``data`` as 64 lowercase hex digits.

    Example:
        >>> sha256_hex(b"")[:16]
        'e3b0c44298fc1c14'
    """
    return hashlib.sha256(data).hexdigest()


def decode_idx(
    data: bytes | bytearray | memoryview,
    *,
    name: str = "<bytes>",
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> npt.NDArray[np.generic]:
    """Parse the bytes of an uncompressed IDX file into a numpy array.

    Args:
        data: The whole file content.
        name: What to call the data in error messages (usually its path).
        max_bytes: The largest body size accepted, in bytes.

    Returns:
        A new array in native byte order with the declared shape and dtype (``uint8``
        for MNIST), independent of ``data``.

    Raises:
        IdxFormatError: Bad magic number, unknown type code, a declared size larger
            than ``max_bytes`` or than the data present, or trailing bytes.

    Example:
        >>> import numpy as np
        >>> decode_idx(encode_idx(np.arange(6, dtype=np.uint8).reshape(2, 3))).tolist()
        [[0, 1, 2], [3, 4, 5]]
    """
    view = memoryview(data).cast("B")
    if len(view) < 4:
        raise IdxFormatError(
            f"{name}: not an IDX file: {len(view)} bytes is shorter than the header"
        )
    zero0, zero1, type_code, ndim = view[0], view[1], view[2], view[3]
    if zero0 != 0 or zero1 != 0:
        raise IdxFormatError(
            f"{name}: bad IDX magic number: expected two zero bytes, got {bytes(view[:4]).hex()}"
        )
    dtype = _TYPE_CODES.get(type_code)
    if dtype is None:
        raise IdxFormatError(f"{name}: unknown IDX type code 0x{type_code:02x}")
    if ndim > _MAX_NDIM:
        raise IdxFormatError(
            f"{name}: IDX header declares more than {_MAX_NDIM} dimensions, got {ndim}"
        )
    header_size = 4 + 4 * ndim
    if len(view) < header_size:
        raise IdxFormatError(
            f"{name}: truncated IDX header: {ndim} dimensions need {header_size} bytes, "
            f"got {len(view)}"
        )
    shape = struct.unpack(f">{ndim}I", view[4:header_size])
    # Python ints cannot overflow, so the product is exact however large the header claims.
    count = nonzero = 1
    for dim in shape:
        count *= dim
        nonzero *= max(dim, 1)
    body_size = count * dtype.itemsize
    if body_size > max_bytes:
        raise IdxFormatError(
            f"{name}: IDX header declares {body_size} bytes of data for shape {shape}, "
            f"more than the limit of {max_bytes}"
        )
    # NumPy refuses a shape whose non-zero sizes overflow its index type even when a
    # zero size makes the array empty.
    if nonzero * dtype.itemsize > np.iinfo(np.intp).max:
        raise IdxFormatError(
            f"{name}: IDX header declares a shape NumPy cannot represent, got {shape}"
        )
    actual = len(view) - header_size
    if actual < body_size:
        raise IdxFormatError(
            f"{name}: truncated IDX file: shape {shape} needs {body_size} bytes of data, got {actual}"
        )
    if actual > body_size:
        raise IdxFormatError(
            f"{name}: {actual - body_size} unexpected trailing bytes after the IDX data "
            f"of shape {shape}"
        )
    array = np.frombuffer(view, dtype=dtype, count=count, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def encode_idx(array: npt.ArrayLike) -> bytes:
    """Encode an array as the bytes of an IDX file (the inverse of :func:`decode_idx`).

    Args:
        array: Any array of dtype uint8, int8, int16, int32, float32 or float64 with at
            most 255 dimensions, each below 2**32.

    Returns:
        The file content: header then big-endian values.

    Raises:
        TypeError: The dtype has no IDX type code.
        ValueError: Too many dimensions or a dimension too large.

    Example:
        >>> encode_idx(np.zeros((1, 2), dtype=np.uint8)).hex()
        '0000080200000001000000020000'
    """
    arr = np.asarray(array)
    code = _DTYPE_CODES.get(arr.dtype.name)
    if code is None:
        raise TypeError(
            f"IDX cannot store dtype {arr.dtype}; use one of {sorted(_DTYPE_CODES)}, "
            f"got {arr.dtype}"
        )
    if arr.ndim > 255 or any(dim >= 2**32 for dim in arr.shape):
        raise ValueError(f"IDX cannot store an array of shape {arr.shape}")
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + np.ascontiguousarray(arr, dtype=_TYPE_CODES[code]).tobytes()


def read_file_bytes(path: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """Return the content of a file, decompressed if it is gzip, refusing oversized data.

    Gzip is recognised by its magic bytes, not by the file name. At most
    ``max_bytes + 1`` bytes are ever decompressed, so a gzip bomb costs no more memory or
    time than a legitimate file.

    Args:
        path: The file to read.
        max_bytes: The largest (decompressed) content accepted, in bytes.

    Returns:
        The (decompressed) content.

    Raises:
        IdxFormatError: The content exceeds ``max_bytes`` or the gzip stream is corrupt
            or truncated.
        OSError: The file cannot be opened or read.
    """
    file = Path(path)
    with file.open("rb") as raw:
        magic = raw.read(2)
        raw.seek(0)
        if magic != _GZIP_MAGIC:
            data = _read_plain(raw, max_bytes)
        else:
            try:
                data = _read_gzip(raw, max_bytes)
            except (OSError, EOFError, zlib.error) as error:
                raise IdxFormatError(f"{file}: corrupt or truncated gzip data: {error}") from error
    if len(data) > max_bytes:
        raise IdxFormatError(
            f"{file}: content is larger than the limit of {max_bytes} bytes "
            "(not an MNIST file, or a decompression bomb)"
        )
    return data


def _read_plain(raw: BinaryIO, max_bytes: int) -> bytes:
    """Read at most ``max_bytes + 1`` bytes, allocating no more than the file holds.

    ``read(n)`` allocates ``n`` bytes up front, so asking for the limit would cost 64 MiB
    for every tiny file; the file's size bounds the first read instead.
    """
    try:
        size = os.fstat(raw.fileno()).st_size
    except (OSError, AttributeError, ValueError):
        size = max_bytes
    want = min(size, max_bytes) + 1
    data = raw.read(want)
    if len(data) == want and want <= max_bytes:
        # The file grew since fstat (or is not a regular file): read on, up to the limit.
        data += raw.read(max_bytes + 1 - len(data))
    return data


def _read_gzip(raw: BinaryIO, max_bytes: int) -> bytes:
    """Decompress at most ``max_bytes + 1`` bytes from an open gzip file."""
    parts: list[bytes] = []
    total = 0
    with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
        while total <= max_bytes:
            chunk = stream.read(min(_CHUNK, max_bytes + 1 - total))
            if not chunk:
                break
            parts.append(chunk)
            total += len(chunk)
    return b"".join(parts)


def read_idx(
    path: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> npt.NDArray[np.generic]:
    """Read an IDX file, plain or gzip-compressed, optionally verifying its content hash.

    Args:
        path: The file (``.gz`` or not; gzip is detected from the content).
        sha256: Expected SHA-256 (hex) of the *decompressed* content, or ``None`` to
            skip the check. Checking the decompressed bytes makes the check hold for any
            re-compressed copy of the same data.
        max_bytes: The largest decompressed size accepted, in bytes.

    Returns:
        The array stored in the file (``uint8`` for MNIST).

    Raises:
        ChecksumError: The content's hash is not ``sha256``.
        IdxFormatError: The file is malformed (see :func:`decode_idx`).
        OSError: The file cannot be read.
    """
    data = read_file_bytes(path, max_bytes=max_bytes + 4 + 4 * 255)
    if sha256 is not None:
        actual = sha256_hex(data)
        if actual != sha256.lower():
            raise ChecksumError(
                f"{os.fspath(path)}: content hash mismatch: expected sha256 {sha256.lower()}, "
                f"got {actual}"
            )
    return decode_idx(data, name=os.fspath(path), max_bytes=max_bytes)
