"""The package's layering: imports only go down, no cycles (scripts/check_layers.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checker():
    spec = importlib.util.spec_from_file_location("check_layers", ROOT / "scripts/check_layers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_layers"] = module
    spec.loader.exec_module(module)
    return module


def test_the_package_has_no_cycle_and_no_upward_import(checker):
    assert checker.check(ROOT / "src") == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "lenet_mnist" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_a_cycle_through_a_function_level_import_is_found(checker, tmp_path):
    src = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "inference.py": "def f():\n    from lenet_mnist.export import g\n",
            "export.py": "from lenet_mnist.inference import f\n",
        },
    )
    problems = checker.check(src)
    assert any(p.startswith("import cycle:") for p in problems), problems


def test_an_import_of_a_higher_layer_is_found(checker, tmp_path):
    src = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "errors.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from lenet_mnist.cli import main\n",
            "cli/__init__.py": "",
        },
    )
    problems = checker.check(src)
    assert any("above it" in p for p in problems), problems


def test_importing_the_facade_or_a_missing_module_is_found(checker, tmp_path):
    src = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "gpu.py": "import lenet_mnist\nfrom lenet_mnist.nowhere import x\n",
        },
    )
    problems = checker.check(src)
    assert any("the facade" in p for p in problems), problems
    assert any("does not exist" in p for p in problems), problems
