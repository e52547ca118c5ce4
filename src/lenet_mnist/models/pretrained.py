"""The pretrained model shipped inside the package: no training, no network.

The weights file ``lenet_mnist/weights/robust.keras`` is produced by
``scripts/train_pretrained.py`` (seeded; its docstring gives the recipe and the run
time): the ``"robust"`` network of :func:`lenet_mnist.build_lenet`, trained with
augmentation that makes it robust to real handwriting after
:func:`lenet_mnist.prepare_image`.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Final

import keras

__all__ = ["PRETRAINED_FILE", "pretrained"]

#: The shipped weights, relative to the ``lenet_mnist`` package.
PRETRAINED_FILE: Final = "weights/robust.keras"


@functools.cache
def _shipped() -> keras.Model:
    from lenet_mnist.errors import ModelFileError
    from lenet_mnist.models.saving import load_model

    resource = resources.files("lenet_mnist").joinpath(PRETRAINED_FILE)
    if not resource.is_file():
        raise ModelFileError(
            f"the pretrained weights are missing from the installed package, got no file "
            f"lenet_mnist/{PRETRAINED_FILE}; reinstall lenet-mnist"
        )
    # as_file gives a real path even when the package is imported from a zip archive.
    with resources.as_file(resource) as path:
        return load_model(path)


def pretrained() -> keras.Model:
    """Return the pretrained digit recognizer shipped in the package.

    The file is read once per process; every call returns a new, independent copy
    (same architecture and weights), so changing or training the returned model
    never affects other callers.

    Returns:
        An uncompiled functional ``keras.Model`` (the ``"robust"`` variant of
        :func:`lenet_mnist.build_lenet`) mapping ``(batch, 28, 28, 1)`` float32 images
        in [0, 1], white ink on black, to ``(batch, 10)`` float32 logits. Compile it
        (e.g. :func:`lenet_mnist.compile_model`) before training it further.

    Raises:
        ModelFileError: The weights file is missing or unreadable (a broken install).

    Example:
        >>> import numpy as np
        >>> from lenet_mnist import predict_digits
        >>> model = pretrained()
        >>> model.name, model.output_shape
        ('lenet_robust', (None, 10))
        >>> predict_digits(model, np.zeros((28, 28), np.float32)).digits.shape
        (1,)
    """
    shipped = _shipped()
    copy = keras.models.clone_model(shipped)
    copy.set_weights(shipped.get_weights())
    return copy
