"""Copies of a model that run without lenet-mnist: standard layers only, or float32 only.

Two rebuilds, each a ``keras.models.clone_model`` with the same layer names, order and
weights:

* :func:`standard_copy` replaces every :class:`~lenet_mnist.models.batch_norm.FusedBatchNorm`
  by a ``keras.layers.BatchNormalization`` holding the same state (the two share it
  exactly: ``gamma``, ``beta``, ``moving_mean``, ``moving_variance``, in that order).
  It shares the original's optimizer, so a ``.keras`` file saved from the copy holds
  the original's optimizer state, and a file loaded into the copy restores it into the
  original's optimizer (:func:`load_weights`). :func:`lenet_mnist.save_model` writes
  this copy, so its files load in plain Keras.
* :func:`float32_copy` rebuilds a mixed-precision (bfloat16) model in float32, for the
  exporters: LiteRT's converter and ONNX runtimes do not take bfloat16 convolutions.

Why the weight file needs :func:`load_weights`: Keras stores each layer's weights
under a path made from its *class* (``layers/fused_batch_norm_1/vars``), so a file of
``BatchNormalization`` layers does not load into a model of ``FusedBatchNorm`` ones
with ``model.load_weights``; loading it into the standard copy and copying the
weights across does.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterator
from typing import Any, Final

import keras
import numpy as np

from lenet_mnist.models.batch_norm import FusedBatchNorm

__all__ = ["float32_copy", "has_fused_batch_norm", "load_weights", "standard_copy"]

# TensorFlow's fused kernel raises smaller epsilons to this; the copy must use the
# value the original really computed with.
_FUSED_MIN_EPSILON: Final = 1.001e-5


def _all_layers(model: keras.Layer) -> Iterator[keras.Layer]:
    """Every layer inside ``model``, nested models' layers included (not ``model`` itself)."""
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from _all_layers(layer)


def has_fused_batch_norm(model: keras.Model) -> bool:
    """Whether ``model`` contains a :class:`FusedBatchNorm` layer, at any depth."""
    return any(isinstance(layer, FusedBatchNorm) for layer in _all_layers(model))


def _is_functional(model: keras.Model) -> bool:
    # Functional and Sequential models can be cloned layer by layer; a subclassed
    # model's layers are made by its own __init__.
    return isinstance(model, keras.Sequential) or (
        hasattr(model, "inputs") and hasattr(model, "outputs") and model.inputs is not None
    )


def _default_clone(layer: keras.Layer) -> keras.Layer:
    return layer.__class__.from_config(layer.get_config())


def _standard_layer(layer: keras.Layer) -> keras.Layer:
    if isinstance(layer, FusedBatchNorm):
        return keras.layers.BatchNormalization(
            axis=-1,
            momentum=layer.momentum,
            epsilon=max(layer.epsilon, _FUSED_MIN_EPSILON),
            name=layer.name,
            trainable=layer.trainable,
            dtype=layer.dtype_policy,
        )
    return _default_clone(layer)


def _clone(model: keras.Model, clone_function: Callable[[keras.Layer], keras.Layer]) -> keras.Model:
    copy = keras.models.clone_model(model, clone_function=clone_function, recursive=True)
    copy.set_weights([np.asarray(w) for w in model.get_weights()])
    copy.trainable = model.trainable
    return copy


def _share_compilation(original: keras.Model, copy: keras.Model) -> None:
    optimizer = getattr(original, "optimizer", None)
    config = original.get_compile_config() if optimizer is not None else None
    if config is None:
        return
    copy.compile_from_config(config)
    # The same optimizer object: its slots are indexed by position, and the copy's
    # trainable variables come in the original's order.
    copy.optimizer = optimizer


