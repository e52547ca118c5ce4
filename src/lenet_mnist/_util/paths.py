"""Checks of the paths the library writes to, made before any work (internal).

Two rules, shared by every writer so that a bad path fails at once, not after training:

* a file's suffix picks its format, and each writer accepts exactly the formats it can
  write (:func:`check_suffix`);
* the place must be writable as asked: the parent directory exists and is a directory,
  and a file is not asked to replace a directory (:func:`check_output_path`). The
  command line calls it for every output before starting, so it creates no directory
  chains (``/nonexistent/dir/s.png`` is refused, not created).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

__all__ = ["check_output_path", "check_suffix"]


def _as_path(path: object, what: str) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"{what} must be a path, got {type(path).__name__}")
    if os.fspath(path) == "":
        raise ValueError(f"{what} must not be empty, got ''")
    return Path(path)


def check_suffix(path: str | os.PathLike[str], suffixes: Collection[str], what: str) -> Path:
    """Return ``path`` as a ``Path`` if its suffix (case-insensitive) is one of ``suffixes``.

    Raises:
        ValueError: Another suffix; the message lists the accepted ones.

    Example:
        >>> check_suffix("a.PNG", (".png", ".jpg"), "pictures").name
        'a.PNG'
    """
    target = _as_path(path, what)
    if target.suffix.lower() not in suffixes:
        raise ValueError(
            f"{what} must end in one of {', '.join(sorted(suffixes))}, got {os.fspath(path)!r}"
        )
    return target


def check_output_path(path: str | os.PathLike[str], what: str, *, directory: bool = False) -> Path:
    """Return ``path`` as a ``Path`` if it can be written as a new file (or directory).

    The parent directory must exist (nothing is created on the way) and be a
    directory; a file must not replace an existing directory, nor a directory an
    existing file.

    Args:
        path: Where a file (or, with ``directory``, a directory) is to be written.
        what: How the message names it, e.g. ``"--output"``.
        directory: The path names a directory that may exist or be created.

    Raises:
        FileNotFoundError: The parent directory does not exist.
        NotADirectoryError: The parent is not a directory (or, with ``directory``,
            ``path`` is an existing file).
        IsADirectoryError: A file path names an existing directory.

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     check_output_path(pathlib.Path(tmp) / "m.keras", "--output").name
        'm.keras'
    """
    target = _as_path(path, what)
    parent = target.expanduser().absolute().parent
    if not parent.exists():
        raise FileNotFoundError(
            f"{what}: the directory {os.fspath(parent)} does not exist (create it first), "
            f"got {os.fspath(path)!r}"
        )
    if not parent.is_dir():
        raise NotADirectoryError(
            f"{what}: {os.fspath(parent)} is a file, not a directory, got {os.fspath(path)!r}"
        )
    if directory and target.exists() and not target.is_dir():
        raise NotADirectoryError(
            f"{what} must be a directory, got the existing file {os.fspath(path)!r}"
        )
    if not directory and target.is_dir():
        raise IsADirectoryError(f"{what} must be a file path, got a directory {os.fspath(path)!r}")
    return target
