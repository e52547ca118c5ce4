"""Training histories (loss and metrics per epoch) as plain data and as JSON files.

Keras's ``fit`` returns a ``keras.callbacks.History`` whose ``history`` attribute maps
``"loss"``, ``"accuracy"``, ``"val_loss"``, ``"val_accuracy"`` to one number per epoch.
This module turns that into a checked ``dict[str, list[float]]`` and stores it next to
a saved model, so the curves can be drawn later without the model or TensorFlow.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from lenet_mnist._util.atomic import atomic_write

__all__ = ["as_history_dict", "history_path_for", "load_history", "save_history"]

_HISTORY_SUFFIX: Final = ".history.json"
_MAX_HISTORY_BYTES: Final = 16 * 1024 * 1024


def as_history_dict(history: Any) -> dict[str, list[float]]:
    """Return a training history as ``{metric: [value per epoch]}``, checked.

    Args:
        history: A ``keras.callbacks.History`` (its ``history`` attribute is used) or a
            mapping from metric names to per-epoch numbers.

    Returns:
        A new dict of str to lists of float, every list the same non-zero length.
        NaN and infinities are kept (a diverged run has them) and become ``null`` in
        JSON via :func:`save_history`.

    Raises:
        TypeError: Not a History or mapping, a key is not a str, or a value is not a
            sequence of numbers.
        ValueError: No metrics, an empty series, or series of different lengths.

    Example:
        >>> as_history_dict({"loss": [0.5, 0.25], "accuracy": [0.9, 0.95]})["loss"]
        [0.5, 0.25]
    """
    raw = getattr(history, "history", history)
    if not isinstance(raw, Mapping):
        raise TypeError(
            f"history must be a keras History or a mapping of metric to values, "
            f"got {type(history).__name__}"
        )
    if not raw:
        raise ValueError("history must hold at least one metric, got an empty mapping")
    out: dict[str, list[float]] = {}
    for key, values in raw.items():
        if not isinstance(key, str):
            raise TypeError(f"history keys must be str, got {type(key).__name__}")
        if isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
            raise TypeError(
                f"history[{key!r}] must be a sequence of numbers, got {type(values).__name__}"
            )
        series: list[float] = []
        for value in values:
            if value is None:
                series.append(math.nan)
                continue
            if isinstance(value, bool | str | bytes):
                raise TypeError(f"history[{key!r}] must hold numbers, got {type(value).__name__}")
            try:
                series.append(float(value))
            except (TypeError, ValueError):
                raise TypeError(
                    f"history[{key!r}] must hold numbers, got {type(value).__name__}"
                ) from None
        if not series:
            raise ValueError(f"history[{key!r}] is empty, got 0 epochs")
        out[key] = series
    lengths = {key: len(series) for key, series in out.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"every metric needs one value per epoch, got lengths {lengths}")
    return out


def history_path_for(model_path: str | os.PathLike[str]) -> Path:
    """Return where the history of a model file is kept: ``lenet.keras`` -> ``lenet.history.json``.

    Example:
        >>> history_path_for("runs/lenet.keras").as_posix()
        'runs/lenet.history.json'
    """
    path = Path(model_path)
    return path.with_name(path.stem + _HISTORY_SUFFIX)


def save_history(history: Any, path: str | os.PathLike[str]) -> Path:
    """Write a training history to a JSON file, atomically.

    The file holds one object, ``{metric: [value per epoch]}``; a NaN or infinite value
    is written as ``null`` so the file is strict JSON.

    Args:
        history: What :func:`as_history_dict` accepts.
        path: Destination file; parent directories are created.

    Returns:
        The path written.

    Raises:
        TypeError, ValueError: See :func:`as_history_dict`.

    Example:
        >>> import tempfile, pathlib
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     file = save_history({"loss": [0.3]}, pathlib.Path(tmp) / "h.json")
        ...     load_history(file)
        {'loss': [0.3]}
    """
    series = as_history_dict(history)
    strict = {
        key: [value if math.isfinite(value) else None for value in values]
        for key, values in series.items()
    }
    text = json.dumps(strict, indent=2, allow_nan=False) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def load_history(path: str | os.PathLike[str]) -> dict[str, list[float]]:
    """Read a history written by :func:`save_history`.

    Returns:
        ``{metric: [value per epoch]}``; ``null`` entries come back as NaN.

    Raises:
        FileNotFoundError: No such file.
        ValueError: The file is not JSON, is implausibly large, or does not hold a
            history (see :func:`as_history_dict`).

    Example:
        >>> load_history("lenet.history.json")["val_accuracy"][-1]  # doctest: +SKIP
        0.9871
    """
    file = Path(path)
    if file.stat().st_size > _MAX_HISTORY_BYTES:
        raise ValueError(
            f"{file}: implausibly large for a history, got {file.stat().st_size} bytes"
        )
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{file}: not a JSON history ({error})") from None
    try:
        return as_history_dict(raw)
    except TypeError as error:
        raise ValueError(f"{file}: not a training history: {error}") from None
