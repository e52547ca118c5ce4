"""Resumable training: a checkpoint after every epoch, written so that a kill cannot break it.

A checkpoint directory holds at most one complete checkpoint at rest::

    DIR/latest.json              {"format": 1, "checkpoint": "checkpoint-000003-x1y2z3"}
    DIR/checkpoint-000003-x1y2z3/
        model.keras              weights and optimizer state (lenet_mnist.save_model)
        state.json               completed epochs, history, the run's configuration

After each epoch :class:`EpochCheckpoint` writes a new ``checkpoint-NNNNNN-<unique>``
under a temporary name inside ``DIR``, flushes every file to disk (``fsync``), renames the
directory into place and only then replaces ``latest.json`` -- a single atomic
``os.replace`` -- so the pointer always names a complete checkpoint. Older checkpoints
and leftovers of killed writes are deleted only after the pointer has moved. A process
killed at any moment therefore leaves either the previous checkpoint or the new one,
never a half-written one.

Resuming with the same seed repeats an uninterrupted run exactly because the training
order of epoch ``e`` depends only on ``(seed, e)`` (see :func:`shuffled_epochs`), not on
how many epochs ran in this process, and the optimizer's state (its step count and
moments) is restored along with the weights.

Only one training run may use a checkpoint directory at a time.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import keras
import numpy as np
import numpy.typing as npt

from lenet_mnist.serialization import save_model

__all__ = [
    "CheckpointState",
    "EpochCheckpoint",
    "TrainingRun",
    "check_compatible",
    "enable_determinism",
    "load_checkpoint",
    "prepare_run",
    "restore_checkpoint",
    "run_config",
    "shuffled_epochs",
]

FORMAT: Final = 1
POINTER: Final = "latest.json"
_PREFIX: Final = "checkpoint-"
_TMP_PREFIX: Final = ".tmp-checkpoint-"
_MODEL_FILE: Final = "model.keras"
_STATE_FILE: Final = "state.json"
# Settings whose change makes the stored weights meaningless for the new run; a different
# ``epochs`` only extends or shortens it and is allowed.
_MUST_MATCH: Final = ("architecture", "optimizer", "batch_size", "seed", "num_train")


@dataclass(frozen=True)
class CheckpointState:
    """The last complete checkpoint of a training run.

    Attributes:
        path: The checkpoint's own directory (``DIR/checkpoint-NNNNNN-<unique>``).
        epoch: How many epochs were complete when it was written (>= 1).
        history: Per-epoch values so far (``"loss"``, ``"accuracy"``, ``"val_loss"``,
            ``"val_accuracy"``, ...), each a list of ``epoch`` floats.
        config: The run's configuration (see :func:`run_config`).
        stopped: A callback (such as ``target_accuracy``'s) ended the run early at this
            epoch: the run is finished and a resume does not train on.
    """

    path: Path
    epoch: int
    history: dict[str, list[float]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    stopped: bool = False

    @property
    def model_path(self) -> Path:
        """The ``.keras`` file with the weights and optimizer state."""
        return self.path / _MODEL_FILE


def run_config(
    model: keras.Model, *, batch_size: int, seed: int | None, num_train: int
) -> dict[str, Any]:
    """Describe a run in the JSON-able terms a resumed run must match.

    Args:
        model: The (built) model; its layer types and weight shapes are recorded.
        batch_size: Images per step.
        seed: The run's seed, or ``None``.
        num_train: Number of training images.

    Returns:
        A dict with ``architecture``, ``optimizer``, ``batch_size``, ``seed`` and
        ``num_train``.

    Example:
        >>> from lenet_mnist import build_lenet, compile_model
        >>> config = run_config(compile_model(build_lenet()), batch_size=32, seed=0,
        ...                     num_train=60000)
        >>> config["architecture"][0]
        ['Conv2D', [[3, 3, 1, 32], [32]]]
    """
    architecture = [
        [type(layer).__name__, [[int(dim) for dim in w.shape] for w in layer.weights]]
        for layer in model.layers
        if layer.weights
    ]
    optimizer = getattr(model, "optimizer", None)
    return {
        "architecture": architecture,
        "optimizer": None if optimizer is None else type(optimizer).__name__,
        "batch_size": int(batch_size),
        "seed": seed,
        "num_train": int(num_train),
    }


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # Makes a rename durable; not every platform can open a directory (Windows).
    with contextlib.suppress(OSError):
        _fsync_file(path)


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    with path.open("w", encoding="utf-8") as out:
        json.dump(payload, out, indent=1, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a lenet-mnist checkpoint file ({error})") from None


def load_checkpoint(directory: str | os.PathLike[str]) -> CheckpointState | None:
    """Return the last complete checkpoint in ``directory``, or ``None`` if there is none.

    Args:
        directory: A checkpoint directory (it need not exist).

    Returns:
        The :class:`CheckpointState` that ``latest.json`` names, or ``None`` when the
        directory or the pointer does not exist (no epoch was ever completed).

    Raises:
        ValueError: ``latest.json`` or the checkpoint it names is unreadable or not of
            this library's format.

    Example:
        >>> load_checkpoint("/nonexistent") is None
        True
    """
    pointer = Path(directory) / POINTER
    if not pointer.is_file():
        return None
    entry = _read_json(pointer)
    name = entry.get("checkpoint") if isinstance(entry, dict) else None
    if (
        not isinstance(entry, dict)
        or entry.get("format") != FORMAT
        or not isinstance(name, str)
        or not name.startswith(_PREFIX)
        or Path(name).name != name
    ):
        raise ValueError(f"{pointer}: not a lenet-mnist checkpoint pointer, got {entry!r}")
    path = pointer.parent / name
    state_file = path / _STATE_FILE
    if not state_file.is_file() or not (path / _MODEL_FILE).is_file():
        raise ValueError(f"{pointer}: names checkpoint {name}, which is incomplete or missing")
    state = _read_json(state_file)
    epoch = state.get("epoch") if isinstance(state, dict) else None
    history = state.get("history") if isinstance(state, dict) else None
    config = state.get("config") if isinstance(state, dict) else None
    if (
        not isinstance(epoch, int)
        or epoch < 1
        or not isinstance(history, dict)
        or not isinstance(config, dict)
        or any(not isinstance(v, list) or len(v) != epoch for v in history.values())
    ):
        raise ValueError(f"{state_file}: not a lenet-mnist checkpoint state")
    return CheckpointState(
        path=path,
        epoch=epoch,
        history={str(k): [float(x) for x in v] for k, v in history.items()},
        config=config,
        stopped=state.get("stopped") is True,
    )


def check_compatible(state: CheckpointState, config: Mapping[str, Any]) -> None:
    """Refuse to resume ``state`` with a run configured differently (other than ``epochs``).

    Raises:
        ValueError: A setting in the stored configuration differs from ``config``; the
            message names it with both values.
    """
    # A JSON round trip turns tuples into lists, so compare in that form.
    current = json.loads(json.dumps(dict(config)))
    for key in _MUST_MATCH:
        stored, wanted = state.config.get(key), current.get(key)
        if stored != wanted:
            if key == "architecture":
                stored, wanted = _layer_summary(stored), _layer_summary(wanted)
            raise ValueError(
                f"cannot resume the checkpoint in {state.path.parent}: it was written with "
                f"{key}={stored!r}, got {key}={wanted!r}; use a new checkpoint directory for "
                "a different run"
            )


def _layer_summary(architecture: Any) -> str:
    if not isinstance(architecture, list):
        return repr(architecture)
    parts = []
    for layer in architecture:
        name, shapes = layer if isinstance(layer, list) and len(layer) == 2 else ("?", [])
        kernel = "x".join(str(d) for d in shapes[0]) if shapes else ""
        parts.append(f"{name}({kernel})")
    return " -> ".join(parts)


def restore_checkpoint(model: keras.Model, state: CheckpointState) -> None:
    """Load a checkpoint's weights and optimizer state into ``model``, in place.

    Args:
        model: A compiled model of the same architecture as the checkpoint's.
        state: From :func:`load_checkpoint`.

    Raises:
        ValueError: The stored weights do not fit ``model``.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        # Unbuilt optimizer slots would be skipped, silently restarting Adam's moments.
        optimizer.build(model.trainable_variables)
    try:
        model.load_weights(state.model_path)
    except (ValueError, KeyError) as error:
        raise ValueError(
            f"cannot resume from {state.model_path}: its weights do not fit the model: {error}"
        ) from error


class EpochCheckpoint(keras.callbacks.Callback):  # type: ignore[misc]
    """Keras callback writing a checkpoint after every epoch (see the module documentation).

    Args:
        directory: The checkpoint directory (created if needed).
        config: The run's configuration, stored for :func:`check_compatible`.
        history: The history before this run's first epoch (from a resumed
            checkpoint), to which each epoch's logs are appended.

    Example:
        >>> import tempfile
        >>> from lenet_mnist import build_lenet, compile_model
        >>> model = compile_model(build_lenet(seed=0))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     callback = EpochCheckpoint(tmp, config={"seed": 0})
        ...     callback.set_model(model)
        ...     callback.on_epoch_end(0, {"loss": 2.3})
        ...     load_checkpoint(tmp).epoch
        1
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        config: Mapping[str, Any],
        history: Mapping[str, list[float]] | None = None,
    ) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.config = json.loads(json.dumps(dict(config)))
        self.history: dict[str, list[float]] = {
            key: list(values) for key, values in (history or {}).items()
        }

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        """Record the epoch's logs and write checkpoint ``epoch + 1``.

        Callbacks listed before this one have already run for the epoch, so an early
        stop they requested (``model.stop_training``) is recorded with it.
        """
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.write(epoch + 1, stopped=bool(getattr(self.model, "stop_training", False)))

    def write(self, epoch: int, *, stopped: bool = False) -> Path:
        """Write a checkpoint of the model after ``epoch`` completed epochs; return its path."""
        self.directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=self.directory))
        # A unique name: the new checkpoint can never replace the one the pointer names.
        name = f"{_PREFIX}{epoch:06d}-{staging.name.removeprefix(_TMP_PREFIX)}"
        try:
            model_file = save_model(self.model, staging / _MODEL_FILE)
            _fsync_file(model_file)
            _write_json(
                staging / _STATE_FILE,
                {
                    "format": FORMAT,
                    "epoch": epoch,
                    "history": self.history,
                    "config": self.config,
                    "stopped": stopped,
                },
            )
            _fsync_dir(staging)
            final = self.directory / name
            staging.rename(final)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        _fsync_dir(self.directory)
        pointer_tmp = self.directory / f".{POINTER}.tmp"
        _write_json(pointer_tmp, {"format": FORMAT, "checkpoint": name})
        pointer_tmp.replace(self.directory / POINTER)
        _fsync_dir(self.directory)
        self._prune(keep=name)
        return final

    def _prune(self, *, keep: str) -> None:
        for entry in self.directory.iterdir():
            if entry.name != keep and entry.name.startswith((_PREFIX, _TMP_PREFIX)):
                shutil.rmtree(entry, ignore_errors=True)


def history_from(model: keras.Model, history: Mapping[str, list[float]]) -> keras.callbacks.History:
    """Build a ``keras.callbacks.History`` holding ``history`` (all epochs, from epoch 0)."""
    result = keras.callbacks.History()
    result.set_model(model)
    result.history = {key: list(values) for key, values in history.items()}
    result.epoch = list(range(max((len(v) for v in history.values()), default=0)))
    return result


def shuffled_epochs(
    images: npt.NDArray[np.float32],
    labels: npt.NDArray[np.generic],
    *,
    batch_size: int,
    seed: int,
    initial_epoch: int,
    epochs: int,
) -> tuple[Any, int]:
    """Batches for epochs ``initial_epoch .. epochs - 1``, each shuffled by ``(seed, epoch)`` alone.

    Keras's own ``shuffle=True`` draws each epoch's order from a random state that
    advances with every epoch run in the process, so a run resumed at epoch ``e`` would
    see epoch 0's order again. Here each epoch's permutation is a stateless function of
    ``(seed, e)``: a resumed run sees exactly the batches an uninterrupted one does.

    Args:
        images: ``(N, 28, 28, 1)`` float32.
        labels: ``(N,)`` integer class indices.
        batch_size: Images per batch (each epoch's last batch may be smaller).
        seed: The run's seed.
        initial_epoch: First epoch to produce (0-based).
        epochs: One past the last epoch to produce.

    Returns:
        ``(dataset, steps_per_epoch)``: a ``tf.data.Dataset`` of ``(images, labels)``
        batches, to pass to ``model.fit`` with ``steps_per_epoch`` and ``shuffle=False``.
    """
    import tensorflow as tf

    count = int(images.shape[0])
    seed_tensor = tf.constant(seed, tf.int64)

    def epoch_order(epoch: Any) -> Any:
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seed=tf.stack([seed_tensor, epoch])
        )
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    arrays = tf.data.Dataset.from_tensors((images, labels)).repeat()
    order = tf.data.Dataset.range(initial_epoch, epochs).flat_map(epoch_order)
    dataset = (
        tf.data.Dataset.zip((order, arrays))
        .map(lambda index, data: (tf.gather(data[0], index), tf.gather(data[1], index)))
        .prefetch(tf.data.AUTOTUNE)
    )
    return dataset, math.ceil(count / batch_size)


def enable_determinism(seed: int) -> None:
    """Seed every generator and make TensorFlow's ops deterministic, for this process.

    ``tf.config.experimental.enable_op_determinism()`` is global and cannot be undone:
    every later TensorFlow computation in the process runs in deterministic mode (slower
    on GPU; ops without a deterministic implementation raise an error).
    """
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class _ReseedEachEpoch(keras.callbacks.Callback):  # type: ignore[misc]
    """Reseed the global generators from ``(seed, epoch)`` so no epoch depends on earlier ones."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = seed

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        """Seed Python's, NumPy's and TensorFlow's generators for this epoch."""
        keras.utils.set_random_seed((self.seed * 1_000_003 + epoch) % 2**32)


@dataclass
class TrainingRun:
    """How :func:`lenet_mnist.train` calls ``model.fit``, prepared by :func:`prepare_run`.

    Attributes:
        inputs: The positional ``x`` (and ``y``) arguments of ``model.fit``.
        fit_args: Keyword arguments of ``model.fit`` (``initial_epoch`` and either
            ``batch_size``/``shuffle`` or ``steps_per_epoch``/``shuffle=False``).
        callbacks: Callbacks to add after the caller's.
        finished: The stored history when the checkpoint already covers every
            requested epoch or the run was stopped early (nothing is left to train),
            else ``None``.
    """

    inputs: tuple[Any, ...]
    fit_args: dict[str, Any]
    callbacks: list[keras.callbacks.Callback]
    finished: keras.callbacks.History | None = None
    checkpoint: EpochCheckpoint | None = None

    def finish(self, history: keras.callbacks.History) -> keras.callbacks.History:
        """Return the whole run's history: the resumed epochs' followed by ``history``'s."""
        if self.checkpoint is None:
            return history
        merged = history_from(history.model, self.checkpoint.history)
        merged.params = getattr(history, "params", {})
        return merged


def prepare_run(
    model: keras.Model,
    images: npt.NDArray[np.float32],
    labels: npt.NDArray[np.generic],
    *,
    epochs: int,
    batch_size: int,
    seed: int | None,
    checkpoint_dir: str | os.PathLike[str] | None,
    deterministic: bool,
) -> TrainingRun:
    """Restore a checkpoint if there is one and plan the ``model.fit`` call.

    With a ``seed``, training batches come from :func:`shuffled_epochs` and the global
    generators are reseeded from ``(seed, epoch)`` at every epoch, so any epoch can be
    re-run alone. With ``checkpoint_dir``, the last checkpoint's weights and optimizer
    state are loaded into ``model`` and an :class:`EpochCheckpoint` is added.

    Raises:
        ValueError: ``deterministic`` without a seed, or a checkpoint written by a
            differently configured run (architecture, optimizer, batch size, seed or
            number of training images).
        TypeError: ``deterministic`` is not a bool or ``checkpoint_dir`` not a path.
    """
    if not isinstance(deterministic, bool):
        raise TypeError(f"deterministic must be a bool, got {type(deterministic).__name__}")
    if deterministic:
        if seed is None:
            raise ValueError("deterministic=True needs a seed, got seed=None")
        enable_determinism(seed)
    callbacks: list[keras.callbacks.Callback] = []
    initial_epoch = 0
    checkpoint: EpochCheckpoint | None = None
    if checkpoint_dir is not None:
        if not isinstance(checkpoint_dir, str | os.PathLike):
            raise TypeError(
                f"checkpoint_dir must be a path or None, got {type(checkpoint_dir).__name__}"
            )
        config = run_config(model, batch_size=batch_size, seed=seed, num_train=len(images))
        state = load_checkpoint(checkpoint_dir)
        if state is not None:
            check_compatible(state, config)
            restore_checkpoint(model, state)
            initial_epoch = state.epoch
        checkpoint = EpochCheckpoint(
            checkpoint_dir, config=config, history=None if state is None else state.history
        )
        if state is not None and (state.epoch >= epochs or state.stopped):
            return TrainingRun((), {}, [], finished=history_from(model, state.history))
    fit_args: dict[str, Any] = {"initial_epoch": initial_epoch}
    inputs: tuple[Any, ...]
    if seed is None:
        inputs = (images, labels)
        fit_args.update(batch_size=batch_size, shuffle=True)
    else:
        dataset, steps = shuffled_epochs(
            images,
            labels,
            batch_size=batch_size,
            seed=seed,
            initial_epoch=initial_epoch,
            epochs=epochs,
        )
        inputs = (dataset,)
        fit_args.update(steps_per_epoch=steps, shuffle=False)
        callbacks.append(_ReseedEachEpoch(seed))
    if checkpoint is not None:
        callbacks.append(checkpoint)
    return TrainingRun(inputs, fit_args, callbacks, checkpoint=checkpoint)
