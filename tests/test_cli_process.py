"""Issue 15's newcomer: the ``lenet-mnist`` command in real processes (``python -m lenet_mnist``).

Every bad argument is refused before any work: within seconds, before data is read or
a model trained, in exactly one stderr line, with exit status 1 (usage errors: argparse's
2). The real MNIST files (``LENET_MNIST_DATA``), when present, are what a refusal that
came too late would train on, which the time bound would catch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lenet_mnist

SRC = Path(lenet_mnist.__file__).resolve().parents[1]
# Far below one epoch of training on this machine, far above a refusal (about 1 s idle,
# no TensorFlow imported).
_REFUSAL_SECONDS = 20.0
# Refusals that need TensorFlow (decoding a picture) or the data search (a download
# that fails): its import alone took 30 s on this 2-core machine under a load of 19.
_AFTER_IMPORT_SECONDS = 90.0


def _run(
    argv: list[str], cwd: Path, *, env: dict[str, str] | None = None, timeout: float = 120
) -> tuple[subprocess.CompletedProcess[str], float]:
    environment = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "PYTHONWARNINGS": "ignore",
        **(env or {}),
    }
    # As a user runs it: the command quiets TensorFlow's start-up itself.
    environment.pop("TF_CPP_MIN_LOG_LEVEL", None)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "lenet_mnist", *argv],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return result, time.perf_counter() - started


def _refused(
    argv: list[str],
    cwd: Path,
    expected: str,
    *,
    env: dict[str, str] | None = None,
    limit: float = _REFUSAL_SECONDS,
) -> str:
    result, seconds = _run(argv, cwd, env=env)
    lines = result.stderr.splitlines()
    assert result.returncode == 1, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lenet-mnist: error: "), lines[0]
    assert expected in lines[0], lines[0]
    assert result.stdout == ""
    assert seconds < limit, seconds
    return lines[0]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "a-file").write_text("not a directory")
    (tmp_path / "empty").mkdir()
    (tmp_path / "text.png").write_text("not a picture")
    return tmp_path


# What the issue tried, and what each must say.
REFUSALS = [
    (["train", "--data-dir", "/nope"], "the mnist data directory does not exist, got '/nope'"),
    (["train", "--data-dir", "empty"], "the mnist data directory lacks train-images-idx3-ubyte"),
    (["train", "--output", "model.h5", "--epochs", "1"], "must end in .keras, got 'model.h5'"),
    (["train", "--plot-history", "h.gif"], "figure files must end in one of .jpeg, .jpg,"),
    (["train", "--output", "a-file/m.keras"], "--output: "),
    (["train", "--output", "missing/m.keras"], "does not exist (create it first)"),
    (["train", "--checkpoint-dir", "a-file"], "--checkpoint-dir must be a directory"),
    (["train", "--batch-size", "1000000"], "--batch-size must be at most 8192"),
    (["train", "--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["train", "--deterministic"], "--deterministic needs --seed S"),
    (["train", "--target-accuracy", "1.5"], "--target-accuracy must lie in (0, 1], got 1.5"),
    (["show", "--output", "/nonexistent/dir/s.png"], "the directory /nonexistent/dir does not"),
    (["show", "--output", "s.gif"], "figure files must end in one of"),
    (["show", "--n", "2000"], "--n must be at most 200"),
    (["show", "--n", "0"], "--n must be at least 1, got 0"),
    (["predict", "--index", "1", "--show", "out.gif"], "image strips must end in one of"),
    (["predict", "--index", "1", "--show", "a-file/s.png"], "is a file, not a directory"),
    (["predict", "--index", "10000"], "--index: test image indices must be in 0..9999"),
    (["predict", "missing.png"], "image file not found: missing.png"),
    (["evaluate", "missing.keras"], "model file not found: missing.keras"),
    (["evaluate", "a-file", "--report", "a-file"], "--report must be a directory"),
    (["export", "missing.keras", "--format", "onnx", "--output", "m.onnx"], "model file not"),
    (["export", "a-file", "--format", "onnx", "--output", "m.tflite"], "must end in .onnx"),
    (["export", "a-file", "--format", "onnx", "--output", "m.onnx", "--int8"], "--int8 is only"),
]


@pytest.mark.parametrize(("argv", "expected"), REFUSALS, ids=[" ".join(a) for a, _ in REFUSALS])
def test_bad_arguments_are_refused_before_any_work(
    work: Path, argv: list[str], expected: str
) -> None:
    _refused(argv, work, expected)
    assert sorted(p.name for p in work.iterdir()) == ["a-file", "empty", "text.png"]
    assert not Path("/nonexistent").exists()


def test_a_text_file_is_not_a_picture_in_words_a_user_reads(work: Path) -> None:
    line = _refused(["predict", "text.png"], work, "not a readable", limit=_AFTER_IMPORT_SECONDS)
    assert "text.png: not a readable picture (this looks like text; PNG, JPEG, BMP, GIF" in line
    assert "function_node" not in line
    assert "[Op:" not in line


def test_an_explicit_data_dir_wins_over_good_data_elsewhere(work: Path) -> None:
    data = os.environ.get("LENET_MNIST_DATA")
    if not data:
        pytest.skip("needs LENET_MNIST_DATA")
    _refused(
        ["train", "--data-dir", "empty"],
        work,
        "the mnist data directory lacks",
        env={"LENET_MNIST_DATA": data},
    )


def test_offline_train_says_what_fixes_it_in_one_short_line(work: Path) -> None:
    env = {
        "LENET_MNIST_DATA": "",
        "LENET_MNIST_CACHE": str(work / "cache"),
        # A closed loopback port: refused at once, like a machine without a network.
        "LENET_MNIST_MIRRORS": "http://127.0.0.1:9/ http://127.0.0.1:9/x/",
    }
    line = _refused(
        ["train", "--epochs", "1"], work, "could not download", env=env, limit=_AFTER_IMPORT_SECONDS
    )
    assert line == (
        "lenet-mnist: error: could not download the mnist data (offline?): set "
        "LENET_MNIST_DATA or --data-dir to a directory holding its four IDX files"
    )
    assert len(line) < 160
    line = _refused(
        ["train", "--no-download"], work, "downloading is off", env=env, limit=_AFTER_IMPORT_SECONDS
    )
    assert "download=False" not in line


@pytest.mark.parametrize("argv", [["trian"], []], ids=["typo", "bare"])
def test_usage_errors_exit_2_with_argparse_usage(work: Path, argv: list[str]) -> None:
    # The README says so: usage errors are argparse's (usage lines, status 2).
    result, seconds = _run(argv, work)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: lenet-mnist")
    assert result.stderr.splitlines()[-1].startswith("lenet-mnist: error: ")
    assert seconds < _REFUSAL_SECONDS


def test_readme_states_the_exit_statuses() -> None:
    readme = SRC.parent / "README.md"
    if not readme.is_file():
        pytest.skip("not run from a source tree")
    text = " ".join(readme.read_text(encoding="utf-8").split())
    assert "exits with status 1" in text
    assert "status 2" in text


@pytest.mark.slow  # trains in a child process until interrupted
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX terminals and signals")
def test_ctrl_c_ends_the_progress_bar_line_first(tmp_path: Path) -> None:
    import pty

    data = os.environ.get("LENET_MNIST_DATA")
    if not data:
        pytest.skip("needs LENET_MNIST_DATA")
    # stdout and stderr on one terminal, as a user sees them.
    leader, follower = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "lenet_mnist", "train", "--epochs", "1", "--data-dir", data],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(SRC), "TF_CPP_MIN_LOG_LEVEL": "3"},
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 240
    while b"/1875" not in seen and time.monotonic() < deadline:
        try:
            seen += os.read(leader, 4096)
        except OSError:
            break
    assert b"/1875" in seen, seen[-500:]
    child.send_signal(signal.SIGINT)
    started = time.monotonic()
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    assert child.wait(timeout=60) == 130
    assert time.monotonic() - started < 30
    os.close(leader)
    text = seen.decode(errors="replace")
    assert "\nlenet-mnist: interrupted" in text.replace("\r\n", "\n"), text[-300:]
    assert not (tmp_path / "lenet.keras").exists()


@pytest.mark.slow  # an int8 conversion in a child process
def test_int8_export_prints_one_line_and_no_converter_chatter(tmp_path: Path) -> None:
    data = os.environ.get("LENET_MNIST_DATA")
    if not data:
        pytest.skip("needs LENET_MNIST_DATA (calibration images)")
    model = lm_save_seed_model(tmp_path / "m.keras")
    argv = ["export", str(model), "--format", "tflite", "--int8", "--output", "m.tflite"]
    argv += ["--calibration-images", "50", "--data-dir", data]
    result, _ = _run(argv, tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["tflite (int8) model written to m.tflite"]
    assert "fully_quantize" not in result.stdout + result.stderr
    assert result.stderr == ""
    assert (tmp_path / "m.tflite").stat().st_size > 0


def lm_save_seed_model(path: Path) -> Path:
    return lenet_mnist.save_model(lenet_mnist.build_lenet("seed", seed=0), path)
