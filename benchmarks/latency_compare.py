"""One-image ``predict_digits`` latency of two source trees, measured in one run.

Each tree runs in its own process (``PYTHONPATH=<tree>/src``), alternately, several
rounds, so both see the same machine load. Each process builds the ``seed`` and the
bfloat16 ``fast`` networks, warms up, then times single-image predictions.

    python benchmarks/latency_compare.py --tree before=/path/to/old --tree after=.

prints a table of p50 / p99 per tree and network, and the median over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import json, sys, time
import numpy as np
import lenet_mnist as lm

count = int(sys.argv[1])
results = {}
for variant, recipe in (("seed", "tutorial"), ("fast", "fast")):
    model = lm.build_recipe_model(recipe, seed=0)
    image = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    for _ in range(200):
        lm.predict_digits(model, image)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        lm.predict_digits(model, image)
        times.append(time.perf_counter() - start)
    times.sort()
    results[variant] = [1e3 * times[len(times) // 2], 1e3 * times[int(len(times) * 0.99)]]
print(json.dumps(results))
"""


def _measure(tree: Path, count: int) -> dict[str, list[float]]:
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(count)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    result: dict[str, list[float]] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--count", type=int, default=3000, help="timed predictions per network")
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    trees = dict(item.split("=", 1) for item in args.tree)
    rounds: dict[str, list[dict[str, list[float]]]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, path in trees.items():
            rounds[name].append(_measure(Path(path).resolve(), args.count))
    summary: dict[str, dict[str, dict[str, float]]] = {}
    print(
        f"{'tree':<10} {'network':<8} {'p50 ms (median of rounds)':>26} {'p99 ms':>8}  rounds p50"
    )
    for name, results in rounds.items():
        summary[name] = {}
        for variant in ("seed", "fast"):
            p50s = [r[variant][0] for r in results]
            p99s = [r[variant][1] for r in results]
            summary[name][variant] = {
                "p50_ms": statistics.median(p50s),
                "p99_ms": statistics.median(p99s),
            }
            each = ", ".join(f"{v:.3f}" for v in p50s)
            print(
                f"{name:<10} {variant:<8} {statistics.median(p50s):>26.3f} "
                f"{statistics.median(p99s):>8.3f}  {each}"
            )
    if args.output:
        args.output.write_text(json.dumps({"rounds": rounds, "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
