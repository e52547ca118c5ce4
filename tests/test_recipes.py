"""Training recipes: presets, the schedule, mixed precision, the pipeline, target stopping.

Every recipe goes through train()'s one engine: checkpoints and determinism work with each.

Correctness only: how fast the recipes are is measured by benchmarks/benchmark.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_tiny_data
from lenet_mnist import build_lenet, compile_model, train
from lenet_mnist.models import VARIANTS
from lenet_mnist.models.batch_norm import FusedBatchNorm
from lenet_mnist.recipes import (
    RECIPES,
    Recipe,
    build_recipe_model,
    get_recipe,
    learning_rate_schedule,
    precision_policy,
)
from lenet_mnist.training.monitor import TargetAccuracy, check_target_accuracy
from lenet_mnist.training.pipeline import make_dataset, shift_batch


@pytest.fixture(autouse=True)
def _restore_dtype_policy() -> Iterator[None]:
    # Keras's dtype policy is process-global: whatever a test does, the next test
    # (in this module or another) must start from the policy it had before.
    before = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(before)


# ------------------------------------------------------------------------ presets
def test_presets_are_valid_and_name_known_variants() -> None:
    assert set(RECIPES) == {"tutorial", "fast", "best"}
    for name, recipe in RECIPES.items():
        assert recipe.name == name
        assert recipe.variant in VARIANTS
        assert get_recipe(name) is recipe


def test_tutorial_preset_is_the_tutorials_recipe() -> None:
    recipe = get_recipe("tutorial")
    assert (recipe.epochs, recipe.batch_size, recipe.learning_rate) == (10, 32, 1e-3)
    assert recipe.legacy_fit
    assert not recipe.mixed_precision
    assert recipe.variant == "seed"
    assert learning_rate_schedule(recipe, 100) == pytest.approx(1e-3)


def test_fast_and_best_presets_use_the_fast_machinery() -> None:
    for name in ("fast", "best"):
        recipe = get_recipe(name)
        assert not recipe.legacy_fit
        assert recipe.mixed_precision
        assert recipe.warmup_fraction > 0
        assert recipe.final_fraction == 0.0
    assert get_recipe("fast").eval_every > 0
    assert get_recipe("best").max_shift > 0


def test_get_recipe_passes_a_recipe_through() -> None:
    custom = dataclasses.replace(get_recipe("fast"), name="mine", epochs=1)
    assert get_recipe(custom) is custom


def test_unknown_recipe_lists_the_valid_ones() -> None:
    with pytest.raises(
        ValueError, match=r"choose one of \['best', 'fast', 'tutorial'\], got 'nope'"
    ):
        get_recipe("nope")
    with pytest.raises(TypeError, match="recipe must be a str or a Recipe, got int"):
        get_recipe(3)  # type: ignore[arg-type]


def test_train_rejects_an_unknown_recipe_before_training(tiny_data) -> None:
    model = compile_model(build_lenet("seed", seed=0))
    with pytest.raises(ValueError, match=r"unknown recipe; choose one of .*got 'quick'"):
        train(model, tiny_data, recipe="quick")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epochs": 0}, "epochs must be an int >= 1, got 0"),
        ({"batch_size": True}, "batch_size must be an int >= 1, got True"),
        ({"eval_every": -1}, "eval_every must be an int >= 0, got -1"),
        ({"max_shift": 9}, "max_shift must be at most 8 pixels, got 9"),
        (
            {"learning_rate": float("nan")},
            "learning_rate must be a finite positive number, got nan",
        ),
        ({"learning_rate": 0.0}, "learning_rate must be a finite positive number, got 0.0"),
        ({"warmup_fraction": 1.5}, r"warmup_fraction must lie in \[0, 1\], got 1.5"),
        ({"final_fraction": -0.1}, r"final_fraction must lie in \[0, 1\], got -0.1"),
        ({"eval_from": 2.0}, r"eval_from must lie in \[0, 1\], got 2.0"),
    ],
)
def test_recipe_rejects_bad_fields(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(get_recipe("fast"), **change)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (0.0, ValueError, r"target_accuracy must lie in \(0, 1\], got 0.0"),
        (1.5, ValueError, r"target_accuracy must lie in \(0, 1\], got 1.5"),
        (True, TypeError, "target_accuracy must be a float or None, got bool"),
        ("0.99", TypeError, "target_accuracy must be a float or None, got str"),
    ],
)
def test_target_accuracy_is_checked(value: object, error: type[Exception], message: str) -> None:
    assert check_target_accuracy(None) is None
    assert check_target_accuracy(1) == 1.0
    with pytest.raises(error, match=message):
        check_target_accuracy(value)


class _InterruptError(Exception):
    pass


class _StopBeforeEpoch(keras.callbacks.Callback):  # type: ignore[misc]
    """Interrupt a run as a kill would, at the start of epoch ``epoch`` (0-based)."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
        if epoch == self.epoch:
            raise _InterruptError


