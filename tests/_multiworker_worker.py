"""One worker of a local multi-worker cluster (``tests/test_multiworker.py`` starts two).

Usage::

    TF_CONFIG=... python _multiworker_worker.py SETTINGS_JSON

Without ``TF_CONFIG`` it trains alone (no strategy), for the single-worker reference.
Writes ``SETTINGS["result"]`` + ``-<task index>.json`` with what the test compares: the
history, the first steps' losses, the epochs this process trained, a digest of the final
weights and where the model was saved.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

settings = json.loads(sys.argv[1])
multi = bool(os.environ.get("TF_CONFIG"))

from lenet_mnist.training.distribute import make_strategy, strategy_scope  # noqa: E402

# First thing: the multi-worker strategy configures TensorFlow's collective ops.
strategy = make_strategy("multi_worker") if multi else None

import keras  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import make_tiny_data  # noqa: E402
from lenet_mnist import MnistData, build_lenet, compile_model, load_mnist, save_model, train  # noqa: E402
from lenet_mnist.training.multiworker import (  # noqa: E402
    agree_on_seed,
    check_same_on_every_worker,
    chief_write_path,
    is_chief,
)


def load_data() -> MnistData:
    if settings["data"] == "tiny":
        return make_tiny_data(n_train=settings["n_train"], n_test=settings["n_test"], seed=0)
    full = load_mnist(settings["data"], download=False)
    return MnistData(
        full.train_images[: settings["n_train"]],
        full.train_labels[: settings["n_train"]],
        full.test_images[: settings["n_test"]],
        full.test_labels[: settings["n_test"]],
    )


class Record(keras.callbacks.Callback):  # type: ignore[misc]
    """The first steps' losses, the epochs trained here, and an optional pause per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.losses: list[float] = []
        self.epochs: list[int] = []

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        if epoch >= settings.get("pause_from_epoch", 10**9):
            time.sleep(settings["pause_seconds"])  # time for the test to kill us

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if len(self.losses) < 5:
            self.losses.append(float(logs["loss"]))

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.epochs.append(epoch)


def digest(model: keras.Model) -> str:
    weights = hashlib.sha256()
    for array in model.get_weights():
        weights.update(np.ascontiguousarray(array).tobytes())
    return weights.hexdigest()


data = load_data()
with strategy_scope(strategy):
    model = compile_model(build_lenet(seed=1))
record = Record()
history = train(
    model,
    data,
    epochs=settings["epochs"],
    batch_size=settings["batch_size"],
    seed=3,
    verbose=0,
    strategy=strategy,
    checkpoint_dir=settings.get("checkpoint_dir"),
    callbacks=[record],
)
again: list[int] | None = None
if settings.get("train_again"):
    # The same run once more: it is finished, so it must return without training.
    rerun = Record()
    train(
        model,
        data,
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        seed=3,
        verbose=0,
        strategy=strategy,
        checkpoint_dir=settings.get("checkpoint_dir"),
        callbacks=[rerun],
    )
    again = rerun.epochs
with chief_write_path(settings["output"], strategy) as target:
    saved = save_model(model, target)
    saved_exists = saved.is_file()
index = 0 if strategy is None else int(strategy.cluster_resolver.task_id)
# What an unseeded run does with each worker's own random order seed, and what a worker
# that read another checkpoint than the others meets.
common_seed = agree_on_seed(strategy, 1000 + index)
grouped_error = None
if multi:  # a model compiled with grouped steps is refused, before any work
    with strategy_scope(strategy):
        grouped = build_lenet(seed=1)
        grouped.compile(
            optimizer="adam", loss="sparse_categorical_crossentropy", steps_per_execution=2
        )
    try:
        train(grouped, data, epochs=1, batch_size=32, verbose=0, strategy=strategy)
    except ValueError as error:
        grouped_error = str(error)
disagreement = None
try:
    check_same_on_every_worker(strategy, "a test value", index)
except ValueError as error:
    disagreement = str(error)
result = {
    "history": history.history,
    "losses": record.losses,
    "trained_epochs": record.epochs,
    "trained_again": again,
    "digest": digest(model),
    "kernel": model.get_layer("conv1").get_weights()[0].ravel()[:50].tolist(),
    "chief": is_chief(strategy),
    "saved_to": str(saved),
    "saved_existed": saved_exists,
    "common_seed": common_seed,
    "grouped_error": grouped_error,
    "disagreement": disagreement,
    "replicas": 1 if strategy is None else int(strategy.num_replicas_in_sync),
}
Path(f"{settings['result']}-{index}.json").write_text(json.dumps(result))
