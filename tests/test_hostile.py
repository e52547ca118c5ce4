"""Hostile and bad input: refused with the library's own error, quickly, in bounded memory.

* IDX: thousands of random and mutated files through ``decode_idx`` and ``read_idx``;
  the only exception ever is ``IdxFormatError``, and whatever is accepted re-encodes to
  exactly the input bytes (no silent misreading). Huge declared sizes are refused before
  any allocation (tracemalloc peak).
* Gzip bombs: 1 GiB of zeros in ~1 MB of gzip is refused after decompressing no more
  than the size limit.
* ``.keras`` files that would run code or import arbitrary callables are refused before
  Keras reads them, and the code provably does not run; only ``safe_mode=False`` -- by
  name -- loads them.
* ``predict_digits``: fuzzed shapes, dtypes, NaN/inf, empty and giant input give a
  ``ValueError`` or the right answer, nothing else.
* The CLI on missing, unreadable, directory and wrong model files: one line, exit 1.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lenet_mnist import build_lenet, load_model, predict_digits, save_model
from lenet_mnist.cli import main
from lenet_mnist.data.idx import DEFAULT_MAX_BYTES, decode_idx, encode_idx, read_idx
from lenet_mnist.errors import IdxFormatError, UnsafeModelError

# --- IDX fuzzing -----------------------------------------------------------------------

IDX_ITEMSIZE = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}


@st.composite
def valid_idx(draw: st.DrawFn) -> bytes:
    """A well-formed IDX file with random content (raw bytes: fast to generate)."""
    code = draw(st.sampled_from(sorted(IDX_ITEMSIZE)))
    shape = draw(st.lists(st.integers(0, 6), min_size=0, max_size=4))
    count = int(np.prod(shape)) if shape else 1
    body = draw(st.binary(min_size=count * IDX_ITEMSIZE[code], max_size=count * IDX_ITEMSIZE[code]))
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + body


@st.composite
def mutated_idx(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(valid_idx()))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "append", "dim", "magic", "ndim"]))
        if kind == "flip" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[draw(st.integers(0, len(data))) :]
        elif kind == "append":
            data += draw(st.binary(min_size=1, max_size=16))
        elif kind == "dim" and len(data) >= 8:
            slot = draw(st.integers(0, (len(data) - 4) // 4 - 1))
            size = draw(st.sampled_from([0, 1, 2**16, 2**31 - 1, 2**32 - 1]))
            data[4 + 4 * slot : 8 + 4 * slot] = struct.pack(">I", size)
        elif kind == "magic" and len(data) >= 3:
            data[draw(st.integers(0, 2))] = draw(st.integers(0, 255))
        elif kind == "ndim" and len(data) >= 4:
            data[3] = draw(st.integers(0, 255))
    return bytes(data)


def _decodes_faithfully_or_refuses(data: bytes) -> None:
    try:
        array = decode_idx(data, name="fuzz")
    except IdxFormatError as error:
        message = str(error)
    else:
        # Accepted: it must be exactly what the bytes say, nothing guessed or dropped.
        assert encode_idx(array) == data
        return
    assert message.startswith("fuzz: ")


@settings(max_examples=2000, deadline=None)
@given(st.one_of(mutated_idx(), st.binary(max_size=64)))
def test_decode_idx_on_mutated_and_random_bytes(data: bytes) -> None:
    _decodes_faithfully_or_refuses(data)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=mutated_idx(), compress=st.booleans(), cut=st.integers(0, 40))
def test_read_idx_on_mutated_files(tmp_path: Path, data: bytes, compress: bool, cut: int) -> None:
    path = tmp_path / "fuzz"
    if compress:
        packed = zlib.compress(data, wbits=31)  # gzip container
        # Truncate some of the gzip streams too: the reader must notice.
        path.write_bytes(packed[: len(packed) - cut] if cut < len(packed) else packed)
    else:
        path.write_bytes(data)
    try:
        array = read_idx(path)
    except IdxFormatError as error:
        message = str(error)
    else:
        assert encode_idx(array) == data
        return
    assert message.startswith(str(path))


def _peak_bytes(call: Callable[[], object]) -> tuple[int, float]:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        call()
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, elapsed


def _expect_idx_error(call: Callable[[], object], match: str) -> Callable[[], None]:
    def run() -> None:
        with pytest.raises(IdxFormatError, match=match):
            call()

    return run


@pytest.mark.parametrize(
    ("ndim", "match"),
    [(2, "more than the limit"), (3, "more than the limit"), (255, "more than 32 dimensions")],
)
def test_huge_declared_size_is_refused_before_allocating(
    ndim: int, match: str, tmp_path: Path
) -> None:
    header = bytes([0, 0, 0x0E, ndim]) + struct.pack(f">{ndim}I", *([2**32 - 1] * ndim))
    data = header + bytes(100)
    peak, elapsed = _peak_bytes(_expect_idx_error(lambda: decode_idx(data), match))
    assert peak < 256 * 1024
    assert elapsed < 1.0
    path = tmp_path / "huge.idx"
    path.write_bytes(data)
    peak, _ = _peak_bytes(_expect_idx_error(lambda: read_idx(path), match))
    assert peak < 256 * 1024


def _write_bomb(path: Path, inflated: int, *, header: bytes = b"") -> None:
    """A gzip file that inflates to ``header`` + zeros, ``inflated`` bytes in all.

    Gzip allows several members in one file, inflating to their concatenation: one
    member of 16 MiB of zeros, compressed once, is written as often as needed, so the
    gigabyte never exists in memory and building it takes well under a second.
    """
    piece = 16 << 20
    member = zlib.compress(bytes(piece), level=9, wbits=31)
    with path.open("wb") as out:
        out.write(zlib.compress(header, wbits=31))
        for _ in range((inflated - len(header)) // piece):
            out.write(member)


@pytest.fixture(scope="module")
def gib_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A plausible MNIST image header in front, so only the size gives it away.
    path = tmp_path_factory.mktemp("bomb") / "train-images-idx3-ubyte.gz"
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 60000, 28, 28)
    _write_bomb(path, 1 << 30, header=header)
    return path


def test_gzip_bomb_is_refused_quickly_in_bounded_memory(gib_bomb: Path) -> None:
    assert gib_bomb.stat().st_size < 2 * 1024 * 1024  # ~1 MB on disk for 1 GiB inflated
    peak, elapsed = _peak_bytes(
        _expect_idx_error(lambda: read_idx(gib_bomb), "larger than the limit")
    )
    # At most the limit (64 MiB) plus one chunk and the joined copy is ever held.
    assert peak < 3 * DEFAULT_MAX_BYTES
    assert elapsed < 30
    small_limit = 1 << 20
    peak, _ = _peak_bytes(
        _expect_idx_error(
            lambda: read_idx(gib_bomb, max_bytes=small_limit), "larger than the limit"
        )
    )
    assert peak < 8 * small_limit


def test_gzip_bomb_in_a_data_directory_is_refused(gib_bomb: Path, tmp_path: Path) -> None:
    from lenet_mnist.data import load_mnist

    (tmp_path / gib_bomb.name).symlink_to(gib_bomb)
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(IdxFormatError, match=r"train-images-idx3-ubyte\.gz: content is larger"):
        load_mnist(tmp_path, download=False)


# --- unsafe .keras files ---------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(build_lenet("seed", seed=0), tmp_path_factory.mktemp("m") / "seed.keras")


def _rewrite(source: Path, target: Path, edit: Callable[[Any], None]) -> Path:
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    return target


def _layers(config: dict[str, Any]) -> list[dict[str, Any]]:
    return list(config["config"]["layers"])


def test_lambda_code_never_runs_unless_safe_mode_is_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "code-ran"
    monkeypatch.setenv("LENET_MNIST_TEST_MARKER", str(marker))
    # A lambda (Keras stores its bytecode) that leaves evidence whenever it runs; no
    # closure, so it is self-contained in the file.
    payload = lambda x: (  # noqa: E731
        __import__("pathlib").Path(__import__("os").environ["LENET_MNIST_TEST_MARKER"]).touch(),
        x,
    )[1]
    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.Lambda(payload, name="payload")(inputs)
    path = tmp_path / "payload.keras"
    keras.Model(inputs, outputs).save(path)
    marker.unlink()  # building the model ran it once, legitimately

    with pytest.raises(UnsafeModelError, match=r"refusing to load a Lambda layer"):
        load_model(path)
    assert not marker.exists()
    with pytest.raises(TypeError):
        load_model(path, False)  # type: ignore[misc]  # safe_mode is keyword-only
    assert not marker.exists()
    load_model(path, safe_mode=False)  # the caller's explicit, named opt-out
    assert marker.exists()


@pytest.mark.parametrize(
    ("module", "name"),
    [("os", "system"), ("builtins", "eval"), ("subprocess", "check_output"), ("posix", "system")],
)
def test_function_typed_config_naming_arbitrary_callables_is_refused(
    saved: Path, tmp_path: Path, module: str, name: str
) -> None:
    def evil_activation(config: dict[str, Any]) -> None:
        for layer in _layers(config):
            if "activation" in layer["config"]:
                layer["config"]["activation"] = {
                    "module": module,
                    "class_name": "function",
                    "config": name,
                    "registered_name": "function",
                }

    path = _rewrite(saved, tmp_path / "evil.keras", evil_activation)
    with pytest.raises(UnsafeModelError, match=rf"from module '{module}'"):
        load_model(path)


@pytest.mark.parametrize(
    "record",
    [
        {"module": None, "class_name": "__lambda__", "config": {"code": "YWJj"}},
        {"class_name": "function", "config": {"code": "YWJj", "defaults": None}},
        {"module": ["os"], "class_name": "function", "config": "system"},
    ],
)
def test_code_or_odd_modules_anywhere_in_the_config_are_refused(
    saved: Path, tmp_path: Path, record: dict[str, Any]
) -> None:
    def plant(config: dict[str, Any]) -> None:
        _layers(config)[-1]["config"]["kernel_initializer"] = {
            "class_name": "Wrapper",
            "config": {"inner": [record]},
        }

    path = _rewrite(saved, tmp_path / "planted.keras", plant)
    with pytest.raises(UnsafeModelError, match=r"refusing to load"):
        load_model(path)


# --- predict_digits fuzzing ------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return build_lenet("seed", seed=0)


ODD_DTYPES = st.sampled_from(
    [
        np.uint8,
        np.int8,
        np.int16,
        np.uint16,
        np.int32,
        np.int64,
        np.uint64,
        np.float16,
        np.float32,
        np.float64,
        np.bool_,
        np.complex64,
    ]
)


@st.composite
def images(draw: st.DrawFn) -> np.ndarray:
    dtype = draw(ODD_DTYPES)
    shape = draw(
        st.one_of(
            st.sampled_from([(28, 28), (28, 28, 1), (1, 28, 28), (3, 28, 28, 1), (0, 28, 28)]),
            hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=30),
        )
    )
    if np.dtype(dtype).kind == "f":
        elements = st.one_of(
            st.floats(0, 1, width=16),
            st.sampled_from([np.nan, np.inf, -np.inf, -0.5, 1.5, 255.0, -0.0]),
        )
        return draw(hnp.arrays(dtype, shape, elements=elements))
    return draw(hnp.arrays(dtype, shape))


def _expected_input(array: np.ndarray) -> np.ndarray | None:
    """What the model must see for ``array``, computed independently; None = must refuse."""
    if array.dtype.kind not in "uif":
        return None
    if array.shape in ((28, 28), (28, 28, 1)):
        batch = array.reshape(1, 28, 28, 1)
    elif array.ndim == 3 and array.shape[1:] == (28, 28):
        batch = array.reshape(*array.shape, 1)
    elif array.ndim == 4 and array.shape[1:] == (28, 28, 1):
        batch = array
    else:
        return None
    if batch.shape[0] == 0:
        return None
    values = batch.astype(np.float64)
    if not np.isfinite(values).all():
        return None
    if array.dtype.kind == "f":
        return None if values.min() < 0 or values.max() > 1 else values.astype(np.float32)
    if values.min() < 0 or values.max() > 255:
        return None
    return (values / 255.0).astype(np.float32)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(array=images())
def test_predict_digits_answers_right_or_raises_value_error(
    model: keras.Model, array: np.ndarray
) -> None:
    mnist_form = array.shape in ((28, 28), (28, 28, 1)) or (
        array.ndim in (3, 4) and array.shape[1:3] == (28, 28) and array.shape[3:] in ((), (1,))
    )
    if not mnist_form and (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))):
        # Any other 2-D picture may be accepted as one image to preprocess (where
        # prepare_image exists; its own tests pin down its output): then one valid
        # answer, else a ValueError.
        try:
            result = predict_digits(model, array)
        except ValueError as error:
            assert str(error)  # noqa: PT017
            return
        assert result.digits.shape == (1,)
        assert np.isfinite(result.logits).all()
        np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, rtol=1e-5)
        return
    expected = _expected_input(array)
    if expected is None:
        with pytest.raises(ValueError, match=r"got"):
            predict_digits(model, array)
        return
    result = predict_digits(model, array)
    logits = np.asarray(model(expected, training=False))
    assert result.digits.shape == (expected.shape[0],)
    np.testing.assert_allclose(result.logits, logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(result.digits, np.argmax(result.probabilities, axis=1))
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "bad",
    [
        [[1, 2], [3]],  # ragged
        None,
        {"images": 1},
        np.array([object()] * 784, dtype=object).reshape(28, 28),
        np.zeros((2, 28, 28), dtype="datetime64[s]"),
        np.zeros((28, 28), dtype=[("a", np.uint8)]),
    ],
)
def test_predict_digits_refuses_non_arrays(model: keras.Model, bad: object) -> None:
    with pytest.raises(ValueError, match=r"got|numeric array"):
        predict_digits(model, bad)  # type: ignore[arg-type]


def test_predict_digits_on_a_giant_batch_is_chunked_and_right(model: keras.Model) -> None:
    # More images than one chunk (4096), as a zero-copy broadcast view.
    one = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    giant = np.broadcast_to(one, (5_000, 28, 28))
    result = predict_digits(model, giant)
    single = predict_digits(model, one)
    assert result.digits.shape == (5_000,)
    assert (result.digits == single.digits[0]).all()
    np.testing.assert_allclose(result.logits, np.repeat(single.logits, 5_000, axis=0), atol=1e-5)


# --- the CLI on bad files --------------------------------------------------------------


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lenet-mnist: error: ")
    return lines[0]


def _png(path: Path) -> Path:
    # A real (1x1) PNG, renamed: the kind of wrong file a user picks by mistake.
    body = zlib.compress(b"\x00\x00")

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )
    return path


def _directory(d: Path) -> Path:
    (d / "dir.keras").mkdir()
    return d / "dir.keras"


def _empty(d: Path) -> Path:
    (d / "empty.keras").write_bytes(b"")
    return d / "empty.keras"


def _under_a_file(d: Path) -> Path:
    (d / "f").write_bytes(b"x")
    return d / "f" / "m.keras"


BAD_MODEL_FILES = [
    (lambda d: d / "missing.keras", r"model file not found: \S*missing\.keras$"),
    (_directory, r"got a directory: \S*dir\.keras$"),
    (lambda d: _png(d / "picture.keras"), r"picture\.keras: not a \.keras model file"),
    (_empty, r"empty\.keras: not a \.keras model file"),
    (_under_a_file, r"not found: \S*f/m\.keras$"),
]


@pytest.mark.parametrize(
    ("make", "match"),
    BAD_MODEL_FILES,
    ids=["missing", "directory", "png", "empty", "parent-is-a-file"],
)
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_cli_bad_model_file_is_one_line_and_exit_1(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: Callable[[Path], Path],
    match: str,
    command: str,
) -> None:
    path = make(tmp_path)
    if command == "evaluate":
        argv = [command, str(path)]
    else:
        argv = [command, "--model", str(path), "--index", "0"]
    assert main([*argv, "--no-download"]) == 1
    line = _one_error_line(capsys)
    assert re.search(match, line), line


def test_cli_unreadable_model_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "secret.keras"
    save_model(build_lenet("seed", seed=0), path)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as root (or with CAP_DAC_OVERRIDE): mode 000 does not stop reads")
        assert main(["evaluate", str(path), "--no-download"]) == 1
        assert "Permission denied" in _one_error_line(capsys)
    finally:
        path.chmod(0o600)


def test_cli_unreadable_data_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (data_dir / name).write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x00")
    model_path = save_model(build_lenet("seed", seed=0), tmp_path / "m.keras")
    assert main(["evaluate", str(model_path), "--data-dir", str(data_dir), "--no-download"]) == 1
    line = _one_error_line(capsys)
    assert "content hash mismatch" in line
    assert "train-images-idx3-ubyte" in line


def test_cli_bad_file_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    bad = _png(tmp_path / "picture.keras")
    done = subprocess.run(
        [sys.executable, "-m", "lenet_mnist", "evaluate", str(bad), "--no-download"],
        capture_output=True,
        text=True,
        timeout=300,
        # As a user runs it: without TF_CPP_MIN_LOG_LEVEL, so the CLI must itself keep
        # TensorFlow's start-up log lines off stderr.
        env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    ours = done.stderr.splitlines()
    assert ours == [f"lenet-mnist: error: {bad}: not a .keras model file (File is not a zip file)"]
