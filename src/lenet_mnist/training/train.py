"""``train``: every recipe through one engine, ``model.fit`` on the library's pipeline.

One loop for the tutorial's recipe and the library's own: the batches come from
:func:`~lenet_mnist.training.pipeline.make_dataset`, the test split is watched by
:class:`~lenet_mnist.training.monitor.TargetAccuracy`, and the parts a run asks for
are composed around ``model.fit``: seeding and determinism
(:mod:`~lenet_mnist.training.determinism`), checkpoints and resuming
(:mod:`~lenet_mnist.training.checkpoint`), a ``tf.distribute`` strategy
(:mod:`~lenet_mnist.training.distribute`).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from typing import Literal

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from lenet_mnist._util.checks import check_bool, check_positive_int, check_seed
from lenet_mnist._util.image_array import as_image_batch
from lenet_mnist.data.mnist import MnistData
from lenet_mnist.recipes import Recipe, RecipeName, compile_for_recipe, get_recipe
from lenet_mnist.training.checkpoint import (
    EpochCheckpoint,
    check_compatible,
    history_from,
    load_checkpoint,
    restore_checkpoint,
    run_config,
)
from lenet_mnist.training.determinism import (
    ReseedEachEpoch,
    check_seeded_model,
    order_seed,
    seed_run,
)
from lenet_mnist.training.distribute import check_model_strategy, strategy_scope
from lenet_mnist.training.limits import check_batch_size
from lenet_mnist.training.monitor import TargetAccuracy, check_target_accuracy
from lenet_mnist.training.multiworker import (
    agree_on_seed,
    check_same_on_every_worker,
    chief_write_path,
    is_multi_worker,
    one_step_per_execution,
)
from lenet_mnist.training.pipeline import make_dataset, steps_per_epoch

__all__ = ["train"]

Verbose = Literal["auto", 0, 1, 2]


def _labels(labels: npt.ArrayLike, count: int, split: str) -> npt.NDArray[np.generic]:
    array = np.asarray(labels)
    if array.ndim != 1 or array.shape[0] != count:
        raise ValueError(
            f"{split} labels must have shape ({count},) to match the images, got {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{split} labels must be integers, got dtype {array.dtype}")
    return array


def _split(
    images: npt.ArrayLike, labels: npt.ArrayLike, split: str
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.generic]]:
    batch = as_image_batch(images, f"{split} images")
    return batch, _labels(labels, batch.shape[0], split)


def train(
    model: keras.Model,
    data: MnistData,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    verbose: Verbose = "auto",
    callbacks: Sequence[keras.callbacks.Callback] = (),
    checkpoint_dir: str | os.PathLike[str] | None = None,
    deterministic: bool = False,
    strategy: tf.distribute.Strategy | None = None,
    recipe: RecipeName | Recipe = "tutorial",
    target_accuracy: float | None = None,
) -> keras.callbacks.History:
    """Train as the tutorial does: fit on the training split, validate on the test split.

    Every recipe trains through the same loop: ``model.fit`` on batches of the
    training split reshuffled every epoch, the test split evaluated after every epoch
    (its ``val_accuracy`` and ``val_loss`` go into the history), Keras's progress bar
    (``verbose``). ``checkpoint_dir``, ``seed``/``deterministic``, ``target_accuracy``
    and ``strategy`` work with every recipe. Every argument is checked before any work.

    Args:
        model: A model taking ``(batch, 28, 28, 1)`` images and returning logits. For
            the tutorial's recipe it must be compiled (see :func:`compile_model`); the
            other recipes compile it with their own Adam schedule.
        data: :class:`MnistData`; images by the library's one image rule (integers
            0..255 or floats in [0, 1], ``(N, 28, 28)`` or ``(N, 28, 28, 1)``; NaN,
            infinities and values outside the range are refused); labels integer
            class indices.
        epochs: Passes over the training split (``None``: the recipe's; the
            tutorial's is 10).
        batch_size: Images per gradient step, 1 .. 8192 (``None``: the recipe's; the
            tutorial's is Keras's default, 32). The bound keeps memory in check: see
            :mod:`lenet_mnist.training.limits`.
        seed: Seeds Python's, NumPy's and TensorFlow's generators first (via
            ``keras.utils.set_random_seed``) and keys every epoch's order, so the run
            repeats; ``None`` leaves the generators alone and draws a random order.
        verbose: Keras's progress display: ``"auto"``, 0 (silent), 1 (bar), 2 (a line
            per epoch).
        callbacks: Extra Keras callbacks; they see each epoch's ``val_`` entries.
        checkpoint_dir: Save the model, optimizer state, epoch and history there after
            every epoch, atomically (see :mod:`lenet_mnist.training.checkpoint`). If it
            already holds a checkpoint of this run, training resumes after its last
            completed epoch (a run already ``epochs`` long, or stopped at its
            ``target_accuracy``, does not train again; a larger ``epochs`` extends it).
            With a ``seed``, a resumed run ends with exactly the weights of an
            uninterrupted one.
        deterministic: Needs ``seed``. Also calls
            ``tf.config.experimental.enable_op_determinism()`` -- global and
            irreversible for the process -- so two runs with the same seed, data,
            hardware and library versions give bit-identical weights and history on
            CPU. On a GPU, TensorFlow promises the same for the ops this network uses
            (run to run on the same GPU model, driver and CUDA/cuDNN versions), slower;
            nothing is promised across different machines, CPU vs GPU, or versions.
            The model's initial weights must be seeded too (``seed`` here reseeds
            only what follows): a model built by ``build_lenet``,
            ``build_recipe_model`` or ``LeNet`` without a seed is refused (build it
            with ``seed=S``); a model loaded with ``load_model`` is fine; a model of
            one's own gets a ``UserWarning`` (build it after
            ``keras.utils.set_random_seed(S)``).
        strategy: Train data-parallel with this ``tf.distribute.Strategy`` (see
            :mod:`lenet_mnist.training.distribute`). The model must have been created
            (and, for the tutorial's recipe, compiled) inside ``strategy.scope()``;
            ``batch_size`` is then the global batch, split evenly between the
            ``strategy.num_replicas_in_sync`` replicas. With
            ``make_strategy("multi_worker")`` every worker calls ``train`` with the
            same arguments; only the chief writes checkpoints (every worker reads
            them, so ``checkpoint_dir`` must be the same shared directory for all),
            and the test-accuracy checks agree on every worker.
        recipe: ``"tutorial"`` (the default), ``"fast"``, ``"best"`` or a
            :class:`~lenet_mnist.recipes.Recipe`; see :mod:`lenet_mnist.recipes`.
            Build the model with :func:`~lenet_mnist.recipes.build_recipe_model` to get
            the recipe's network in its precision (bfloat16 for ``"fast"``).
        target_accuracy: Stop once the test accuracy reaches this value in (0, 1].
            Every recipe checks at epoch ends; ``"fast"`` also every few steps late in
            training (see :class:`~lenet_mnist.training.monitor.TargetAccuracy`).

    Returns:
        The ``keras.callbacks.History``; ``history.history`` maps ``"loss"``,
        ``"accuracy"``, ``"val_loss"`` and ``"val_accuracy"`` to one float per epoch
        (every epoch of the run, including those done before a resume).

    Raises:
        TypeError: ``model`` is not a ``keras.Model`` (or, for the tutorial's recipe,
            not compiled), or bad argument types.
        ValueError: Bad shapes or pixel values (an ``ImageError``), an empty split, or
            non-positive ``epochs``/``batch_size`` or a ``batch_size`` above 8192;
            ``deterministic`` without ``seed`` or with a model the library built
            without a seed; a checkpoint in ``checkpoint_dir`` written by a different run
            (recipe, architecture, optimizer, batch size, seed or training-set size);
            a model not created in ``strategy``'s scope, or a ``batch_size`` that is
            not a multiple of its number of replicas.

    Example:
        >>> from lenet_mnist import build_lenet, compile_model, load_mnist
        >>> data = load_mnist()  # doctest: +SKIP
        >>> history = train(compile_model(build_lenet()), data, epochs=1)  # doctest: +SKIP
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    chosen = get_recipe(recipe)
    target = check_target_accuracy(target_accuracy)
    if chosen.legacy_fit and (not getattr(model, "compiled", False) or model.optimizer is None):
        raise TypeError(
            "model must be compiled first (see lenet_mnist.compile_model), got an uncompiled model"
        )
    if not isinstance(data, tuple) or len(data) != 4:
        raise TypeError(f"data must be an MnistData, got {type(data).__name__}")
    epochs = check_positive_int("epochs", chosen.epochs if epochs is None else epochs)
    batch_size = check_batch_size(chosen.batch_size if batch_size is None else batch_size)
    seed = check_seed(seed)
    check_bool("deterministic", deterministic)
    if deterministic and seed is None:
        seed_run(seed, deterministic=True)  # raises, with the reason
    if deterministic:
        check_seeded_model(model)
    if verbose not in ("auto", 0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    if isinstance(callbacks, keras.callbacks.Callback) or not all(
        isinstance(c, keras.callbacks.Callback) for c in callbacks
    ):
        raise TypeError(f"callbacks must be a sequence of keras callbacks, got {callbacks!r}")
    if checkpoint_dir is not None and not isinstance(checkpoint_dir, str | os.PathLike):
        raise TypeError(
            f"checkpoint_dir must be a path or None, got {type(checkpoint_dir).__name__}"
        )
    if strategy is not None:
        check_model_strategy(model, strategy)
        replicas = int(strategy.num_replicas_in_sync)
        if batch_size % replicas:
            raise ValueError(
                f"batch_size must be a multiple of the strategy's {replicas} replicas, "
                f"got {batch_size}"
            )
        spe = getattr(model, "steps_per_execution", 1)
        if chosen.legacy_fit and is_multi_worker(strategy) and spe != 1:
            raise ValueError(
                "multi-worker training runs one step per execution (Keras's grouped steps "
                f"fail under MultiWorkerMirroredStrategy); compile with it, got "
                f"steps_per_execution={spe}"
            )
    train_images, train_labels = _split(data[0], data[1], "train")
    test_images, test_labels = _split(data[2], data[3], "test")

    seed_run(seed, deterministic=deterministic)
    steps = steps_per_epoch(len(train_images), batch_size, drop_remainder=chosen.drop_remainder)
    if not chosen.legacy_fit:
        with strategy_scope(strategy):
            compile_for_recipe(
                model,
                one_step_per_execution(chosen, strategy),
                steps * epochs,
                steps_per_epoch=steps,
            )

    # Non-chief workers' checkpoints go to a scratch directory, removed at the end.
    with contextlib.ExitStack() as cleanup:
        initial_epoch = 0
        checkpoint: EpochCheckpoint | None = None
        if checkpoint_dir is not None:
            config = run_config(
                model,
                batch_size=batch_size,
                seed=seed,
                num_train=len(train_images),
                recipe=chosen.name,
            )
            state = load_checkpoint(checkpoint_dir)
            # Workers resuming from different epochs would wait for each other forever.
            check_same_on_every_worker(
                strategy,
                "the checkpoint to resume",
                0 if state is None else 2 * state.epoch + state.stopped,
            )
            if state is not None:
                check_compatible(state, config)
                with strategy_scope(strategy):
                    restore_checkpoint(model, state)
                if state.epoch >= epochs or state.stopped:
                    return history_from(model, state.history)
                initial_epoch = state.epoch
            checkpoint_write_dir = cleanup.enter_context(chief_write_path(checkpoint_dir, strategy))
            checkpoint = EpochCheckpoint(
                checkpoint_write_dir,
                config=config,
                history=None if state is None else state.history,
            )

        dataset, steps = make_dataset(
            train_images,
            train_labels,
            batch_size=batch_size,
            seed=agree_on_seed(strategy, order_seed(seed)),
            initial_epoch=initial_epoch,
            epochs=epochs,
            drop_remainder=chosen.drop_remainder,
            max_shift=chosen.max_shift,
        )
        monitor = TargetAccuracy(
            test_images,
            test_labels,
            target=target,
            every=chosen.eval_every,
            start_step=max(0, math.ceil(chosen.eval_from * steps * epochs) - initial_epoch * steps),
            strategy=strategy,
        )
        # The monitor goes first, so the epoch's val_ entries are in the logs every later
        # callback (the caller's, the checkpoint, History, the progress bar) sees.
        parts: list[keras.callbacks.Callback] = [monitor, *callbacks]
        if seed is not None:
            parts.append(ReseedEachEpoch(seed))
        if checkpoint is not None:
            parts.append(checkpoint)
        history = model.fit(
            dataset,
            steps_per_epoch=steps,
            epochs=epochs,
            initial_epoch=initial_epoch,
            verbose=verbose,
            callbacks=parts,
            shuffle=False,  # the pipeline orders every epoch itself
        )
        if checkpoint is None:
            return history
        merged = history_from(model, checkpoint.history)
        merged.params = getattr(history, "params", {})
        return merged
