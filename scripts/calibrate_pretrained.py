"""Fit the pretrained model's temperature and measure how well "not sure" flags work.

    LENET_MNIST_DATA=/path/to/mnist python scripts/calibrate_pretrained.py [--write]

1. The network's raw logits (the ``.keras`` file, without the shipped temperature) on
   MNIST training images 55,000-59,999 (the validation split held out from the training
   split) give the temperature (:func:`lenet_mnist.models.calibration.fit_temperature`).
2. The expected calibration error (15 bins) on the MNIST *test* split, before and after:
   reported only, nothing is chosen on it.
3. For thresholds on the top probability: the fraction of answers flagged "not sure" and
   the error rate among the rest, on the held-out training images and on the validation
   pictures of ``benchmarks/outside_digits.py`` (photos and small scans of the same
   held-out digits, the validation half of the typefaces) -- where the recommended
   threshold is read.

``--write`` stores the temperature in ``src/lenet_mnist/weights/robust.json``.
``scripts/train_pretrained.py`` calls :func:`calibrate` for a new model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))

from lenet_mnist import load_mnist, load_model, predict_digits  # noqa: E402
from lenet_mnist.models.calibration import (  # noqa: E402
    expected_calibration_error,
    fit_temperature,
    softmax,
)

WEIGHTS = ROOT / "src/lenet_mnist/weights/robust.keras"
CALIBRATION = ROOT / "src/lenet_mnist/weights/robust.json"
VALIDATION_FIRST = 55_000
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def flag_table(probabilities: np.ndarray, labels: np.ndarray) -> list[dict[str, float]]:
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == labels
    rows = []
    for threshold in THRESHOLDS:
        kept = confidence >= threshold
        rows.append(
            {
                "threshold": threshold,
                "flagged": round(float(1 - kept.mean()), 4),
                "error_among_rest": round(float(1 - right[kept].mean()), 4) if kept.any() else 0.0,
                "errors_caught": round(float((~right & ~kept).sum() / max(1, (~right).sum())), 4),
            }
        )
    return rows


def calibrate(weights: Path, data_dir: str | None, pictures: bool = True) -> dict[str, object]:
    data = load_mnist(data_dir, download=False)
    network = load_model(weights)
    val_x = data.train_images[VALIDATION_FIRST:]
    val_y = data.train_labels[VALIDATION_FIRST:].astype(np.int64)
    val_logits = predict_digits(network, val_x).logits
    test_logits = predict_digits(network, data.test_images).logits
    test_y = data.test_labels.astype(np.int64)
    temperature = fit_temperature(val_logits, val_y)
    result: dict[str, object] = {
        "temperature": round(temperature, 4),
        "test_accuracy": round(float((test_logits.argmax(axis=1) == test_y).mean()), 4),
        "fitted_on": f"MNIST training images {VALIDATION_FIRST}-59999 (raw logits of {weights.name})",
        "test_ece_15_bins_before": round(
            expected_calibration_error(softmax(test_logits), test_y), 5
        ),
        "test_ece_15_bins_after": round(
            expected_calibration_error(softmax(test_logits, temperature), test_y), 5
        ),
        "validation_ece_15_bins_before": round(
            expected_calibration_error(softmax(val_logits), val_y), 5
        ),
        "validation_ece_15_bins_after": round(
            expected_calibration_error(softmax(val_logits, temperature), val_y), 5
        ),
        "flags_heldout_training": flag_table(softmax(val_logits, temperature), val_y),
    }
    if pictures:
        import eval_handwriting as ev
        import outside_digits as od

        items = list(od.validation_samples(val_x[:, :, :, 0], val_y, 600, seed=1)) + list(
            od.font_samples("validation", per_digit=3, seed=2)
        )
        prepared, ok = ev.prepare_all(items, None)
        labels = np.array([s.label for s in items])
        logits = predict_digits(network, prepared[ok]).logits
        result["validation_pictures"] = int(ok.sum())
        result["validation_pictures_ece_15_bins_before"] = round(
            expected_calibration_error(softmax(logits), labels[ok]), 5
        )
        result["validation_pictures_ece_15_bins_after"] = round(
            expected_calibration_error(softmax(logits, temperature), labels[ok]), 5
        )
        result["flags_validation_pictures"] = flag_table(softmax(logits, temperature), labels[ok])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--weights", type=Path, default=WEIGHTS)
    parser.add_argument("--no-pictures", action="store_true", help="skip the picture sets")
    parser.add_argument("--write", action="store_true", help=f"write {CALIBRATION.name}")
    args = parser.parse_args()
    result = calibrate(args.weights, args.data_dir, pictures=not args.no_pictures)
    print(json.dumps(result, indent=1))
    if args.write:
        from lenet_mnist._util.atomic import atomic_write

        text = json.dumps(result, indent=1) + "\n"
        atomic_write(CALIBRATION, lambda path: path.write_text(text, encoding="utf-8"))
        print(f"wrote {CALIBRATION}")


if __name__ == "__main__":
    main()
