"""Saving and loading models as ``.keras`` files, safely.

A ``.keras`` file is a zip archive holding ``config.json`` (the architecture as a
tree of ``{"module", "class_name", "config"}`` records), ``metadata.json`` and the
weights. Loading one deserializes whatever classes its config names, so a file from
an untrusted source is a risk. :func:`load_model` reads the file once and checks all
of it before Keras builds anything (see :mod:`lenet_mnist.models.keras_file`): the archive's
structure and sizes, every record of the config against an exact allow-list, the
number of layers and parameters, and the weights file against what the config
declares; only ``safe_mode=False``, by name, skips those checks.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras

from lenet_mnist._util.atomic import atomic_write
from lenet_mnist._util.checks import check_bool, check_positive_int

# Importing the modules registers FusedBatchNorm and LeNet with Keras so files load.
from lenet_mnist.models.batch_norm import FusedBatchNorm  # noqa: F401
from lenet_mnist.models.file_path import check_model_path
from lenet_mnist.models.keras_file import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_CONFIG_BYTES,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_LAYERS,
    DEFAULT_MAX_PARAMS,
    load_keras_file,
)
from lenet_mnist.models.lenet import LeNet  # noqa: F401
from lenet_mnist.models.portable import standard_copy
from lenet_mnist.models.provenance import FROM_FILE, record_origin

__all__ = ["check_model_path", "load_model", "save_model"]


def save_model(model: keras.Model, path: str | os.PathLike[str]) -> Path:
    """Save a model, with its optimizer state, to a ``.keras`` file, atomically.

    The file is written next to its destination under a temporary name and renamed
    into place, so an interrupted save never leaves a truncated file under ``path``
    (an existing file there stays intact until the new one is complete).

    Each :class:`~lenet_mnist.FusedBatchNorm` is written as the
    ``keras.layers.BatchNormalization`` it is equivalent to (same state, same
    results), so the file of any :func:`~lenet_mnist.build_lenet` network loads with
    plain ``keras.saving.load_model`` in a process that never imports lenet-mnist;
    loading it gives Keras's layers back. A :class:`~lenet_mnist.LeNet` is saved as
    itself and needs ``import lenet_mnist`` (which registers it with Keras) to load.

    Args:
        model: The model to save.
        path: Destination; must end in ``.keras``. Parent directories are created.

    Returns:
        The path written.

    Raises:
        TypeError: ``model`` is not a ``keras.Model``.
        ValueError: ``path`` does not end in ``.keras``.

    Example:
        >>> import tempfile, pathlib
        >>> from lenet_mnist import build_lenet
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     save_model(build_lenet(), pathlib.Path(tmp) / "m.keras").name
        'm.keras'
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    target = check_model_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        # An unbuilt optimizer saves no slots and Keras warns when loading it back.
        optimizer.build(model.trainable_variables)
    atomic_write(target, standard_copy(model).save)
    return target


def load_model(
    path: str | os.PathLike[str],
    *,
    safe_mode: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_config_bytes: int = DEFAULT_MAX_CONFIG_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_layers: int = DEFAULT_MAX_LAYERS,
    max_params: int = DEFAULT_MAX_PARAMS,
) -> keras.Model:
    """Load a model saved by :func:`save_model` (or an ordinary Keras image classifier).

    The file is opened once (a regular file only) and read whole, at most ``max_bytes``;
    Keras later builds the model from a private copy of those same checked bytes and
    never opens ``path`` itself. With ``safe_mode`` (the default), before Keras builds
    anything, the file must be:

    * a zip archive from its first byte to its last with exactly the members Keras
      writes (``config.json``, ``metadata.json``, ``model.weights.h5``), unencrypted,
      within the size limits both as declared and as decompressed;
    * a config whose every object is on an exact allow-list of ``(module, class)``
      pairs in its proper place: this library's networks and ``FusedBatchNorm``,
      Functional and Sequential models of the Keras layers an image classifier needs
      (convolutions, dense, pooling, normalization, dropout, activations by name,
      reshaping and merging layers), Keras's optimizers, learning-rate schedules,
      losses, metrics, initializers, regularizers, constraints and dtype policies. No
      operation nodes, ``Lambda`` layers, serialized functions, custom call arguments
      or file paths;
    * within ``max_depth``, ``max_layers`` and ``max_params``, counted from the config
      (the parameters by inferring every layer's shapes);
    * a weights file holding exactly the variables the config implies (shapes and
      dtypes) and optimizer state consistent with them, without links, external or
      virtual storage or filters.

    The defaults fit every model this library builds many times over; raise a limit
    only for a file you have reason to expect to be that large. A refused file is
    never modified and nothing is written while refusing it.

    Args:
        path: A ``.keras`` file.
        safe_mode: Keep it ``True`` for any file you did not make yourself. ``False``
            (by name only) loads with Keras's own checks alone, which lets a file run
            code: only for files you trust. It still reads the file once, at most
            ``max_bytes``.
        max_bytes: Largest file, and largest total of its decompressed members, in
            bytes (default 32 MiB).
        max_config_bytes: Largest ``config.json``, in bytes (default 2 MiB).
        max_depth: Deepest nesting of lists and objects in the JSON (default 64).
        max_layers: Most layers, and most layer calls, counting nested models
            (default 256).
        max_params: Most model parameters (default 2**23, 32 MiB of float32).

    Returns:
        The model, compiled if it was saved compiled; a :class:`LeNet` comes back as a
        ``LeNet``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IsADirectoryError: ``path`` is a directory.
        ModelFileError: ``path`` is not a regular, readable ``.keras`` file within the
            limits, or Keras cannot build it (a ``ValueError``).
        UnsafeModelError: With ``safe_mode``, the file asks for something outside the
            allow-list; the message names it and where it is (a ``ModelFileError``).
        TypeError: An argument of the wrong type.
        ValueError: A limit below 1.

    Example:
        >>> model = load_model("lenet.keras")  # doctest: +SKIP
        >>> big = load_model("resnet.keras", max_bytes=256 << 20, max_params=2**26)  # doctest: +SKIP
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    check_bool("safe_mode", safe_mode)
    limits = {
        "max_bytes": max_bytes,
        "max_config_bytes": max_config_bytes,
        "max_depth": max_depth,
        "max_layers": max_layers,
        "max_params": max_params,
    }
    for name, value in limits.items():
        check_positive_int(name, value)
    model = load_keras_file(path, safe_mode=safe_mode, **limits)
    # Weights from a file are as repeatable as seeded ones (train(deterministic=True)).
    record_origin(model, FROM_FILE)
    return model