def _interrupted_then_resumed(recipe, data, tmp_path) -> tuple[keras.Model, keras.Model]:
    """Two epochs in one go, and two epochs interrupted after one then resumed."""

    def run(directory=None, callbacks=()) -> tuple[keras.Model, keras.callbacks.History]:
        model = build_recipe_model(recipe, seed=0)
        history = train(
            model,
            data,
            recipe=recipe,
            epochs=2,
            batch_size=16,
            seed=3,
            verbose=0,
            checkpoint_dir=directory,
            callbacks=callbacks,
        )
        return model, history

    whole, full = run()
    with pytest.raises(_InterruptError):
        run(tmp_path, [_StopBeforeEpoch(1)])
    resumed, history = run(tmp_path)
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert history.history["val_accuracy"] == full.history["val_accuracy"]
    return whole, resumed


def test_fast_recipe_resumes_from_a_checkpoint_bit_identically(tiny_data, tmp_path) -> None:
    _interrupted_then_resumed("fast", tiny_data, tmp_path)


def test_best_recipes_shifts_repeat_on_resume(tmp_path) -> None:
    recipe = dataclasses.replace(get_recipe("best"), mixed_precision=False)
    _interrupted_then_resumed(recipe, make_tiny_data(n_train=64, n_test=16), tmp_path)


def test_a_checkpoint_of_another_recipe_is_refused(tiny_data, tmp_path) -> None:
    model = build_recipe_model("fast", seed=0)
    train(
        model,
        tiny_data,
        recipe="fast",
        epochs=1,
        batch_size=16,
        seed=0,
        verbose=0,
        checkpoint_dir=tmp_path,
    )
    other = build_recipe_model("fast", seed=0)
    with pytest.raises(ValueError, match="written with recipe='fast', got recipe='tutorial'"):
        train(other, tiny_data, epochs=1, batch_size=16, seed=0, verbose=0, checkpoint_dir=tmp_path)


def test_a_deterministic_run_needs_a_seed(tiny_data) -> None:
    model = build_lenet("fast", seed=0)
    with pytest.raises(ValueError, match="a deterministic run needs a seed: pass seed=S"):
        train(model, tiny_data, recipe="fast", deterministic=True, verbose=0)


# ----------------------------------------------------------------------- schedule
def test_schedule_warms_up_linearly_then_decays_to_the_final_fraction() -> None:
    recipe = dataclasses.replace(
        get_recipe("fast"), learning_rate=0.01, warmup_fraction=0.2, final_fraction=0.1
    )
    schedule = learning_rate_schedule(recipe, 100)
    rates = np.array([float(schedule(step)) for step in range(101)])
    np.testing.assert_allclose(rates[0], 0.001, rtol=1e-5)
    np.testing.assert_allclose(rates[20], 0.01, rtol=1e-5)
    np.testing.assert_allclose(rates[100], 0.001, rtol=1e-4)
    np.testing.assert_allclose(np.diff(rates[:21]), 0.009 / 20, rtol=1e-3)
    assert np.all(np.diff(rates[20:]) <= 1e-9)
    assert rates.argmax() == 20


