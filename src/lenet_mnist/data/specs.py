"""The datasets this library knows, as pure data: files, content hashes, mirrors, classes.

A :class:`DatasetSpec` says everything needed to find, fetch and verify one 28x28
dataset of four IDX files; :data:`DATASETS` holds MNIST and Fashion-MNIST. Adding a
dataset of the same form is adding an entry here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

__all__ = ["DATASETS", "ROLES", "DatasetName", "DatasetSpec", "FileSpec", "class_names", "get_spec"]

#: The names of the datasets in :data:`DATASETS`.
DatasetName = Literal["mnist", "fashion"]

#: The four files of a dataset, in the order of :class:`MnistData`'s fields.
ROLES: Final = ("train_images", "train_labels", "test_images", "test_labels")


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


def get_spec(dataset: object) -> DatasetSpec:
    """Return the spec of a dataset by name.

    Raises:
        TypeError: ``dataset`` is not a str.
        ValueError: Unknown dataset (the message lists the known ones).

    Example:
        >>> get_spec("mnist").files["test_labels"].shape
        (10000,)
    """
    if not isinstance(dataset, str):
        raise TypeError(f"dataset must be a str, got {type(dataset).__name__}")
    spec = DATASETS.get(dataset)
    if spec is None:
        raise ValueError(f"unknown dataset; choose one of {sorted(DATASETS)}, got {dataset!r}")
    return spec


def class_names(dataset: DatasetName = "mnist") -> tuple[str, ...]:
    """Return the name of each class of a dataset, indexed by label.

    Args:
        dataset: ``"mnist"`` (names ``"0"`` .. ``"9"``) or ``"fashion"``.

    Raises:
        ValueError: Unknown dataset.

    Example:
        >>> class_names("fashion")[9]
        'Ankle boot'
    """
    return get_spec(dataset).class_names
