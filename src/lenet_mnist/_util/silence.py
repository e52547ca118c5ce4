"""Silencing what C++ libraries print straight to the process's stdout and stderr (internal).

TensorFlow's converters log from C++ (``fully_quantize: 0, inference_type: 6, ...``
during int8 conversion) to file descriptors 1 and 2 directly, past ``sys.stdout`` and
Python's logging; only redirecting the descriptors themselves hides that. Python
exceptions still surface: they are raised after the descriptors are restored.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

__all__ = ["silenced_output"]


@contextlib.contextmanager
def silenced_output(fds: tuple[int, ...] = (1, 2)) -> Iterator[None]:
    """Send what is written to file descriptors ``fds`` to ``os.devnull`` inside the block.

    Example:
        >>> with silenced_output():
        ...     _ = os.write(1, b"not shown")
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()
    saved: list[tuple[int, int]] = []
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            try:
                saved.append((fd, os.dup(fd)))
            except OSError:  # a closed descriptor has nothing to silence
                continue
            os.dup2(devnull, fd)
        yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)
