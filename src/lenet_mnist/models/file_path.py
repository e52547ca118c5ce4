"""The rule for model file names, importable without TensorFlow (the CLI checks it first)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["check_existing_file", "check_model_path"]


def check_model_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a ``Path`` if :func:`~lenet_mnist.save_model` can write it: it ends in ``.keras``.

    Raises:
        ValueError: Another suffix.

    Example:
        >>> check_model_path("lenet.keras").name
        'lenet.keras'
    """
    target = Path(path)
    if target.suffix != ".keras":
        raise ValueError(f"model files must end in .keras, got {os.fspath(path)!r}")
    return target


def check_existing_file(path: str | os.PathLike[str], what: str = "model file") -> Path:
    """``path`` as a ``Path`` if it names an existing file (not a directory).

    Raises:
        IsADirectoryError: ``path`` is a directory.
        FileNotFoundError: Nothing exists at ``path``.

    Example:
        >>> check_existing_file("/nonexistent.keras")
        Traceback (most recent call last):
        FileNotFoundError: model file not found: /nonexistent.keras
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"expected a {what}, got a directory: {os.fspath(path)}")
    if not target.is_file():
        raise FileNotFoundError(f"{what} not found: {os.fspath(path)}")
    return target
