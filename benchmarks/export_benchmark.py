"""Size, latency and agreement of every export format, each run in its own runtime.

Usage::

    LENET_MNIST_DATA=/path/to/mnist python benchmarks/export_benchmark.py [--model M.keras]

Without ``--model`` it trains the seed network for one epoch (seed 0, batch 128) first.
Prints a Markdown table (the one on the documentation's Deploy page): file size, median
latency of one image (``--repeats`` single-image calls after a warm-up), the time per
image in batches of 1,000 (best of five), the agreement of the predicted
classes with the Keras model and the test accuracy (all 10,000 test images).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

Runner = Callable[[np.ndarray], np.ndarray]  # images -> logits


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def saved_model_runner(path: Path) -> Runner:
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    return lambda images: serve(image=tf.constant(images))["logits"].numpy()


def litert_runner(path: Path) -> Runner:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    return lambda images: runner(image=images)["logits"]


def onnx_runner(path: Path) -> Runner:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda images: session.run(["logits"], {"image": images})[0]


def measure(run: Runner, images: np.ndarray, repeats: int) -> tuple[float, float, np.ndarray]:
    one = images[:1]
    for _ in range(20):
        run(one)
    single = []
    for i in range(repeats):
        image = images[i % len(images)][None]
        start = time.perf_counter()
        run(image)
        single.append(time.perf_counter() - start)
    # Accuracy and agreement on the whole test set, in one call.
    logits = run(images)
    # Throughput: batches of 1,000, the best of five (least disturbed by other processes).
    batch = images[:1000]
    run(batch)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        run(batch)
        best = min(best, time.perf_counter() - start)
    per_image = best / len(batch)
    return statistics.median(single) * 1e3, per_image * 1e3, logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a .keras model; default: train one epoch first")
    parser.add_argument("--repeats", type=int, default=500, help="single-image calls timed")
    parser.add_argument("--calibration-images", type=int, default=1000)
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from lenet_mnist import build_lenet, compile_model, load_mnist, load_model, train
    from lenet_mnist.export import calibration_sample, export_model
    from lenet_mnist.inference import predict_digits

    data = load_mnist(download=False)
    if args.model:
        model = load_model(args.model)
        origin = args.model
    else:
        model = compile_model(build_lenet(seed=0))
        train(model, data, epochs=1, batch_size=128, seed=0, verbose=0)
        origin = "seed network, 1 epoch (seed 0, batch 128)"
    images = np.ascontiguousarray(data.test_images, dtype=np.float32)
    labels = data.test_labels

    def keras_runner(batch: np.ndarray) -> np.ndarray:
        return predict_digits(model, batch).logits

    rows = []
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        cal = calibration_sample(data.train_images, args.calibration_images)
        targets: list[tuple[str, Path | None, Callable[[Path], Runner] | None]] = [
            ("Keras (`predict_digits`; `.keras` file with optimizer state)", None, None),
            ("SavedModel", export_model(model, out / "saved_model"), saved_model_runner),
            ("LiteRT float32", export_model(model, out / "f.tflite", "tflite"), litert_runner),
            (
                "LiteRT int8",
                export_model(model, out / "q.tflite", "tflite", int8=True, calibration_images=cal),
                litert_runner,
            ),
            ("ONNX (onnxruntime)", export_model(model, out / "m.onnx", "onnx"), onnx_runner),
        ]
        keras_file = out / "m.keras"
        model.save(keras_file)
        load = os.getloadavg()[0]
        for name, path, make in targets:
            run = keras_runner if make is None or path is None else make(path)
            size = size_of(keras_file if path is None else path)
            single_ms, batch_ms, logits = measure(run, images, args.repeats)
            digits = logits.argmax(axis=1)
            if reference is None:
                reference = digits
            rows.append(
                (
                    name,
                    size,
                    single_ms,
                    batch_ms,
                    float(np.mean(digits == reference)),
                    float(np.mean(digits == labels)),
                )
            )

    print(
        f"Model: {origin}. TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {load:.1f} at the start of timing.\n"
    )
    print(
        "| format | size | 1 image (median) | per image, batch of 1,000 (best of 5) | agrees with Keras | test accuracy |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, size, single_ms, batch_ms, agree, accuracy in rows:
        print(
            f"| {name} | {size / 1024:,.0f} KiB | {single_ms:.3f} ms | {batch_ms * 1e3:.1f} µs "
            f"| {agree:.2%} | {accuracy:.2%} |"
        )


if __name__ == "__main__":
    main()
