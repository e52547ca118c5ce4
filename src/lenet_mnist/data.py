"""Finding, downloading, verifying and loading MNIST (and Fashion-MNIST).

Where :func:`load_mnist` reads the data from -- the first directory that holds all
four files wins:

1. the ``data_dir`` argument;
2. the directory named by the dataset's environment variable (``LENET_MNIST_DATA``
   for MNIST, ``LENET_MNIST_FASHION_DATA`` for Fashion-MNIST);
3. system directories where a distribution installs the dataset (Fashion-MNIST:
   ``/usr/share/datasets/fashion-mnist``, from Debian's ``dataset-fashion-mnist``);
4. the user cache, ``$LENET_MNIST_CACHE`` or else ``$XDG_CACHE_HOME/lenet-mnist`` or
   ``~/.cache/lenet-mnist``, one sub-directory per dataset (see :func:`cache_dir`);
5. else, when ``download=True``, a download from the dataset's mirrors, tried in turn,
   into the cache.

Each file may be gzip-compressed (``name.gz``) or not (``name``). Every file is
verified by the SHA-256 of its *decompressed* content, so a re-compressed copy of the
original data passes and anything else fails. A supplied file that fails is an error
naming the file and the expected hash; a cached file that fails is deleted and
downloaded again, once. Downloads are written to a temporary file next to their final
place and moved there only once verified, so an interrupted or corrupt download leaves
nothing behind.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from lenet_mnist.errors import DataNotFoundError, DownloadError, IdxFormatError
from lenet_mnist.idx import read_idx

__all__ = [
    "DATASETS",
    "DatasetName",
    "DatasetSpec",
    "FileSpec",
    "MnistData",
    "cache_dir",
    "class_names",
    "data_locations",
    "download_mnist",
    "load_mnist",
]

DatasetName = Literal["mnist", "fashion"]

#: The four files of a dataset, in the order of :class:`MnistData`'s fields.
ROLES: Final = ("train_images", "train_labels", "test_images", "test_labels")

_USER_AGENT: Final = "lenet-mnist (+https://github.com/lenet-mnist/lenet-mnist)"
# A compressed MNIST file is under 30 MB; a response much larger than that is not one.
_MAX_DOWNLOAD_BYTES: Final = 64 * 1024 * 1024
_STALE_PARTIAL_SECONDS: Final = 3600.0
_PARTIAL_PREFIX: Final = ".lenet-mnist-"
_PARTIAL_SUFFIX: Final = ".part"


@dataclass(frozen=True)
class FileSpec:
    """One IDX file of a dataset.

    Attributes:
        name: The uncompressed file name; the gzip copy is ``name + ".gz"``.
        sha256: SHA-256 (hex) of the decompressed content.
        shape: The array shape the file holds.
    """

    name: str
    sha256: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class DatasetSpec:
    """Everything needed to find, fetch and verify one 28x28 dataset.

    Attributes:
        name: The dataset's short name, as passed to :func:`load_mnist`.
        files: The four files by role (``train_images``, ``train_labels``,
            ``test_images``, ``test_labels``).
        mirrors: Base URLs, each ending in ``/``, tried in turn for ``name.gz``.
        class_names: The name of each class, indexed by label.
        env_var: The environment variable naming a directory that holds the files.
        system_dirs: Directories where an operating-system package installs the files.
    """

    name: str
    files: Mapping[str, FileSpec]
    mirrors: tuple[str, ...]
    class_names: tuple[str, ...]
    env_var: str
    system_dirs: tuple[Path, ...] = ()


def _files(hashes: tuple[str, str, str, str]) -> dict[str, FileSpec]:
    names = (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
    shapes = ((60000, 28, 28), (60000,), (10000, 28, 28), (10000,))
    return {
        role: FileSpec(name, digest, shape)
        for role, name, digest, shape in zip(ROLES, names, hashes, shapes, strict=True)
    }


#: The datasets :func:`load_mnist` knows, by name. Hashes are of the decompressed files.
DATASETS: Final[Mapping[str, DatasetSpec]] = {
    "mnist": DatasetSpec(
        name="mnist",
        files=_files(
            (
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            )
        ),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        class_names=tuple(str(digit) for digit in range(10)),
        env_var="LENET_MNIST_DATA",
    ),
    "fashion": DatasetSpec(
        name="fashion",
        files=_files(
            (
                "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            )
        ),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        env_var="LENET_MNIST_FASHION_DATA",
        system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    ),
}


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


def _spec(dataset: str) -> DatasetSpec:
    if not isinstance(dataset, str):
        raise TypeError(f"dataset must be a str, got {type(dataset).__name__}")
    spec = DATASETS.get(dataset)
    if spec is None:
        raise ValueError(f"unknown dataset; choose one of {sorted(DATASETS)}, got {dataset!r}")
    return spec


def class_names(dataset: DatasetName | str = "mnist") -> tuple[str, ...]:
    """Return the name of each class of a dataset, indexed by label.

    Args:
        dataset: ``"mnist"`` (names ``"0"`` .. ``"9"``) or ``"fashion"``.

    Raises:
        ValueError: Unknown dataset.

    Example:
        >>> class_names("fashion")[9]
        'Ankle boot'
    """
    return _spec(dataset).class_names


def cache_dir(dataset: DatasetName | str = "mnist") -> Path:
    """Return the user cache directory for a dataset (it may not exist yet).

    ``$LENET_MNIST_CACHE/<dataset>`` when that variable is set, else
    ``$XDG_CACHE_HOME/lenet-mnist/<dataset>``, else ``~/.cache/lenet-mnist/<dataset>``.

    Example:
        >>> cache_dir("mnist").name
        'mnist'
    """
    spec = _spec(dataset)
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
    spec = _spec(dataset)
    places: list[tuple[str, Path]] = []
    if data_dir is not None:
        places.append(("data_dir", Path(data_dir).expanduser()))
    env = os.environ.get(spec.env_var)
    if env:
        places.append((spec.env_var, Path(env).expanduser()))
    places.extend(("system", directory) for directory in spec.system_dirs)
    places.append(("cache", cache_dir(spec.name)))
    return places


def _find_file(directory: Path, file: FileSpec) -> Path | None:
    for candidate in (directory / f"{file.name}.gz", directory / file.name):
        if candidate.is_file():
            return candidate
    return None


def _find_all(directory: Path, spec: DatasetSpec) -> dict[str, Path] | None:
    found: dict[str, Path] = {}
    for role, file in spec.files.items():
        path = _find_file(directory, file)
        if path is None:
            return None
        found[role] = path
    return found


def _read_checked(path: Path, file: FileSpec) -> npt.NDArray[np.uint8]:
    array = read_idx(path, sha256=file.sha256)
    # The hash already pins the content; this guards a mistaken FileSpec.
    if array.shape != file.shape or array.dtype != np.uint8:
        raise IdxFormatError(
            f"{path}: expected uint8 data of shape {file.shape}, "
            f"got {array.dtype} of shape {array.shape}"
        )
    return array.astype(np.uint8, copy=False)


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    normalize: bool = True,
    channels: bool = True,
    download: bool = True,
    dataset: DatasetName | str = "mnist",
) -> MnistData:
    """Load MNIST (or Fashion-MNIST) as the tutorial uses it, verified.

    Args:
        data_dir: A directory holding the four IDX files (``.gz`` or not). It is looked
            in first; see the module documentation for the full search order.
        normalize: ``True``: float32 pixels in [0, 1] (the bytes divided by 255).
            ``False``: the raw uint8 pixels 0..255, exactly the bytes of the files.
        channels: ``True``: images get a trailing channel axis, ``(N, 28, 28, 1)``, as
            Keras's Conv2D expects. ``False``: ``(N, 28, 28)``.
        download: Whether to download the files into the cache when found nowhere.
        dataset: ``"mnist"`` (handwritten digits) or ``"fashion"`` (Fashion-MNIST).

    Returns:
        :class:`MnistData` ``(train_images, train_labels, test_images, test_labels)``:
        60000 training and 10000 test images, labels uint8 0..9.

    Raises:
        ChecksumError: A supplied file's content is not the dataset's (the message names
            the file and the expected SHA-256).
        IdxFormatError: A supplied file is malformed (bad magic number, wrong
            dimensions, truncated, corrupt gzip).
        DataNotFoundError: The files are nowhere and ``download`` is false; the message
            lists every place looked.
        DownloadError: Every mirror failed; the message lists each failure.
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
    spec = _spec(dataset)
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
    out: npt.NDArray[np.float32] | npt.NDArray[np.uint8]
    if normalize:
        out = images.astype(np.float32)
        out /= np.float32(255.0)
    else:
        out = images
    return out[..., np.newaxis] if channels else out