def test_schedule_checks_the_step_count() -> None:
    with pytest.raises(ValueError, match="total_steps must be an int >= 1, got 0"):
        learning_rate_schedule(get_recipe("fast"), 0)


def test_schedule_survives_a_model_save_and_load(tmp_path) -> None:
    from lenet_mnist.models.saving import load_model, save_model
    from lenet_mnist.recipes import compile_for_recipe

    model = compile_for_recipe(build_lenet("fast", seed=0), get_recipe("fast"), 50)
    path = save_model(model, tmp_path / "fast.keras")
    loaded = load_model(path)
    rate = loaded.optimizer.learning_rate
    assert float(rate) == pytest.approx(float(model.optimizer.learning_rate))


# ---------------------------------------------------------------- mixed precision
def test_precision_policy_keeps_logits_float32_and_restores_the_policy() -> None:
    before = keras.config.dtype_policy().name
    with precision_policy(True):
        model = build_lenet("fast", seed=0)
        assert keras.config.dtype_policy().name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == before
    assert model.get_layer("conv1").compute_dtype == "bfloat16"
    assert model.get_layer("conv1").variable_dtype == "float32"
    assert model.get_layer("logits").compute_dtype == "float32"
    logits = model(np.zeros((2, 28, 28, 1), np.float32))
    assert logits.dtype == tf.float32


def test_precision_policy_restores_the_policy_after_an_error() -> None:
    before = keras.config.dtype_policy().name
    with pytest.raises(RuntimeError, match="inside"), precision_policy(True):
        raise RuntimeError("inside")
    assert keras.config.dtype_policy().name == before


def test_build_recipe_model_uses_the_recipes_network_and_precision() -> None:
    fast = build_recipe_model("fast", seed=0)
    assert fast.name == "lenet_fast"
    assert fast.compiled
    assert fast.get_layer("fc1").compute_dtype == "bfloat16"
    tutorial = build_recipe_model("tutorial", seed=0)
    assert tutorial.name == "lenet_seed"
    assert tutorial.get_layer("conv1").compute_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"


# -------------------------------------------------------------------- fast network
def test_fast_variant_builds_with_named_layers() -> None:
    model = build_lenet("fast", seed=0)
    names = [layer.name for layer in model.layers]
    assert names == [
        "image",
        "conv1",
        "pool1",
        "pool1_bn",
        "pool1_relu",
        "conv2",
        "pool2",
        "pool2_bn",
        "pool2_relu",
        "flatten",
        "fc1",
        "logits",
    ]
    assert model.count_params() == 57114
    assert isinstance(model.get_layer("pool1_bn"), FusedBatchNorm)
    assert model.output_shape == (None, 10)
    assert model.get_layer("logits").dtype_policy.name == "float32"


# ------------------------------------------------------------------------ pipeline
def test_dataset_batches_drop_the_remainder_and_reshuffle_every_epoch() -> None:
    images = np.arange(10, dtype=np.float32)[:, None, None, None] * np.ones(
        (1, 28, 28, 1), np.float32
    )
    dataset, steps = make_dataset(
        images / 10, np.arange(10), batch_size=4, seed=1, epochs=2, drop_remainder=True
    )
    batches = [y.numpy().tolist() for _, y in dataset]
    assert steps == 2
    assert [len(b) for b in batches] == [4, 4, 4, 4]
    assert batches[:2] != batches[2:]
    for x, y in dataset:
        assert x.dtype == tf.float32
        assert y.dtype == tf.int32
        np.testing.assert_allclose(x.numpy()[:, 0, 0, 0], y.numpy() / 10, rtol=1e-6)


