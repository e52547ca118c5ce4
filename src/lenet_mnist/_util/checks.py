"""Argument checks shared by the public functions (internal).

Each returns the checked value and raises ``TypeError`` for a wrong type or
``ValueError`` for a wrong value, with a message that ends in what was received.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

__all__ = ["check_bool", "check_choice", "check_positive_int", "check_seed"]

_T = TypeVar("_T")


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is an int >= 1 (not a bool), else raise TypeError/ValueError.

    Example:
        >>> check_positive_int("epochs", 3)
        3
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool, else raise TypeError.

    Example:
        >>> check_bool("quiet", True)
        True
    """
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def check_seed(value: object, name: str = "seed") -> int | None:
    """Return ``value`` if it is ``None`` or an int in 0 .. 2**32 - 1 (what NumPy accepts).

    Example:
        >>> check_seed(None), check_seed(7)
        (None, 7)
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__}")
    if not 0 <= value < 2**32:
        raise ValueError(f"{name} must lie in 0 .. 2**32 - 1, got {value}")
    return value


def check_choice(name: str, value: object, choices: Mapping[str, _T]) -> _T:
    """Return ``choices[value]``; an unknown ``value`` is a ValueError listing the choices.

    Example:
        >>> check_choice("format", "onnx", {"onnx": ".onnx"})
        '.onnx'
    """
    if isinstance(value, str) and value in choices:
        return choices[value]
    raise ValueError(f"unknown {name}; choose one of {sorted(choices)}, got {value!r}")
