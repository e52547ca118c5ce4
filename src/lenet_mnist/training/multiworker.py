"""Training on several machines: ``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``, through ``fit``.

Every worker runs the same program with its own ``TF_CONFIG`` (the standard
TensorFlow cluster description: the same ``"cluster"`` everywhere, each worker's own
``"task"``)::

    {"cluster": {"worker": ["host1:12345", "host2:12345"]},
     "task": {"type": "worker", "index": 0}}

:func:`make_multi_worker_strategy` (``make_strategy("multi_worker")``) checks it and
creates the strategy; the model is then created in its scope and trained with
:func:`lenet_mnist.train` as on one machine, on Keras's own ``Model.fit``.

Keras 3.15's ``fit`` cannot run under TensorFlow's own
``tf.distribute.MultiWorkerMirroredStrategy`` (keras-team/keras#20585), for two
reasons, both in how it calls the public ``Strategy.reduce``:

* before the first step it reduces the first distributed batch, an ``(images,
  labels)`` *tuple*, with ``strategy.reduce("MEAN", batch, axis=None)``; the
  multi-worker strategy reduces one value, not a nested structure;
* after every step it reduces each replica's scalar metrics with
  ``strategy.reduce("MEAN", value, axis=0)``, and a scalar has no axis 0.

The strategy made here is a ``tf.distribute.MultiWorkerMirroredStrategy`` whose
``reduce`` also takes those two forms: a nested structure is reduced leaf by leaf, and a
scalar's ``axis`` (within-replica reduction of a single number: the number itself) is
ignored. Every other call behaves exactly as TensorFlow's. The training step itself is
Keras's, run by ``strategy.run``, with the gradients all-reduced by TensorFlow's
collective ops. A third limitation has no such fix: Keras's grouped steps
(``steps_per_execution`` > 1) fail under this strategy, so :func:`lenet_mnist.train`
runs one step per call there (:func:`one_step_per_execution`).

Only the chief (task ``chief``, else worker 0) should write results; the other workers
must still take part in every save (it may read distributed variables), so they write
to a temporary place that is removed afterwards: :func:`chief_write_path`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import tensorflow as tf

from lenet_mnist.data.locate import cache_dir
from lenet_mnist.recipes import Recipe

__all__ = [
    "KerasMultiWorkerMirroredStrategy",
    "agree",
    "agree_on_seed",
    "check_same_on_every_worker",
    "chief_write_path",
    "is_chief",
    "is_multi_worker",
    "make_multi_worker_strategy",
    "one_step_per_execution",
    "read_tf_config",
]

#: The job types a ``TF_CONFIG`` for this strategy may name.
JOB_TYPES: Final = ("chief", "worker")
# A TF_CONFIG is a few hundred bytes per hundred workers; refuse anything absurd before
# parsing it.
_MAX_TF_CONFIG: Final = 1 << 20
_MAX_TASKS: Final = 10_000


def _check_address(address: object, where: str) -> str:
    if not isinstance(address, str) or address.count(":") < 1:
        raise ValueError(f"TF_CONFIG: {where} must be a 'host:port' string, got {address!r}")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"TF_CONFIG: {where} must be 'host:port' with a port in 1..65535, got {address!r}"
        )
    return address


def read_tf_config(value: str | None = None) -> dict[str, Any]:
    """Parse and check a ``TF_CONFIG`` for ``MultiWorkerMirroredStrategy``.

    Args:
        value: The JSON text; ``None`` reads the ``TF_CONFIG`` environment variable.

    Returns:
        ``{"cluster": {job: [address, ...]}, "task": {"type": job, "index": i}}``
        with ``job`` in ``"chief"`` (at most one address) and ``"worker"``.

    Raises:
        ValueError: ``TF_CONFIG`` is unset or empty, not JSON, longer than 1 MiB, or
            not of that form: unknown keys or job types, a task not in the cluster,
            addresses that are not ``host:port``.

    Example:
        >>> config = read_tf_config('{"cluster": {"worker": ["127.0.0.1:2222"]}, '
        ...                         '"task": {"type": "worker", "index": 0}}')
        >>> config["task"]
        {'type': 'worker', 'index': 0}
        >>> read_tf_config('{"cluster": {"worker": ["127.0.0.1:2222"]}}')
        Traceback (most recent call last):
        ...
        ValueError: TF_CONFIG must have "cluster" and "task", got keys ['cluster']
    """
    text = os.environ.get("TF_CONFIG") if value is None else value
    if not text:
        raise ValueError(
            "multi-worker training needs the TF_CONFIG environment variable (the cluster's "
            'addresses and this worker\'s task, e.g. {"cluster": {"worker": ["host1:2222", '
            '"host2:2222"]}, "task": {"type": "worker", "index": 0}}), got '
            + ("an empty one" if text == "" else "none")
        )
    if len(text) > _MAX_TF_CONFIG:
        raise ValueError(f"TF_CONFIG must be at most {_MAX_TF_CONFIG} bytes, got {len(text)}")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG must be JSON, got {text[:80]!r} ({error})") from None
    if not isinstance(config, dict) or set(config) - {
        "cluster",
        "task",
        "environment",
        "rpc_layer",
    }:
        got = sorted(config) if isinstance(config, dict) else type(config).__name__
        raise ValueError(
            f'TF_CONFIG must be an object with "cluster" and "task", got {got}'
            if not isinstance(config, dict)
            else f'TF_CONFIG may only have "cluster", "task", "environment", "rpc_layer", got keys {got}'
        )
    if "cluster" not in config or "task" not in config:
        raise ValueError(f'TF_CONFIG must have "cluster" and "task", got keys {sorted(config)}')
    cluster, task = config["cluster"], config["task"]
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError(f"TF_CONFIG: cluster must map job types to address lists, got {cluster!r}")
    unknown = sorted(str(job) for job in cluster if job not in JOB_TYPES)
    if unknown:
        raise ValueError(
            f"TF_CONFIG: MultiWorkerMirroredStrategy takes only {list(JOB_TYPES)} jobs, "
            f"got {unknown}"
        )
    checked: dict[str, list[str]] = {}
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not 0 < len(addresses) <= _MAX_TASKS:
            raise ValueError(
                f"TF_CONFIG: cluster.{job} must be a non-empty list of addresses, got {addresses!r}"
            )
        if job == "chief" and len(addresses) != 1:
            raise ValueError(
                f"TF_CONFIG: cluster.chief must have one address, got {len(addresses)}"
            )
        checked[job] = [_check_address(a, f"cluster.{job}[{i}]") for i, a in enumerate(addresses)]
        if len(set(checked[job])) != len(checked[job]):
            raise ValueError(f"TF_CONFIG: cluster.{job} names an address twice, got {addresses!r}")
    if not isinstance(task, dict) or set(task) != {"type", "index"}:
        raise ValueError(f'TF_CONFIG: task must be {{"type": ..., "index": ...}}, got {task!r}')
    job, index = task["type"], task["index"]
    if job not in checked:
        raise ValueError(
            f"TF_CONFIG: task.type must be a job of the cluster {sorted(checked)}, got {job!r}"
        )
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(checked[job]):
        raise ValueError(
            f"TF_CONFIG: task.index must be an integer in 0..{len(checked[job]) - 1}, got {index!r}"
        )
    return {"cluster": checked, "task": {"type": job, "index": index}}


class KerasMultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):  # type: ignore[misc]
    """``tf.distribute.MultiWorkerMirroredStrategy`` whose ``reduce`` takes what Keras 3 passes.

    See the module documentation: a nested ``value`` is reduced leaf by leaf, and a
    scalar leaf ignores ``axis``; everything else is TensorFlow's own strategy.
    """

    def reduce(self, reduce_op: Any, value: Any, axis: int | None = None) -> Any:
        """Reduce ``value`` (a tensor, a per-replica value, or a nest of them) across replicas."""
        base = super().reduce

        def one(leaf: Any) -> Any:
            shape = getattr(leaf, "shape", None)
            if axis is not None and shape is not None and shape.rank == 0:
                return base(reduce_op, leaf, None)
            return base(reduce_op, leaf, axis)

        return tf.nest.map_structure(one, value)


def make_multi_worker_strategy() -> tf.distribute.Strategy:
    """Check ``TF_CONFIG``, then create the multi-worker strategy (one replica per worker's device).

    Call it first thing in the program, before any other TensorFlow work:
    TensorFlow configures its collective ops when the strategy is created.

    Returns:
        A :class:`KerasMultiWorkerMirroredStrategy`;
        ``num_replicas_in_sync`` counts the replicas of the whole cluster.

    Raises:
        ValueError: ``TF_CONFIG`` is missing or invalid (see :func:`read_tf_config`).
    """
    read_tf_config()
    return KerasMultiWorkerMirroredStrategy()


def is_multi_worker(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether ``strategy`` is a multi-worker strategy running with more than one worker.

    Example:
        >>> is_multi_worker(None)
        False
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    resolver = strategy.cluster_resolver
    jobs = resolver.cluster_spec().as_dict() if resolver is not None else {}
    return sum(len(tasks) for job, tasks in jobs.items() if job in JOB_TYPES) > 1


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether this process should write the run's results.

    True without a multi-worker strategy; otherwise for the ``chief`` task, or worker 0
    when the cluster has no ``chief`` job (TensorFlow's multi-worker convention).

    Example:
        >>> is_chief(None)
        True
    """
    if strategy is None or not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None or task_type == "chief":
        return True
    return bool(
        task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()
    )


@contextlib.contextmanager
def chief_write_path(
    path: str | os.PathLike[str], strategy: tf.distribute.Strategy | None
) -> Iterator[Path]:
    """Where this worker writes ``path``: itself on the chief, a temporary twin elsewhere.

    Every worker must save (saving may read distributed variables, which all workers
    take part in), but only the chief's file is kept: the others write into a scratch
    directory of their own under the library's cache (``LENET_MNIST_CACHE``, else
    ``~/.cache/lenet-mnist``), removed when the ``with`` block ends -- the pattern of
    TensorFlow's multi-worker tutorial. A worker that was killed inside the block
    left its scratch behind; the same worker saving the same path removes it first.

    Args:
        path: The file or directory the chief writes.
        strategy: The training strategy, or ``None`` (then always ``path``).

    Yields:
        ``Path(path)`` on the chief; ``SCRATCH/<name of path>`` on the other workers.

    Example:
        >>> with chief_write_path("model.keras", None) as target:
        ...     str(target)
        'model.keras'
    """
    if strategy is None or is_chief(strategy):
        yield Path(path)
        return
    resolver = strategy.cluster_resolver
    # One fixed place per (task, target) in the user's own cache, not a fresh one in
    # the shared /tmp: a worker killed mid-save (no cleanup runs) leaves its scratch
    # there, and the restarted worker removes it before writing again.
    key = hashlib.sha256(os.fsencode(Path(path).resolve())).hexdigest()[:16]
    scratch = (
        cache_dir().parent / "worker-scratch" / f"{resolver.task_type}-{resolver.task_id}-{key}"
    )
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True, mode=0o700)
    try:
        yield scratch / Path(path).name
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def agree(strategy: tf.distribute.Strategy | None, values: Sequence[float]) -> list[float]:
    """The mean of ``values`` over the workers, the same on every worker (a collective call).

    Every worker must call it at the same point with as many values. Values that are
    already equal everywhere come back unchanged; so without a multi-worker strategy
    this returns ``values``. Stop decisions taken from the result agree on all workers.

    Example:
        >>> agree(None, [0.5, 1.0])
        [0.5, 1.0]
    """
    if strategy is None or not is_multi_worker(strategy):
        return [float(v) for v in values]
    local = tf.constant([float(v) for v in values], tf.float64)
    reduced = strategy.reduce(tf.distribute.ReduceOp.MEAN, local, axis=None)
    return [float(v) for v in reduced.numpy()]


