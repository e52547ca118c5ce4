"""MirroredStrategy runs over two logical CPU devices, in a process of their own.

TensorFlow fixes its logical devices when its runtime starts, so splitting the CPU in
two has to happen first thing in a fresh process. Usage::

    python _distribute_child.py compare        # prints one JSON line of results
    python _distribute_child.py cli ARGS...    # runs `lenet-mnist ARGS...`, exits with its status
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

_CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _CPU, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import make_tiny_data  # noqa: E402
from lenet_mnist import build_lenet, compile_model, train  # noqa: E402
from lenet_mnist.training.distribute import make_strategy  # noqa: E402

DEVICES = ["/cpu:0", "/cpu:1"]


def compare() -> dict[str, object]:
    data = make_tiny_data(n_train=256, n_test=64, seed=0)
    single = compile_model(build_lenet(seed=1))
    single_history = train(single, data, epochs=2, batch_size=32, seed=3, verbose=0)

    strategy = make_strategy("mirrored", devices=DEVICES)
    with strategy.scope():
        mirrored = compile_model(build_lenet(seed=1))
    mirrored_history = train(
        mirrored, data, epochs=2, batch_size=32, seed=3, verbose=0, strategy=strategy
    )
    kernel = mirrored.get_layer("conv1").kernel.value
    errors: dict[str, str] = {}
    try:
        train(mirrored, data, epochs=1, batch_size=33, verbose=0, strategy=strategy)
    except ValueError as error:
        errors["odd_batch"] = str(error)
    return {
        "replicas": int(strategy.num_replicas_in_sync),
        "mirrored_components": [v.device for v in strategy.experimental_local_results(kernel)],
        "single": single_history.history,
        "mirrored": mirrored_history.history,
        "prediction_agreement": float(
            np.mean(
                single.predict(data.test_images, verbose=0).argmax(1)
                == mirrored.predict(data.test_images, verbose=0).argmax(1)
            )
        ),
        # Per weight tensor: the size of the difference relative to the weights' size.
        "max_relative_weight_difference": max(
            float(np.linalg.norm(a - b) / np.linalg.norm(a))
            for a, b in zip(single.get_weights(), mirrored.get_weights(), strict=True)
        ),
        "errors": errors,
    }


def main() -> int:
    if sys.argv[1] == "compare":
        print(json.dumps(compare()), flush=True)
        return 0
    from lenet_mnist.cli import main as cli_main

    return cli_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
