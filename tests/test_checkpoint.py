"""Resumable training: atomic per-epoch checkpoints, resume, refusal of a different run.

The kill test runs training in child processes (``_training_child.py``) and SIGKILLs
them at chosen points -- mid-epoch, while a checkpoint's files are being written, after
the new checkpoint is renamed into place but before the pointer moves, and after the
pointer moved but before old checkpoints are pruned -- then resumes until done. With a
seed the resumed run must end with *exactly* the weights and history of an uninterrupted
one: each epoch's batch order depends only on ``(seed, epoch)`` and the optimizer state
(Adam's step count and moments) is restored bit for bit, so there is no tolerance.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from conftest import make_tiny_data
from lenet_mnist import build_lenet, compile_model, train
from lenet_mnist.training.checkpoint import POINTER, EpochCheckpoint, load_checkpoint

CHILD = Path(__file__).with_name("_training_child.py")


def _spec(tmp: Path, name: str, **overrides: Any) -> dict[str, Any]:
    spec = {
        "out": str(tmp / name),
        "epochs": 5,
        "seed": 3,
        "deterministic": True,
        "checkpoint_dir": str(tmp / "ckpt"),
        "n_train": 256,
        "stall": None,
    }
    spec.update(overrides)
    return spec


def _start(spec: dict[str, Any]) -> subprocess.Popen[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, str(CHILD), json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _run_until_stall_then_kill(spec: dict[str, Any]) -> None:
    child = _start(spec)
    assert child.stdout is not None
    try:
        line = child.stdout.readline()
        if line.strip() != "STALL":
            child.wait(timeout=120)
            pytest.fail(f"child did not stall at {spec['stall']}: {line!r} {child.stderr.read()}")  # type: ignore[union-attr]
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()  # type: ignore[union-attr]


def _run_to_end(child: subprocess.Popen[str]) -> None:
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    assert out.strip().endswith("DONE")


def _result(out: str) -> tuple[list[np.ndarray], dict[str, Any]]:
    weights = np.load(Path(out) / "weights.npz")
    history = json.loads((Path(out) / "history.json").read_text())
    return [weights[key] for key in weights.files], history


def _names(directory: Path) -> set[str]:
    """Entries of a checkpoint directory, the unique suffix of checkpoint names dropped."""
    return {
        entry.name[: len("checkpoint-000000")]
        if entry.name.startswith("checkpoint-")
        else entry.name
        for entry in directory.iterdir()
    }


@pytest.mark.slow  # six TensorFlow processes: 86-210 s measured on 2 busy shared cores
def test_killed_runs_resume_to_exactly_the_uninterrupted_result(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    # The reference runs alongside the first killed run: two cores, two processes.
    reference = _start(_spec(tmp_path, "reference", checkpoint_dir=None))

    # Killed mid-epoch 1 (0-based): epoch 0's checkpoint survives.
    _run_until_stall_then_kill(_spec(tmp_path, "run", stall=["batch", 1, 3]))
    assert load_checkpoint(ckpt).epoch == 1  # type: ignore[union-attr]

    # Killed while checkpoint 2's files are being written: the pointer still names 1,
    # and the half-written staging directory is not mistaken for a checkpoint.
    _run_until_stall_then_kill(_spec(tmp_path, "run", stall=["save", 2]))
    assert load_checkpoint(ckpt).epoch == 1  # type: ignore[union-attr]
    assert any(name.startswith(".tmp-checkpoint-") for name in _names(ckpt))

    # Killed after checkpoint 2 was renamed into place but before the pointer moved.
    _run_until_stall_then_kill(_spec(tmp_path, "run", stall=["pointer", 2]))
    assert load_checkpoint(ckpt).epoch == 1  # type: ignore[union-attr]
    assert "checkpoint-000002" in _names(ckpt)

    # Killed after the pointer moved to 3, before older checkpoints were pruned.
    _run_until_stall_then_kill(_spec(tmp_path, "run", stall=["prune", 3]))
    assert load_checkpoint(ckpt).epoch == 3  # type: ignore[union-attr]

    final = _start(_spec(tmp_path, "run"))
    _run_to_end(final)
    _run_to_end(reference)

    weights, history = _result(str(tmp_path / "run"))
    expected_weights, expected_history = _result(str(tmp_path / "reference"))
    assert history["epoch"] == [0, 1, 2, 3, 4]
    assert all(len(history[key]) == 5 for key in ("loss", "accuracy", "val_loss", "val_accuracy"))
    assert history == expected_history
    assert len(weights) == len(expected_weights)
    for got, want in zip(weights, expected_weights, strict=True):
        assert np.array_equal(got, want)
    assert expected_history["val_accuracy"][-1] > 0.5  # it did learn something
    assert load_checkpoint(ckpt).epoch == 5  # type: ignore[union-attr]
    assert _names(ckpt) == {POINTER, "checkpoint-000005"}


def _model(seed: int = 0, variant: str = "seed") -> keras.Model:
    return compile_model(build_lenet(variant, seed=seed))


def test_resume_in_process_matches_and_history_is_continuous(tmp_path: Path) -> None:
    data = make_tiny_data(96, 32)
    reference = _model()
    full = train(reference, data, epochs=3, seed=1, verbose=0)

    first = train(_model(), data, epochs=1, seed=1, verbose=0, checkpoint_dir=tmp_path)
    assert first.epoch == [0]
    # A differently initialized model: resuming must overwrite its weights.
    resumed_model = _model(seed=5)
    resumed = train(resumed_model, data, epochs=3, seed=1, verbose=0, checkpoint_dir=tmp_path)
    assert resumed.epoch == [0, 1, 2]
    assert resumed.history == full.history
    for got, want in zip(resumed_model.get_weights(), reference.get_weights(), strict=True):
        assert np.array_equal(got, want)
    for got, want in zip(
        resumed_model.optimizer.variables, reference.optimizer.variables, strict=True
    ):
        assert np.array_equal(np.asarray(got), np.asarray(want))


def test_finished_run_does_not_train_again(tmp_path: Path) -> None:
    data = make_tiny_data(64, 32)
    done_model = _model()
    done = train(done_model, data, epochs=2, seed=1, verbose=0, checkpoint_dir=tmp_path)
    untouched = _model(seed=7)

    class Fail(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            raise AssertionError("trained again")

    again = train(
        untouched, data, epochs=2, seed=1, verbose=0, checkpoint_dir=tmp_path, callbacks=[Fail()]
    )
    assert again.history == done.history
    assert again.epoch == [0, 1]
    # Nothing trained: the model holds exactly the checkpoint's weights.
    for got, want in zip(untouched.get_weights(), done_model.get_weights(), strict=True):
        assert np.array_equal(got, want)
    more = train(_model(seed=7), data, epochs=3, seed=1, verbose=0, checkpoint_dir=tmp_path)
    assert more.epoch == [0, 1, 2]
    assert more.history["loss"][:2] == done.history["loss"]


def test_a_run_stopped_early_counts_as_finished(tmp_path: Path) -> None:
    data = make_tiny_data(64, 32)

    class StopAfterTwo(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if epoch == 1:
                self.model.stop_training = True

    stopped = train(
        _model(),
        data,
        epochs=5,
        seed=1,
        verbose=0,
        checkpoint_dir=tmp_path,
        callbacks=[StopAfterTwo()],
    )
    assert stopped.epoch == [0, 1]
    state = load_checkpoint(tmp_path)
    assert state is not None
    assert (state.epoch, state.stopped) == (2, True)

    class Fail(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            raise AssertionError("trained again")

    again = train(
        _model(), data, epochs=5, seed=1, verbose=0, checkpoint_dir=tmp_path, callbacks=[Fail()]
    )
    assert again.history == stopped.history


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"batch_size": 16}, r"batch_size=32, got batch_size=16"),
        ({"seed": 2}, r"seed=1, got seed=2"),
        ({"model": "lenet5"}, r"architecture=.*Conv2D\(3x3x1x32\).*got architecture="),
    ],
)
def test_resuming_a_different_run_is_refused(
    tmp_path: Path, change: dict[str, Any], match: str
) -> None:
    data = make_tiny_data(64, 32)
    train(_model(), data, epochs=1, seed=1, verbose=0, checkpoint_dir=tmp_path)
    model = _model(variant=change.pop("model", "seed"))
    kwargs = {"epochs": 2, "seed": 1, "verbose": 0, "checkpoint_dir": tmp_path, **change}
    with pytest.raises(ValueError, match=match):
        train(model, data, **kwargs)


def test_failed_write_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _model()
    callback = EpochCheckpoint(tmp_path, config={"seed": 1})
    callback.set_model(model)
    callback.on_epoch_end(0, {"loss": 1.5})
    import lenet_mnist.training.checkpoint as checkpoint

    def broken(model: keras.Model, path: Path) -> Path:
        path.write_bytes(b"half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_model", broken)
    with pytest.raises(OSError, match="disk full"):
        callback.on_epoch_end(1, {"loss": 1.0})
    state = load_checkpoint(tmp_path)
    assert state is not None
    assert (state.epoch, state.history) == (1, {"loss": [1.5]})
    assert _names(tmp_path) == {POINTER, "checkpoint-000001"}


def test_no_pointer_means_no_checkpoint(tmp_path: Path) -> None:
    assert load_checkpoint(tmp_path) is None
    assert load_checkpoint(tmp_path / "missing") is None
    (tmp_path / "checkpoint-000001").mkdir()  # a killed first write: no pointer yet
    assert load_checkpoint(tmp_path) is None


@pytest.mark.parametrize(
    ("pointer", "match"),
    [
        ("not json", r"not a lenet-mnist checkpoint file"),
        ('{"format": 1, "checkpoint": "../elsewhere"}', r"not a lenet-mnist checkpoint pointer"),
        ('{"format": 1, "checkpoint": "checkpoint-000009"}', r"incomplete or missing"),
    ],
)
def test_bad_pointer_is_a_clear_error(tmp_path: Path, pointer: str, match: str) -> None:
    (tmp_path / POINTER).write_text(pointer)
    with pytest.raises(ValueError, match=match):
        load_checkpoint(tmp_path)


def test_deterministic_needs_a_seed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a deterministic run needs a seed: pass seed=S"):
        train(_model(), make_tiny_data(8, 8), epochs=1, deterministic=True, verbose=0)
    with pytest.raises(TypeError, match=r"deterministic must be a bool, got str"):
        train(_model(), make_tiny_data(8, 8), epochs=1, deterministic="yes", verbose=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"checkpoint_dir must be a path or None, got int"):
        train(_model(), make_tiny_data(8, 8), epochs=1, checkpoint_dir=3, verbose=0)  # type: ignore[arg-type]


def test_cli_train_resumes_from_checkpoint_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from _fakes import dataset_spec, tiny_arrays, write_dataset
    from lenet_mnist.cli import main
    from lenet_mnist.data import DATASETS

    tiny = tiny_arrays(n_train=48, n_test=16)
    monkeypatch.setitem(DATASETS, "mnist", dataset_spec(tiny, name="mnist"))
    monkeypatch.delenv("LENET_MNIST_DATA", raising=False)
    data_dir = write_dataset(tmp_path / "data", tiny)
    ckpt = tmp_path / "ckpt"
    argv = ["train", "--data-dir", str(data_dir), "--seed", "0", "--quiet"]
    argv += ["--checkpoint-dir", str(ckpt), "--output", str(tmp_path / "m.keras")]
    assert main([*argv, "--epochs", "1"]) == 0
    assert load_checkpoint(ckpt).epoch == 1  # type: ignore[union-attr]
    assert main([*argv, "--epochs", "3"]) == 0
    assert load_checkpoint(ckpt).epoch == 3  # type: ignore[union-attr]
    assert len(load_checkpoint(ckpt).history["loss"]) == 3  # type: ignore[union-attr]
    capsys.readouterr()

    assert main([*argv, "--epochs", "3", "--batch-size", "8"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("lenet-mnist: error: cannot resume the checkpoint in ")
    assert "batch_size=32, got batch_size=8" in err[0]

    assert main(["train", "--data-dir", str(data_dir), "--deterministic", "--quiet"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "lenet-mnist: error: --deterministic needs --seed S (the same seed then gives the same "
        "model), got no --seed"
    ]


def test_rewriting_the_current_epoch_never_touches_the_checkpoint_in_use(tmp_path: Path) -> None:
    callback = EpochCheckpoint(tmp_path, config={"seed": 1})
    callback.set_model(_model())
    callback.on_epoch_end(0, {"loss": 1.5})
    first = load_checkpoint(tmp_path)
    # The same epoch again (a second run from scratch into the same directory): it gets
    # its own directory, so the one the pointer names stays intact until the pointer moves.
    second_writer = EpochCheckpoint(tmp_path, config={"seed": 1})
    second_writer.set_model(_model(seed=3))
    second_writer.on_epoch_end(0, {"loss": 1.25})
    second = load_checkpoint(tmp_path)
    assert first is not None
    assert second is not None
    assert second.path != first.path
    assert not first.path.exists()
    assert (second.epoch, second.history) == (1, {"loss": [1.25]})
