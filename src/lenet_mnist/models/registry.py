"""The registry of networks: one name, one description, one builder each.

The names and descriptions are pure data, importable without TensorFlow (the command
line reads its choices from here); :func:`build_lenet` imports the builders of
:mod:`lenet_mnist.models.networks` on first use. Parameter counts are not written
down anywhere: ``build_lenet(name).count_params()`` is the count.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, Literal, get_args

from lenet_mnist._util.checks import check_choice, check_seed

if TYPE_CHECKING:
    import keras

__all__ = ["DEFAULT_VARIANT", "VARIANTS", "VariantName", "build_lenet"]

#: The names :func:`build_lenet` accepts.
VariantName = Literal["seed", "lenet5", "robust", "fast"]

#: The variant built when none is named: the tutorial's network.
DEFAULT_VARIANT: Final[VariantName] = "seed"

#: The variants :func:`build_lenet` builds, with a one-line description each.
VARIANTS: Final[Mapping[str, str]] = {
    "seed": "the tutorial's network: conv32-pool-conv64-pool-dense64-dense10",
    "lenet5": "LeNet-5 (LeCun et al. 1998) layout on the 28x28 image padded to 32x32",
    "robust": "two conv pairs with batch norm and dropout (the pretrained model's network)",
    "fast": "shaped for training speed: conv16 5x5-pool-bn-conv32 3x3-pool-bn-dense64-dense10",
}

if set(VARIANTS) != set(get_args(VariantName)):  # pragma: no cover - a maintainer's slip
    raise RuntimeError("VARIANTS and VariantName name different variants")


def build_lenet(
    variant: VariantName = DEFAULT_VARIANT,
    *,
    num_classes: int = 10,
    seed: int | None = None,
) -> keras.Model:
    """Build one of the library's networks, untrained.

    Args:
        variant: A name in :data:`VARIANTS`: ``"seed"``, exactly the tutorial's network
            (Conv2D 32 3x3 ReLU -> MaxPool 2x2 -> Conv2D 64 3x3 ReLU -> MaxPool 2x2 ->
            Flatten -> Dense 64 ReLU -> Dense 10 logits; 121,930 parameters);
            ``"lenet5"``, LeCun et al. 1998's LeNet-5 (published test error 0.95%);
            ``"robust"``, two conv pairs with batch norm and dropout (the network of
            :func:`lenet_mnist.pretrained`); ``"fast"``, shaped for training speed.
        num_classes: Number of output logits, at least 2.
        seed: Seed for the initial weights (0 .. 2**32 - 1); ``None`` draws them from
            Keras's global random state (set with ``keras.utils.set_random_seed``).
            The seed is recorded on the model: ``train(..., deterministic=True)``
            refuses a model built without one, whose weights differ in every process.

    Returns:
        A functional ``keras.Model`` mapping ``(batch, 28, 28, 1)`` float32 images in
        [0, 1] to ``(batch, num_classes)`` float32 logits (no softmax). Layers are
        named, so weights can be inspected and transferred by name.

    Raises:
        ValueError: Unknown variant (the message lists the valid ones),
            ``num_classes < 2`` or a seed out of range.
        TypeError: ``num_classes`` or ``seed`` is not an int.

    Example:
        >>> model = build_lenet("seed", seed=0)
        >>> model.count_params()
        121930
        >>> model.output_shape
        (None, 10)
    """
    check_choice("variant", variant, VARIANTS)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    seed = check_seed(seed)
    import keras

    from lenet_mnist.models.networks import BUILDERS
    from lenet_mnist.models.provenance import record_origin

    if seed is not None:
        keras.utils.set_random_seed(seed)
    model = BUILDERS[str(variant)](num_classes)
    # train(deterministic=True) refuses a model whose initial weights were not seeded.
    record_origin(model, seed)
    return model
