"""Data-parallel training on several devices with ``tf.distribute``, through Keras.

Nothing here distributes anything itself: Keras's ``fit`` runs each step on every
replica of the strategy the model was *created* under, splits each global batch
between them and all-reduces the gradients. What a caller must do is create the model
(and compile it) inside ``strategy.scope()``, so its variables are mirrored::

    strategy = make_strategy("mirrored")          # every GPU, else the CPU
    with strategy.scope():
        model = compile_model(build_lenet())
    train(model, data, strategy=strategy, batch_size=64)   # 32 per replica on 2 devices

:func:`check_model_strategy` (which :func:`lenet_mnist.train` calls) refuses a model
whose variables were created outside the strategy, which would otherwise silently
train on one device.

``make_strategy("multi_worker")`` trains on several processes or machines described by
``TF_CONFIG``, with a ``MultiWorkerMirroredStrategy`` that works around Keras 3's
incompatibility with it (see :mod:`lenet_mnist.training.multiworker`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Final, Literal

from lenet_mnist._util.checks import check_choice

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

__all__ = [
    "STRATEGIES",
    "DistributeName",
    "check_model_strategy",
    "make_strategy",
    "strategy_scope",
]

#: The names of the strategies :func:`make_strategy` makes.
DistributeName = Literal["mirrored", "multi_worker"]

#: The strategies :func:`make_strategy` makes, with a one-line description each.
STRATEGIES: Final[dict[str, str]] = {
    "mirrored": "tf.distribute.MirroredStrategy: one replica per local GPU (or the CPU), "
    "synchronous all-reduce",
    "multi_worker": "tf.distribute.MultiWorkerMirroredStrategy: one replica per worker process "
    "of the cluster TF_CONFIG describes, synchronous collective all-reduce",
}


def make_strategy(
    name: DistributeName | str, *, devices: Sequence[str] | None = None
) -> tf.distribute.Strategy:
    """Make a ``tf.distribute`` strategy by name.

    Args:
        name: ``"mirrored"``: ``tf.distribute.MirroredStrategy``, synchronous data
            parallelism over the devices of this machine. ``"multi_worker"``: a
            ``tf.distribute.MultiWorkerMirroredStrategy`` over the cluster the
            ``TF_CONFIG`` environment variable describes (checked first; see
            :mod:`lenet_mnist.training.multiworker`); create it before any other
            TensorFlow work.
        devices: The devices to mirror over, such as ``["/gpu:0", "/gpu:1"]``;
            ``None`` takes every logical GPU, or else every logical CPU device (one,
            unless the process split the CPU with
            ``tf.config.set_logical_device_configuration``). Only for ``"mirrored"``.

    Returns:
        The strategy; ``strategy.num_replicas_in_sync`` says how many replicas share
        each global batch.

    Raises:
        ValueError: Unknown ``name``, an empty ``devices``, ``devices`` with
            ``"multi_worker"``, or a missing or invalid ``TF_CONFIG``.
        TypeError: ``devices`` is not a sequence of device-name strings.

    Example:
        >>> make_strategy("mirrored", devices=["/cpu:0"]).num_replicas_in_sync
        1
    """
    check_choice("strategy", name, STRATEGIES)
    if name == "multi_worker":
        if devices is not None:
            raise ValueError(
                f"devices is only for 'mirrored'; a multi-worker cluster comes from TF_CONFIG, "
                f"got {devices!r}"
            )
        from lenet_mnist.training.multiworker import make_multi_worker_strategy

        return make_multi_worker_strategy()
    import tensorflow as tf

    if devices is not None:
        if isinstance(devices, str) or not all(isinstance(d, str) for d in devices):
            raise TypeError(f"devices must be a sequence of device names, got {devices!r}")
        if len(devices) == 0:
            raise ValueError("devices must name at least one device, got an empty sequence")
        return tf.distribute.MirroredStrategy(list(devices))
    local = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([device.name for device in local])


def strategy_scope(strategy: tf.distribute.Strategy | None) -> AbstractContextManager[object]:
    """Return ``strategy.scope()``, or a do-nothing context when ``strategy`` is ``None``.

    Example:
        >>> with strategy_scope(None):
        ...     pass
    """
    if strategy is None:
        return contextlib.nullcontext()
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(f"strategy must be a tf.distribute.Strategy, got {type(strategy).__name__}")
    scope: AbstractContextManager[object] = strategy.scope()
    return scope


def check_model_strategy(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Check that ``model``'s variables were created inside ``strategy.scope()``.

    Args:
        model: A built model.
        strategy: The strategy it is to be trained with.

    Raises:
        TypeError: ``strategy`` is not a ``tf.distribute.Strategy``.
        ValueError: The model has no variables, or some were created outside the
            strategy's scope (the message says how to create it instead).
    """
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.Strategy):
        raise TypeError(f"strategy must be a tf.distribute.Strategy, got {type(strategy).__name__}")
    variables = list(model.variables)
    if not variables:
        raise ValueError("model has no variables yet; build it inside strategy.scope(), got none")
    extended = strategy.extended
    outside = [
        v.path for v in variables if not extended.variable_created_in_scope(getattr(v, "value", v))
    ]
    if outside:
        raise ValueError(
            f"the model must be created and compiled inside strategy.scope() of the "
            f"{type(strategy).__name__} it is trained with, so its variables are "
            f"mirrored; got {len(outside)} variables created outside it, such as {outside[0]!r}"
        )