def _load_raw(
    data_dir: str | os.PathLike[str] | None, spec: DatasetSpec, *, download: bool
) -> dict[str, npt.NDArray[np.uint8]]:
    places = data_locations(data_dir, dataset=spec.name)
    for source, directory in places:
        found = _find_all(directory, spec)
        if found is None:
            continue
        if source != "cache":
            return {role: _read_checked(path, spec.files[role]) for role, path in found.items()}
        arrays = _read_cache(found, spec, download=download)
        if arrays is not None:
            return arrays
    if not download:
        looked = "; ".join(f"{source}: {directory}" for source, directory in places)
        names = ", ".join(f"{file.name}[.gz]" for file in spec.files.values())
        raise DataNotFoundError(
            f"{spec.name} data not found and download=False. Looked for {names} in: {looked}"
        )
    directory = download_mnist(dataset=spec.name)
    found = _find_all(directory, spec)
    if found is None:  # pragma: no cover - download_mnist guarantees all four files
        raise DownloadError(f"download into {directory} did not produce all files")
    return {role: _read_checked(path, spec.files[role]) for role, path in found.items()}


def _read_cache(
    found: dict[str, Path], spec: DatasetSpec, *, download: bool
) -> dict[str, npt.NDArray[np.uint8]] | None:
    """Read cached files; a corrupt one is deleted and, if allowed, downloaded once again."""
    arrays: dict[str, npt.NDArray[np.uint8]] = {}
    for role, path in found.items():
        try:
            arrays[role] = _read_checked(path, spec.files[role])
        except IdxFormatError:
            path.unlink(missing_ok=True)
            if not download:
                return None
            _download_file(spec.files[role], path.parent, _mirrors_from_env(spec))
            fresh = _find_file(path.parent, spec.files[role])
            if fresh is None:  # pragma: no cover - _download_file raises instead
                raise DownloadError(f"download of {spec.files[role].name} failed") from None
            arrays[role] = _read_checked(fresh, spec.files[role])
    return arrays


