"""Two worker processes on 127.0.0.1 training together with MultiWorkerMirroredStrategy.

Each worker is ``tests/_multiworker_worker.py`` with its own ``TF_CONFIG``; every
process has a timeout, so a hung cluster fails the test instead of blocking CI.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lenet_mnist.training.multiworker import chief_write_path, is_chief, read_tf_config

WORKER = Path(__file__).resolve().parent / "_multiworker_worker.py"
SRC = Path(__file__).resolve().parents[1] / "src"
TIMEOUT = 150  # seconds per process; a run here takes 10-30 s on 2 shared cores


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def env_for(index: int | None, ports: list[int]) -> dict[str, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    env.pop("TF_CONFIG", None)
    if index is not None:
        cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
        env["TF_CONFIG"] = json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}}
        )
    return env


def start(settings: dict[str, Any], workers: int) -> list[subprocess.Popen[str]]:
    ports = free_ports(workers)
    indices: list[int | None] = list(range(workers)) if workers > 1 else [None]
    return [
        subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(settings)],
            env=env_for(index, ports),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in indices
    ]


def finish(children: list[subprocess.Popen[str]]) -> None:
    outputs = []
    try:
        for child in children:
            outputs.append(child.communicate(timeout=TIMEOUT)[0])
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    for child, output in zip(children, outputs, strict=True):
        assert child.returncode == 0, output[-3000:]


def results(settings: dict[str, Any], workers: int) -> list[dict[str, Any]]:
    return [
        json.loads(Path(f"{settings['result']}-{index}.json").read_text())
        for index in range(workers)
    ]


def run(settings: dict[str, Any], workers: int) -> list[dict[str, Any]]:
    finish(start(settings, workers))
    return results(settings, workers)


def data_settings() -> dict[str, Any]:
    # The real digits when CI provides them: accuracy after one epoch is then far from
    # both 0 and 1, so a difference would show.
    real = os.environ.get("LENET_MNIST_DATA")
    if real and Path(real).is_dir():
        return {"data": real, "n_train": 2048, "n_test": 1000}
    return {"data": "tiny", "n_train": 512, "n_test": 256}


@pytest.mark.slow
def test_two_workers_train_like_one_and_only_the_chief_writes(tmp_path: Path) -> None:
    base = {**data_settings(), "epochs": 1, "batch_size": 32}
    two = {**base, "output": str(tmp_path / "two" / "model.keras"), "result": str(tmp_path / "two")}
    one = {**base, "output": str(tmp_path / "one" / "model.keras"), "result": str(tmp_path / "one")}
    children = start(two, 2) + start(one, 1)
    finish(children)
    chief, other = results(two, 2)
    (alone,) = results(one, 1)

    assert chief["replicas"] == other["replicas"] == 2
    assert alone["replicas"] == 1
    assert chief["chief"]
    assert not other["chief"]
    # Only the chief's model exists; the other worker's went to a scratch dir, now gone.
    assert chief["saved_to"] == two["output"]
    assert Path(two["output"]).is_file()
    assert other["saved_existed"]
    assert not Path(other["saved_to"]).exists()
    assert [p.name for p in (tmp_path / "two").iterdir()] == ["model.keras"]
    # Both workers end with the same weights and history.
    assert chief["digest"] == other["digest"]
    assert chief["history"] == other["history"]
    # The same run as one worker with the same global batch: per-step loss (the first
    # five steps on the same batches) and the epoch's test accuracy and loss agree to
    # float32 rounding of the all-reduce's different summation order.
    np.testing.assert_allclose(chief["losses"], alone["losses"], rtol=1e-5)
    np.testing.assert_allclose(chief["kernel"], alone["kernel"], atol=1e-5)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(chief["history"][key], alone["history"][key], rtol=1e-4)
    assert 0.2 < alone["history"]["val_accuracy"][0] <= 1.0
    # Keras's grouped steps fail under the strategy: refused before any work.
    for worker in (chief, other):
        assert worker["grouped_error"] == (
            "multi-worker training runs one step per execution (Keras's grouped steps fail "
            "under MultiWorkerMirroredStrategy); compile with it, got steps_per_execution=2"
        )
    # Unseeded workers share one batch order; workers that disagree all refuse at once.
    assert chief["common_seed"] == other["common_seed"] == 1000
    assert alone["common_seed"] == 1000
    assert alone["disagreement"] is None
    assert chief["disagreement"] == (
        "the workers disagree on a test value (every worker must see the same checkpoint "
        "directory, e.g. on a shared filesystem), got 0 on this worker"
    )
    assert other["disagreement"] is not None
    assert other["disagreement"].endswith("got 1 on this worker")


@pytest.mark.slow
def test_a_cluster_that_lost_a_worker_resumes_and_finishes_with_the_uninterrupted_weights(
    tmp_path: Path,
) -> None:
    from lenet_mnist.training.checkpoint import load_checkpoint

    checkpoints = tmp_path / "checkpoints"
    base = {"data": "tiny", "n_train": 1024, "n_test": 128, "epochs": 3, "batch_size": 32}
    run_settings = {
        **base,
        "checkpoint_dir": str(checkpoints),
        "output": str(tmp_path / "model.keras"),
        "result": str(tmp_path / "run"),
    }
    straight_settings = {
        **base,
        "output": str(tmp_path / "straight.keras"),
        "result": str(tmp_path / "straight"),
    }
    # The same run uninterrupted and without checkpoints, on a cluster of its own.
    straight_children = start(straight_settings, 2)
    # A pause at the start of epoch 2 leaves time to kill a worker after checkpoint 1.
    children = start({**run_settings, "pause_from_epoch": 1, "pause_seconds": 10}, 2)
    try:
        deadline = time.monotonic() + TIMEOUT
        while load_checkpoint(checkpoints) is None:
            assert time.monotonic() < deadline, "no checkpoint written in time"
            assert all(c.poll() is None for c in children), children[0].communicate()[0][-3000:]
            time.sleep(0.2)
        assert all(c.poll() is None for c in children)
        children[1].send_signal(signal.SIGKILL)
        # The survivor cannot go on alone: TensorFlow aborts its collective ops.
        survivor_output = children[0].communicate(timeout=TIMEOUT)[0]
    finally:
        for child in children:
            child.kill()
            child.communicate(timeout=TIMEOUT)
    assert children[1].returncode == -signal.SIGKILL
    assert children[0].returncode == 1
    # "tasks are unhealthy (stopped sending heartbeats)" or "Connection reset by peer".
    assert "UnavailableError" in survivor_output
    state = load_checkpoint(checkpoints)
    assert state is not None
    assert state.epoch == 1
    # The killed worker's scratch checkpoint stays behind (nothing runs on SIGKILL).
    key = hashlib.sha256(os.fsencode(checkpoints.resolve())).hexdigest()[:16]
    leftover = Path(os.environ["LENET_MNIST_CACHE"]) / "worker-scratch" / f"worker-1-{key}"
    assert (leftover / "checkpoints" / "latest.json").is_file()
    assert not (tmp_path / "model.keras").exists()

    # Restart both (on new ports): they resume after epoch 1 and finish; a second
    # train() of the finished run in the same processes does not train again.
    resumed, resumed_other = run({**run_settings, "train_again": True}, 2)
    assert resumed["trained_epochs"] == resumed_other["trained_epochs"] == [1, 2]
    assert resumed["trained_again"] == resumed_other["trained_again"] == []
    assert len(resumed["history"]["loss"]) == 3
    assert (tmp_path / "model.keras").is_file()
    # The restarted worker removed it.
    assert not leftover.exists()
    # Only the chief wrote checkpoints: one, in the shared directory.
    final = load_checkpoint(checkpoints)
    assert final is not None
    assert final.epoch == 3
    assert [p.name for p in checkpoints.iterdir() if p.name.startswith("checkpoint-")] == [
        final.path.name
    ]

    finish(straight_children)
    straight, _ = results(straight_settings, 2)
    # Bit-identical weights and history to the uninterrupted run.
    assert straight["digest"] == resumed["digest"] == resumed_other["digest"]
    assert straight["history"] == resumed["history"]


def _config(**task: object) -> str:
    return json.dumps({"cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]}, "task": task})


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "needs the TF_CONFIG environment variable.*got an empty one"),
        ("{not json", "must be JSON, got"),
        ("[]", 'must be an object with "cluster" and "task", got list'),
        ('{"task": {"type": "worker", "index": 0}}', 'must have "cluster" and "task", got keys'),
        (_config(type="worker", index=2), r"task.index must be an integer in 0..1, got 2"),
        (_config(type="worker", index=True), r"task.index must be an integer in 0..1, got True"),
        (
            _config(type="ps", index=0),
            r"task.type must be a job of the cluster \['worker'\], got 'ps'",
        ),
        (_config(type="worker"), "task must be"),
        (
            json.dumps({"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}),
            r"takes only \['chief', 'worker'\] jobs, got \['ps'\]",
        ),
        (
            json.dumps({"cluster": {"worker": ["nohost"]}, "task": {"type": "worker", "index": 0}}),
            r"cluster.worker\[0\] must be a 'host:port' string, got 'nohost'",
        ),
        (
            json.dumps(
                {"cluster": {"worker": ["h:99999"]}, "task": {"type": "worker", "index": 0}}
            ),
            "port in 1..65535, got 'h:99999'",
        ),
        (
            json.dumps(
                {"cluster": {"worker": ["h:1", "h:1"]}, "task": {"type": "worker", "index": 0}}
            ),
            "names an address twice",
        ),
        (
            json.dumps(
                {"cluster": {"chief": ["a:1", "b:1"]}, "task": {"type": "chief", "index": 0}}
            ),
            "cluster.chief must have one address, got 2",
        ),
        ("x" * (1 << 21), "at most 1048576 bytes, got 2097152"),
    ],
)
def test_bad_tf_config_is_refused_with_what_was_received(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        read_tf_config(text)


def test_missing_tf_config_is_refused_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    import lenet_mnist as lm

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match=r"needs the TF_CONFIG environment variable.*got none"):
        lm.make_strategy("multi_worker")
    with pytest.raises(ValueError, match=r"devices is only for .mirrored.*got \[./cpu:0.\]"):
        lm.make_strategy("multi_worker", devices=["/cpu:0"])


def test_cli_checks_tf_config_before_loading_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lenet_mnist.cli import main

    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    # An empty data directory: reaching the data would fail differently.
    status = main(
        ["train", "--distribute", "multi_worker", "--data-dir", str(tmp_path), "--no-download"]
    )
    assert status != 0
    assert 'TF_CONFIG must have "cluster" and "task"' in capsys.readouterr().err


def test_without_a_cluster_every_process_is_the_chief(tmp_path: Path) -> None:
    assert is_chief(None)
    with chief_write_path(tmp_path / "m.keras", None) as target:
        assert target == tmp_path / "m.keras"
    read = read_tf_config(_config(type="worker", index=1))
    assert read == {
        "cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]},
        "task": {"type": "worker", "index": 1},
    }
