"""How sure a model is: temperature scaling and the expected calibration error.

A network trained with cross-entropy tends to be over-confident: its softmax says 0.999
where it is right 99% of the time. Temperature scaling (Guo et al., 2017) divides the
logits by one number ``T`` fitted on held-out data, minimizing the cross-entropy; the
argmax, and so every prediction, is unchanged. :func:`lenet_mnist.pretrained` applies
the temperature shipped with its weights.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["expected_calibration_error", "fit_temperature", "softmax"]

_LOW, _HIGH = 0.05, 20.0


def _checked(
    logits: npt.ArrayLike, labels: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels)
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] < 2:
        raise ValueError(f"logits must have shape (N, C) with N >= 1, C >= 2, got {z.shape}")
    if y.shape != (z.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"labels must be {z.shape[0]} integers, got shape {y.shape} dtype {y.dtype}"
        )
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"labels must lie in [0, {z.shape[1] - 1}], got [{y.min()}, {y.max()}]")
    if not np.isfinite(z).all():
        raise ValueError("logits must be finite, got NaN or infinite values")
    return z, y.astype(np.int64)


def softmax(logits: npt.ArrayLike, temperature: float = 1.0) -> npt.NDArray[np.float64]:
    """Row-wise softmax of ``logits / temperature`` (float64, rows sum to 1)."""
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: npt.NDArray[np.float64] = e / e.sum(axis=-1, keepdims=True)
    return out


def _nll(z: npt.NDArray[np.float64], y: npt.NDArray[np.int64], temperature: float) -> float:
    scaled = z / temperature
    top = scaled.max(axis=1, keepdims=True)
    log_total = np.log(np.exp(scaled - top).sum(axis=1)) + top[:, 0]
    return float(np.mean(log_total - scaled[np.arange(len(y)), y]))


def fit_temperature(logits: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """The temperature ``T`` minimizing the cross-entropy of ``softmax(logits / T)``.

    Args:
        logits: ``(N, C)`` raw outputs of a model on held-out data (never the test split).
        labels: ``(N,)`` integer true classes in ``[0, C)``.

    Returns:
        ``T`` in [0.05, 20] (golden-section search on log T, to 1e-4 relative).

    Raises:
        ValueError: Bad shapes, dtypes, labels out of range or non-finite logits.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> labels = rng.integers(0, 10, 2000)
        >>> logits = rng.normal(0, 1, (2000, 10))
        >>> logits[np.arange(2000), labels] += 2.0      # right 60% of the time...
        >>> round(fit_temperature(5 * logits, labels) / fit_temperature(logits, labels), 2)
        5.0
    """
    z, y = _checked(logits, labels)
    lo, hi = math.log(_LOW), math.log(_HIGH)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = _nll(z, y, math.exp(a)), _nll(z, y, math.exp(b))
    while hi - lo > 1e-4:
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = _nll(z, y, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = _nll(z, y, math.exp(b))
    return math.exp((lo + hi) / 2)


def expected_calibration_error(
    probabilities: npt.ArrayLike, labels: npt.ArrayLike, bins: int = 15
) -> float:
    """The expected calibration error: confidence against accuracy, in equal-width bins.

    The top probability of each row is binned into ``bins`` equal intervals of [0, 1];
    the result is the mean over bins of ``|accuracy - mean confidence|`` weighted by the
    fraction of rows in the bin (0 = perfectly calibrated, at most 1).

    Args:
        probabilities: ``(N, C)`` rows of class probabilities.
        labels: ``(N,)`` integer true classes.
        bins: Number of bins (15 in Guo et al.).

    Raises:
        ValueError: Bad shapes, dtypes, labels out of range, or ``bins`` < 1.

    Example:
        >>> import numpy as np
        >>> expected_calibration_error(np.array([[0.9, 0.1], [0.9, 0.1]]), np.array([0, 1]))
        0.4
    """
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    p, y = _checked(probabilities, labels)
    confidence = p.max(axis=1)
    right = (p.argmax(axis=1) == y).astype(np.float64)
    index = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    total = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            gap = abs(float(right[members].mean()) - float(confidence[members].mean()))
            total += gap * float(members.mean())
    return round(total, 12)
