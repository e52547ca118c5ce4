"""Issue 15: ``train(..., seed=S, deterministic=True)`` needs seeded *initial* weights.

The library's builders record the seed of a model's initial weights; a deterministic run
refuses a model built without one (its weights differ in every process), accepts one
loaded from a file, and warns about a model of unknown origin. The runs that compare
weights happen in child processes: op determinism is global and irreversible.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import lenet_mnist as lm
from conftest import make_tiny_data
from lenet_mnist.models.provenance import FROM_FILE, UNKNOWN, weights_origin
from lenet_mnist.training.determinism import check_seeded_model

CHILD = Path(__file__).with_name("_training_child.py")
UNSEEDED = "a deterministic run needs seeded initial weights"


def _child(out: Path, **overrides: Any) -> subprocess.CompletedProcess[str]:
    spec = {
        "out": str(out),
        "epochs": 1,
        "seed": 5,
        "deterministic": True,
        "checkpoint_dir": None,
        "n_train": 128,
        "stall": None,
        **overrides,
    }
    return subprocess.run(
        [sys.executable, str(CHILD), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"},
        check=False,
    )


@pytest.mark.slow  # three TensorFlow processes
def test_seeded_models_repeat_across_processes_and_unseeded_ones_are_refused(
    tmp_path: Path,
) -> None:
    runs = [_child(tmp_path / name) for name in ("a", "b")]
    for run in runs:
        assert run.returncode == 0, run.stderr
    a, b = (np.load(tmp_path / name / "weights.npz") for name in ("a", "b"))
    assert a.files == b.files
    for key in a.files:
        assert np.array_equal(a[key], b[key])
    refused = _child(tmp_path / "c", model_seed=None)
    assert refused.returncode != 0
    assert f"ValueError: {UNSEEDED}" in refused.stderr
    assert "build the model with seed=S" in refused.stderr
    assert not (tmp_path / "c").exists()


def test_builders_record_the_seed_of_the_initial_weights(tmp_path: Path) -> None:
    assert weights_origin(lm.build_lenet(seed=3)) == 3
    assert weights_origin(lm.build_lenet()) is None
    assert weights_origin(lm.build_recipe_model("fast", seed=4)) == 4
    assert weights_origin(lm.LeNet(seed=6)) == 6
    assert weights_origin(lm.LeNet()) is None
    path = lm.save_model(lm.build_lenet(), tmp_path / "m.keras")
    assert weights_origin(lm.load_model(path)) == FROM_FILE
    assert weights_origin(keras.Sequential([keras.layers.Dense(1)])) == UNKNOWN


def test_lenet_seed_gives_the_same_initial_weights() -> None:
    first, second = (lm.LeNet(seed=9).get_weights() for _ in range(2))
    for x, y in zip(first, second, strict=True):
        assert np.array_equal(x, y)
    with pytest.raises(ValueError, match=r"seed must lie in 0 \.\. 2\*\*32 - 1, got -1"):
        lm.LeNet(seed=-1)


def test_a_deterministic_run_refuses_an_unseeded_model_before_any_work() -> None:
    # Refused before op determinism (global) is switched on, so safe in this process.
    model = lm.compile_model(lm.build_lenet())
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match=rf"^{UNSEEDED} .*got a model built without a seed$"):
        lm.train(model, make_tiny_data(8, 8), epochs=1, seed=1, deterministic=True, verbose=0)
    for x, y in zip(before, model.get_weights(), strict=True):
        assert np.array_equal(x, y)


def test_a_model_of_unknown_origin_is_warned_about() -> None:
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    with pytest.warns(UserWarning, match="whether its initial weights were seeded is unknown"):
        check_seeded_model(model)
    check_seeded_model(lm.build_lenet(seed=1))  # no warning (warnings are errors)
