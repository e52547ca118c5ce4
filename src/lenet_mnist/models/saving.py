"""Saving and loading models as ``.keras`` files, safely.

A ``.keras`` file is a zip archive holding ``config.json`` (the architecture as a
tree of ``{"module", "class_name", "config"}`` records), ``metadata.json`` and the
weights. Loading one deserializes whatever classes its config names, so a file from
an untrusted source is a code-execution risk. :func:`load_model` therefore

* always uses Keras's own safe mode (which refuses to unpickle Python bytecode) unless
  the caller passes ``safe_mode=False`` by name, and
* before Keras sees the file, checks the whole config: every object must come from
  Keras itself or from this library, and ``Lambda`` layers (which carry code) are
  refused outright.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import keras

from lenet_mnist._util.atomic import atomic_write
from lenet_mnist.errors import ModelFileError, UnsafeModelError

# Importing the modules registers FusedBatchNorm and LeNet with Keras so files load.
from lenet_mnist.models.batch_norm import FusedBatchNorm  # noqa: F401
from lenet_mnist.models.file_path import check_model_path
from lenet_mnist.models.lenet import LeNet  # noqa: F401
from lenet_mnist.models.portable import standard_copy
from lenet_mnist.models.provenance import FROM_FILE, record_origin

__all__ = ["check_model_path", "load_model", "save_model"]

_ALLOWED_MODULE_ROOTS: Final = ("keras", "lenet_mnist")
_FORBIDDEN_CLASSES: Final = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda"})
_MAX_CONFIG_BYTES: Final = 16 * 1024 * 1024


def save_model(model: keras.Model, path: str | os.PathLike[str]) -> Path:
    """Save a model, with its optimizer state, to a ``.keras`` file, atomically.

    The file is written next to its destination under a temporary name and renamed
    into place, so an interrupted save never leaves a truncated file under ``path``
    (an existing file there stays intact until the new one is complete).

    Each :class:`~lenet_mnist.FusedBatchNorm` is written as the
    ``keras.layers.BatchNormalization`` it is equivalent to (same state, same
    results), so the file of any :func:`~lenet_mnist.build_lenet` network loads with
    plain ``keras.saving.load_model`` in a process that never imports lenet-mnist;
    loading it gives Keras's layers back. A :class:`~lenet_mnist.LeNet` is saved as
    itself and needs ``import lenet_mnist`` (which registers it with Keras) to load.

    Args:
        model: The model to save.
        path: Destination; must end in ``.keras``. Parent directories are created.

    Returns:
        The path written.

    Raises:
        TypeError: ``model`` is not a ``keras.Model``.
        ValueError: ``path`` does not end in ``.keras``.

    Example:
        >>> import tempfile, pathlib
        >>> from lenet_mnist import build_lenet
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     save_model(build_lenet(), pathlib.Path(tmp) / "m.keras").name
        'm.keras'
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    target = check_model_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        # An unbuilt optimizer saves no slots and Keras warns when loading it back.
        optimizer.build(model.trainable_variables)
    atomic_write(target, standard_copy(model).save)
    return target


def _records(node: Any) -> Iterator[dict[str, Any]]:
    """Yield every serialized-object record (a dict with a ``class_name``) in a config."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "class_name" in item:
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def check_model_config(config: Any, *, name: str = "<config>") -> None:
    """Refuse a ``.keras`` config that would run code or import outside Keras and lenet-mnist.

    Raises:
        UnsafeModelError: A ``Lambda`` layer, a serialized function, or an object from
            another module; the message names it.
    """
    for record in _records(config):
        class_name = record.get("class_name")
        module = record.get("module")
        if class_name in _FORBIDDEN_CLASSES:
            raise UnsafeModelError(
                f"{name}: refusing to load a {class_name} layer (it carries arbitrary Python "
                "code); pass safe_mode=False only for files you trust"
            )
        if class_name == "__lambda__" or (
            isinstance(record.get("config"), dict) and "code" in record["config"]
        ):
            raise UnsafeModelError(
                f"{name}: refusing to load serialized Python code ({class_name!r}); "
                "pass safe_mode=False only for files you trust"
            )
        if module is not None and (
            not isinstance(module, str)
            or not any(
                module == root or module.startswith(root + ".") for root in _ALLOWED_MODULE_ROOTS
            )
        ):
            raise UnsafeModelError(
                f"{name}: refusing to load {class_name!r} from module {module!r}: only Keras and "
                "lenet_mnist objects are allowed; pass safe_mode=False only for files you trust"
            )


def _read_config(path: Path) -> Any:
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo("config.json")
            except KeyError:
                raise ModelFileError(
                    f"{path}: not a .keras model file (no config.json inside)"
                ) from None
            if info.file_size > _MAX_CONFIG_BYTES:
                raise ModelFileError(
                    f"{path}: config.json is implausibly large ({info.file_size} bytes)"
                )
            raw = archive.read(info)
    except zipfile.BadZipFile as error:
        raise ModelFileError(f"{path}: not a .keras model file ({error})") from None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFileError(f"{path}: config.json is not valid JSON ({error})") from None


def load_model(path: str | os.PathLike[str], *, safe_mode: bool = True) -> keras.Model:
    """Load a model saved by :func:`save_model` (or any ``.keras`` file of Keras layers).

    Args:
        path: A ``.keras`` file.
        safe_mode: Keep it ``True`` (the default) for any file you did not make
            yourself: the config is checked first (only Keras and lenet-mnist objects, no
            ``Lambda`` layers or serialized functions) and Keras's safe mode stays on.
            ``False`` skips both checks: only for trusted files.

    Returns:
        The model, compiled if it was saved compiled; a :class:`LeNet` comes back as a
        ``LeNet``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IsADirectoryError: ``path`` is a directory.
        ModelFileError: ``path`` is not a readable ``.keras`` archive (a ``ValueError``).
        UnsafeModelError: With ``safe_mode``, the file would run code or load objects
            from outside Keras and lenet-mnist.

    Example:
        >>> model = load_model("lenet.keras")  # doctest: +SKIP
    """
    if not isinstance(safe_mode, bool):
        raise TypeError(f"safe_mode must be a bool, got {type(safe_mode).__name__}")
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"model file not found: {os.fspath(path)}")
    if file.is_dir():
        raise IsADirectoryError(f"expected a .keras model file, got a directory: {os.fspath(path)}")
    config = _read_config(file)
    if safe_mode:
        check_model_config(config, name=os.fspath(path))
    try:
        model = keras.saving.load_model(file, safe_mode=safe_mode)
    except (ValueError, TypeError, KeyError, OSError) as error:
        raise ModelFileError(f"{file}: cannot load the model: {error}") from error
    # Weights from a file are as repeatable as seeded ones (train(deterministic=True)).
    record_origin(model, FROM_FILE)
    return model
