"""Training recipes as data, their learning-rate schedule and precision, and the one compile.

A :class:`Recipe` fixes how :func:`lenet_mnist.train` trains: the network it is meant
for, batch size, epochs, learning-rate schedule, numeric precision, augmentation and how
often the test split is evaluated. :data:`RECIPES` holds the presets:

- ``"tutorial"``: the tutorial's recipe, unchanged (batch 32, the model's own compile --
  Adam 0.001 from :func:`compile_model` --, validation every epoch, 10 epochs);
- ``"fast"``: the fastest to 99% test accuracy (the ``"fast"`` network in bfloat16,
  batch 128, warmup-then-cosine Adam, evaluations between epoch ends);
- ``"best"``: the most accurate (the ``"robust"`` network, random shifts, 20 epochs).

Every recipe trains through the same engine (:mod:`lenet_mnist.training`). This
module imports Keras only when one of its functions needs it, so the command line
reads the recipes' names without starting TensorFlow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from lenet_mnist.models.registry import VariantName

if TYPE_CHECKING:
    import keras

__all__ = [
    "RECIPES",
    "Recipe",
    "RecipeName",
    "build_recipe_model",
    "compile_for_recipe",
    "compile_model",
    "get_recipe",
    "learning_rate_schedule",
    "precision_policy",
]

#: The names of the presets in :data:`RECIPES`.
RecipeName = Literal["tutorial", "fast", "best"]


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
        drop_remainder: Drop each epoch's last, smaller batch (a steady shape, traced
            once); ``False`` trains on it, as ``model.fit`` on arrays does.
        legacy_fit: Train the model with its own compile (the tutorial's way: compile
            it first, see :func:`compile_model`), one step per execution, no schedule;
            ``False``: :func:`lenet_mnist.train` compiles it with this recipe's Adam
            schedule. Every recipe trains through the same engine either way.
    """

    name: str
    description: str
    variant: VariantName
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
    drop_remainder: bool = False
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
            description="the tutorial's: batch 32, Adam 0.001 as compiled, validation every epoch, 10 epochs",
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
            drop_remainder=True,
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
            drop_remainder=True,
        ),
    )
}


def get_recipe(
    recipe: RecipeName | Recipe,
    *,
    variant: VariantName | None = None,
    learning_rate: float | None = None,
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
        >>> import keras
        >>> from lenet_mnist import build_lenet
        >>> with precision_policy(True):
        ...     model = build_lenet("seed", seed=0)
        >>> model.get_layer("conv1").compute_dtype, model.output.dtype
        ('bfloat16', 'float32')
        >>> keras.config.dtype_policy().name
        'float32'
    """
    import keras

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
    import keras

    warmup = min(total_steps - 1, round(recipe.warmup_fraction * total_steps))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=recipe.learning_rate / 10 if warmup else recipe.learning_rate,
        decay_steps=max(1, total_steps - warmup),
        alpha=recipe.final_fraction,
        warmup_target=recipe.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


def compile_model(model: keras.Model, *, learning_rate: float = 1e-3) -> keras.Model:
    """Compile ``model`` as the tutorial does: Adam, cross-entropy on logits, accuracy.

    Args:
        model: A model that outputs logits (no softmax), such as :func:`build_lenet`'s.
        learning_rate: Adam's step size (the tutorial uses Adam's default, 0.001).

    Returns:
        The same ``model``, compiled, for chaining.

    Raises:
        TypeError: ``model`` is not a ``keras.Model``.
        ValueError: ``learning_rate`` is not a finite positive number.

    Example:
        >>> from lenet_mnist import build_lenet
        >>> model = compile_model(build_lenet())
        >>> type(model.optimizer).__name__, round(float(model.optimizer.learning_rate), 6)
        ('Adam', 0.001)
    """
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, int | float):
        raise TypeError(f"learning_rate must be a float, got {type(learning_rate).__name__}")
    if not (math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a finite positive number, got {learning_rate!r}")
    return _compile(model, float(learning_rate), steps_per_execution=1)


def compile_for_recipe(
    model: keras.Model, recipe: Recipe, total_steps: int, *, steps_per_epoch: int | None = None
) -> keras.Model:
    """Compile ``model`` with the recipe's Adam schedule over ``total_steps`` steps.

    The same compile as :func:`compile_model` (Adam, sparse cross-entropy on logits,
    accuracy), with :func:`learning_rate_schedule` and the recipe's
    ``steps_per_execution`` -- lowered to the largest divisor of ``steps_per_epoch``
    not above it, so no group of steps runs across an epoch's end. Returns the same
    ``model``.

    Example:
        >>> from lenet_mnist import build_lenet
        >>> model = compile_for_recipe(build_lenet(), get_recipe("fast"), 100, steps_per_epoch=50)
        >>> model.optimizer.get_config()["learning_rate"]["class_name"], model.steps_per_execution
        ('CosineDecay', 25)
    """
    group = recipe.steps_per_execution
    if steps_per_epoch is not None:
        group = max(
            d for d in range(1, min(group, steps_per_epoch) + 1) if steps_per_epoch % d == 0
        )
    schedule = learning_rate_schedule(recipe, total_steps)
    return _compile(model, schedule, steps_per_execution=group)


def _compile(model: keras.Model, learning_rate: Any, *, steps_per_execution: int) -> keras.Model:
    # The library's one compile: every model it trains is compiled here.
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model


def build_recipe_model(
    recipe: RecipeName | Recipe, *, num_classes: int = 10, seed: int | None = None
) -> keras.Model:
    """Build the recipe's network, in its precision, compiled as the tutorial does.

    ``train(model, data, recipe=...)`` recompiles it with the recipe's schedule; the
    tutorial's compile here makes the model usable with ``train``'s default recipe too.

    Example:
        >>> model = build_recipe_model("fast", seed=0)
        >>> model.get_layer("conv1").compute_dtype
        'bfloat16'
    """
    from lenet_mnist.models.registry import build_lenet

    chosen = get_recipe(recipe)
    with precision_policy(chosen.mixed_precision):
        model = build_lenet(chosen.variant, num_classes=num_classes, seed=seed)
    return compile_model(model, learning_rate=chosen.learning_rate)
