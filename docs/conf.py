"""Sphinx configuration of the lenet-mnist documentation.

Build (warnings are errors, every cross-reference must resolve)::

    sphinx-build -W -n -b html docs docs/_build/html
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

import lenet_mnist

project = "lenet-mnist"
author = "The lenet-mnist developers"
copyright = "2026, The lenet-mnist developers"
release = lenet_mnist.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "myst_parser",
    "lenet_mnist_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
nitpicky = True

# Type hints go into the parameter descriptions, where they sit next to the prose
# that states shapes, dtypes and ranges.
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_member_order = "bysource"
# Constants such as DATASETS have reprs of many lines; their docstrings say what matters.
autodoc_default_options = {"no-value": True}
autodoc_class_signature = "separated"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = ["Call"]
napoleon_use_rtype = False

# No intersphinx: its inventories come from the network and the docs must build
# offline (CI has no internet). References to third-party and standard-library
# types therefore have no target; they are rendered as plain names instead of
# failing the nitpicky build.
_THIRD_PARTY = (
    "numpy np npt keras tensorflow tf matplotlib PIL onnx onnxruntime tf2onnx ai_edge_litert "
    "starlette uvicorn"
)
nitpick_ignore_regex = [
    ("py:.*", rf"({_THIRD_PARTY.replace(' ', '|')})(\..*)?"),
    ("py:.*", r"typing_extensions\..*"),
    ("py:.*", rf"({'|'.join(sorted(sys.stdlib_module_names))})\..*"),
    ("py:.*", r"(Path|PathLike|Sequence|Mapping|Iterable|Iterator|Callable|Literal)"),
    ("py:.*", r"(NDArray|ArrayLike|DTypeLike|PhysicalDevice|Figure|Axes)"),
]

# The examples in the pages run with the doctest builder
# (``sphinx-build -b doctest docs docs/_build/doctest``); the ones that need the real
# MNIST files are skipped when LENET_MNIST_DATA is not set.
doctest_global_setup = """
import os
import tempfile
_cwd = os.getcwd()
os.chdir(tempfile.mkdtemp(prefix="lenet-mnist-doctest-"))  # files the examples write
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HAVE_MNIST = bool(os.environ.get("LENET_MNIST_DATA"))
"""
doctest_global_cleanup = """
os.chdir(_cwd)
"""
doctest_test_doctest_blocks = ""

myst_heading_anchors = 3

html_theme = "alabaster"
html_title = f"lenet-mnist {release}"
html_static_path: list[str] = []
