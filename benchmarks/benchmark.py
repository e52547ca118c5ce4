"""Benchmark: the tutorial's recipe against lenet-mnist's fast and best recipes, and inference.

One command measures, side by side on this machine::

    python benchmarks/benchmark.py [--quick] --output benchmarks/results.json

1. training, the tutorial's recipe unchanged vs the "fast" recipe: throughput (training
   images per second, steady-state epochs, evaluation excluded) and time to first reach
   99.0% test accuracy (wall time from the call to ``train``, tracing included; the
   tutorial validates at epoch ends only, so that is where it can be seen), median over
   seeds;
2. inference: ``predict_digits`` on one image (p50/p99 over 1,000 calls) and on the
   10,000 test images, against ``model.predict`` on the same model;
3. the "best" recipe: final test accuracy and training time.

Every training run is a fresh Python process, so each pays TensorFlow's start-up and
tracing alike and none inherits another's state. Needs the real MNIST (``--data-dir`` or
``$LENET_MNIST_DATA``). ``--quick`` is a smoke run (1 seed, 2 tutorial epochs, 1 best
epoch): its numbers are not the benchmark's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TARGET = 0.99
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


# ---------------------------------------------------------------------------- worker
def _worker(args: argparse.Namespace) -> dict[str, Any]:
    """One training run in this (fresh) process; returns its timings as a dict."""
    import keras

    import lenet_mnist as lm
    from lenet_mnist.recipes import build_recipe_model, get_recipe

    data = lm.load_mnist(args.data_dir, download=False)
    recipe = get_recipe(args.recipe)
    epochs = args.epochs or recipe.epochs
    model = build_recipe_model(recipe, seed=args.seed)
    epochs_log: list[dict[str, Any]] = []

    class Timer(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.begin = time.perf_counter()
            self.steps = 0
            self.last_step = self.begin

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.steps = batch + 1
            self.last_step = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            now = time.perf_counter()
            epochs_log.append(
                {
                    "epoch": epoch + 1,
                    "steps": self.steps,
                    "train_seconds": self.last_step - self.begin,
                    "end_seconds": now - start,
                    "val_accuracy": float((logs or {}).get("val_accuracy", float("nan"))),
                }
            )

    target = TARGET if args.target else None
    start = time.perf_counter()
    lm.train(
        model,
        data,
        recipe=recipe.name,
        epochs=epochs,
        seed=args.seed,
        verbose=0,
        target_accuracy=target,
        callbacks=[Timer()],
    )
    total = time.perf_counter() - start
    batch = recipe.batch_size
    count = len(data.train_images)
    # Steady state: every epoch after the first (which includes tracing); the last
    # epoch of a run stopped at the target is partial and its evaluations are
    # interleaved with training, so it is left out too.
    steady = [e for e in epochs_log[1:] if e["steps"] >= count // batch]
    if target is not None:
        steady = []
    images = sum(min(e["steps"] * batch, count) for e in steady)
    seconds = sum(e["train_seconds"] for e in steady)
    first = next((e for e in epochs_log if e["val_accuracy"] >= TARGET), None)
    if first is None:
        reached = None
    elif target is not None and not recipe.legacy_fit:
        reached = total  # stopped at the crossing: the whole call is the time to it
    else:
        reached = first["end_seconds"]
    return {
        "recipe": recipe.name,
        "variant": recipe.variant,
        "seed": args.seed,
        "epochs_run": len(epochs_log),
        "total_seconds": total,
        "throughput_images_per_second": images / seconds if seconds else None,
        "seconds_to_target": reached,
        "final_accuracy": epochs_log[-1]["val_accuracy"] if epochs_log else None,
        "best_accuracy": max((e["val_accuracy"] for e in epochs_log), default=None),
        "epochs": epochs_log,
    }


def _run_worker(
    data_dir: str, recipe: str, seed: int, *, epochs: int | None = None, target: bool = False
) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--worker",
        "--data-dir",
        data_dir,
        "--recipe",
        recipe,
        "--seed",
        str(seed),
    ]
    if epochs:
        command += ["--epochs", str(epochs)]
    if target:
        command.append("--target")
    print(
        f"  running: {recipe} seed={seed} epochs={epochs or 'recipe'} target={target}", flush=True
    )
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker failed ({' '.join(command)}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"    {result['total_seconds']:.1f} s, to 99.0%: {_fmt(result['seconds_to_target'], 's')}, "
        f"final {result['final_accuracy']:.4f}",
        flush=True,
    )
    return result


# ------------------------------------------------------------------------- inference
def _inference(data_dir: str, calls: int) -> dict[str, Any]:
    import numpy as np

    import lenet_mnist as lm
    from lenet_mnist.recipes import build_recipe_model

    data = lm.load_mnist(data_dir, download=False, normalize=False)
    results: dict[str, Any] = {}
    for recipe in ("tutorial", "fast"):
        # Latency and throughput do not depend on the weights' values: untrained
        # networks of the recipe's shape and precision measure the same.
        model = build_recipe_model(recipe, seed=0)
        one = data.test_images[:1]
        for _ in range(50):
            lm.predict_digits(model, one)
        times = []
        for _ in range(calls):
            begin = time.perf_counter()
            lm.predict_digits(model, one)
            times.append(time.perf_counter() - begin)
        keras_times = []
        scaled_one = one.astype(np.float32) / 255
        model.predict(scaled_one, verbose=0)
        for _ in range(30):
            begin = time.perf_counter()
            model.predict(scaled_one, verbose=0)
            keras_times.append(time.perf_counter() - begin)
        images = data.test_images
        scaled = images.astype(np.float32) / 255
        lm.predict_digits(model, images)
        ours, theirs = [], []
        for _ in range(5):
            begin = time.perf_counter()
            ours_result = lm.predict_digits(model, images)
            ours.append(time.perf_counter() - begin)
        for _ in range(3):
            begin = time.perf_counter()
            keras_logits = model.predict(scaled, verbose=0)
            theirs.append(time.perf_counter() - begin)
        agree = float(np.mean(ours_result.digits == np.argmax(keras_logits, axis=-1)))
        results[recipe] = {
            "variant": model.name,
            "one_image_calls": calls,
            "predict_digits_one_image_p50_ms": 1e3 * float(np.percentile(times, 50)),
            "predict_digits_one_image_p99_ms": 1e3 * float(np.percentile(times, 99)),
            "model_predict_one_image_p50_ms": 1e3 * float(np.percentile(keras_times, 50)),
            "predict_digits_10k_images_per_second": len(images) / statistics.median(ours),
            "model_predict_10k_images_per_second": len(images) / statistics.median(theirs),
            "same_digits_fraction": agree,
        }
        print(f"  {recipe} network: {json.dumps(results[recipe])}", flush=True)
    return results


# ---------------------------------------------------------------------------- report
def _machine() -> dict[str, Any]:
    import keras
    import tensorflow as tf

    cpu = "unknown"
    flags: set[str] = set()
    with Path("/proc/cpuinfo").open(encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    return {
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "load_average_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def _fmt(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "not reached" if value is None else f"{value:.{digits}f}{unit}"


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if len(present) == len(values) and present else None


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    base, fast = report["training"]["tutorial"], report["training"]["fast"]
    base_tput = _median([r["throughput_images_per_second"] for r in base["throughput_runs"]])
    fast_tput = _median([r["throughput_images_per_second"] for r in fast["throughput_runs"]])
    base_t = _median([r["seconds_to_target"] for r in base["target_runs"]])
    fast_t = _median([r["seconds_to_target"] for r in fast["target_runs"]])
    return {
        "tutorial_throughput": base_tput,
        "fast_throughput": fast_tput,
        "throughput_speedup": fast_tput / base_tput if base_tput and fast_tput else None,
        "tutorial_seconds_to_99": base_t,
        "fast_seconds_to_99": fast_t,
        "time_to_99_speedup": base_t / fast_t if base_t and fast_t else None,
        "fast_reached_99_every_seed": all(
            r["seconds_to_target"] is not None for r in fast["target_runs"]
        ),
    }


def _table(report: dict[str, Any]) -> str:
    s = report["summary"]
    inf = report["inference"]
    best = report["best"]
    m = report["machine"]
    rows = [
        ("Training", "tutorial recipe", "fast recipe"),
        (
            "throughput (train images/s)",
            _fmt(s["tutorial_throughput"], digits=0),
            _fmt(s["fast_throughput"], digits=0)
            + (f" ({s['throughput_speedup']:.1f}x)" if s["throughput_speedup"] else ""),
        ),
        (
            f"time to 99.0% test acc. (median of {len(report['training']['fast']['target_runs'])})",
            _fmt(s["tutorial_seconds_to_99"], " s"),
            _fmt(s["fast_seconds_to_99"], " s")
            + (f" ({s['time_to_99_speedup']:.1f}x)" if s["time_to_99_speedup"] else ""),
        ),
        (
            "  per seed",
            ", ".join(
                _fmt(r["seconds_to_target"], " s")
                for r in report["training"]["tutorial"]["target_runs"]
            ),
            ", ".join(
                _fmt(r["seconds_to_target"], " s")
                for r in report["training"]["fast"]["target_runs"]
            ),
        ),
        ("Inference", "predict_digits", "model.predict"),
    ]
    for name, values in inf.items():
        rows += [
            (
                f"  1 image, p50 / p99 ({values['variant']})",
                f"{values['predict_digits_one_image_p50_ms']:.3f} / "
                f"{values['predict_digits_one_image_p99_ms']:.3f} ms",
                f"{values['model_predict_one_image_p50_ms']:.1f} ms (p50)",
            ),
            (
                f"  10,000 images ({values['variant']})",
                f"{values['predict_digits_10k_images_per_second']:,.0f} img/s",
                f"{values['model_predict_10k_images_per_second']:,.0f} img/s",
            ),
        ]
        del name
    rows += [
        ("Best recipe", "final test accuracy", "training time"),
        (
            f"  {best['variant']}, {best['epochs_run']} epochs, seed {best['seed']}",
            f"{best['final_accuracy']:.4f} (best epoch {best['best_accuracy']:.4f})",
            f"{best['total_seconds']:.0f} s",
        ),
    ]
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, TensorFlow {m['tensorflow']}, Keras "
        f"{m['keras']}, {m['date_utc']} UTC, load average at start "
        f"{m['load_average_at_start'][0]:.1f}" + (" (QUICK smoke run)" if report["quick"] else ""),
        "",
        "| " + " | ".join(r.ljust(w) for r, w in zip(rows[0], width, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in width) + "|",
    ]
    for row in rows[1:]:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, width, strict=True)) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run, not the benchmark")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    parser.add_argument("--data-dir", default=os.environ.get("LENET_MNIST_DATA"))
    parser.add_argument("--seeds", type=int, default=None, help="fast-recipe seeds (default 3)")
    parser.add_argument(
        "--baseline-seeds", type=int, default=None, help="tutorial-recipe seeds (default 3)"
    )
    parser.add_argument("--calls", type=int, default=1000, help="one-image predict_digits calls")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--recipe", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--target", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.data_dir:
        parser.error("the real MNIST is needed: pass --data-dir or set LENET_MNIST_DATA")
    if args.worker:
        print(json.dumps(_worker(args)))
        return 0

    seeds = args.seeds or (1 if args.quick else 3)
    baseline_seeds = args.baseline_seeds or (1 if args.quick else 3)
    started = time.perf_counter()
    report: dict[str, Any] = {"quick": args.quick, "machine": _machine(), "training": {}}
    print(f"machine: {json.dumps(report['machine'])}", flush=True)

    print("1. training: the tutorial's recipe (10 epochs, unchanged)", flush=True)
    tutorial_epochs = 2 if args.quick else None
    tutorial_runs = [
        _run_worker(args.data_dir, "tutorial", seed, epochs=tutorial_epochs)
        for seed in range(baseline_seeds)
    ]
    report["training"]["tutorial"] = {
        "target_runs": tutorial_runs,
        "throughput_runs": tutorial_runs,
    }
    print("   the fast recipe, stopping at 99.0% test accuracy", flush=True)
    fast_target = [_run_worker(args.data_dir, "fast", seed, target=True) for seed in range(seeds)]
    print("   the fast recipe, all its epochs (throughput)", flush=True)
    fast_full = [_run_worker(args.data_dir, "fast", 0)]
    report["training"]["fast"] = {"target_runs": fast_target, "throughput_runs": fast_full}

    print("2. inference", flush=True)
    report["inference"] = _inference(args.data_dir, args.calls)

    print("3. the best recipe", flush=True)
    report["best"] = _run_worker(args.data_dir, "best", 0, epochs=1 if args.quick else None)

    report["summary"] = _summary(report)
    report["benchmark_seconds"] = time.perf_counter() - started
    table = _table(report)
    report["table"] = table
    print()
    print(table)
    print(f"\n(benchmark took {report['benchmark_seconds']:.0f} s)")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        temporary = args.output.with_name(args.output.name + ".tmp")
        temporary.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        temporary.replace(args.output)
        print(f"results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
