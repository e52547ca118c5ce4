"""The public API: __all__, lazy imports, the issue's call shapes, errors, version, typing."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.metadata
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lenet_mnist
from lenet_mnist import errors

PACKAGE_DIR = Path(lenet_mnist.__file__).parent

# The tutorial's steps as issue 2 names them.
TUTORIAL_NAMES = {
    "configure_gpu",
    "load_mnist",
    "MnistData",
    "build_lenet",
    "LeNet",
    "compile_model",
    "train",
    "predict_digits",
    "DigitPredictions",
    "save_model",
    "load_model",
}


def _table() -> dict[str, str]:
    """The facade's table as written: the imports of its ``if TYPE_CHECKING:`` block."""
    tree = ast.parse((PACKAGE_DIR / "__init__.py").read_text(encoding="utf-8"))
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
    )
    return {
        alias.name: str(node.module)
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


def test_all_is_derived_from_the_one_table() -> None:
    table = _table()
    assert lenet_mnist.__all__ == ["__version__", *sorted(table)]
    assert len(set(lenet_mnist.__all__)) == len(lenet_mnist.__all__) == 46
    assert set(lenet_mnist.__all__) >= TUTORIAL_NAMES
    assert dir(lenet_mnist) == sorted(lenet_mnist.__all__)


def test_each_public_name_is_written_once_in_the_facade() -> None:
    # The table is the only place: no other list, string or assignment names them.
    tree = ast.parse((PACKAGE_DIR / "__init__.py").read_text(encoding="utf-8"))
    aliases = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        and (node.module or "").startswith("lenet_mnist.")
        and node.module != "lenet_mnist._version"
        for alias in node.names
    ]
    assert sorted(aliases) == sorted(set(aliases)) == sorted(_table())
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    assert not strings & set(_table())


@pytest.mark.parametrize("name", sorted(_table()))
def test_every_public_name_resolves_to_its_module(name: str) -> None:
    module = importlib.import_module(_table()[name])
    assert getattr(lenet_mnist, name) is getattr(module, name)
    if hasattr(module, "__all__"):
        assert name in module.__all__


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="module 'lenet_mnist' has no attribute 'nope'"):
        _ = lenet_mnist.nope  # type: ignore[attr-defined]
    with pytest.raises(ImportError, match="cannot import name 'nope'"):
        from lenet_mnist import nope  # type: ignore[attr-defined]  # noqa: F401


def _imported_after(code: str) -> list[str]:
    probe = (
        f"{code}\nimport sys\n"
        "print(' '.join(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_import_is_lazy() -> None:
    # Importing the package, reading the version, building the CLI parser and reading IDX
    # data must not start TensorFlow (seconds of start-up, and it fixes GPU settings).
    code = (
        "import lenet_mnist\n"
        "lenet_mnist.__version__\n"
        "from lenet_mnist.cli import build_parser\n"
        "build_parser().format_help()\n"
        "lenet_mnist.decode_idx, lenet_mnist.load_mnist, lenet_mnist.MnistData\n"
        "lenet_mnist.LenetMnistError, lenet_mnist.cache_dir()\n"
    )
    assert _imported_after(code) == []


def test_cli_help_is_lazy() -> None:
    code = (
        "import contextlib, io\n"
        "from lenet_mnist.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['train', '--help'])\n"
    )
    assert _imported_after(code) == []


def test_version() -> None:
    version = lenet_mnist.__version__
    # PEP 440 (public versions).
    assert re.fullmatch(r"\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", version), version
    assert importlib.metadata.version("lenet-mnist") == version


def test_py_typed_marker() -> None:
    assert (PACKAGE_DIR / "py.typed").is_file()


def test_console_script() -> None:
    scripts = {
        ep.name: ep.value
        for ep in importlib.metadata.distribution("lenet-mnist").entry_points
        if ep.group == "console_scripts"
    }
    assert scripts["lenet-mnist"] == "lenet_mnist.cli:main"


@pytest.mark.parametrize(
    ("name", "standard"),
    [
        ("IdxFormatError", ValueError),
        ("ChecksumError", ValueError),
        ("DataNotFoundError", FileNotFoundError),
        ("DownloadError", OSError),
        ("GPUAlreadyInitializedError", RuntimeError),
        ("ModelFileError", ValueError),
        ("UnsafeModelError", ValueError),
    ],
)
def test_errors_subclass_the_standard_ones(name: str, standard: type[Exception]) -> None:
    error = getattr(lenet_mnist, name)
    assert issubclass(error, standard)
    assert issubclass(error, lenet_mnist.LenetMnistError)


def test_every_library_error_is_a_lenet_mnist_error() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.LenetMnistError)


