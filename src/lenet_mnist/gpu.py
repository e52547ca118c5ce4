"""The tutorial's GPU step: one visible GPU, with memory growth."""

from __future__ import annotations

import tensorflow as tf

from lenet_mnist.errors import GPUAlreadyInitializedError

__all__ = ["configure_gpu"]


def configure_gpu(index: int = 0, *, memory_growth: bool = True) -> list[tf.config.PhysicalDevice]:
    """Make GPU ``index`` the only visible GPU and let its memory grow on demand.

    TensorFlow fixes device settings when its runtime starts (the first op, model or
    tensor), so call this first, before anything else touches TensorFlow. On a machine
    without a GPU it does nothing and returns ``[]``.

    Args:
        index: Which physical GPU to keep, counting from 0.
        memory_growth: Allocate GPU memory as needed instead of all of it up front.

    Returns:
        The visible GPUs after the change (one device), or ``[]`` without GPUs.

    Raises:
        GPUAlreadyInitializedError: The TensorFlow runtime has already started; the
            message says to call :func:`configure_gpu` first. A ``RuntimeError``.
        ValueError: ``index`` is not the index of an existing GPU (the message says how
            many there are).
        TypeError: ``index`` is not an int or ``memory_growth`` not a bool.

    Example:
        >>> configure_gpu()  # doctest: +SKIP
        []
    """
    if isinstance(index, bool) or not isinstance(index, int):
        raise TypeError(f"index must be an int, got {type(index).__name__}")
    if not isinstance(memory_growth, bool):
        raise TypeError(f"memory_growth must be a bool, got {type(memory_growth).__name__}")
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return []
    if not 0 <= index < len(gpus):
        raise ValueError(
            f"GPU index out of range: this machine has {len(gpus)} GPU(s), got {index}"
        )
    gpu = gpus[index]
    try:
        tf.config.set_visible_devices(gpu, "GPU")
        if memory_growth:
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError as error:
        raise GPUAlreadyInitializedError(
            "the TensorFlow runtime has already started, so GPU settings can no longer change: "
            "call lenet_mnist.configure_gpu() first, before building models or creating tensors "
            f"(TensorFlow said: {error})"
        ) from error
    return list(tf.config.get_visible_devices("GPU"))
