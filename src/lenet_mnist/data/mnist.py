"""Loading MNIST (and Fashion-MNIST) as the tutorial uses it, verified.

:func:`load_mnist` reads the four IDX files from ``data_dir`` when one is given (and
nowhere else: a wrong directory is an error naming it), else from the first place that
holds them all (see :mod:`lenet_mnist.data.locate` for the order), or else downloads
them, verified, into the user cache (:mod:`lenet_mnist.data.download`). A supplied file that fails
its hash check is an error naming the file and the expected hash; a cached file that
fails is deleted and downloaded again, once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from lenet_mnist._util.image_array import as_unit_range
from lenet_mnist.data.download import download_file, download_mnist, mirrors_from_env
from lenet_mnist.data.locate import (
    check_data_dir,
    data_locations,
    find_all,
    find_file,
    read_checked,
)
from lenet_mnist.data.specs import ROLES, DatasetName, DatasetSpec, get_spec
from lenet_mnist.errors import DataNotFoundError, DownloadError, IdxFormatError

__all__ = ["MnistData", "load_mnist"]


class MnistData(NamedTuple):
    """The four arrays of MNIST, unpackable in the tutorial's order.

    Attributes:
        train_images: ``(60000, 28, 28, 1)`` float32 in [0, 1] by default; ``uint8``
            0..255 with ``normalize=False``; ``(60000, 28, 28)`` with ``channels=False``.
        train_labels: ``(60000,)`` uint8 class indices 0..9.
        test_images: Like ``train_images`` with 10000 images.
        test_labels: ``(10000,)`` uint8 class indices 0..9.

    Example:
        >>> import numpy as np
        >>> d = MnistData(np.zeros((2, 28, 28, 1), np.float32), np.zeros(2, np.uint8),
        ...               np.zeros((1, 28, 28, 1), np.float32), np.zeros(1, np.uint8))
        >>> train_images, train_labels, test_images, test_labels = d
        >>> test_images.shape
        (1, 28, 28, 1)
    """

    train_images: npt.NDArray[np.float32] | npt.NDArray[np.uint8]
    train_labels: npt.NDArray[np.uint8]
    test_images: npt.NDArray[np.float32] | npt.NDArray[np.uint8]
    test_labels: npt.NDArray[np.uint8]


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    normalize: bool = True,
    channels: bool = True,
    download: bool = True,
    dataset: DatasetName = "mnist",
) -> MnistData:
    """Load MNIST (or Fashion-MNIST) as the tutorial uses it, verified.

    Args:
        data_dir: A directory holding the four IDX files (``.gz`` or not). Given, it is
            the only place looked in (no environment variable, cache or download):
            a directory that does not exist or lacks a file raises
            ``DataNotFoundError`` naming it. ``None``: the search order of the module
            documentation, then the download.
        normalize: ``True``: float32 pixels in [0, 1] (the bytes divided by 255).
            ``False``: the raw uint8 pixels 0..255, exactly the bytes of the files.
        channels: ``True``: images get a trailing channel axis, ``(N, 28, 28, 1)``, as
            Keras's Conv2D expects. ``False``: ``(N, 28, 28)``.
        download: Whether to download the files into the cache when found nowhere
            (without ``data_dir`` only).
        dataset: ``"mnist"`` (handwritten digits) or ``"fashion"`` (Fashion-MNIST).

    Returns:
        :class:`MnistData` ``(train_images, train_labels, test_images, test_labels)``:
        60000 training and 10000 test images, labels uint8 0..9.

    Raises:
        ChecksumError: A supplied file's content is not the dataset's (the message names
            the file and the expected SHA-256).
        IdxFormatError: A supplied file is malformed (bad magic number, wrong
            dimensions, truncated, corrupt gzip).
        DataNotFoundError: ``data_dir`` does not exist or lacks a file; or, without
            ``data_dir``, the files are nowhere and ``download`` is false (the message
            lists every place looked).
        DownloadError: Every mirror failed; the message's first line says so and how
            to supply the files instead, the next lines each mirror's failure.
        ValueError: Unknown ``dataset``.
        TypeError: A flag is not a bool.

    Example:
        >>> train_images, train_labels, test_images, test_labels = load_mnist()  # doctest: +SKIP
        >>> train_images.shape, train_images.dtype  # doctest: +SKIP
        ((60000, 28, 28, 1), dtype('float32'))
    """
    for flag_name, flag in (
        ("normalize", normalize),
        ("channels", channels),
        ("download", download),
    ):
        if not isinstance(flag, bool):
            raise TypeError(f"{flag_name} must be a bool, got {type(flag).__name__}")
    spec = get_spec(dataset)
    arrays = _load_raw(data_dir, spec, download=download)
    train_images, train_labels, test_images, test_labels = (arrays[role] for role in ROLES)
    return MnistData(
        _format_images(train_images, normalize=normalize, channels=channels),
        train_labels,
        _format_images(test_images, normalize=normalize, channels=channels),
        test_labels,
    )


def _format_images(
    images: npt.NDArray[np.uint8], *, normalize: bool, channels: bool
) -> npt.NDArray[np.float32] | npt.NDArray[np.uint8]:
    # The library's one image rule scales them (uint8 0..255 -> float32 [0, 1]).
    out = as_unit_range(images, "dataset images") if normalize else images
    return out[..., np.newaxis] if channels else out


def _load_raw(
    data_dir: str | os.PathLike[str] | None, spec: DatasetSpec, *, download: bool
) -> dict[str, npt.NDArray[np.uint8]]:
    if data_dir is not None:
        given = check_data_dir(data_dir, dataset=spec.name)
        return {role: read_checked(path, spec.files[role]) for role, path in given.items()}
    places = data_locations(dataset=spec.name)
    for source, directory in places:
        found = find_all(directory, spec)
        if found is None:
            continue
        if source != "cache":
            return {role: read_checked(path, spec.files[role]) for role, path in found.items()}
        arrays = _read_cache(found, spec, download=download)
        if arrays is not None:
            return arrays
    if not download:
        looked = "; ".join(f"{source}: {directory}" for source, directory in places)
        names = ", ".join(f"{file.name}[.gz]" for file in spec.files.values())
        raise DataNotFoundError(
            f"{spec.name} data not found, and downloading is off. Looked for {names} in: {looked}"
        )
    try:
        directory = download_mnist(dataset=spec.name)
    except DownloadError as error:
        raise DownloadError(
            f"could not download the {spec.name} data (offline?); point {spec.env_var} or "
            f"data_dir at a directory holding its four IDX files\n{error}"
        ) from error
    found = find_all(directory, spec)
    if found is None:  # pragma: no cover - download_mnist guarantees all four files
        raise DownloadError(f"download into {directory} did not produce all files")
    return {role: read_checked(path, spec.files[role]) for role, path in found.items()}


def _read_cache(
    found: dict[str, Path], spec: DatasetSpec, *, download: bool
) -> dict[str, npt.NDArray[np.uint8]] | None:
    """Read cached files; a corrupt one is deleted and, if allowed, downloaded once again."""
    arrays: dict[str, npt.NDArray[np.uint8]] = {}
    for role, path in found.items():
        try:
            arrays[role] = read_checked(path, spec.files[role])
        except IdxFormatError:
            path.unlink(missing_ok=True)
            if not download:
                return None
            download_file(spec.files[role], path.parent, mirrors_from_env(spec))
            fresh = find_file(path.parent, spec.files[role])
            if fresh is None:  # pragma: no cover - download_file raises instead
                raise DownloadError(f"download of {spec.files[role].name} failed") from None
            arrays[role] = read_checked(fresh, spec.files[role])
    return arrays
