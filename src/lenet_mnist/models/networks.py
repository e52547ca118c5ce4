"""The networks, as functional Keras models; :func:`~lenet_mnist.models.registry.build_lenet` builds them.

Every variant takes ``(batch, 28, 28, 1)`` float32 images in [0, 1] and returns
``(batch, num_classes)`` float32 logits (no softmax: the loss applies it). Layers are
named so weights can be inspected and transferred by name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

import keras

from lenet_mnist.models.batch_norm import FusedBatchNorm

__all__ = ["BUILDERS", "INPUT_SHAPE"]

INPUT_SHAPE: Final = (28, 28, 1)


def _seed_network(num_classes: int) -> keras.Model:
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = keras.layers.Conv2D(32, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(64, 3, activation="relu", name="conv2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(64, activation="relu", name="fc1")(x)
    outputs = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="lenet_seed")


def _lenet5_network(num_classes: int) -> keras.Model:
    # LeCun et al. 1998: 32x32 input (MNIST's 28x28 padded by 2), tanh units, average
    # subsampling. Simplifications, as in most modern reproductions: C3 connects to all
    # six S2 maps (the paper's sparse table has 1,516 weights, this has 2,416),
    # subsampling has no trainable coefficients, and the output layer is a dense
    # layer of logits instead of Euclidean RBF units.
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = keras.layers.ZeroPadding2D(2, name="pad")(inputs)
    x = keras.layers.Conv2D(6, 5, activation="tanh", name="c1")(x)
    x = keras.layers.AveragePooling2D(2, name="s2")(x)
    x = keras.layers.Conv2D(16, 5, activation="tanh", name="c3")(x)
    x = keras.layers.AveragePooling2D(2, name="s4")(x)
    x = keras.layers.Conv2D(120, 5, activation="tanh", name="c5")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(84, activation="tanh", name="f6")(x)
    outputs = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="lenet5")


def _robust_network(num_classes: int) -> keras.Model:
    # Two conv pairs with batch norm and dropout: small enough to train to 99.4% in a few
    # CPU minutes and to ship in the package (the pretrained model), wide enough to
    # absorb the augmentation that makes it robust to real, preprocessed handwriting.
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = inputs
    for stage, filters in ((1, 32), (2, 64)):
        for part in "ab":
            name = f"conv{stage}{part}"
            x = keras.layers.Conv2D(filters, 3, use_bias=False, name=name)(x)
            # The fused kernel: the same state and mathematics as Keras's layer, which
            # the shipped pretrained file uses, and 1.7x faster training here.
            x = FusedBatchNorm(name=f"{name}_bn")(x)
            x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{stage}")(x)
        x = keras.layers.Dropout(0.1, name=f"pool{stage}_dropout")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(128, use_bias=False, name="fc1")(x)
    x = keras.layers.BatchNormalization(name="fc1_bn")(x)
    x = keras.layers.Activation("relu", name="fc1_relu")(x)
    x = keras.layers.Dropout(0.4, name="fc1_dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="lenet_robust")


def _fast_network(num_classes: int) -> keras.Model:
    # Shaped for training speed on CPUs (measured in benchmarks/): a 5x5 then a 3x3
    # convolution with half the tutorial's filters (0.65 M multiply-adds per image
    # instead of 2.5 M), channel counts that are multiples of 16 (oneDNN's bfloat16
    # blocks), and batch normalization *after* pooling, on a quarter of the
    # activations, by the fused kernel. Normalization lets a large step size reach
    # 99% test accuracy in about one epoch instead of two; max-pooling first then
    # normalizing is a valid order for it (the ReLU comes after both).
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = inputs
    for stage, (filters, size) in enumerate(((16, 5), (32, 3)), start=1):
        x = keras.layers.Conv2D(filters, size, use_bias=False, name=f"conv{stage}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{stage}")(x)
        # momentum 0.9: the fast recipe evaluates after a few hundred steps, when
        # Keras's 0.99 would still lag the statistics of the changing weights.
        x = FusedBatchNorm(momentum=0.9, name=f"pool{stage}_bn")(x)
        x = keras.layers.Activation("relu", name=f"pool{stage}_relu")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(64, activation="relu", name="fc1")(x)
    outputs = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="lenet_fast")


#: Builder of each variant, by name: ``(num_classes) -> keras.Model``. The names and
#: descriptions are :data:`lenet_mnist.models.registry.VARIANTS`'s.
BUILDERS: Final[Mapping[str, Callable[[int], keras.Model]]] = {
    "seed": _seed_network,
    "lenet5": _lenet5_network,
    "robust": _robust_network,
    "fast": _fast_network,
}
