"""Sphinx configuration of the lenet-mnist documentation.

Build (warnings are errors, every cross-reference must resolve; works offline)::

    sphinx-build -E -W -n --keep-going -b html docs docs/_build/html
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
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "myst_parser",
    "lenet_mnist_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_inv"]
templates_path = ["_templates"]
nitpicky = True

# One page per public name (api.rst's tables), written at build time into generated/
# (not committed: a new name gets its page by itself).
autosummary_generate = True
autosummary_generate_overwrite = True
autosummary_imported_members = False

# Type hints go into the parameter descriptions, where they sit next to the prose
# that states shapes, dtypes and ranges.
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_member_order = "bysource"
autodoc_class_signature = "separated"
autodoc_preserve_defaults = True
# Keep the aliases as written instead of their expansions (numpy's ArrayLike is a
# union of six private protocols).
autodoc_type_aliases = {
    "npt.ArrayLike": "numpy.typing.ArrayLike",
    "npt.DTypeLike": "numpy.typing.DTypeLike",
    "ArrayLike": "numpy.typing.ArrayLike",
}
python_use_unqualified_type_names = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = ["Call"]
napoleon_use_rtype = False

# Links to other projects' references, from inventories kept in docs/_inv/ (the build
# has no network): Python's own, copied from Debian's python3-doc; small ones for the
# names these pages use, written by scripts/make_docs_inventories.py.
_INV = Path(__file__).parent / "_inv"
intersphinx_mapping = {
    "python": ("https://docs.python.org/3/", str(_INV / "python.inv")),
    "numpy": ("https://numpy.org/doc/stable/", str(_INV / "numpy.inv")),
    "tensorflow": ("https://www.tensorflow.org/api_docs/python/", str(_INV / "tensorflow.inv")),
    "keras": ("https://keras.io/api/", str(_INV / "keras.inv")),
    "matplotlib": ("https://matplotlib.org/stable/api/", str(_INV / "matplotlib.inv")),
}
intersphinx_timeout = 1

# What no inventory holds stays plain text (never a broken link): the rest of the
# third-party names, and the private classes some public types are made of.
_THIRD_PARTY = (
    "numpy np npt keras tensorflow tf matplotlib PIL onnx onnxruntime tf2onnx ai_edge_litert "
    "starlette uvicorn"
)
nitpick_ignore_regex = [
    ("py:.*", rf"({_THIRD_PARTY.replace(' ', '|')})(\..*)?"),
    ("py:.*", r"typing_extensions\..*"),
    ("py:.*", r"(NDArray|ArrayLike|DTypeLike|PhysicalDevice|Axes)"),
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

html_theme = "furo"
html_title = f"lenet-mnist {release}"
html_static_path = ["_static"]
html_css_files = ["lenet-mnist.css"]
html_theme_options = {"navigation_with_keys": True}
pygments_style = "friendly"
pygments_dark_style = "monokai"
