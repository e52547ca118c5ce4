"""Does lenet-mnist's ``train`` work under MultiWorkerMirroredStrategy? Two workers on localhost.

Usage::

    python benchmarks/multiworker_probe.py

Starts two worker processes with a ``TF_CONFIG`` naming two ``127.0.0.1`` ports; each
creates ``tf.distribute.MultiWorkerMirroredStrategy()``, builds and compiles the seed
network in its scope and trains two epochs on 256 synthetic images. Prints each
worker's outcome: its history, or the last lines of its traceback. The Deploy page
records what it printed (Keras 3.15.1: both fail in ``Model.fit``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path


def worker() -> None:
    import keras
    import tensorflow as tf

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import make_tiny_data
    from lenet_mnist import build_lenet, compile_model, train

    keras.config.disable_traceback_filtering()
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    print(f"replicas in sync: {strategy.num_replicas_in_sync}", flush=True)
    data = make_tiny_data(n_train=256, n_test=64)
    with strategy.scope():
        model = compile_model(build_lenet(seed=1))
    history = train(model, data, epochs=2, batch_size=32, seed=3, verbose=0)
    print("history: " + json.dumps(history.history), flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    children = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(config), "TF_CPP_MIN_LOG_LEVEL": "3"}
        children.append(
            subprocess.Popen(
                [sys.executable, __file__, "--worker"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    for index, child in enumerate(children):
        output, _ = child.communicate(timeout=600)
        lines = [line for line in output.splitlines() if line.strip()]
        print(f"--- worker {index}: exit status {child.returncode}")
        keep = [line for line in lines if line.startswith(("replicas", "history"))]
        errors = [line for line in lines if "Error" in line]
        print("\n".join(keep + errors[-1:]))


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker()
    else:
        main()