def _params(func: object) -> list[tuple[str, str, object]]:
    return [
        (p.name, p.kind.name, p.default)
        for p in inspect.signature(func).parameters.values()  # type: ignore[arg-type]
    ]


TUTORIAL_DEFAULT = object()


def test_call_shapes_of_the_issue() -> None:
    empty = inspect.Parameter.empty
    # Later issues may add keyword-only parameters after these; the issue's come first.
    expected = {
        "configure_gpu": [
            ("index", "POSITIONAL_OR_KEYWORD", 0),
            ("memory_growth", "KEYWORD_ONLY", True),
        ],
        "load_mnist": [
            ("data_dir", "POSITIONAL_OR_KEYWORD", None),
            ("normalize", "KEYWORD_ONLY", True),
            ("channels", "KEYWORD_ONLY", True),
            ("download", "KEYWORD_ONLY", True),
        ],
        "build_lenet": [
            ("variant", "POSITIONAL_OR_KEYWORD", "seed"),
            ("num_classes", "KEYWORD_ONLY", 10),
        ],
        "compile_model": [
            ("model", "POSITIONAL_OR_KEYWORD", empty),
            ("learning_rate", "KEYWORD_ONLY", 1e-3),
        ],
        "train": [
            ("model", "POSITIONAL_OR_KEYWORD", empty),
            ("data", "POSITIONAL_OR_KEYWORD", empty),
            ("epochs", "KEYWORD_ONLY", TUTORIAL_DEFAULT),
            ("batch_size", "KEYWORD_ONLY", TUTORIAL_DEFAULT),
            ("seed", "KEYWORD_ONLY", None),
        ],
        "predict_digits": [
            ("model", "POSITIONAL_OR_KEYWORD", empty),
            ("images", "POSITIONAL_OR_KEYWORD", empty),
        ],
        "save_model": [
            ("model", "POSITIONAL_OR_KEYWORD", empty),
            ("path", "POSITIONAL_OR_KEYWORD", empty),
        ],
        "load_model": [("path", "POSITIONAL_OR_KEYWORD", empty)],
    }
    for name, params in expected.items():
        actual = _params(getattr(lenet_mnist, name))
        assert len(actual) >= len(params), name
        for got, want in zip(actual, params, strict=False):
            assert got[:2] == want[:2], name
            if want[2] is TUTORIAL_DEFAULT:
                # 10 and 32, or None for "the training recipe's", whose default is the
                # tutorial's (checked in test_training.py).
                assert got[2] in ({"epochs": 10, "batch_size": 32}[got[0]], None), (name, got)
            else:
                assert got[2] == want[2], (name, got)
        # Anything added later is optional and keyword-only.
        for extra_name, kind, default in actual[len(params) :]:
            assert kind == "KEYWORD_ONLY", (name, extra_name)
            assert default is not empty, (name, extra_name)
    assert "verbose" in inspect.signature(lenet_mnist.train).parameters


def test_mnist_data_and_predictions_shapes() -> None:
    assert lenet_mnist.MnistData._fields == (
        "train_images",
        "train_labels",
        "test_images",
        "test_labels",
    )
    fields = [f.name for f in dataclasses.fields(lenet_mnist.DigitPredictions)]
    assert fields[:3] == ["digits", "probabilities", "logits"]
