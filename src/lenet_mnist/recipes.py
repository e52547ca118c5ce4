"""Training recipes: the tutorial's, and faster or more accurate ones, as named presets.

A :class:`Recipe` fixes how :func:`lenet_mnist.train` trains: the network it is meant
for, batch size, epochs, learning-rate schedule, numeric precision, augmentation and how
often the test split is evaluated. ``"tutorial"`` is the tutorial's recipe, unchanged
(``model.fit`` on NumPy arrays, batch 32, constant Adam 0.001, validation every epoch).
The others train through :func:`fit_recipe`:

- the training split goes through a ``tf.data`` pipeline built once (in memory,
  shuffled every epoch, batched, prefetched; random shifts computed on whole batches);
- Adam follows a warmup-then-cosine-decay schedule (a "one-cycle" shape), so large
  batches train as fast per epoch as small ones;
- with ``mixed_precision`` the network computes in bfloat16 (its weights and logits
  stay float32) when it is built inside :func:`precision_policy`, as
  :func:`build_recipe_model` does;
- the test split is evaluated by one compiled function, at every epoch's end and, when
  a ``target_accuracy`` is given, every ``eval_every`` steps once ``eval_from`` of the
  training is done, so training stops soon after the target is first reached.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from lenet_mnist.models import build_lenet

__all__ = [
    "RECIPES",
    "Recipe",
    "StopAtValAccuracy",
    "TargetAccuracy",
    "build_recipe_model",
    "check_target_accuracy",
    "compile_for_recipe",
    "fit_recipe",
    "get_recipe",
    "learning_rate_schedule",
    "make_dataset",
    "precision_policy",
]

Verbose = Literal["auto", 0, 1, 2]

# Test images per call of the compiled evaluator: ~1,000 keeps a layer's activations
# near the CPU's caches (1.4-1.8x faster than 4,096 for predict_digits here), and
# 10,000 / 1,000 gives equal chunks, so one trace.
_EVAL_CHUNK: Final = 1000


@dataclass(frozen=True)
class Recipe:
    """A named set of training choices (see :data:`RECIPES`).

    Attributes:
        name: The recipe's name, as passed to ``train(..., recipe=name)``.
        description: One line saying what the recipe is for.
        variant: The :func:`build_lenet` variant the recipe is tuned for.
        epochs: Passes over the training split (training may stop earlier at a
            ``target_accuracy``).
        batch_size: Images per gradient step.
        learning_rate: Adam's peak step size.
        warmup_fraction: Fraction of all steps over which the step size rises linearly
            from ``learning_rate / 10`` to ``learning_rate``; it then follows a cosine
            down to ``learning_rate * final_fraction``. 0 with ``final_fraction`` 1
            means a constant step size.
        final_fraction: The step size at the last step, as a fraction of the peak, in
            [0, 1].
        mixed_precision: Compute in bfloat16 (weights and logits stay float32).
        max_shift: Augmentation: each training image is shifted by a random whole
            number of pixels in ``[-max_shift, max_shift]`` along each axis (0: none).
        eval_every: With a ``target_accuracy``: evaluate the test split every this many
            steps (besides every epoch's end) ...
        eval_from: ... once this fraction of all steps is done, in [0, 1].
        steps_per_execution: Gradient steps per call of the compiled training
            function (Keras's ``steps_per_execution``): fewer Python round trips, but
            callbacks' ``on_train_batch_end`` and the evaluations between epoch ends
            then happen only at the end of such a group of steps.
        legacy_fit: Train exactly as the tutorial does (``model.fit`` on NumPy
            arrays); the fields after ``learning_rate`` are then unused.
    """

    name: str
    description: str
    variant: str
    epochs: int
    batch_size: int
    learning_rate: float
    warmup_fraction: float = 0.0
    final_fraction: float = 1.0
    mixed_precision: bool = False
    max_shift: int = 0
    eval_every: int = 0
    eval_from: float = 1.0
    steps_per_execution: int = 1
    legacy_fit: bool = False

    def __post_init__(self) -> None:
        for field_name in ("epochs", "batch_size", "steps_per_execution"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field_name} must be an int >= 1, got {value!r}")
        for field_name in ("max_shift", "eval_every"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{field_name} must be an int >= 0, got {value!r}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(
                f"learning_rate must be a finite positive number, got {self.learning_rate!r}"
            )
        for field_name in ("warmup_fraction", "final_fraction", "eval_from"):
            value = getattr(self, field_name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{field_name} must lie in [0, 1], got {value!r}")
        if self.max_shift > 8:
            raise ValueError(f"max_shift must be at most 8 pixels, got {self.max_shift}")


#: The recipes :func:`get_recipe` knows, by name.
RECIPES: Final[Mapping[str, Recipe]] = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            name="tutorial",
            description="the tutorial's: model.fit on arrays, batch 32, Adam 0.001, 10 epochs",
            variant="seed",
            epochs=10,
            batch_size=32,
            learning_rate=1e-3,
            legacy_fit=True,
        ),
        Recipe(
            name="fast",
            description="fastest to 99% test accuracy: the 'fast' network (batch-normalized), "
            "bfloat16, batch 128, one-cycle Adam, 2 epochs",
            variant="fast",
            epochs=2,
            batch_size=128,
            # Batch normalization takes 10x the tutorial's step size. Test accuracy
            # first reached 99% after 0.94-1.17 epochs (mean 1.07, seeds 0-5); a
            # warmup of 15% instead of 5%: mean 1.13; 0.005 or 0.02: later.
            learning_rate=1e-2,
            warmup_fraction=0.05,
            final_fraction=0.0,
            mixed_precision=True,
            # One evaluation of the 10,000 test images costs about 30 training steps.
            # The crossing rarely comes before the first epoch's end, which is
            # evaluated anyway; every 52 steps after it bounds the delay to ~0.3 s.
            eval_every=52,
            eval_from=0.5,
            # 26 divides an epoch's 468 steps and 52; per-step Python overhead was
            # about a third of the step time with 1.
            steps_per_execution=26,
        ),
        Recipe(
            name="best",
            description="most accurate: the 'robust' network, random shifts, one-cycle "
            "Adam, 20 epochs",
            variant="robust",
            # Seed 0 ended at 99.59% after 15 epochs and at 99.64% after 20; with the
            # fused batch norm 20 epochs take well under the 15 minutes aimed at here.
            epochs=20,
            batch_size=128,
            learning_rate=3e-3,
            warmup_fraction=0.1,
            final_fraction=0.0,
            mixed_precision=True,
            max_shift=2,
        ),
    )
}


def get_recipe(
    recipe: str | Recipe, *, variant: str | None = None, learning_rate: float | None = None
) -> Recipe:
    """Return the recipe named ``recipe`` (a :class:`Recipe` is taken as it is).

    Args:
        recipe: A name in :data:`RECIPES` or a :class:`Recipe`.
        variant: If given, the returned recipe's network instead of its own.
        learning_rate: If given, the returned recipe's (peak) step size.

    Raises:
        ValueError: Unknown name (the message lists the valid ones) or a bad override.
        TypeError: ``recipe`` is neither a str nor a :class:`Recipe`.

    Example:
        >>> get_recipe("fast").batch_size
        128
        >>> get_recipe("fast", learning_rate=0.02).learning_rate
        0.02
    """
    if isinstance(recipe, Recipe):
        found: Recipe | None = recipe
    elif isinstance(recipe, str):
        found = RECIPES.get(recipe)
    else:
        raise TypeError(f"recipe must be a str or a Recipe, got {type(recipe).__name__}")
    if found is None:
        raise ValueError(f"unknown recipe; choose one of {sorted(RECIPES)}, got {recipe!r}")
    if variant is not None:
        found = dataclasses.replace(found, variant=variant)
    if learning_rate is not None:
        found = dataclasses.replace(found, learning_rate=learning_rate)
    return found


@contextlib.contextmanager
def precision_policy(mixed: bool) -> Iterator[None]:
    """Build layers in bfloat16 mixed precision (``mixed=True``) or float32 inside the block.

    Keras's dtype policy is global; this sets it for the block only and restores the
    previous one afterwards, even on an exception. Layers built inside keep their
    policy: they compute in bfloat16 with float32 weights. Layers given an explicit
    ``dtype`` (the networks' ``logits`` layer is ``float32``) keep it.

    Example:
        >>> with precision_policy(True):
        ...     model = build_lenet("seed", seed=0)
        >>> model.get_layer("conv1").compute_dtype, model.output.dtype
        ('bfloat16', 'float32')
        >>> keras.config.dtype_policy().name
        'float32'
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16" if mixed else "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def learning_rate_schedule(recipe: Recipe, total_steps: int) -> float | Any:
    """Return the step size (a float) or schedule (Keras's) for ``total_steps`` steps.

    A constant recipe (no warmup, ``final_fraction`` 1) gives the float. Otherwise a
    ``keras.optimizers.schedules.CosineDecay``: linear warmup from
    ``learning_rate / 10`` to ``learning_rate`` over ``warmup_fraction`` of the steps,
    then a cosine down to ``learning_rate * final_fraction`` at ``total_steps``. It is a
    Keras built-in, so a model saved with its optimizer loads anywhere.

    Raises:
        ValueError: ``total_steps`` < 1.

    Example:
        >>> schedule = learning_rate_schedule(get_recipe("fast"), 100)
        >>> [round(float(schedule(step)), 4) for step in (0, 5, 100)]
        [0.001, 0.01, 0.0]
    """
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"total_steps must be an int >= 1, got {total_steps!r}")
    if recipe.warmup_fraction == 0.0 and recipe.final_fraction == 1.0:
        return recipe.learning_rate
    warmup = min(total_steps - 1, round(recipe.warmup_fraction * total_steps))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=recipe.learning_rate / 10 if warmup else recipe.learning_rate,
        decay_steps=max(1, total_steps - warmup),
        alpha=recipe.final_fraction,
        warmup_target=recipe.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


def compile_for_recipe(model: keras.Model, recipe: Recipe, total_steps: int) -> keras.Model:
    """Compile ``model`` with the recipe's optimizer, loss and accuracy metric.

    Adam with :func:`learning_rate_schedule`, sparse cross-entropy on logits, accuracy,
    and the recipe's ``steps_per_execution``. Returns the same ``model``.
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate_schedule(recipe, total_steps)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=recipe.steps_per_execution,
    )
    return model


def build_recipe_model(
    recipe: str | Recipe, *, num_classes: int = 10, seed: int | None = None
) -> keras.Model:
    """Build the recipe's network, in its precision, compiled as the tutorial does.

    ``train(model, data, recipe=...)`` recompiles it with the recipe's schedule; the
    tutorial's compile here makes the model usable with ``train``'s default recipe too.

    Example:
        >>> model = build_recipe_model("fast", seed=0)
        >>> model.get_layer("conv1").compute_dtype
        'bfloat16'
    """
    from lenet_mnist.training import compile_model

    chosen = get_recipe(recipe)
    with precision_policy(chosen.mixed_precision):
        model = build_lenet(chosen.variant, num_classes=num_classes, seed=seed)
    return compile_model(model, learning_rate=chosen.learning_rate)


def _shift_batch(images: tf.Tensor, max_shift: int) -> tf.Tensor:
    # A random translation per image as two one-hot selection matrix products on the
    # zero-padded batch: ~0.1 MFLOP per image (the networks take 2.5+ MFLOP), no
    # per-image Python or map_fn, and whole-pixel shifts so no interpolation blur.
    size = images.shape[1]
    count = tf.shape(images)[0]
    padded = tf.pad(images[..., 0], [[0, 0], [max_shift, max_shift], [max_shift, max_shift]])
    offsets = tf.random.uniform([count, 2], 0, 2 * max_shift + 1, dtype=tf.int32)
    positions = tf.range(size, dtype=tf.int32)[tf.newaxis, :]
    width = size + 2 * max_shift
    rows = tf.one_hot(positions + offsets[:, :1], width, dtype=images.dtype)
    cols = tf.one_hot(positions + offsets[:, 1:], width, dtype=images.dtype)
    shifted = tf.einsum("bij,bjk,blk->bil", rows, padded, cols)
    return shifted[..., tf.newaxis]


def make_dataset(
    images: npt.NDArray[np.float32],
    labels: npt.NDArray[np.generic],
    *,
    batch_size: int,
    seed: int | None = None,
    max_shift: int = 0,
) -> tf.data.Dataset:
    """The training pipeline: in memory, reshuffled every epoch, batched, prefetched.

    Args:
        images: ``(N, 28, 28, 1)`` float32 in [0, 1].
        labels: ``(N,)`` integer class indices.
        batch_size: Images per batch; the last, smaller batch of an epoch is dropped
            when there is at least one full batch (a steady shape traces once).
        seed: Seed of the shuffle order (``None``: random).
        max_shift: Shift each image by a random whole number of pixels in
            ``[-max_shift, max_shift]`` per axis, zero-filled (0: no augmentation).

    Returns:
        A ``tf.data.Dataset`` of ``(images, labels)`` batches, ``labels`` int32.

    Example:
        >>> import numpy as np
        >>> ds = make_dataset(np.zeros((10, 28, 28, 1), np.float32), np.arange(10),
        ...                   batch_size=4, seed=0)
        >>> [tuple(x.shape) for x, _ in ds]
        [(4, 28, 28, 1), (4, 28, 28, 1)]
    """
    count = int(images.shape[0])
    # convert_to_tensor, not tf.constant: tf.constant first makes its own NumPy copy
    # of the 188 MB, which took 0.1-0.4 s of every fast training here. The tensor
    # may share the array's memory, which train() does not change while it runs.
    all_images = tf.convert_to_tensor(images, tf.float32)
    all_labels = tf.convert_to_tensor(np.asarray(labels), tf.int32)
    # Shuffle indices, not images: a shuffle buffer of 60,000 images is refilled (188 MB
    # copied element by element) before each epoch's first batch, which stalled
    # training for ~1 s per epoch here; gathering each batch by index does not.
    dataset = tf.data.Dataset.range(count).shuffle(count, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=count >= batch_size)
    dataset = dataset.map(
        lambda index: (tf.gather(all_images, index), tf.gather(all_labels, index)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    if max_shift:
        dataset = dataset.map(
            lambda x, y: (_shift_batch(x, max_shift), y), num_parallel_calls=tf.data.AUTOTUNE
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


class _TestEvaluator:
    """Accuracy and mean cross-entropy on a fixed test split, from one compiled function."""

    def __init__(self, model: keras.Model, images: npt.NDArray[np.float32], labels: Any) -> None:
        self._chunks = [
            (
                tf.convert_to_tensor(images[start : start + _EVAL_CHUNK], tf.float32),
                tf.convert_to_tensor(np.asarray(labels[start : start + _EVAL_CHUNK]), tf.int32),
            )
            for start in range(0, images.shape[0], _EVAL_CHUNK)
        ]
        self._count = int(images.shape[0])

        @tf.function(reduce_retracing=True)  # type: ignore[untyped-decorator]
        def score(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            logits = tf.cast(model(x, training=False), tf.float32)
            hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, tf.int32), y), tf.int32))
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            return hits, tf.reduce_sum(losses)

        self._score = score

    def __call__(self) -> tuple[float, float]:
        hits, loss = 0, 0.0
        for x, y in self._chunks:
            h, s = self._score(x, y)
            hits += int(h)
            loss += float(s)
        return hits / self._count, loss / self._count


class TargetAccuracy(keras.callbacks.Callback):  # type: ignore[misc]
    """Evaluate the test split during training and stop once it reaches a target.

    Every epoch's end adds ``val_accuracy`` and ``val_loss`` to the epoch's logs (so
    to ``History``). With a ``target``, training stops at the first evaluation whose
    accuracy is at least ``target``; between epoch ends it also evaluates every
    ``every`` steps once ``start_step`` steps are done (``every`` 0: epoch ends only).
    With Keras's ``steps_per_execution`` > 1 it can only look at the ends of groups
    of steps: it evaluates at the first group end at or after each multiple of
    ``every``.

    Attributes:
        reached: ``None`` until the target is reached, then ``(step, accuracy,
            seconds)``: the global step, the test accuracy and the wall time since
            training began.
    """

    def __init__(
        self,
        images: npt.NDArray[np.float32],
        labels: Any,
        *,
        target: float | None = None,
        every: int = 0,
        start_step: int = 0,
    ) -> None:
        super().__init__()
        self._images, self._labels = images, labels
        self._evaluate: _TestEvaluator | None = None
        self.target = target
        self.every = every
        self.start_step = start_step
        self.reached: tuple[int, float, float] | None = None
        self._step = 0
        self._first_iteration = 0
        self._start = 0.0
        self._last: tuple[int, float, float] | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        """Start the clock and compile the evaluator for this model."""
        self._start = time.perf_counter()
        self._step = 0
        self._first_iteration = int(self.model.optimizer.iterations)
        self._evaluate = _TestEvaluator(self.model, self._images, self._labels)

    def _check(self) -> tuple[float, float]:
        if self._last is not None and self._last[0] == self._step:
            return self._last[1], self._last[2]
        if self._evaluate is None:
            raise RuntimeError("TargetAccuracy was used outside model.fit, got no model")
        accuracy, loss = self._evaluate()
        self._last = (self._step, accuracy, loss)
        if self.target is not None and self.reached is None and accuracy >= self.target:
            self.reached = (self._step, accuracy, time.perf_counter() - self._start)
            self.model.stop_training = True
        return accuracy, loss

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Count the steps; evaluate when a multiple of ``every`` was passed."""
        # One call may stand for a group of steps (steps_per_execution), and Keras's
        # ``batch`` then counts the last group of an epoch as full even when it is
        # not: the optimizer's own counter is exact.
        previous = self._step
        self._step = int(self.model.optimizer.iterations) - self._first_iteration
        if (
            self.target is not None
            and self.every
            and self._step >= self.start_step
            and self._step // self.every > previous // self.every
        ):
            self._check()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Evaluate (unless this step already was) and add the ``val_`` entries to ``logs``."""
        accuracy, loss = self._check()
        if logs is not None:
            logs["val_accuracy"] = accuracy
            logs["val_loss"] = loss


def check_target_accuracy(target_accuracy: object) -> float | None:
    """Return ``target_accuracy`` as a float in (0, 1], or ``None``; else raise.

    Raises:
        TypeError: Not a number or ``None``.
        ValueError: Outside (0, 1].
    """
    if target_accuracy is None:
        return None
    if isinstance(target_accuracy, bool) or not isinstance(target_accuracy, int | float):
        raise TypeError(
            f"target_accuracy must be a float or None, got {type(target_accuracy).__name__}"
        )
    if not 0.0 < target_accuracy <= 1.0:
        raise ValueError(f"target_accuracy must lie in (0, 1], got {target_accuracy!r}")
    return float(target_accuracy)


class StopAtValAccuracy(keras.callbacks.Callback):  # type: ignore[misc]
    """Stop ``model.fit`` at the end of the first epoch whose ``val_accuracy`` >= ``target``.

    The tutorial recipe's way to honour ``target_accuracy``: it validates only at
    epoch ends, so that is where it can stop.
    """

    def __init__(self, target: float) -> None:
        super().__init__()
        self.target = target

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Stop training if this epoch's ``val_accuracy`` reached the target."""
        if logs is not None and logs.get("val_accuracy", 0.0) >= self.target:
            self.model.stop_training = True


def fit_recipe(
    model: keras.Model,
    train_images: npt.NDArray[np.float32],
    train_labels: npt.NDArray[np.generic],
    test_images: npt.NDArray[np.float32],
    test_labels: npt.NDArray[np.generic],
    recipe: Recipe,
    *,
    epochs: int,
    batch_size: int,
    target_accuracy: float | None = None,
    seed: int | None = None,
    verbose: Verbose = "auto",
    callbacks: Sequence[keras.callbacks.Callback] = (),
    deterministic: bool = False,
) -> keras.callbacks.History:
    """Train with a non-legacy recipe (see the module documentation); used by ``train``.

    Arrays are already checked and scaled by ``train``, and the seed already set. The
    model is recompiled with :func:`compile_for_recipe` (a fresh optimizer whose
    schedule spans ``epochs``).

    Raises:
        ValueError: ``deterministic`` without a ``seed``.
    """
    if deterministic:
        if seed is None:
            raise ValueError("deterministic=True needs a seed, got seed=None")
        from lenet_mnist.checkpoint import enable_determinism

        enable_determinism(seed)
    count = int(train_images.shape[0])
    steps_per_epoch = count // batch_size if count >= batch_size else 1
    total_steps = steps_per_epoch * epochs
    compile_for_recipe(model, recipe, total_steps)
    dataset = make_dataset(
        train_images, train_labels, batch_size=batch_size, seed=seed, max_shift=recipe.max_shift
    )
    monitor = TargetAccuracy(
        test_images,
        test_labels,
        target=target_accuracy,
        every=recipe.eval_every,
        start_step=math.ceil(recipe.eval_from * total_steps),
    )
    # The monitor goes first so the epoch's val_ entries are in the logs History sees.
    # One endless iterator (repeat, steps_per_epoch) instead of a new one per epoch:
    # setting up a new one stalled the first steps of an epoch by 0.2-2 s here.
    return model.fit(
        dataset.repeat(),
        steps_per_epoch=steps_per_epoch,
        epochs=epochs,
        verbose=verbose,
        callbacks=[monitor, *callbacks],
        shuffle=False,  # the dataset reshuffles itself every epoch
    )
