"""Compiling and training, the tutorial's way."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

import keras
import numpy as np
import numpy.typing as npt
import tensorflow as tf

from lenet_mnist._validation import check_positive_int
from lenet_mnist.checkpoint import prepare_run
from lenet_mnist.data import MnistData
from lenet_mnist.distribute import check_model_strategy
from lenet_mnist.recipes import (
    Recipe,
    StopAtValAccuracy,
    check_target_accuracy,
    fit_recipe,
    get_recipe,
)

__all__ = ["compile_model", "train"]

Verbose = Literal["auto", 0, 1, 2]


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
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, int | float):
        raise TypeError(f"learning_rate must be a float, got {type(learning_rate).__name__}")
    if not (np.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a finite positive number, got {learning_rate!r}")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=float(learning_rate)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _training_arrays(
    images: npt.NDArray[np.generic], labels: npt.NDArray[np.generic], split: str
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.generic]]:
    """Check one split and return its images as float32 ``(N, 28, 28, 1)`` in [0, 1]."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[1:] != (28, 28, 1):
        raise ValueError(
            f"{split} images must have shape (N, 28, 28) or (N, 28, 28, 1), got {images.shape}"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{split} labels must have shape ({images.shape[0]},) to match the images, "
            f"got {labels.shape}"
        )
    if images.shape[0] == 0:
        raise ValueError(f"{split} split is empty, got 0 images")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{split} labels must be integers, got dtype {labels.dtype}")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255.0), labels
    if not np.issubdtype(images.dtype, np.floating):
        raise TypeError(f"{split} images must be uint8 or float, got dtype {images.dtype}")
    return images.astype(np.float32, copy=False), labels


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
    recipe: str | Recipe = "tutorial",
    target_accuracy: float | None = None,
) -> keras.callbacks.History:
    """Train as the tutorial does: fit on the training split, validate on the test split.

    Shows Keras's progress bar (``verbose``), validates after every epoch, shuffles
    every epoch. The model must be compiled (see :func:`compile_model`).

    Args:
        model: A compiled model taking ``(batch, 28, 28, 1)`` images.
        data: :class:`MnistData`; images float in [0, 1] or uint8 0..255 (scaled by
            1/255), with or without the channel axis; labels integer class indices.
        epochs: Passes over the training split (``None``: the recipe's; the
            tutorial's is 10).
        batch_size: Images per gradient step (``None``: the recipe's; the tutorial's is
            Keras's default, 32).
        seed: Seeds Python's, NumPy's and TensorFlow's random generators first (via
            ``keras.utils.set_random_seed``) so shuffling repeats; ``None`` leaves them.
        verbose: Keras's progress display: ``"auto"``, 0 (silent), 1 (bar), 2 (a line
            per epoch).
        callbacks: Extra Keras callbacks.
        checkpoint_dir: Save the model, optimizer state, epoch and history there after
            every epoch, atomically (see :mod:`lenet_mnist.checkpoint`). If it already
            holds a checkpoint of this run, training resumes after its last completed
            epoch (a run already ``epochs`` long does not train again; a larger
            ``epochs`` extends it). With a ``seed``, a resumed run ends with exactly the
            weights of an uninterrupted one.
        deterministic: Needs ``seed``. Also calls
            ``tf.config.experimental.enable_op_determinism()`` -- global and
            irreversible for the process -- so two runs with the same seed, data,
            hardware and library versions give bit-identical weights and history on
            CPU. On a GPU, TensorFlow promises the same for the ops this network uses
            (run to run on the same GPU model, driver and CUDA/cuDNN versions), slower;
            nothing is promised across different machines, CPU vs GPU, or versions.
        strategy: Train data-parallel with this ``tf.distribute.Strategy`` (see
            :mod:`lenet_mnist.distribute`). The model must have been created and compiled
            inside ``strategy.scope()``; ``batch_size`` is then the global batch, split
            evenly between the ``strategy.num_replicas_in_sync`` replicas.
        recipe: ``"tutorial"`` (the default: the tutorial's ``model.fit`` on arrays),
            ``"fast"``, ``"best"`` or a :class:`~lenet_mnist.recipes.Recipe`; see
            :mod:`lenet_mnist.recipes`. Other recipes recompile ``model`` with their
            optimizer and schedule (so it need not be compiled), train from a
            ``tf.data`` pipeline and do not support ``checkpoint_dir`` or ``strategy``.
            Build the model with :func:`~lenet_mnist.recipes.build_recipe_model` to get
            the recipe's network in its precision (bfloat16 for ``"fast"``).
        target_accuracy: Stop once the test accuracy reaches this value in (0, 1].
            The tutorial recipe checks at epoch ends; the others also every few steps
            late in training (see :class:`~lenet_mnist.recipes.TargetAccuracy`).

    Returns:
        The ``keras.callbacks.History``; ``history.history`` maps ``"loss"``,
        ``"accuracy"``, ``"val_loss"`` and ``"val_accuracy"`` to one float per epoch
        (every epoch of the run, including those done before a resume).

    Raises:
        TypeError: ``model`` is not a compiled ``keras.Model``, or bad argument types.
        ValueError: Bad shapes, an empty split, or non-positive ``epochs``/``batch_size``;
            ``deterministic`` without ``seed``; a checkpoint in ``checkpoint_dir``
            written with another architecture, optimizer, batch size, seed or training
            set size; a model not created in ``strategy``'s scope, or a
            ``batch_size`` that is not a multiple of its number of replicas.

    Example:
        >>> from lenet_mnist import build_lenet, compile_model, load_mnist
        >>> data = load_mnist()  # doctest: +SKIP
        >>> history = train(compile_model(build_lenet()), data, epochs=1)  # doctest: +SKIP
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    chosen = get_recipe(recipe)
    target_accuracy = check_target_accuracy(target_accuracy)
    if chosen.legacy_fit and (not getattr(model, "compiled", False) or model.optimizer is None):
        raise TypeError(
            "model must be compiled first (see lenet_mnist.compile_model), got an uncompiled model"
        )
    if not isinstance(data, tuple) or len(data) != 4:
        raise TypeError(f"data must be an MnistData, got {type(data).__name__}")
    epochs = check_positive_int("epochs", chosen.epochs if epochs is None else epochs)
    batch_size = check_positive_int(
        "batch_size", chosen.batch_size if batch_size is None else batch_size
    )
    if not chosen.legacy_fit and (checkpoint_dir is not None or strategy is not None):
        raise ValueError(
            "checkpoint_dir and strategy work only with recipe='tutorial', "
            f"got recipe={chosen.name!r}"
        )
    if verbose not in ("auto", 0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    if strategy is not None:
        check_model_strategy(model, strategy)
        replicas = int(strategy.num_replicas_in_sync)
        if batch_size % replicas:
            raise ValueError(
                f"batch_size must be a multiple of the strategy's {replicas} replicas, "
                f"got {batch_size}"
            )
    train_images, train_labels = _training_arrays(data[0], data[1], "train")
    test_images, test_labels = _training_arrays(data[2], data[3], "test")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        keras.utils.set_random_seed(seed)
    if not chosen.legacy_fit:
        return fit_recipe(
            model,
            train_images,
            train_labels,
            test_images,
            test_labels,
            chosen,
            epochs=epochs,
            batch_size=batch_size,
            target_accuracy=target_accuracy,
            seed=seed,
            verbose=verbose,
            callbacks=callbacks,
            deterministic=deterministic,
        )
    if target_accuracy is not None:
        callbacks = [*callbacks, StopAtValAccuracy(target_accuracy)]
    run = prepare_run(
        model,
        train_images,
        train_labels,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        checkpoint_dir=checkpoint_dir,
        deterministic=deterministic,
    )
    if run.finished is not None:
        return run.finished
    history = model.fit(
        *run.inputs,
        epochs=epochs,
        validation_data=(test_images, test_labels),
        verbose=verbose,
        callbacks=[*callbacks, *run.callbacks],
        **run.fit_args,
    )
    return run.finish(history)
