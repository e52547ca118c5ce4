"""Seeding a run, and making it bit-for-bit repeatable on request.

A seeded run seeds Python's, NumPy's and TensorFlow's generators once (initial
dropout masks and the like) and again at every epoch from ``(seed, epoch)``
(:class:`ReseedEachEpoch`), so no epoch depends on how many epochs ran before it in
the process -- what lets a resumed run repeat an uninterrupted one. ``deterministic``
also turns on TensorFlow's op determinism, which is global and irreversible.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from lenet_mnist.models.provenance import UNKNOWN, weights_origin

__all__ = ["ReseedEachEpoch", "check_seeded_model", "order_seed", "seed_run"]


def seed_run(seed: int | None, *, deterministic: bool) -> None:
    """Seed every generator for a run with ``seed``; with ``deterministic``, fix the ops too.

    Raises:
        ValueError: ``deterministic`` without a ``seed``: a repeatable run needs one.

    Example:
        >>> seed_run(None, deterministic=False)  # an unseeded run: nothing to do
    """
    if deterministic and seed is None:
        raise ValueError(
            "a deterministic run needs a seed: pass seed=S (command line: --seed S), got no seed"
        )
    if seed is None:
        return
    keras.utils.set_random_seed(seed)
    if deterministic:
        # Global and irreversible for the process: every later TensorFlow computation
        # runs deterministically (slower on GPU; ops without such a kernel then raise).
        tf.config.experimental.enable_op_determinism()


def check_seeded_model(model: keras.Model) -> None:
    """Refuse (or, for a model of unknown origin, warn about) unseeded initial weights.

    A deterministic run repeats only if it starts from the same weights; see
    :mod:`lenet_mnist.models.provenance`.

    Raises:
        ValueError: The library built ``model`` without a seed.

    Warns:
        UserWarning: ``model`` was not built or loaded by the library, so whether its
            initial weights were seeded cannot be told.
    """
    origin = weights_origin(model)
    if origin is None:
        raise ValueError(
            "a deterministic run needs seeded initial weights (they differ in every process "
            "otherwise): build the model with seed=S, e.g. build_lenet(..., seed=S), got a "
            "model built without a seed"
        )
    if origin == UNKNOWN:
        warnings.warn(
            "deterministic=True: this model was not built by lenet_mnist, so whether its "
            "initial weights were seeded is unknown; build it after "
            "keras.utils.set_random_seed(S) or they differ in every process",
            UserWarning,
            stacklevel=3,
        )


def order_seed(seed: int | None) -> int:
    """The seed of the batch order: ``seed`` itself, or a fresh random one for an unseeded run.

    Example:
        >>> order_seed(7)
        7
    """
    if seed is not None:
        return seed
    return int(np.random.SeedSequence().generate_state(1, np.uint32)[0])


def _seed_generators(model: keras.Model) -> list[Any]:
    """Every ``keras.random.SeedGenerator`` of ``model``'s layers (dropout's, ...), in order."""
    found: list[Any] = []
    stack, seen = [model], set()
    while stack:
        layer = stack.pop(0)
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        found.extend(v for v in vars(layer).values() if isinstance(v, keras.random.SeedGenerator))
        stack.extend(getattr(layer, "layers", ()))
    return found


class ReseedEachEpoch(keras.callbacks.Callback):  # type: ignore[misc]
    """Reseed every generator a run draws from, from ``(seed, epoch)``, at each epoch's start.

    The global generators (Python's, NumPy's, TensorFlow's) and the layers' own
    ``keras.random.SeedGenerator`` states (dropout masks): the latter advance with every
    step and are not saved in checkpoints, so without this a resumed run would draw
    other masks than an uninterrupted one.
    """

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        """Seed the global generators and every layer's generator for this epoch."""
        epoch_seed = (self.seed * 1_000_003 + epoch) % 2**32
        keras.utils.set_random_seed(epoch_seed)
        for index, generator in enumerate(_seed_generators(self.model)):
            state = np.array([epoch_seed, index + 1], generator.state.dtype)
            generator.state.assign(state)
