"""The rule for model file names, importable without TensorFlow (the CLI checks it first)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["check_model_path"]


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
