"""``LeNet``: the tutorial's network as a subclassed, serializable ``keras.Model``."""

from __future__ import annotations

from typing import Any

import keras

from lenet_mnist._util.checks import check_seed
from lenet_mnist.models.provenance import record_origin

__all__ = ["LeNet"]


@keras.saving.register_keras_serializable(package="lenet_mnist")
class LeNet(keras.Model):  # type: ignore[misc]
    """The tutorial's "seed" network as a subclassed model.

    Same layers, names, order and parameter count (121,930 for 10 classes) as
    ``build_lenet("seed")``, so weights transfer both ways with ``set_weights``.
    Saved to ``.keras`` and loaded back (see :func:`lenet_mnist.load_model`), it is a
    ``LeNet`` again.

    Args:
        num_classes: Number of output logits.
        seed: Seed for the initial weights (0 .. 2**32 - 1), as in
            :func:`~lenet_mnist.build_lenet` (recorded on the model; a model built
            without one cannot train with ``deterministic=True``). Not saved in the
            config: a loaded model's weights come from its file.
        **kwargs: Passed to ``keras.Model`` (``name``, ``dtype`` ...).

    Call:
        ``(batch, 28, 28, 1)`` float32 images in [0, 1] -> ``(batch, num_classes)``
        float32 logits.

    Example:
        >>> import numpy as np
        >>> model = LeNet()
        >>> model(np.zeros((2, 28, 28, 1), np.float32)).shape
        TensorShape([2, 10])
        >>> model.count_params()
        121930
    """

    def __init__(self, num_classes: int = 10, *, seed: int | None = None, **kwargs: Any) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int):
            raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        seed = check_seed(seed)
        if seed is not None:
            keras.utils.set_random_seed(seed)
        kwargs.setdefault("name", "lenet")
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.conv1 = keras.layers.Conv2D(32, 3, activation="relu", name="conv1")
        self.pool1 = keras.layers.MaxPooling2D(2, name="pool1")
        self.conv2 = keras.layers.Conv2D(64, 3, activation="relu", name="conv2")
        self.pool2 = keras.layers.MaxPooling2D(2, name="pool2")
        self.flatten = keras.layers.Flatten(name="flatten")
        self.fc1 = keras.layers.Dense(64, activation="relu", name="fc1")
        self.logits = keras.layers.Dense(num_classes, name="logits", dtype="float32")
        # Build eagerly so weights exist (for set_weights, summary, count_params) at once.
        self.build((None, 28, 28, 1))
        # train(deterministic=True) refuses a model whose initial weights were not seeded.
        record_origin(self, seed)

    def build(self, input_shape: Any) -> None:  # noqa: D102 - Keras API
        if self.built:  # type: ignore[has-type]
            return
        shape = tuple(input_shape)
        for layer in (self.conv1, self.pool1, self.conv2, self.pool2, self.flatten, self.fc1):
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.logits.build(shape)
        self.built = True

    def call(self, inputs: Any, training: bool | None = None) -> Any:  # noqa: D102 - Keras API
        x = self.conv1(inputs)
        x = self.pool1(x)
        x = self.conv2(x)
        x = self.pool2(x)
        x = self.flatten(x)
        x = self.fc1(x)
        return self.logits(x)

    def get_config(self) -> dict[str, Any]:  # noqa: D102 - Keras API
        config: dict[str, Any] = super().get_config()
        config.update({"num_classes": self.num_classes})
        return config
