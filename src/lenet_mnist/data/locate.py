"""Where a dataset's files are looked for, and reading one file verified by its hash.

A ``data_dir`` given to :func:`lenet_mnist.load_mnist` is the only place looked in: a
directory that does not exist or lacks a file is an error naming it
(:func:`check_data_dir`), never a silent fall-back to other data. Without it, the search
order is :func:`data_locations`'s:

1. (the ``data_dir`` argument, when given: then alone);
2. the directory named by the dataset's environment variable (``LENET_MNIST_DATA``
   for MNIST, ``LENET_MNIST_FASHION_DATA`` for Fashion-MNIST);
3. system directories where a distribution installs the dataset (Fashion-MNIST:
   ``/usr/share/datasets/fashion-mnist``, from Debian's ``dataset-fashion-mnist``);
4. the user cache, ``$LENET_MNIST_CACHE`` or else ``$XDG_CACHE_HOME/lenet-mnist`` or
   ``~/.cache/lenet-mnist``, one sub-directory per dataset (see :func:`cache_dir`).

Each file may be gzip-compressed (``name.gz``) or not (``name``), and is verified by
the SHA-256 of its *decompressed* content, so a re-compressed copy of the original
data passes and anything else fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

from lenet_mnist.data.idx import read_idx
from lenet_mnist.data.specs import DatasetName, DatasetSpec, FileSpec, get_spec
from lenet_mnist.errors import DataNotFoundError, IdxFormatError

__all__ = [
    "cache_dir",
    "check_data_dir",
    "data_locations",
    "find_all",
    "find_file",
    "read_checked",
]


def cache_dir(dataset: DatasetName | str = "mnist") -> Path:
    """Return the user cache directory for a dataset (it may not exist yet).

    ``$LENET_MNIST_CACHE/<dataset>`` when that variable is set, else
    ``$XDG_CACHE_HOME/lenet-mnist/<dataset>``, else ``~/.cache/lenet-mnist/<dataset>``.

    Example:
        >>> cache_dir("mnist").name
        'mnist'
    """
    spec = get_spec(dataset)
    root = os.environ.get("LENET_MNIST_CACHE")
    if root:
        base = Path(root).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "lenet-mnist"
    return base / spec.name


def data_locations(
    data_dir: str | os.PathLike[str] | None = None, *, dataset: DatasetName | str = "mnist"
) -> list[tuple[str, Path]]:
    """Return the directories :func:`load_mnist` looks in, in order, with where each came from.

    Args:
        data_dir: The ``data_dir`` argument, if any.
        dataset: Which dataset.

    Returns:
        ``(source, directory)`` pairs; ``source`` is one of ``"data_dir"``, the
        environment variable's name, ``"system"`` or ``"cache"``.
    """
    spec = get_spec(dataset)
    places: list[tuple[str, Path]] = []
    if data_dir is not None:
        places.append(("data_dir", Path(data_dir).expanduser()))
    env = os.environ.get(spec.env_var)
    if env:
        places.append((spec.env_var, Path(env).expanduser()))
    places.extend(("system", directory) for directory in spec.system_dirs)
    places.append(("cache", cache_dir(spec.name)))
    return places


def find_file(directory: Path, file: FileSpec) -> Path | None:
    """The file in ``directory``, gzip copy first, or ``None`` if neither exists."""
    for candidate in (directory / f"{file.name}.gz", directory / file.name):
        if candidate.is_file():
            return candidate
    return None


def find_all(directory: Path, spec: DatasetSpec) -> dict[str, Path] | None:
    """All four files of ``spec`` in ``directory`` by role, or ``None`` if one is missing."""
    found: dict[str, Path] = {}
    for role, file in spec.files.items():
        path = find_file(directory, file)
        if path is None:
            return None
        found[role] = path
    return found


def check_data_dir(
    data_dir: str | os.PathLike[str], *, dataset: DatasetName | str = "mnist"
) -> dict[str, Path]:
    """The dataset's four files in ``data_dir`` by role; an error naming what is missing.

    Only looks (nothing is read), so the command line calls it before any work.

    Raises:
        DataNotFoundError: ``data_dir`` does not exist, is not a directory, or lacks
            one of the files (the message names the directory and the missing files).
        ValueError: Unknown ``dataset``.

    Example:
        >>> check_data_dir("/nonexistent")
        Traceback (most recent call last):
        ...
        lenet_mnist.errors.DataNotFoundError: the mnist data directory does not exist, got '/nonexistent'
    """
    spec = get_spec(dataset)
    directory = Path(data_dir).expanduser()
    if not directory.is_dir():
        state = "is not a directory" if directory.exists() else "does not exist"
        raise DataNotFoundError(
            f"the {spec.name} data directory {state}, got {os.fspath(data_dir)!r}"
        )
    missing = [
        f"{file.name}[.gz]" for file in spec.files.values() if find_file(directory, file) is None
    ]
    if missing:
        raise DataNotFoundError(
            f"the {spec.name} data directory lacks {', '.join(missing)}, got {os.fspath(data_dir)!r}"
        )
    found = find_all(directory, spec)
    if found is None:  # pragma: no cover - every file was just found
        raise DataNotFoundError(
            f"the {spec.name} data directory changed, got {os.fspath(data_dir)!r}"
        )
    return found


def read_checked(path: Path, file: FileSpec) -> npt.NDArray[np.uint8]:
    """Read ``path`` verified by ``file``'s hash, shape and dtype (else ``IdxFormatError``)."""
    array = read_idx(path, sha256=file.sha256)
    # The hash already pins the content; this guards a mistaken FileSpec.
    if array.shape != file.shape or array.dtype != np.uint8:
        raise IdxFormatError(
            f"{path}: expected uint8 data of shape {file.shape}, "
            f"got {array.dtype} of shape {array.shape}"
        )
    return array.astype(np.uint8, copy=False)
