"""Seconds per epoch on 1 vs N local workers of ``make_strategy("multi_worker")``.

Usage::

    python benchmarks/multiworker_probe.py --data DIR [--workers 2] [--recipe tutorial]
                                           [--epochs 2]

Starts ``--workers`` processes on this machine with a ``TF_CONFIG`` naming that many
``127.0.0.1`` ports (1: no ``TF_CONFIG``, no strategy) and trains the recipe's
network on the full MNIST in ``DIR`` with the recipe's global batch, timing every
epoch on every worker. Prints one JSON line: the seconds of each epoch (the slowest
worker's), the history and the load average before and after. The first epoch also
traces the step functions; compare the later ones. The Deploy page records what it
printed.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def worker(settings: dict[str, Any]) -> None:
    from lenet_mnist.training.distribute import make_strategy, strategy_scope

    strategy = make_strategy("multi_worker") if os.environ.get("TF_CONFIG") else None
    import keras

    from lenet_mnist import build_recipe_model, get_recipe, load_mnist, train

    class EpochTimes(keras.callbacks.Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.seconds.append(time.perf_counter() - self._start)

    recipe = get_recipe(settings["recipe"])
    data = load_mnist(settings["data"], download=False)
    with strategy_scope(strategy):
        model = build_recipe_model(recipe, seed=0)
    times = EpochTimes()
    history = train(
        model,
        data,
        epochs=settings["epochs"],
        seed=0,
        verbose=0,
        strategy=strategy,
        recipe=recipe,
        callbacks=[times],
    )
    print("RESULT " + json.dumps({"seconds": times.seconds, "history": history.history}))


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [int(sock.getsockname()[1]) for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="directory of the MNIST IDX files")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--recipe", default="tutorial")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    settings = {"data": args.data, "recipe": args.recipe, "epochs": args.epochs}
    ports = free_ports(args.workers)
    load_before = os.getloadavg()
    children = []
    for index in range(args.workers):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        env.pop("TF_CONFIG", None)
        if args.workers > 1:
            cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
            env["TF_CONFIG"] = json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            )
        children.append(
            subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(settings)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    results = []
    for child in children:
        output, _ = child.communicate(timeout=3600)
        lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
        if child.returncode != 0 or not lines:
            sys.exit(f"a worker failed (exit status {child.returncode}):\n{output[-3000:]}")
        results.append(json.loads(lines[-1].removeprefix("RESULT ")))
    seconds = [round(max(r["seconds"][e] for r in results), 1) for e in range(args.epochs)]
    summary = {
        "workers": args.workers,
        "recipe": args.recipe,
        "seconds_per_epoch": seconds,
        "val_accuracy": results[0]["history"]["val_accuracy"],
        "load_average_before": [round(x, 1) for x in load_before],
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker(json.loads(sys.argv[sys.argv.index("--worker") + 1]))
    else:
        main()
