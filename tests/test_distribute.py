"""Data-parallel training: MirroredStrategy over two logical CPUs matches one device.

The two-device runs happen in a child process (``_distribute_child.py``), because
TensorFlow's logical devices can only be configured before its runtime starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from lenet_mnist import build_lenet, compile_model, train
from lenet_mnist.training.distribute import check_model_strategy, make_strategy, strategy_scope

CHILD = Path(__file__).with_name("_distribute_child.py")


def _child(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, str(CHILD), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def test_mirrored_on_two_cpus_matches_one_device() -> None:
    result = _child("compare")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    # The variables really are mirrored, one copy per logical CPU.
    assert [d.rsplit(":", 1)[-1] for d in report["mirrored_components"]] == ["0", "1"]
    single, mirrored = report["single"], report["mirrored"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        # Same data order, same initial weights: only the order of float additions differs.
        np.testing.assert_allclose(mirrored[key], single[key], rtol=1e-3, atol=1e-4, err_msg=key)
    assert single["val_accuracy"][-1] > 0.5  # it learned something, so the match means something
    # Adam divides by the gradients' running size, which magnifies the last-bit differences of
    # a changed summation order in single weights (measured: at most 0.5% of a tensor's
    # norm); the predictions do not change.
    assert report["max_relative_weight_difference"] < 0.02, report["max_relative_weight_difference"]
    assert report["prediction_agreement"] == 1.0
    assert "multiple of the strategy's 2 replicas, got 33" in report["errors"]["odd_batch"]


@pytest.mark.slow
def test_cli_train_distribute_mirrored(real_data_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "mirrored.keras"
    result = _child(
        "cli", "train", "--distribute", "mirrored", "--epochs", "1", "--batch-size", "256",
        "--seed", "0", "--quiet", "--data-dir", str(real_data_dir), "--no-download",
        "--output", str(output),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trained on 2 replicas (mirrored)" in result.stdout
    accuracy = float(result.stdout.split("test accuracy: ")[1].split()[0])
    assert accuracy > 0.9
    assert output.is_file()


def test_model_created_outside_the_scope_is_refused(tiny_data) -> None:
    strategy = make_strategy("mirrored", devices=["/cpu:0"])
    model = compile_model(build_lenet(seed=0))
    with pytest.raises(ValueError, match=r"inside strategy\.scope\(\).*created outside it"):
        train(model, tiny_data, epochs=1, verbose=0, strategy=strategy)
    with pytest.raises(ValueError, match="created outside it"):
        check_model_strategy(model, strategy)


def test_bad_strategy_arguments(tiny_data) -> None:
    with pytest.raises(ValueError, match=r"unknown strategy.*got 'multiworker'"):
        make_strategy("multiworker")
    with pytest.raises(ValueError, match="at least one device, got an empty sequence"):
        make_strategy("mirrored", devices=[])
    with pytest.raises(TypeError, match="devices must be a sequence of device names"):
        make_strategy("mirrored", devices="/cpu:0")
    with pytest.raises(TypeError, match=r"strategy must be a tf\.distribute\.Strategy, got str"):
        strategy_scope("mirrored")  # type: ignore[arg-type]
    model = compile_model(build_lenet(seed=0))
    with pytest.raises(TypeError, match=r"strategy must be a tf\.distribute\.Strategy, got str"):
        train(model, tiny_data, epochs=1, verbose=0, strategy="mirrored")  # type: ignore[arg-type]
    assert isinstance(make_strategy("mirrored"), tf.distribute.MirroredStrategy)
