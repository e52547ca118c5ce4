"""The pretrained model shipped inside the package: no training, no network.

The weights file ``lenet_mnist/weights/robust.keras`` is produced by
``scripts/train_pretrained.py`` (seeded; its docstring gives the recipe and the run
time): the ``"robust"`` network of :func:`lenet_mnist.build_lenet`, trained with
augmentation that makes it robust to real handwriting after
:func:`lenet_mnist.prepare_image`. Beside it, ``weights/robust.json`` holds the
calibration temperature (``scripts/calibrate_pretrained.py`` fits it on MNIST training
images held out for validation); :func:`pretrained` divides the logits by it with a final
``Rescaling`` layer, which changes the probabilities but never the predicted digit.
"""

from __future__ import annotations

import functools
import json
import math
from importlib import resources
from typing import Final

import keras

__all__ = ["CALIBRATION_FILE", "PRETRAINED_FILE", "pretrained", "pretrained_temperature"]

#: The shipped weights, relative to the ``lenet_mnist`` package.
PRETRAINED_FILE: Final = "weights/robust.keras"
#: The shipped calibration (``{"temperature": T, ...}``), relative to the package.
CALIBRATION_FILE: Final = "weights/robust.json"
_MAX_CALIBRATION_BYTES: Final = 64 * 1024


@functools.cache
def pretrained_temperature() -> float:
    """The temperature the pretrained model's logits are divided by (1.0 if none ships).

    Raises:
        ModelFileError: The calibration file is unreadable or its temperature is not a
            number in [0.05, 20].
    """
    from lenet_mnist.errors import ModelFileError

    resource = resources.files("lenet_mnist").joinpath(CALIBRATION_FILE)
    if not resource.is_file():
        return 1.0
    data = resource.read_bytes()
    try:
        if len(data) > _MAX_CALIBRATION_BYTES:
            raise ValueError(f"over {_MAX_CALIBRATION_BYTES} bytes")
        value = json.loads(data)["temperature"]
    except (ValueError, KeyError, TypeError) as error:
        raise ModelFileError(
            f"unreadable calibration lenet_mnist/{CALIBRATION_FILE}, got {error}"
        ) from None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0.05 <= value <= 20
    ):
        raise ModelFileError(
            f"calibration temperature must be a number in [0.05, 20], got {value!r}"
        )
    return float(value)


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
        network = load_model(path)
    temperature = pretrained_temperature()
    if temperature == 1.0:
        return network
    # A positive scale keeps every argmax; the weights stay those of the file.
    scaled = keras.layers.Rescaling(1.0 / temperature, name="temperature")(network.output)
    return keras.Model(network.input, scaled, name=network.name)


def pretrained() -> keras.Model:
    """Return the pretrained digit recognizer shipped in the package.

    The file is read once per process; every call returns a new, independent copy
    (same architecture and weights), so changing or training the returned model
    never affects other callers.

    Returns:
        An uncompiled functional ``keras.Model`` (the ``"robust"`` variant of
        :func:`lenet_mnist.build_lenet`) mapping ``(batch, 28, 28, 1)`` float32 images
        in [0, 1], white ink on black, to ``(batch, 10)`` float32 calibrated logits:
        the network's logits divided by :func:`pretrained_temperature` (a final
        weightless ``Rescaling`` layer named ``"temperature"``), so the softmax of
        :func:`lenet_mnist.predict_digits` is calibrated and its argmax is the
        network's. Its weights are exactly those of ``build_lenet("robust")``. Compile
        it (e.g. :func:`lenet_mnist.compile_model`) before training it further.

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
