"""A training run in its own process, for the tests that kill or compare whole processes.

Usage: ``python _training_child.py SPEC_JSON``. The spec's keys: ``out`` (directory for
``weights.npz`` and ``history.json``), ``epochs``, ``seed``, ``deterministic``,
``checkpoint_dir`` (or null), ``n_train``, ``variant``, ``model_seed`` (the initial
weights' seed; default ``seed``, null for unseeded), and ``stall`` (or null): where
to stop and wait to be killed, after printing ``STALL`` on stdout:

* ``["batch", E, B]``: after batch B of epoch E (both 0-based);
* ``["save", K]``: while writing checkpoint K, after its model file is written;
* ``["pointer", K]``: after checkpoint K is renamed into place, before ``latest.json``
  is replaced;
* ``["prune", K]``: after ``latest.json`` names checkpoint K, before older ones are
  deleted.

The stalls are monkeypatched in here, so the library has no test hooks.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras
import numpy as np

import lenet_mnist.training.checkpoint as checkpoint
from conftest import make_tiny_data
from lenet_mnist import build_lenet, compile_model, train


def stall() -> None:
    print("STALL", flush=True)
    time.sleep(600)
    sys.exit("not killed")


class Stall(keras.callbacks.Callback):
    def __init__(self, point: list[Any] | None) -> None:
        super().__init__()
        self.point = point
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if self.point == ["batch", self.epoch, batch]:
            stall()


def main() -> None:
    spec = json.loads(sys.argv[1])
    point = spec.get("stall")
    watcher = Stall(point)

    # Which checkpoint is being written: the epoch the watcher saw last, plus one.
    def writing(kind: str) -> bool:
        return point == [kind, watcher.epoch + 1]

    original_save = checkpoint.save_model

    def slow_save(model: Any, path: Any) -> Any:
        result = original_save(model, path)
        if writing("save"):
            stall()
        return result

    original_write_json = checkpoint._write_json

    def slow_write_json(path: Path, payload: Any) -> None:
        original_write_json(path, payload)
        if path.name == f".{checkpoint.POINTER}.tmp" and writing("pointer"):
            stall()

    original_prune = checkpoint.EpochCheckpoint._prune

    def slow_prune(self: Any, *, keep: str) -> None:
        if writing("prune"):
            stall()
        original_prune(self, keep=keep)

    checkpoint.save_model = slow_save
    checkpoint._write_json = slow_write_json
    checkpoint.EpochCheckpoint._prune = slow_prune

    data = make_tiny_data(spec["n_train"], 64, seed=1)
    # "model_seed": the seed of the initial weights (default the run's; null: unseeded).
    model_seed = spec.get("model_seed", spec["seed"])
    model = compile_model(build_lenet(spec.get("variant", "seed"), seed=model_seed))
    history = train(
        model,
        data,
        epochs=spec["epochs"],
        seed=spec["seed"],
        deterministic=spec["deterministic"],
        checkpoint_dir=spec["checkpoint_dir"],
        verbose=0,
        callbacks=[watcher],
    )
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "weights.npz", *model.get_weights())
    (out / "history.json").write_text(json.dumps({"epoch": history.epoch, **history.history}))
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
