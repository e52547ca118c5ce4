"""Preparing uploaded pictures in worker processes, off the server's interpreter.

:func:`lenet_mnist.prepare_image` costs a few milliseconds of many small NumPy and
TensorFlow operations per picture (3-4 ms for a 280x280 drawing on the development
machine), and holds the GIL for most of them: threads of the server process
prepared 307 pictures/s with one thread and 273 with two, while the same process also
has to parse HTTP. Worker processes run in parallel on every core, and a picture that
crashes a decoder takes a worker down, never the server: the pool is then replaced and
that request alone fails.

Workers are started with ``spawn`` (TensorFlow's threads do not survive a fork), each
importing lenet-mnist once; only the picture's bytes go in and the 28x28 result comes
back, so no file is read or written on a request's behalf.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import numpy.typing as npt

from lenet_mnist.errors import ImageError

__all__ = ["PicturePool"]


def _exit_with_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:  # the server is gone (even killed with SIGKILL)
            os._exit(0)


def _start_worker(parent: int) -> None:
    # Ctrl+C in a terminal reaches the whole process group; the server stops its
    # workers itself, so they ignore it instead of printing tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    import tensorflow as tf

    # A picture's operations are tiny: TensorFlow's default pools of one thread per core
    # only add hand-offs and spinning threads, in every worker (measured: 6.4 ms of CPU
    # per 280x280 picture with them, against 3.3 ms in one thread).
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def _prepare(picture: bytes, shape: tuple[int, ...] | None = None) -> npt.NDArray[np.float32]:
    """:func:`lenet_mnist.prepare_image` of encoded bytes (or raw uint8 pixels, to warm up)."""
    from lenet_mnist.images.prepare import prepare_image

    if shape is not None:
        return prepare_image(np.frombuffer(picture, np.uint8).reshape(shape))
    return prepare_image(picture)


_WARM_UP = np.zeros((40, 30), np.uint8)
_WARM_UP[8:32, 13:17] = 255


class PicturePool:
    """Prepare pictures in ``processes`` worker processes (0: in one thread of this one).

    Use inside a running event loop: ``start()``, ``await prepare(data)``, ``await close()``.

    Args:
        processes: Worker processes (0 prepares in a thread of the server process,
            for platforms or embeddings where starting processes is unwanted).

    Example:
        >>> import asyncio, numpy as np, tensorflow as tf
        >>> stroke = np.zeros((40, 30, 1), np.uint8)
        >>> stroke[8:32, 13:17] = 255
        >>> png = bytes(tf.io.encode_png(stroke).numpy())
        >>> async def main():
        ...     pool = PicturePool(0)
        ...     pool.start()
        ...     try:
        ...         return (await pool.prepare(png)).shape
        ...     finally:
        ...         await pool.close()
        >>> asyncio.run(main())
        (28, 28)
    """

    def __init__(self, processes: int) -> None:
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 0:
            raise ValueError(f"processes must be an int >= 0, got {processes!r}")
        self._processes = processes
        self._executor: Executor | None = None

    def _new_executor(self) -> Executor:
        if self._processes == 0:
            return ThreadPoolExecutor(max_workers=1, thread_name_prefix="lenet-pictures")
        return ProcessPoolExecutor(
            max_workers=self._processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(os.getpid(),),
        )

    def start(self) -> None:
        """Start the workers; they import lenet-mnist in the background."""
        if self._executor is not None:
            raise RuntimeError("the picture pool is already started, got a second start()")
        self._executor = self._new_executor()
        if isinstance(self._executor, ProcessPoolExecutor):
            # Submitting starts every worker now, not on the first upload.
            for _ in range(self._processes):
                self._executor.submit(_prepare, _WARM_UP.tobytes(), _WARM_UP.shape)

    async def prepare(self, picture: bytes) -> npt.NDArray[np.float32]:
        """``prepare_image(picture)``: ``(28, 28)`` float32; raises what it raises.

        Raises:
            ImageError: What :func:`lenet_mnist.prepare_image` raises, and also when
                the picture's worker process died twice in a row preparing it.
        """
        loop = asyncio.get_running_loop()
        for _ in range(2):
            executor = self._executor
            if executor is None:
                raise RuntimeError("the picture pool is not running, got prepare() before start()")
            try:
                return await loop.run_in_executor(executor, _prepare, picture)
            except BrokenProcessPool:
                # A worker died (killed, or a decoder crashed on some picture): replace
                # the pool for everyone and try once more, so that only a picture that
                # kills its worker every time is refused.
                if self._executor is executor:
                    executor.shutdown(wait=False, cancel_futures=True)
                    self._executor = self._new_executor()
        raise ImageError(
            "the picture could not be prepared: its worker process died twice, got "
            f"{len(picture):,} bytes"
        )

    async def close(self) -> None:
        """Stop the workers and wait for them to exit (pictures still queued are dropped).

        Waiting matters: uvicorn ends its process by raising the signal that stopped
        it again, so no exit handler would stop the workers later.
        """
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(
                None, functools.partial(executor.shutdown, wait=True, cancel_futures=True)
            )