def test_dataset_order_depends_on_seed_and_epoch_only() -> None:
    images = np.zeros((10, 28, 28, 1), np.float32)

    def labels(**kwargs: int) -> list[list[int]]:
        dataset, _ = make_dataset(images, np.arange(10), batch_size=5, **kwargs)
        return [y.numpy().tolist() for _, y in dataset]

    three = labels(seed=2, epochs=3)
    assert labels(seed=2, initial_epoch=2, epochs=3) == three[4:]
    assert labels(seed=3, epochs=3) != three


def test_dataset_keeps_a_batch_smaller_than_the_batch_size() -> None:
    dataset, steps = make_dataset(
        np.zeros((3, 28, 28, 1), np.float32),
        np.zeros(3),
        batch_size=8,
        seed=0,
        drop_remainder=True,
    )
    assert steps == 1
    assert [tuple(x.shape) for x, _ in dataset] == [(3, 28, 28, 1)]


@settings(max_examples=20, deadline=None)
@given(
    st.integers(1, 3),
    st.lists(st.tuples(st.integers(4, 23), st.integers(4, 23)), min_size=1, max_size=4),
)
def test_shift_moves_each_image_by_whole_pixels_within_range(
    max_shift: int, pixels: list[tuple[int, int]]
) -> None:
    images = np.zeros((len(pixels), 28, 28, 1), np.float32)
    for i, (row, col) in enumerate(pixels):
        images[i, row, col, 0] = 1.0
    shifted = shift_batch(tf.constant(images), max_shift, tf.constant([0, 1], tf.int64)).numpy()
    assert shifted.shape == images.shape
    for i, (row, col) in enumerate(pixels):
        (new_row, new_col) = np.argwhere(shifted[i, ..., 0] == 1.0)[0]
        assert shifted[i].sum() == pytest.approx(1.0)
        assert abs(new_row - row) <= max_shift
        assert abs(new_col - col) <= max_shift


# ------------------------------------------------------------------ early stopping
def _quick_recipe() -> Recipe:
    return dataclasses.replace(
        get_recipe("fast"),
        name="quick-test",
        epochs=30,
        batch_size=16,
        learning_rate=3e-3,
        eval_every=2,
        eval_from=0.0,
        mixed_precision=False,
        steps_per_execution=1,
    )


def test_fast_path_stops_at_the_target_accuracy_mid_epoch() -> None:
    data = make_tiny_data(n_train=128, n_test=64)
    monitor_steps: list[int] = []

    class Steps(keras.callbacks.Callback):  # type: ignore[misc]
        def on_train_batch_end(self, batch: int, logs: object = None) -> None:
            monitor_steps.append(batch)

    history = train(
        build_lenet("fast", seed=0),
        data,
        recipe=_quick_recipe(),
        seed=0,
        verbose=0,
        target_accuracy=0.9,
        callbacks=[Steps()],
    )
    epochs_run = len(history.history["val_accuracy"])
    assert epochs_run < 30
    assert history.history["val_accuracy"][-1] >= 0.9
    assert max(history.history["val_accuracy"][:-1], default=0.0) < 0.9
    assert set(history.history) >= {"loss", "accuracy", "val_accuracy", "val_loss"}
    # 128 images / batch 16 = 8 steps per epoch, evaluated every 2 steps: the run
    # stopped on an even step, possibly before the epoch's end.
    total_steps = len(monitor_steps)
    assert total_steps % 2 == 0
    assert total_steps <= epochs_run * 8


