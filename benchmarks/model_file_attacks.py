"""Time and peak memory of refusing each hostile model file of issue 13.

Every attack class of ``tests/_hostile_models.py`` is built in a temporary directory
and loaded with ``lenet_mnist.load_model`` in a fresh interpreter that has already
imported TensorFlow, Keras and lenet_mnist; the load's wall time and its peak resident
memory above the size after those imports (Linux's VmHWM, reset just before the load)
are printed as a Markdown table. A few files that are *accepted* (at or near the
default limits) are measured the same way, for comparison.

Usage::

    python benchmarks/model_file_attacks.py [--only SUBSTRING] [--json results.json]

Linux only (it reads /proc/self/status). Each row costs one interpreter start
(~5 s here); the whole table takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import _hostile_models as hm


def _accepted() -> dict[str, tuple[Callable[[Path], Path], dict[str, int]]]:
    import keras

    import lenet_mnist as lm

    def chain(directory: Path) -> Path:
        inputs = keras.Input((1,))
        x = inputs
        for _ in range(255):  # 256 layers with the input: the default max_layers
            x = keras.layers.Dense(1)(x)
        return lm.save_model(keras.Model(inputs, x), directory / "chain-256.keras")

    def compiled_seed(directory: Path) -> Path:
        model = lm.compile_model(lm.build_lenet("seed", seed=0))
        return lm.save_model(model, directory / "seed-compiled.keras")

    def big_dense(directory: Path) -> Path:
        # 2895 x 2894 + 2894 = 8,381,024 parameters, a 33,530,xxx-byte file: just under
        # the default max_params (2**23) and max_bytes (32 MiB), about the largest
        # model they admit.
        inputs = keras.Input((2895,))
        model = keras.Model(inputs, keras.layers.Dense(2894)(inputs))
        return lm.save_model(model, directory / "dense-8M.keras")

    shipped = Path(lm.__file__).parent / "weights" / "robust.keras"
    return {
        "accepted: the shipped pretrained model (robust.keras)": (lambda _: shipped, {}),
        "accepted: the seed network, compiled (Adam state)": (compiled_seed, {}),
        "accepted: a 256-layer Dense chain (max_layers)": (chain, {}),
        "accepted: one 8.4 M-parameter Dense layer (32 MiB, the limits)": (big_dense, {}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="only rows whose name contains this")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    rows: dict[str, tuple[Callable[[Path], Path], dict[str, int]]] = {
        name: (attack.build, {}) for name, attack in hm.ATTACKS.items()
    }
    rows.update(_accepted())
    results = {}
    print("| file | outcome | time (s) | peak above import baseline (MiB) |")
    print("|---|---|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for index, (name, (build, limits)) in enumerate(rows.items()):
            if args.only and args.only not in name:
                continue
            directory = Path(tmp) / str(index)
            directory.mkdir()
            result = hm.measure_in_fresh_process(build(directory), **limits)
            results[name] = result
            kind, _ = result["outcome"]
            print(
                f"| {name} | {kind} | {result['seconds']:.3f} "
                f"| {result['peak_above_baseline'] / 2**20:.1f} |",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
