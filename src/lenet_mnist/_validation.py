"""Argument checks shared by the public functions (internal)."""

from __future__ import annotations

__all__ = ["check_bool", "check_positive_int"]


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is an int >= 1 (not a bool), else raise TypeError/ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool, else raise TypeError."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value
