"""Where a model's current weights came from, so that a repeatable run can insist on it.

``train(..., seed=S, deterministic=True)`` promises bit-identical weights from run to
run, which only holds if the *initial* weights are the same too. ``seed`` in ``train``
reseeds only what follows; the initial weights were drawn when the model was built. So
the library's builders (:func:`~lenet_mnist.build_lenet`, and through it
:func:`~lenet_mnist.build_recipe_model`; :class:`~lenet_mnist.LeNet`) record on the
model the seed of its initial weights -- ``None`` when built without one -- and
:func:`~lenet_mnist.load_model` records that the weights came from a file, which is
as repeatable as a seed. The record is a plain attribute of the Python object; it is
not saved in ``.keras`` files.
"""

from __future__ import annotations

from typing import Any, Final, Literal

__all__ = ["FROM_FILE", "UNKNOWN", "Origin", "record_origin", "weights_origin"]

_ATTRIBUTE: Final = "lenet_mnist_weights_origin"

#: The origin of weights loaded from a model file.
FROM_FILE: Final = "file"
#: The origin of a model no function of the library made (a model of one's own).
UNKNOWN: Final = "unknown"

#: An ``int`` seed, ``None`` (built without a seed), :data:`FROM_FILE` or :data:`UNKNOWN`.
Origin = int | None | Literal["file", "unknown"]


def record_origin(model: Any, origin: int | Literal["file"] | None) -> None:
    """Record where ``model``'s weights came from: a seed, ``None`` (unseeded) or a file."""
    setattr(model, _ATTRIBUTE, origin)


def weights_origin(model: Any) -> Origin:
    """Where ``model``'s weights came from, as recorded by the library (or :data:`UNKNOWN`).

    Example:
        >>> weights_origin(object())
        'unknown'
    """
    origin: Origin = getattr(model, _ATTRIBUTE, UNKNOWN)
    return origin