def test_evaluations_fall_on_group_ends_with_steps_per_execution() -> None:
    # 128 images / batch 16 = 8 steps per epoch in groups of 3, 3 and 2: the groups
    # end at steps 3, 6, 8, 11, 14, 16, ... Evaluating every 4 steps means at the
    # first group end at or after 4, 8, 12, 16, ...; a step already evaluated is not
    # evaluated again at the epoch's end.
    data = make_tiny_data(n_train=128, n_test=64)
    model = build_lenet("fast", seed=0)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=3,
    )
    monitor = TargetAccuracy(data.test_images, data.test_labels, target=1.0, every=4)
    history = model.fit(
        data.train_images,
        data.train_labels,
        batch_size=16,
        epochs=3,
        verbose=0,
        callbacks=[monitor],
        shuffle=False,
    )
    epochs_run = len(history.history["val_accuracy"])
    expected = [6, 8, 14, 16, 22, 24][: 2 * epochs_run]
    assert [step for step, _ in monitor.evaluations][: len(expected)] == expected
    assert int(model.optimizer.iterations) == 8 * epochs_run


def test_target_accuracy_callback_records_where_it_stopped() -> None:
    data = make_tiny_data(n_train=128, n_test=64)
    model = compile_model(build_lenet("fast", seed=0), learning_rate=3e-3)
    monitor = TargetAccuracy(data.test_images, data.test_labels, target=0.9, every=1)
    model.fit(
        data.train_images,
        data.train_labels,
        batch_size=16,
        epochs=30,
        verbose=0,
        callbacks=[monitor],
    )
    assert monitor.reached is not None
    step, accuracy, seconds = monitor.reached
    assert accuracy >= 0.9
    assert seconds > 0
    assert model.optimizer.iterations.numpy() == step


def test_tutorial_recipe_stops_at_an_epoch_end(tiny_data) -> None:
    model = compile_model(build_lenet("fast", seed=0), learning_rate=3e-3)
    history = train(
        model, tiny_data, epochs=30, batch_size=16, seed=0, verbose=0, target_accuracy=0.9
    )
    accuracies = history.history["val_accuracy"]
    assert len(accuracies) < 30
    assert accuracies[-1] >= 0.9
    assert max(accuracies[:-1], default=0.0) < 0.9


def test_fast_recipe_trains_an_uncompiled_model_in_bfloat16(tiny_data) -> None:
    with precision_policy(True):
        model = build_lenet("fast", seed=0)
    history = train(model, tiny_data, recipe="fast", epochs=1, batch_size=16, seed=0, verbose=0)
    assert len(history.history["val_accuracy"]) == 1
    assert 0.0 <= history.history["val_accuracy"][0] <= 1.0
    assert np.isfinite(history.history["loss"][0])
    assert model.get_layer("conv1").kernel.dtype == "float32"


# --------------------------------------------------------------------------- CLI
def _tiny_mnist_dir(tmp_path, monkeypatch) -> str:
    from _fakes import dataset_spec, tiny_arrays, write_dataset
    from lenet_mnist.data import DATASETS

    tiny = tiny_arrays(n_train=64, n_test=20)
    spec = dataset_spec(tiny, name="mnist", env_var="LENET_MNIST_DATA")
    monkeypatch.setitem(DATASETS, "mnist", spec)
    monkeypatch.delenv("LENET_MNIST_DATA", raising=False)
    return str(write_dataset(tmp_path / "data", tiny))


def test_cli_train_fast_builds_and_trains_the_fast_recipe(tmp_path, monkeypatch) -> None:
    from lenet_mnist.cli import main
    from lenet_mnist.models.saving import load_model

    data_dir = _tiny_mnist_dir(tmp_path, monkeypatch)
    output = tmp_path / "fast.keras"
    argv = ["train", "--fast", "--data-dir", data_dir, "--epochs", "1", "--batch-size", "16"]
    assert main([*argv, "--seed", "0", "--quiet", "--output", str(output)]) == 0
    model = load_model(output)
    assert model.name == "lenet_fast"
    assert model.get_layer("conv1").compute_dtype == "bfloat16"
    assert keras.config.dtype_policy().name == "float32"


def test_cli_rejects_an_unknown_recipe_as_a_usage_error(capsys) -> None:
    from lenet_mnist.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--recipe", "turbo"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'turbo' (choose from 'best', 'fast', 'tutorial')" in (
        capsys.readouterr().err
    )
