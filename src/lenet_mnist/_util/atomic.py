"""Atomic file writes (internal): a file appears complete under its name or not at all."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final

__all__ = ["atomic_write"]

# mkstemp creates files owner-only; what the library writes (models, plots, reports,
# histories, exports) is meant to be shared like any file a program writes.
_FILE_MODE: Final = 0o644


def atomic_write(target: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Write ``target`` by calling ``write(tmp)`` on a temporary path, then renaming it into place.

    The temporary file sits next to ``target`` (same file system, so the rename is
    atomic) and keeps ``target``'s suffix, for writers that pick a format from it. An
    existing ``target`` keeps its old content until the new one is complete, and keeps
    its permission bits; a new file gets mode 0644. If ``write`` raises, the temporary
    file is removed and ``target`` is untouched.

    Args:
        target: The file to write; parent directories are created.
        write: Writes the whole content to the path it is given.

    Returns:
        ``target`` as a ``Path``.
    """
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        tmp.chmod(path.stat().st_mode & 0o777 if path.exists() else _FILE_MODE)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