def check_same_on_every_worker(
    strategy: tf.distribute.Strategy | None, what: str, value: int
) -> None:
    """Raise on every worker at once unless all workers pass the same ``value``.

    A collective call (see :func:`agree`); used for what each worker read on its own,
    such as the number of completed epochs in the checkpoint directory.

    Raises:
        ValueError: The workers disagree; the message ends with this worker's value.
    """
    mean, square = agree(strategy, [float(value), float(value) ** 2])
    # All equal exactly when the variance is 0; every worker sees the same two means.
    if square - mean * mean > 1e-9:
        raise ValueError(
            f"the workers disagree on {what} (every worker must see the same checkpoint "
            f"directory, e.g. on a shared filesystem), got {value} on this worker"
        )


def agree_on_seed(strategy: tf.distribute.Strategy | None, seed: int) -> int:
    """One seed for every worker: ``seed`` where all pass the same, else their mean.

    A collective call (see :func:`agree`). An unseeded run draws a random batch order
    on each worker; the workers must share one, or each would take its half of every
    global batch from a different permutation.

    Example:
        >>> agree_on_seed(None, 7)
        7
    """
    (mean,) = agree(strategy, [float(seed)])
    return int(mean)


def one_step_per_execution(recipe: Recipe, strategy: tf.distribute.Strategy | None) -> Recipe:
    """``recipe``, with one step per execution under a multi-worker strategy.

    Keras 3.15 runs a group of steps (``steps_per_execution`` > 1) as a
    ``tf.while_loop`` over the distributed iterator's optional next batch, and under
    ``MultiWorkerMirroredStrategy`` that graph fails at its first run ("You must feed a
    value for placeholder tensor ..."); one step per call works.

    Example:
        >>> from lenet_mnist.recipes import get_recipe
        >>> one_step_per_execution(get_recipe("fast"), None).steps_per_execution > 1
        True
    """
    if strategy is None or not is_multi_worker(strategy) or recipe.steps_per_execution == 1:
        return recipe
    return dataclasses.replace(recipe, steps_per_execution=1)