def _mirrors_from_env(spec: DatasetSpec) -> tuple[str, ...]:
    value = os.environ.get("LENET_MNIST_MIRRORS")
    if not value:
        return spec.mirrors
    return tuple(url if url.endswith("/") else url + "/" for url in value.split() if url)


def download_mnist(
    directory: str | os.PathLike[str] | None = None,
    *,
    dataset: DatasetName | str = "mnist",
    mirrors: tuple[str, ...] | list[str] | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download the four files of a dataset, verified, into ``directory``.

    Files already present and valid are kept. Each missing file is fetched as
    ``name.gz`` from each mirror in turn until one delivers content with the expected
    hash; it is streamed into a temporary file in ``directory`` and renamed into place
    only once verified, so no partial or corrupt file is ever left under the final
    name. Leftover temporaries of killed downloads are removed.

    Args:
        directory: Where to put the files; default :func:`cache_dir` of the dataset.
        dataset: ``"mnist"`` or ``"fashion"``.
        mirrors: Base URLs ending in ``/`` to try in turn; default the environment
            variable ``LENET_MNIST_MIRRORS`` (space-separated) or else the dataset's
            standard mirrors.
        timeout: Seconds to wait for each connection or read.

    Returns:
        The directory holding the files.

    Raises:
        DownloadError: Every mirror failed for some file; the message lists why.
        ValueError: ``timeout`` is not positive, or unknown ``dataset``.
    """
    spec = _spec(dataset)
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    target = Path(directory) if directory is not None else cache_dir(spec.name)
    target.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(target)
    urls = tuple(mirrors) if mirrors is not None else _mirrors_from_env(spec)
    for file in spec.files.values():
        existing = _find_file(target, file)
        if existing is not None:
            try:
                _read_checked(existing, file)
                continue
            except IdxFormatError:
                existing.unlink(missing_ok=True)
        _download_file(file, target, urls, timeout=timeout)
    return target


def _remove_stale_partials(directory: Path) -> None:
    cutoff = time.time() - _STALE_PARTIAL_SECONDS
    for partial in directory.glob(f"{_PARTIAL_PREFIX}*{_PARTIAL_SUFFIX}"):
        with contextlib.suppress(OSError):
            if partial.stat().st_mtime < cutoff:
                partial.unlink()


def _download_file(
    file: FileSpec, directory: Path, mirrors: tuple[str, ...], *, timeout: float = 60.0
) -> Path:
    final = directory / f"{file.name}.gz"
    failures: list[str] = []
    for base in mirrors:
        url = base + final.name
        fd, tmp_name = tempfile.mkstemp(
            prefix=f"{_PARTIAL_PREFIX}{file.name}-", suffix=_PARTIAL_SUFFIX, dir=directory
        )
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                _fetch(url, out, timeout=timeout)
            # Verifies gzip integrity, size limits and the content hash.
            _read_checked(tmp, file)
            tmp.replace(final)
            return final
        except (OSError, IdxFormatError, http.client.HTTPException, ValueError) as error:
            failures.append(f"{url}: {error}")
        finally:
            tmp.unlink(missing_ok=True)
    tried = "; ".join(failures) if failures else "no mirrors configured"
    raise DownloadError(f"could not download a verified copy of {final.name}: {tried}")


def _fetch(url: str, out: BinaryIO, *, timeout: float) -> None:
    if not url.startswith(("http://", "https://", "file://")):
        raise ValueError(f"unsupported URL scheme in {url!r}")
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})  # noqa: S310
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310
    except urllib.error.HTTPError as error:
        raise OSError(f"HTTP {error.code} {error.reason}") from None
    with response:
        declared = response.headers.get("Content-Length")
        total = 0
        while chunk := response.read(1 << 16):
            total += len(chunk)
            if total > _MAX_DOWNLOAD_BYTES:
                raise OSError(f"response exceeds {_MAX_DOWNLOAD_BYTES} bytes")
            out.write(chunk)
    # http.client's read(amt) ends quietly when the server closes early; say so plainly
    # rather than leave it to the gzip or hash check to fail with a vaguer message.
    if declared is not None and declared.isdigit() and total != int(declared):
        raise OSError(f"connection closed after {total} of {declared} bytes")
