"""The lenet-mnist command through main(argv): help, info, train, evaluate, predict, errors.

Fast tests run the commands on a tiny synthetic dataset registered as "mnist" (its own
hashes in a monkeypatched ``DATASETS``); the real-data run is marked slow.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _fakes import dataset_spec, tiny_arrays, write_dataset
from lenet_mnist import __version__, build_lenet, cli, load_model, predict_digits, save_model
from lenet_mnist.cli import build_parser, main
from lenet_mnist.data import DATASETS, cache_dir

PREDICTION = re.compile(
    r"^test\[(\d+)\]: (\d) \(p=([01]\.\d{4})\), runner-up (\d) \(p=([01]\.\d{4})\), label (\d)$"
)


def _commands() -> list[str]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return sorted(action.choices)
    raise AssertionError("the parser has no sub-commands")


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line a user error prints on stderr (checked to be exactly one, no traceback)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lenet-mnist: error: ")
    return lines[0]


@pytest.fixture(scope="module")
def tiny() -> dict[str, np.ndarray]:
    return tiny_arrays(n_train=64, n_test=20)


@pytest.fixture
def tiny_dir(tiny: dict[str, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with a synthetic 'mnist' that load_mnist accepts; cwd is tmp_path."""
    spec = dataset_spec(tiny, name="mnist", env_var="LENET_MNIST_DATA")
    monkeypatch.setitem(DATASETS, "mnist", spec)
    monkeypatch.delenv("LENET_MNIST_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    return write_dataset(tmp_path / "data", tiny)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model(build_lenet("seed", seed=0), tmp_path_factory.mktemp("model") / "m.keras")


# --- help and version ------------------------------------------------------------------


def test_the_tutorial_commands_exist() -> None:
    assert {"train", "evaluate", "predict", "info"} <= set(_commands())


@pytest.mark.parametrize("command", [None, *_commands()])
def test_help(command: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--help"] if command is None else [command, "--help"]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: lenet-mnist" + ("" if command is None else f" {command}"))


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"lenet-mnist {__version__}"


def test_train_defaults_are_the_tutorials() -> None:
    from lenet_mnist.recipes import get_recipe

    args = build_parser().parse_args(["train"])
    assert (args.recipe, args.seed, args.output) == ("tutorial", None, "lenet.keras")
    # Unset numbers take the recipe's; the tutorial recipe's are the tutorial's.
    assert (args.variant, args.epochs, args.batch_size, args.learning_rate) == (None,) * 4
    recipe = get_recipe(args.recipe)
    assert (recipe.variant, recipe.epochs, recipe.batch_size) == ("seed", 10, 32)
    assert recipe.learning_rate == pytest.approx(1e-3)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["fly"],
        ["train", "--epochs", "ten"],
        ["evaluate"],
        ["predict", "--index"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage: lenet-mnist" in capsys.readouterr().err


def test_python_dash_m(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lenet_mnist", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"lenet-mnist {__version__}"


# --- info ------------------------------------------------------------------------------


def test_info(
    tiny_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LENET_MNIST_DATA", str(tiny_dir))
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"lenet-mnist {__version__}\n")
    assert re.search(r"^tensorflow \S+, keras \S+, numpy \S+$", out, re.MULTILINE)
    assert re.search(r"^devices: .*\(CPU\)", out, re.MULTILINE)
    assert "mnist data, looked for in this order:" in out
    assert f"  LENET_MNIST_DATA: {tiny_dir} (found)" in out
    assert f"  cache: {cache_dir()} (not found)" in out


# --- train, evaluate, predict on the synthetic dataset ---------------------------------


def test_train(tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--data-dir", str(tiny_dir), "--epochs", "2", "--batch-size", "16"]
    assert main([*argv, "--seed", "0", "--quiet"]) == 0
    out = capsys.readouterr().out
    match = re.search(r"^test accuracy: (\d\.\d{4}) \(loss \d+\.\d{4}\)$", out, re.MULTILINE)
    assert match, out
    best = re.search(
        r"^2 epochs in \d+\.\d s; best test accuracy (\d\.\d{4}) after epoch ([12])$",
        out,
        re.MULTILINE,
    )
    assert best, out
    # The default output, in the working directory.
    assert "model saved to lenet.keras" in out
    history = json.loads((tmp_path / "lenet.history.json").read_text())
    epoch = int(best.group(2))
    assert float(best.group(1)) == pytest.approx(history["val_accuracy"][epoch - 1], abs=1e-4)
    assert history["val_accuracy"][epoch - 1] == max(history["val_accuracy"])
    model = load_model(tmp_path / "lenet.keras")
    assert model.count_params() == 121_930
    # The printed accuracy is the saved model's on the test split.
    result = predict_digits(model, _test_images(tiny_dir))
    labels = _test_labels(tiny_dir)
    assert float(match.group(1)) == pytest.approx(np.mean(result.digits == labels), abs=1e-4)


def _test_images(directory: Path) -> np.ndarray:
    from lenet_mnist.data import load_mnist

    return load_mnist(directory, download=False).test_images


def _test_labels(directory: Path) -> np.ndarray:
    from lenet_mnist.data import load_mnist

    return load_mnist(directory, download=False).test_labels


def test_evaluate(
    tiny_dir: Path,
    model_file: Path,
    tiny: dict[str, np.ndarray],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["evaluate", str(model_file), "--data-dir", str(tiny_dir)]) == 0
    out = capsys.readouterr().out
    match = re.search(
        r"^test accuracy: (\d\.\d{4}) \((\d+)/20\), loss \d+\.\d{4}$", out, re.MULTILINE
    )
    assert match, out
    digits = predict_digits(load_model(model_file), tiny["test_images"]).digits
    correct = int(np.sum(digits == tiny["test_labels"]))
    assert int(match.group(2)) == correct
    assert float(match.group(1)) == pytest.approx(correct / 20, abs=1e-4)


def test_predict(
    tiny_dir: Path,
    model_file: Path,
    tiny: dict[str, np.ndarray],
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["predict", "--model", str(model_file), "--index", "3", "0", "19"]
    assert main([*argv, "--data-dir", str(tiny_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    expected = predict_digits(load_model(model_file), tiny["test_images"][[3, 0, 19]])
    for line, index, digit, probs in zip(
        lines, (3, 0, 19), expected.digits, expected.probabilities, strict=True
    ):
        match = PREDICTION.match(line)
        assert match, line
        assert int(match.group(1)) == index
        assert int(match.group(2)) == digit
        assert float(match.group(3)) == pytest.approx(probs[digit], abs=1e-4)
        assert float(match.group(3)) >= float(match.group(5))
        assert int(match.group(4)) != digit
        assert int(match.group(6)) == tiny["test_labels"][index]


# --- user errors: exit 1, one line on stderr -------------------------------------------


def test_missing_model_file(
    tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.keras"
    assert main(["evaluate", str(missing), "--data-dir", str(tiny_dir)]) == 1
    assert _error_line(capsys) == f"lenet-mnist: error: model file not found: {missing}"
    assert main(["predict", "--model", str(missing), "--index", "0"]) == 1
    assert "model file not found" in _error_line(capsys)


def test_model_file_not_a_zip(
    tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.keras"
    bad.write_text("hello")
    assert main(["evaluate", str(bad), "--data-dir", str(tiny_dir)]) == 1
    assert "not a .keras model file" in _error_line(capsys)


@pytest.mark.parametrize("index", ["20", "-1", "10000"])
def test_bad_index(
    tiny_dir: Path, model_file: Path, index: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "predict",
        "--model",
        str(model_file),
        "--index",
        "0",
        index,
        "--data-dir",
        str(tiny_dir),
    ]
    assert main(argv) == 1
    assert _error_line(capsys) == (
        f"lenet-mnist: error: --index: test image indices must be in 0..19, got [{int(index)}]"
    )
    assert capsys.readouterr().out == ""


def test_no_data_without_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LENET_MNIST_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LENET_MNIST_CACHE", str(tmp_path / "cache"))
    assert main(["train", "--no-download", "--epochs", "1"]) == 1
    line = _error_line(capsys)
    assert line.startswith("lenet-mnist: error: mnist data not found, and downloading is off.")
    assert f"cache: {cache_dir()}" in line
    assert "download=False" not in line
    assert not (tmp_path / "lenet.keras").exists()


def test_an_explicit_data_dir_never_falls_back(
    tiny_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Good data is found through the environment variable, but --data-dir names another place.
    monkeypatch.setenv("LENET_MNIST_DATA", str(tiny_dir))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "train-images-idx3-ubyte.gz").write_bytes(b"")
    assert main(["train", "--data-dir", str(empty), "--epochs", "1"]) == 1
    assert _error_line(capsys) == (
        "lenet-mnist: error: the mnist data directory lacks train-labels-idx1-ubyte[.gz], "
        f"t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz], got '{empty}'"
    )
    assert main(["train", "--data-dir", str(tmp_path / "nope"), "--epochs", "1"]) == 1
    assert _error_line(capsys) == (
        f"lenet-mnist: error: the mnist data directory does not exist, got '{tmp_path / 'nope'}'"
    )
    assert not (tmp_path / "lenet.keras").exists()


def test_download_failure_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The conftest's mirror is a closed loopback port.
    monkeypatch.delenv("LENET_MNIST_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--epochs", "1"]) == 1
    # One short line saying what fixes it, not every mirror's failure.
    assert _error_line(capsys) == (
        "lenet-mnist: error: could not download the mnist data (offline?): set "
        "LENET_MNIST_DATA or --data-dir to a directory holding its four IDX files"
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--epochs", "0"], "epochs must be at least 1, got 0"),
        (["--batch-size", "-4"], "--batch-size must be at least 1, got -4"),
        (["--learning-rate", "0"], "learning_rate must be a finite positive number, got 0.0"),
    ],
)
def test_bad_training_arguments(
    tiny_dir: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--data-dir", str(tiny_dir), "--quiet", *extra]) == 1
    assert message in _error_line(capsys)


def test_choices_come_from_the_registries(capsys: pytest.CaptureFixture[str]) -> None:
    # An unknown name is a usage error (argparse's status 2) listing the registry's names.
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--variant", "lenet7"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'lenet7' (choose from 'fast', 'lenet5', 'robust', 'seed')" in err


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            ImportError("needs matplotlib: pip install 'lenet-mnist[plot]'"),
            "needs matplotlib: pip install 'lenet-mnist[plot]'",
        ),
        (OSError(28, "No space left on device"), "[Errno 28] No space left on device"),
        (ValueError("first line\nsecond line\nthird"), "first line"),
        (TypeError(), "TypeError"),
    ],
)
def test_errors_from_any_command_are_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: Exception,
    line: str,
) -> None:
    def fail(args: object, out: object) -> int:
        raise error

    monkeypatch.setitem(cli.COMMANDS, "info", fail)
    assert main(["info"]) == 1
    assert _error_line(capsys) == f"lenet-mnist: error: {line}"


def test_programming_errors_are_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only user errors become one line; a bug keeps its traceback.
    def fail(args: object, out: object) -> int:
        raise ZeroDivisionError("bug")

    monkeypatch.setitem(cli.COMMANDS, "info", fail)
    with pytest.raises(ZeroDivisionError, match="bug"):
        main(["info"])


def test_interrupt(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(args: object, out: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "info", interrupted)
    assert main(["info"]) == 130
    assert capsys.readouterr().err == "lenet-mnist: interrupted\n"


# --- the real MNIST --------------------------------------------------------------------


@pytest.mark.slow
def test_real_train_evaluate_predict(
    real_data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    data = ["--data-dir", str(real_data_dir), "--no-download"]
    # One epoch in large batches keeps this quick; the tutorial's batch 32 is trained to
    # >= 98% in test_training.py.
    argv = ["train", *data, "--epochs", "1", "--batch-size", "256", "--seed", "0", "--quiet"]
    assert main([*argv, "--output", "real.keras"]) == 0
    out = capsys.readouterr().out
    match = re.search(r"^test accuracy: (\d\.\d{4})", out, re.MULTILINE)
    assert match, out
    assert float(match.group(1)) >= 0.95

    assert main(["evaluate", "real.keras", *data]) == 0
    out = capsys.readouterr().out
    assert f"test accuracy: {match.group(1)} (" in out
    assert "/10000), loss" in out

    assert main(["predict", "--model", "real.keras", "--index", "0", "1", "2", *data]) == 0
    lines = capsys.readouterr().out.splitlines()
    # The first three MNIST test digits are 7, 2, 1.
    assert [PREDICTION.match(line).group(6) for line in lines] == ["7", "2", "1"]  # type: ignore[union-attr]
    assert [PREDICTION.match(line).group(2) for line in lines] == ["7", "2", "1"]  # type: ignore[union-attr]

    assert main(["predict", "--model", "real.keras", "--index", "10000", *data]) == 1
    assert _error_line(capsys).endswith("test image indices must be in 0..9999, got [10000]")
