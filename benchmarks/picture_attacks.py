"""Cost of every attack class on picture reading: time and peak memory, one table.

    PYTHONPATH=src python benchmarks/picture_attacks.py

Each hostile (or legitimately large) picture is built in a temporary directory by
``tests/_hostile_pictures.py`` -- the same files tests/test_picture_safety.py refuses --
and given to ``lenet_mnist.prepare_image`` in a fresh Python process. The table shows
the outcome, the wall and CPU time of the call and its peak RSS (``VmHWM``, reset just
before the call) above the RSS after importing lenet_mnist and TensorFlow, against the
issue's bound of 2 s and 256 MiB. Wall times depend on what else the machine runs; CPU
times (all threads) much less, so the bound is checked on CPU time. Exit status 1 when
an outcome is not the expected one or a bound is exceeded.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _hostile_pictures import ATTACKS, measure


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, build, expected, _ in ATTACKS:
            directory = Path(tmp) / name
            directory.mkdir()
            result = measure(build(directory))
            rows.append((name, expected, result))
            print(
                f"{name:40s} {result['outcome']:18s} {result['seconds']:6.2f} s "
                f"{result['cpu_seconds']:6.2f} s cpu "
                f"{result['peak_mib']:7.1f} MiB",
                file=sys.stderr,
            )
    print(
        "| attack class | expected | outcome | wall time (s) | CPU time (s) "
        "| peak RSS above baseline (MiB) |"
    )
    print("| --- | --- | --- | ---: | ---: | ---: |")
    worst_time = worst_mib = 0.0
    failures = 0
    for name, expected, result in rows:
        ok = result["outcome"] == expected
        failures += not ok
        worst_time = max(worst_time, result["cpu_seconds"])
        worst_mib = max(worst_mib, result["peak_mib"])
        outcome = result["outcome"] if ok else f"**{result['outcome']}**"
        print(
            f"| {name} | {expected} | {outcome} | {result['seconds']:.2f} | "
            f"{result['cpu_seconds']:.2f} | {result['peak_mib']:.0f} |"
        )
    print(
        f"\nworst: {worst_time:.2f} s of CPU time, {worst_mib:.0f} MiB; "
        f"unexpected outcomes: {failures}"
    )
    return 1 if failures or worst_time > 2 or worst_mib > 256 else 0


if __name__ == "__main__":
    raise SystemExit(main())
