"""Every example in the package's docstrings runs and shows what it claims.

Examples that need the real data or a training run carry ``# doctest: +SKIP``. Modules
are found by walking the package, so a new module's examples are covered without
editing this file.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
from pathlib import Path

import pytest

import lenet_mnist


def _source(module_name: str) -> str:
    spec = importlib.util.find_spec(module_name)
    assert spec is not None
    assert spec.origin is not None
    return Path(spec.origin).read_text(encoding="utf-8")


ALL_MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(lenet_mnist.__path__, "lenet_mnist.")
    if not info.name.endswith("__main__")  # running it would run the command
)
# Only modules that have examples: a module without any would be a test that cannot fail.
MODULES = [name for name in ["lenet_mnist", *ALL_MODULES] if ">>>" in _source(name)]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def test_every_module_is_collected() -> None:
    assert {
        "lenet_mnist.data.idx",
        "lenet_mnist.data.mnist",
        "lenet_mnist.models.registry",
        "lenet_mnist.training.pipeline",
        "lenet_mnist._util.image_array",
        "lenet_mnist.inference",
    } <= set(MODULES)


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name: str) -> None:
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=FLAGS, verbose=False)
    tests = finder.find(module, module_name)
    report: list[str] = []
    for test in tests:
        runner.run(test, out=report.append)
    if runner.failures:
        pytest.fail("".join(report), pytrace=False)
    # '>>>' in the source that the finder never reached would silently not run.
    assert sum(len(test.examples) for test in tests) > 0, f"no examples found in {module_name}"
