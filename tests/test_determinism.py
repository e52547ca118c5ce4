"""Repeatable training: ``train(..., seed=S, deterministic=True)`` in two separate processes
gives bit-identical weights and history.

Measured on this project's 2-core CPU machine (TensorFlow 2.21, oneDNN on by default):
two processes agree bit for bit with or without ``deterministic=True`` and with or
without ``TF_ENABLE_ONEDNN_OPTS=0``, but the result depends on the thread count and on
the oneDNN setting (runs with 2 vs 16 intra-op threads, or oneDNN on vs off, differ by
~1e-7). So the promise is: same seed, data, versions, machine and thread settings. The
runs happen in child processes because ``enable_op_determinism`` is global and
irreversible and must not leak into the rest of the test session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import make_tiny_data
from lenet_mnist import build_lenet, compile_model, train

CHILD = Path(__file__).with_name("_training_child.py")


def _start(out: Path) -> subprocess.Popen[str]:
    spec = {
        "out": str(out),
        "epochs": 2,
        "seed": 11,
        "deterministic": True,
        "checkpoint_dir": None,
        "n_train": 512,
        "stall": None,
    }
    return subprocess.Popen(
        [sys.executable, str(CHILD), json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"},
    )


@pytest.mark.slow  # two TensorFlow processes
def test_two_processes_give_bit_identical_weights_and_history(tmp_path: Path) -> None:
    children = [_start(tmp_path / name) for name in ("a", "b")]
    for child in children:
        _, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
    results = []
    for name in ("a", "b"):
        weights = np.load(tmp_path / name / "weights.npz")
        history = json.loads((tmp_path / name / "history.json").read_text())
        results.append(([weights[key] for key in weights.files], history))
    (weights_a, history_a), (weights_b, history_b) = results
    assert history_a == history_b
    assert len(history_a["loss"]) == 2
    assert len(weights_a) == len(weights_b) == 8
    for a, b in zip(weights_a, weights_b, strict=True):
        assert a.dtype == b.dtype
        assert np.array_equal(a, b)
    # Guard against comparing two untrained copies of the initial weights.
    initial = build_lenet(seed=11).get_weights()
    assert not np.array_equal(weights_a[0], initial[0])


def test_different_seeds_give_different_weights() -> None:
    data = make_tiny_data(64, 16)
    weights = []
    for seed in (1, 2):
        model = compile_model(build_lenet(seed=0))
        train(model, data, epochs=1, seed=seed, verbose=0)
        weights.append(model.get_weights())
    assert not np.array_equal(weights[0][0], weights[1][0])
