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
order of epoch ``e`` depends only on ``(seed, e)`` (see :mod:`lenet_mnist.training.pipeline`), not on
how many epochs ran in this process, and the optimizer's state (its step count and
moments) is restored along with the weights.

Only one training run may use a checkpoint directory at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import keras

from lenet_mnist.models.portable import load_weights
from lenet_mnist.models.saving import save_model

__all__ = [
    "CheckpointState",
    "EpochCheckpoint",
    "check_compatible",
    "history_from",
    "load_checkpoint",
    "restore_checkpoint",
    "run_config",
]

FORMAT: Final = 1
POINTER: Final = "latest.json"
_PREFIX: Final = "checkpoint-"
_TMP_PREFIX: Final = ".tmp-checkpoint-"
_MODEL_FILE: Final = "model.keras"
_STATE_FILE: Final = "state.json"
# Settings whose change makes the stored weights meaningless for the new run; a different
# ``epochs`` only extends or shortens it and is allowed.
_MUST_MATCH: Final = ("recipe", "architecture", "optimizer", "batch_size", "seed", "num_train")
# Checkpoints written before recipes could be resumed were all of the tutorial's.
_DEFAULTS: Final = {"recipe": "tutorial"}


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
    model: keras.Model,
    *,
    batch_size: int,
    seed: int | None,
    num_train: int,
    recipe: str = "tutorial",
) -> dict[str, Any]:
    """Describe a run in the JSON-able terms a resumed run must match.

    Args:
        model: The (built) model; its layer types and weight shapes are recorded.
        batch_size: Images per step.
        seed: The run's seed, or ``None``.
        num_train: Number of training images.
        recipe: The recipe's name.

    Returns:
        A dict with ``recipe``, ``architecture``, ``optimizer``, ``batch_size``,
        ``seed`` and ``num_train``.

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
        "recipe": recipe,
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
        stored, wanted = state.config.get(key, _DEFAULTS.get(key)), current.get(key)
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
        # Not model.load_weights: the file holds Keras's BatchNormalization where the
        # model has FusedBatchNorm (see lenet_mnist.models.portable).
        load_weights(model, state.model_path)
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
