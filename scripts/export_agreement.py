"""Measure how often each exported model agrees with Keras on the 10,000 MNIST test digits.

For every network of ``build_lenet`` (``seed``, ``lenet5``, ``robust``, ``fast``), in
float32 and in bfloat16 mixed precision (as ``build_recipe_model`` builds it), the model
is exported to each format -- SavedModel, LiteRT float32, LiteRT int8 (calibrated on
500 training images), ONNX -- and run in the runtime a deployment would use
(``tf.saved_model.load``, ``ai_edge_litert``'s Interpreter, onnxruntime). The table gives
the share of test digits on which the exported model's predicted digit equals the Keras
model's (the one exported, in its own precision).

The models: ``robust`` is the shipped pretrained model; the others are trained for
``--epochs`` epochs (default 1; batch 128, seed 0) in float32. A bfloat16 model gets the same float32 weights,
built under the mixed policy.

Run::

    LENET_MNIST_DATA=/path/to/mnist python scripts/export_agreement.py [--variants seed fast] [--epochs 3]

It prints a reStructuredText table (docs/deploy.rst holds the measured one) and exits 1
if any agreement is below 99.9%.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import lenet_mnist as lm
from lenet_mnist.export import calibration_sample
from lenet_mnist.models import VARIANTS
from lenet_mnist.recipes import precision_policy

FORMATS = ("saved_model", "tflite", "tflite_int8", "onnx")
THRESHOLD = 0.999


def trained_float32(variant: str, data: lm.MnistData, epochs: int) -> object:
    """The float32 model of ``variant``: the pretrained one for robust, else trained."""
    if variant == "robust":
        return lm.pretrained()
    model = lm.compile_model(lm.build_lenet(variant, seed=0))
    lm.train(model, data, epochs=epochs, batch_size=128, seed=0, verbose=0)
    return model


def as_bfloat16(variant: str, model: object) -> object:
    """``variant`` built in bfloat16 mixed precision, holding ``model``'s weights."""
    with precision_policy(True):
        copy = lm.build_lenet(variant, seed=0)
    copy.set_weights(model.get_weights())  # type: ignore[attr-defined]
    return copy


def run_exported(path: Path, fmt: str, images: np.ndarray) -> np.ndarray:
    """The exported model's logits for ``images``, in its own runtime."""
    if fmt == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))
        out = loaded.signatures["serving_default"](image=tf.constant(images))
        return np.asarray(out["logits"])
    if fmt.startswith("tflite"):
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=str(path)).get_signature_runner("serving_default")
        return np.asarray(runner(image=images)["logits"])
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["logits"], {"image": images})[0])


def export(model: object, directory: Path, fmt: str, calibration: np.ndarray) -> Path:
    """Export ``model`` in ``fmt`` (``tflite_int8``: LiteRT int8) under ``directory``."""
    if fmt == "saved_model":
        return lm.export_model(model, directory / "saved")  # type: ignore[arg-type]
    if fmt == "tflite":
        return lm.export_model(model, directory / "m.tflite", "tflite")  # type: ignore[arg-type]
    if fmt == "tflite_int8":
        return lm.export_model(
            model,  # type: ignore[arg-type]
            directory / "q.tflite",
            "tflite",
            int8=True,
            calibration_images=calibration,
        )
    return lm.export_model(model, directory / "m.onnx", "onnx")  # type: ignore[arg-type]


def agreement_table(
    data: lm.MnistData, variants: list[str], epochs: int = 1, log: bool = True
) -> dict[tuple[str, str], dict[str, float]]:
    """``{(variant, precision): {format: agreement}}`` on the whole test split."""
    calibration = calibration_sample(data.train_images, 500)
    results: dict[tuple[str, str], dict[str, float]] = {}
    for variant in variants:
        float_model = trained_float32(variant, data, epochs)
        for precision in ("float32", "bfloat16"):
            model = float_model if precision == "float32" else as_bfloat16(variant, float_model)
            keras_digits = lm.predict_digits(model, data.test_images).digits  # type: ignore[arg-type]
            row = results.setdefault((variant, precision), {})
            row["accuracy"] = float(np.mean(keras_digits == data.test_labels))
            for fmt in FORMATS:
                start = time.perf_counter()
                with tempfile.TemporaryDirectory() as tmp:
                    path = export(model, Path(tmp), fmt, calibration)
                    logits = run_exported(path, fmt, data.test_images)
                row[fmt] = float(np.mean(logits.argmax(axis=1) == keras_digits))
                if log:
                    print(
                        f"{variant:7s} {precision:8s} {fmt:12s} {row[fmt]:.4f} "
                        f"({time.perf_counter() - start:.0f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=1, help="training epochs (not robust)")
    args = parser.parse_args(argv)
    directory = os.environ.get("LENET_MNIST_DATA")
    data = lm.load_mnist(directory, download=False)
    results = agreement_table(data, args.variants, args.epochs)
    header = ("variant", "precision", "Keras accuracy", *FORMATS)
    rows = [
        (
            variant,
            precision,
            f"{row['accuracy']:.2%}",
            *(f"{row[fmt]:.2%} ({round((1 - row[fmt]) * 10000)})" for fmt in FORMATS),
        )
        for (variant, precision), row in results.items()
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    rule = "  ".join("=" * w for w in widths)
    print(rule)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(rule)
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    print(rule)
    worst = min(row[fmt] for row in results.values() for fmt in FORMATS)
    return 0 if worst >= THRESHOLD else 1


if __name__ == "__main__":
    sys.exit(main())
