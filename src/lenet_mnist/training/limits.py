"""Bounds on training arguments, checked before any work (the command line calls them first).

A batch's activations are held in memory all at once: measured on this project's CPU
machine with the tutorial's network (one epoch of two batches on random images, the
process's peak resident memory), it peaked at 0.8 GB with batch 256 and 2.8 GB with
batch 8192, about 0.26 MB more per image; a batch of all 60,000 training images would
need about 16 GB. :data:`MAX_BATCH_SIZE` keeps a run within a laptop's memory.
"""

from __future__ import annotations

from typing import Final

from lenet_mnist._util.checks import check_positive_int

__all__ = ["MAX_BATCH_SIZE", "check_batch_size", "check_target_accuracy"]

#: The largest batch :func:`lenet_mnist.train` accepts.
MAX_BATCH_SIZE: Final = 8192


def check_batch_size(batch_size: object) -> int:
    """Return ``batch_size`` if it is an int in 1 .. :data:`MAX_BATCH_SIZE`.

    Raises:
        TypeError: Not an int.
        ValueError: Below 1 or above :data:`MAX_BATCH_SIZE` (the message says why).

    Example:
        >>> check_batch_size(32)
        32
    """
    size = check_positive_int("batch_size", batch_size)
    if size > MAX_BATCH_SIZE:
        raise ValueError(
            f"batch_size must be at most {MAX_BATCH_SIZE} (a batch's activations are held in "
            f"memory at once: about 0.26 MB per image, 2.8 GB at {MAX_BATCH_SIZE}), got {size}"
        )
    return size


def check_target_accuracy(target_accuracy: object) -> float | None:
    """Return ``target_accuracy`` as a float in (0, 1], or ``None``; else raise.

    Raises:
        TypeError: Not a number or ``None``.
        ValueError: Outside (0, 1].
    """
    if target_accuracy is None:
        return None
    if isinstance(target_accuracy, bool) or not isinstance(target_accuracy, int | float):
        raise TypeError(
            f"target_accuracy must be a float or None, got {type(target_accuracy).__name__}"
        )
    if not 0.0 < target_accuracy <= 1.0:
        raise ValueError(f"target_accuracy must lie in (0, 1], got {target_accuracy!r}")
    return float(target_accuracy)
