"""Accuracy on handwritten digits from outside MNIST, per source and per digit.

    LENET_MNIST_DATA=/path/to/mnist python scripts/eval_handwriting.py --sets report
    LENET_MNIST_DATA=/path/to/mnist python scripts/eval_handwriting.py --sets validation \
        --ablate

``--sets report`` measures the report sets of ``benchmarks/outside_digits.py``
(scikit-learn's 8x8 digits as arrays and as 176x176 pictures, the report half of the
handwriting typefaces): numbers to REPORT, never to choose anything with.
``--sets validation`` measures the validation sets (MNIST training digits 55,000-59,999
as photos and small scans, the other half of the typefaces): the ones ``prepare_image``'s
steps were chosen on; ``--ablate`` runs it once per step switched off. ``--sets mnist-test-photos`` measures
the 1,000 photo-like pictures of MNIST test digits of ``tests/test_pretrained.py``. A picture that
``prepare_image`` refuses counts as wrong. Needs scikit-learn and Pillow (report sets)
and the fonts named in ``benchmarks/outside_digits.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import outside_digits as od  # noqa: E402

from lenet_mnist import ImageError, load_mnist, load_model, predict_digits, pretrained  # noqa: E402
from lenet_mnist.images import prepare as prepare_module  # noqa: E402

VALIDATION_FIRST = 55_000  # MNIST training images held out for validation and calibration


def samples(which: str, data_dir: str | None, count: int) -> list[od.Sample]:
    out: list[od.Sample] = []
    if which in ("validation", "all"):
        data = load_mnist(data_dir, download=False)
        images = data.train_images[VALIDATION_FIRST:, :, :, 0]
        labels = data.train_labels[VALIDATION_FIRST:]
        out += od.validation_samples(images, labels, count, seed=1)
        out += od.font_samples("validation", per_digit=3, seed=2)
    if which in ("report", "all"):
        out += od.sklearn_samples()
        out += od.font_samples("report", per_digit=5, seed=3)
    if which == "mnist-test-photos":
        # The 1,000 photo-like pictures of MNIST test digits of tests/test_pretrained.py.
        data = load_mnist(data_dir, download=False)
        rng = np.random.default_rng(5)
        picks = rng.choice(len(data.test_images), size=1000, replace=False)
        for index in picks:
            style = od.random_style(rng)
            picture = od.photo(data.test_images[index], style, rng)
            out.append(od.Sample("mnist-test-photos", picture, int(data.test_labels[index])))
    return out


def prepare_all(items: list[od.Sample], steps: object | None) -> tuple[np.ndarray, np.ndarray]:
    prepared = np.zeros((len(items), 28, 28), np.float32)
    ok = np.zeros(len(items), bool)
    for i, sample in enumerate(items):
        try:
            if steps is None:
                prepared[i] = prepare_module.prepare_image(sample.image)
            else:
                image = sample.image
                pixels = prepare_module._decode(image) if isinstance(image, bytes) else image
                prepared[i] = prepare_module._prepare(pixels, steps)  # type: ignore[call-arg]
            ok[i] = True
        except ImageError:
            pass
    return prepared, ok


def score(items: list[od.Sample], model: object, steps: object | None) -> dict[str, object]:
    prepared, ok = prepare_all(items, steps)
    digits = predict_digits(model, prepared).digits  # type: ignore[arg-type]
    labels = np.array([s.label for s in items])
    right = (digits == labels) & ok
    by_source: dict[str, list[int]] = defaultdict(list)
    for i, sample in enumerate(items):
        by_source[sample.source].append(i)
    result: dict[str, object] = {}
    for source, index_list in by_source.items():
        index = np.array(index_list)
        per_digit = {
            str(d): round(float(right[index][labels[index] == d].mean()), 4)
            for d in range(10)
            if (labels[index] == d).any()
        }
        result[source] = {
            "n": len(index),
            "accuracy": round(float(right[index].mean()), 4),
            "refused": int((~ok[index]).sum()),
            "per_digit": per_digit,
        }
    result["all"] = {"n": len(items), "accuracy": round(float(right.mean()), 4)}
    return result


def table(name: str, result: dict[str, object]) -> str:
    lines = [
        f"## {name}",
        "| source | n | accuracy | refused | " + " | ".join(map(str, range(10))) + " |",
    ]
    lines.append("|---" * 14 + "|")
    for source, r in result.items():
        if source == "all":
            continue
        if not isinstance(r, dict):
            continue
        digits = " | ".join(
            f"{100 * r['per_digit'].get(str(d), float('nan')):.1f}" for d in range(10)
        )
        lines.append(
            f"| {source} | {r['n']} | {100 * r['accuracy']:.2f}% | {r['refused']} | {digits} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sets", choices=["validation", "report", "all", "mnist-test-photos"], default="report"
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--model", type=Path, default=None, help="a .keras file (default: pretrained)"
    )
    parser.add_argument("--count", type=int, default=600, help="validation pictures per kind")
    parser.add_argument("--ablate", action="store_true", help="also each step switched off")
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args()

    model = pretrained() if args.model is None else load_model(args.model)
    items = samples(args.sets, args.data_dir, args.count)
    results: dict[str, object] = {}
    started = time.perf_counter()
    results["shipped"] = score(items, model, None)
    print(table("prepare_image as shipped", results["shipped"]))  # type: ignore[arg-type]
    steps_type = getattr(prepare_module, "PrepareSteps", None)
    if args.ablate and steps_type is not None:
        default = steps_type()
        for field in fields(default):
            value = getattr(default, field.name)
            if not isinstance(value, bool) or not value:
                continue
            name = f"without {field.name}"
            results[name] = score(items, model, replace(default, **{field.name: False}))
            print(table(name, results[name]))  # type: ignore[arg-type]
    print(f"{len(items)} pictures, {time.perf_counter() - started:.0f} s")
    if args.output is not None:
        args.output.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