def standard_copy(model: keras.Model) -> keras.Model:
    """Return ``model`` with every :class:`FusedBatchNorm` replaced by Keras's own layer.

    The copy has the same layer names, order, dtype policies and weights, and is
    compiled like ``model`` with ``model``'s own optimizer object (so saving the copy
    saves ``model``'s optimizer state). A model without ``FusedBatchNorm`` layers, or
    a subclassed one (whose layers its own code makes), is returned as it is.

    Args:
        model: Any ``keras.Model``.

    Returns:
        ``model`` itself, or a functional copy of standard Keras layers.

    Example:
        >>> from lenet_mnist import build_lenet
        >>> copy = standard_copy(build_lenet("fast", seed=0))
        >>> type(copy.get_layer("pool1_bn")).__name__
        'BatchNormalization'
    """
    if not has_fused_batch_norm(model) or not _is_functional(model):
        return model
    copy = _clone(model, _standard_layer)
    _share_compilation(model, copy)
    return copy


def _float32_config(config: Any) -> Any:
    config = dict(config)
    if "dtype" in config:
        config["dtype"] = "float32"
    return config


def _float32_layer(layer: keras.Layer) -> keras.Layer:
    return layer.__class__.from_config(_float32_config(layer.get_config()))


def _computes_in_float32(model: keras.Model) -> bool:
    layers = [model, *_all_layers(model)]
    return all(
        layer.compute_dtype == "float32" and layer.variable_dtype == "float32" for layer in layers
    )


def float32_copy(model: keras.Model) -> keras.Model:
    """Return ``model`` rebuilt to compute in float32, with the same architecture and weights.

    Layers built under a mixed or bfloat16 dtype policy are rebuilt with the
    ``float32`` policy (a functional model layer by layer; a subclassed one from its
    config, under a float32 global policy, so that the layers its ``__init__`` makes
    are float32 too) and the weights are copied, cast to float32. The copy is not
    compiled.

    Args:
        model: Any ``keras.Model``.

    Returns:
        ``model`` itself when every layer already computes in float32, else the copy.

    Raises:
        ValueError: The rebuilt model's weights do not match the original's (a
            subclassed model whose config does not rebuild it).

    Example:
        >>> from lenet_mnist import build_recipe_model
        >>> copy = float32_copy(build_recipe_model("fast", seed=0))
        >>> copy.get_layer("conv1").compute_dtype
        'float32'
    """
    if _computes_in_float32(model):
        return model
    weights = [np.asarray(w, dtype=np.float32) for w in model.get_weights()]
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        if _is_functional(model):
            copy = keras.models.clone_model(model, clone_function=_float32_layer, recursive=True)
        else:
            copy = model.__class__.from_config(_float32_config(model.get_config()))
            if not copy.built:
                copy.build(model.inputs[0].shape if model.inputs else (None, 28, 28, 1))
    finally:
        keras.config.set_dtype_policy(previous)
    try:
        copy.set_weights(weights)
    except ValueError as error:
        raise ValueError(
            f"cannot rebuild {model.name!r} in float32: its weights do not fit the rebuilt "
            f"model, got {error}"
        ) from error
    return copy


def _file_has_fused_batch_norm(path: str | os.PathLike[str]) -> bool:
    # Checkpoints written before save_model wrote standard layers hold FusedBatchNorm
    # weights under FusedBatchNorm's paths: those load into the model directly.
    try:
        with zipfile.ZipFile(path) as archive:
            return b'"FusedBatchNorm"' in archive.read("config.json")
    except (OSError, KeyError, zipfile.BadZipFile):
        return False


def load_weights(model: keras.Model, path: str | os.PathLike[str]) -> None:
    """Load a ``.keras`` file's weights and optimizer state into ``model``, in place.

    Like ``model.load_weights(path)``, but a file written by
    :func:`lenet_mnist.save_model` (``BatchNormalization`` where ``model`` has
    :class:`FusedBatchNorm`) loads too: into :func:`standard_copy`'s copy, which
    shares ``model``'s optimizer, whose weights are then copied into ``model``. The
    weights arrive bit for bit, and ``model`` keeps its fused layers.

    Args:
        model: The model to fill; build its optimizer first to restore the slots.
        path: A ``.keras`` file of the same architecture.

    Raises:
        ValueError: The file's weights do not fit ``model`` (Keras's message).
        KeyError: The file lacks weights ``model`` has (Keras's message).
    """
    copy = standard_copy(model)
    if copy is model or _file_has_fused_batch_norm(path):
        model.load_weights(path)
        return
    copy.load_weights(path)
    model.set_weights(copy.get_weights())
