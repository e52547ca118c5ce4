"""build_lenet: the exact tutorial network, LeNet-5, errors, seeded weights."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from lenet_mnist.models import VARIANTS, build_lenet

# (name, class, output shape without the batch axis, parameters) of the tutorial's network.
SEED_LAYERS = [
    ("image", "InputLayer", (28, 28, 1), 0),
    ("conv1", "Conv2D", (26, 26, 32), 3 * 3 * 1 * 32 + 32),
    ("pool1", "MaxPooling2D", (13, 13, 32), 0),
    ("conv2", "Conv2D", (11, 11, 64), 3 * 3 * 32 * 64 + 64),
    ("pool2", "MaxPooling2D", (5, 5, 64), 0),
    ("flatten", "Flatten", (1600,), 0),
    ("fc1", "Dense", (64,), 1600 * 64 + 64),
    ("logits", "Dense", (10,), 64 * 10 + 10),
]

LENET5_LAYERS = [
    ("image", "InputLayer", (28, 28, 1), 0),
    ("pad", "ZeroPadding2D", (32, 32, 1), 0),
    ("c1", "Conv2D", (28, 28, 6), 5 * 5 * 1 * 6 + 6),
    ("s2", "AveragePooling2D", (14, 14, 6), 0),
    ("c3", "Conv2D", (10, 10, 16), 5 * 5 * 6 * 16 + 16),
    ("s4", "AveragePooling2D", (5, 5, 16), 0),
    ("c5", "Conv2D", (1, 1, 120), 5 * 5 * 16 * 120 + 120),
    ("flatten", "Flatten", (120,), 0),
    ("f6", "Dense", (84,), 120 * 84 + 84),
    ("logits", "Dense", (10,), 84 * 10 + 10),
]


def _describe(model: keras.Model) -> list[tuple[str, str, tuple[int, ...], int]]:
    rows = []
    for layer in model.layers:
        shape = layer.output.shape
        rows.append((layer.name, type(layer).__name__, tuple(shape[1:]), layer.count_params()))
    return rows


def test_seed_is_the_tutorials_network() -> None:
    model = build_lenet("seed", seed=0)
    assert _describe(model) == SEED_LAYERS
    assert model.count_params() == 121_930
    assert sum(row[3] for row in SEED_LAYERS) == 121_930
    assert model.input_shape == (None, 28, 28, 1)
    assert model.output_shape == (None, 10)
    activations = {layer.name: layer.get_config().get("activation") for layer in model.layers}
    assert activations["conv1"] == activations["conv2"] == activations["fc1"] == "relu"
    assert activations["logits"] == "linear"  # logits: the loss applies the softmax
    assert model.get_layer("conv1").get_config()["kernel_size"] == (3, 3)
    assert model.get_layer("conv1").get_config()["padding"] == "valid"
    assert model.get_layer("pool1").get_config()["pool_size"] == (2, 2)


def test_default_variant_is_seed() -> None:
    assert [layer.name for layer in build_lenet().layers] == [row[0] for row in SEED_LAYERS]


def test_lenet5_layout() -> None:
    model = build_lenet("lenet5", seed=0)
    assert _describe(model) == LENET5_LAYERS
    assert model.count_params() == 61_706
    assert model.get_layer("c1").get_config()["activation"] == "tanh"


def test_num_classes() -> None:
    for variant in ("seed", "lenet5"):
        model = build_lenet(variant, num_classes=3, seed=0)
        assert model.output_shape == (None, 3)
    assert build_lenet(num_classes=3).count_params() == 121_930 - 7 * 65


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_maps_images_to_float32_logits(variant: str) -> None:
    model = build_lenet(variant, seed=0)
    out = model(np.zeros((2, 28, 28, 1), np.float32), training=False)
    assert tuple(out.shape) == (2, 10)
    assert out.dtype == "float32"
    names = [layer.name for layer in model.layers]
    assert len(set(names)) == len(names)
    assert names[-1] == "logits"


@pytest.mark.parametrize("variant", ["", "Seed", "lenet", 5, None])
def test_unknown_variant_lists_the_valid_ones(variant: object) -> None:
    valid = ", ".join(repr(name) for name in sorted(VARIANTS))
    with pytest.raises(
        ValueError, match=rf"unknown variant; choose one of \[{valid}\], got {variant!r}$"
    ):
        build_lenet(variant)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"num_classes": 1}, ValueError, "num_classes must be at least 2, got 1"),
        ({"num_classes": True}, TypeError, "num_classes must be an int, got bool"),
        ({"num_classes": 10.0}, TypeError, "num_classes must be an int, got float"),
        ({"seed": "0"}, TypeError, "seed must be an int or None, got str"),
        ({"seed": False}, TypeError, "seed must be an int or None, got bool"),
    ],
)
def test_argument_errors(kwargs: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        build_lenet("seed", **kwargs)  # type: ignore[arg-type]


def test_seed_gives_reproducible_weights() -> None:
    first = build_lenet(seed=7).get_weights()
    second = build_lenet(seed=7).get_weights()
    other = build_lenet(seed=8).get_weights()
    assert len(first) == 8
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(first, other, strict=True))
    # Kernels are random, biases start at zero.
    assert np.std(first[0]) > 0
    assert not first[1].any()
