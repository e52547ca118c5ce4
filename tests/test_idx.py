"""IDX encoding and parsing: round trips, every malformed-file path, gzip and limits."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lenet_mnist.data.idx import (
    DEFAULT_MAX_BYTES,
    decode_idx,
    encode_idx,
    read_file_bytes,
    read_idx,
    sha256_hex,
)
from lenet_mnist.errors import ChecksumError, IdxFormatError

# The six IDX value types, each in both byte orders (the encoder must normalise them).
_DTYPES = [
    np.dtype(name).newbyteorder(order)
    for name in ("uint8", "int8", "int16", "int32", "float32", "float64")
    for order in ("<", ">")
]


def _header(type_code: int, *dims: int) -> bytes:
    return bytes([0, 0, type_code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


@st.composite
def idx_arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(st.sampled_from(_DTYPES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5))
    return draw(hnp.arrays(dtype, shape))


@given(idx_arrays())
@settings(max_examples=150, deadline=None)
def test_encode_decode_round_trip(array: np.ndarray) -> None:
    data = encode_idx(array)
    assert len(data) == 4 + 4 * array.ndim + array.size * array.dtype.itemsize
    back = decode_idx(data)
    assert back.shape == array.shape
    assert back.dtype == array.dtype.newbyteorder("=")
    assert back.dtype.isnative
    # Compare the values' bits, so NaNs (with their payloads) and -0.0 count as well.
    assert back.tobytes() == array.astype(back.dtype).tobytes()


# Mostly well-formed magic numbers, so the fuzzing reaches the header and body checks.
_idx_like_bytes = st.one_of(
    st.binary(max_size=64),
    st.builds(
        lambda code, ndim, rest: bytes([0, 0, code, ndim]) + rest,
        st.sampled_from([0x07, 0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]),
        st.integers(0, 3),
        st.binary(max_size=48),
    ),
)


@given(_idx_like_bytes)
@settings(max_examples=400, deadline=None)
def test_arbitrary_bytes_parse_or_raise_idx_format_error(data: bytes) -> None:
    try:
        array = decode_idx(data, max_bytes=1 << 16)
    except IdxFormatError:
        return
    # Whatever parses must encode back to exactly the same bytes.
    assert encode_idx(array) == data


@given(
    hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6)),
    st.booleans(),
)
@settings(max_examples=40, deadline=None)
def test_read_idx_plain_and_gzip_give_the_same_array(array: np.ndarray, compress: bool) -> None:
    import tempfile

    data = encode_idx(array)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x-idx-ubyte"
        path.write_bytes(gzip.compress(data) if compress else data)
        back = read_idx(path, sha256=sha256_hex(data))
    np.testing.assert_array_equal(back, array)
    assert back.dtype == np.uint8


def test_encode_known_bytes() -> None:
    assert encode_idx(np.array([[1, 2, 3]], dtype=np.uint8)) == (
        b"\x00\x00\x08\x02" + b"\x00\x00\x00\x01" + b"\x00\x00\x00\x03" + b"\x01\x02\x03"
    )
    # Values are big-endian whatever the array's byte order.
    assert encode_idx(np.array([1], dtype="<i2")) == b"\x00\x00\x0b\x01\x00\x00\x00\x01\x00\x01"
    assert encode_idx(np.array([1.0], dtype="<f4"))[-4:] == b"\x3f\x80\x00\x00"


def test_decode_returns_an_independent_array() -> None:
    data = bytearray(encode_idx(np.array([1, 2], dtype=np.uint8)))
    array = decode_idx(data)
    data[-1] = 99
    assert array.tolist() == [1, 2]
    assert array.flags.writeable


def test_decode_memoryview_input() -> None:
    data = encode_idx(np.arange(4, dtype=np.int32))
    assert decode_idx(memoryview(data)).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("dtype", ["bool", "uint16", "int64", "float16", "complex64", "U1"])
def test_encode_rejects_dtypes_without_a_type_code(dtype: str) -> None:
    with pytest.raises(
        TypeError, match=rf"IDX cannot store dtype .*got {re.escape(str(np.dtype(dtype)))}$"
    ):
        encode_idx(np.zeros(2, dtype=dtype))


def test_encode_rejects_dimension_of_2_to_the_32() -> None:
    # A zero-stride view: 2**32 elements without allocating them.
    huge = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape=(2**32,), strides=(0,))
    with pytest.raises(ValueError, match=r"IDX cannot store an array of shape \(4294967296,\)"):
        encode_idx(huge)


# --- every IdxFormatError path of decode_idx -------------------------------------------


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x00\x08"])
def test_shorter_than_magic(data: bytes) -> None:
    with pytest.raises(IdxFormatError, match=rf"f: not an IDX file: {len(data)} bytes is shorter"):
        decode_idx(data, name="f")


@pytest.mark.parametrize("magic", [b"\x01\x00\x08\x01", b"\x00\x01\x08\x01", b"\x1f\x8b\x08\x00"])
def test_bad_magic(magic: bytes) -> None:
    with pytest.raises(
        IdxFormatError,
        match=rf"f: bad IDX magic number: expected two zero bytes, got {magic.hex()}",
    ):
        decode_idx(magic + b"\x00" * 8, name="f")


@pytest.mark.parametrize("code", [0x00, 0x07, 0x0A, 0x0F, 0xFF])
def test_unknown_type_code(code: int) -> None:
    with pytest.raises(IdxFormatError, match=rf"f: unknown IDX type code 0x{code:02x}"):
        decode_idx(_header(code, 1) + b"\x00" * 8, name="f")


def test_more_dimensions_than_numpy_supports_are_refused() -> None:
    # Found by test_hostile's random bytes: 100 dimensions reached NumPy's reshape.
    header = bytes([0, 0, 0x08, 100]) + b"\x00\x00\x00\x01" * 100
    with pytest.raises(
        IdxFormatError, match="f: IDX header declares more than 32 dimensions, got 100"
    ):
        decode_idx(header + b"\x00", name="f")


def test_an_empty_shape_numpy_cannot_represent_is_refused() -> None:
    # Found by test_hostile's random bytes: zero images of 2**31-1 x 2**31-1 x 3.
    header = bytes([0, 0, 0x08, 4]) + struct.pack(">4I", 2**31 - 1, 2**31 - 1, 0, 3)
    with pytest.raises(
        IdxFormatError,
        match=r"f: IDX header declares a shape NumPy cannot represent, "
        r"got \(2147483647, 2147483647, 0, 3\)",
    ):
        decode_idx(header, name="f")


def test_truncated_header() -> None:
    data = _header(0x08, 60000, 28, 28)[:10]
    with pytest.raises(
        IdxFormatError, match=r"f: truncated IDX header: 3 dimensions need 16 bytes, got 10"
    ):
        decode_idx(data, name="f")


def test_truncated_body() -> None:
    data = _header(0x08, 2, 3) + bytes(5)
    with pytest.raises(
        IdxFormatError, match=r"f: truncated IDX file: shape \(2, 3\) needs 6 bytes of data, got 5"
    ):
        decode_idx(data, name="f")


def test_truncated_body_counts_item_size() -> None:
    data = _header(0x0E, 2) + bytes(15)  # two float64 need 16 bytes
    with pytest.raises(IdxFormatError, match=r"needs 16 bytes of data, got 15"):
        decode_idx(data)


def test_trailing_bytes() -> None:
    data = encode_idx(np.zeros((2, 3), np.uint8)) + b"\x00\x00"
    with pytest.raises(
        IdxFormatError, match=r"f: 2 unexpected trailing bytes after the IDX data of shape \(2, 3\)"
    ):
        decode_idx(data, name="f")


def test_declared_size_over_limit_is_refused_before_allocating() -> None:
    # The header claims 2**32 * 2**32 bytes; only the header is present.
    data = _header(0x08, 2**32 - 1, 2**32 - 1)
    with pytest.raises(
        IdxFormatError,
        match=r"f: IDX header declares \d+ bytes of data .* more than the limit of 64",
    ):
        decode_idx(data, name="f", max_bytes=64)


def test_declared_size_over_default_limit() -> None:
    data = _header(0x08, DEFAULT_MAX_BYTES + 1)
    with pytest.raises(IdxFormatError, match=rf"more than the limit of {DEFAULT_MAX_BYTES}"):
        decode_idx(data)


def test_size_exactly_at_limit_is_accepted() -> None:
    array = np.arange(64, dtype=np.uint8)
    assert decode_idx(encode_idx(array), max_bytes=64).tolist() == array.tolist()


def test_idx_format_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="bad IDX magic number"):
        decode_idx(b"\xff" * 8)


# --- files: plain, gzip, hashes, limits --------------------------------------------------


@pytest.fixture
def sample() -> np.ndarray:
    return np.arange(2 * 28 * 28, dtype=np.uint16).reshape(2, 28, 28).astype(np.uint8)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_read_idx_file(tmp_path: Path, sample: np.ndarray, compress: bool) -> None:
    data = encode_idx(sample)
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(gzip.compress(data) if compress else data)
    np.testing.assert_array_equal(read_idx(path), sample)
    np.testing.assert_array_equal(read_idx(str(path), sha256=sha256_hex(data).upper()), sample)
    assert read_file_bytes(path) == data


def test_gzip_is_detected_by_content_not_name(tmp_path: Path, sample: np.ndarray) -> None:
    data = encode_idx(sample)
    compressed_without_suffix = tmp_path / "a"
    compressed_without_suffix.write_bytes(gzip.compress(data))
    plain_with_suffix = tmp_path / "b.gz"
    plain_with_suffix.write_bytes(data)
    np.testing.assert_array_equal(read_idx(compressed_without_suffix), sample)
    np.testing.assert_array_equal(read_idx(plain_with_suffix), sample)


def test_hash_is_of_the_decompressed_content(tmp_path: Path, sample: np.ndarray) -> None:
    data = encode_idx(sample)
    # Two different compressions of the same bytes pass the same check.
    for level in (1, 9):
        path = tmp_path / f"x{level}.gz"
        path.write_bytes(gzip.compress(data, compresslevel=level, mtime=level))
        np.testing.assert_array_equal(read_idx(path, sha256=sha256_hex(data)), sample)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_checksum_mismatch(tmp_path: Path, sample: np.ndarray, compress: bool) -> None:
    data = encode_idx(sample)
    path = tmp_path / "x"
    path.write_bytes(gzip.compress(data) if compress else data)
    wrong = "0" * 64
    with pytest.raises(
        ChecksumError,
        match=rf"{path}: content hash mismatch: expected sha256 {wrong}, got {sha256_hex(data)}",
    ):
        read_idx(path, sha256=wrong)


def test_checksum_error_is_an_idx_format_error_and_value_error() -> None:
    assert issubclass(ChecksumError, IdxFormatError)
    assert issubclass(ChecksumError, ValueError)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_file_errors_name_the_file(tmp_path: Path, compress: bool) -> None:
    data = encode_idx(np.zeros(3, np.uint8))[:-1]
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(IdxFormatError, match=rf"^{path}: truncated IDX file"):
        read_idx(path)


def test_truncated_gzip(tmp_path: Path, sample: np.ndarray) -> None:
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(encode_idx(sample))[:-12])
    with pytest.raises(IdxFormatError, match=rf"{path}: corrupt or truncated gzip data"):
        read_idx(path)


def test_corrupt_gzip(tmp_path: Path, sample: np.ndarray) -> None:
    compressed = bytearray(gzip.compress(encode_idx(sample)))
    compressed[20:40] = b"\xff" * 20
    path = tmp_path / "x.gz"
    path.write_bytes(bytes(compressed))
    with pytest.raises(IdxFormatError, match=rf"{path}: corrupt or truncated gzip data"):
        read_idx(path)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_content_over_limit(tmp_path: Path, compress: bool) -> None:
    data = bytes(10_000)
    path = tmp_path / "big"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(
        IdxFormatError, match=rf"{path}: content is larger than the limit of 1000 bytes"
    ):
        read_file_bytes(path, max_bytes=1000)
    assert read_file_bytes(path, max_bytes=10_000) == data


def test_gzip_bomb_decompresses_only_up_to_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 100 MB of zeros compress to ~100 KB; reading must stop right after the limit.
    path = tmp_path / "bomb.gz"
    with gzip.open(path, "wb", compresslevel=1) as out:
        chunk = bytes(1 << 20)
        for _ in range(100):
            out.write(chunk)
    read_sizes: list[int] = []
    original_read = gzip.GzipFile.read

    def counting_read(self: gzip.GzipFile, size: int = -1) -> bytes:
        data = original_read(self, size)
        read_sizes.append(len(data))
        return data

    monkeypatch.setattr(gzip.GzipFile, "read", counting_read)
    with pytest.raises(IdxFormatError, match="content is larger than the limit"):
        read_idx(path, max_bytes=1 << 20)
    assert sum(read_sizes) <= 2 * (1 << 20) + 4096


def test_read_idx_header_allowance(tmp_path: Path) -> None:
    # max_bytes limits the data, not the header: a file of exactly max_bytes of data reads.
    array = np.zeros((4, 4, 4), np.uint8)
    path = tmp_path / "x"
    path.write_bytes(encode_idx(array))
    assert read_idx(path, max_bytes=64).shape == (4, 4, 4)
    with pytest.raises(IdxFormatError, match="more than the limit of 63"):
        read_idx(path, max_bytes=63)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        read_idx(tmp_path / "nope")


def test_sha256_hex() -> None:
    assert sha256_hex(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_hex(memoryview(b"abc")) == sha256_hex(bytearray(b"abc"))
