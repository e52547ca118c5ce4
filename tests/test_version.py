"""The version is single-sourced: the installed distribution says what the package says."""

from __future__ import annotations

import importlib.metadata
import re

import lenet_mnist
from lenet_mnist._version import __version__


def test_distribution_metadata_matches_package_version() -> None:
    assert importlib.metadata.version("lenet-mnist") == lenet_mnist.__version__


def test_version_is_the_single_source() -> None:
    assert lenet_mnist.__version__ is __version__


def test_version_is_pep440() -> None:
    # The public-release subset of PEP 440 that this project uses (X.Y.Z, optional
    # aN/bN/rcN, .postN, .devN).
    pattern = r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?"
    assert re.fullmatch(pattern, lenet_mnist.__version__), lenet_mnist.__version__
