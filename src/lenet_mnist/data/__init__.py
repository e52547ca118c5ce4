"""MNIST and Fashion-MNIST: dataset specs, locating files, verified download, IDX files.

* :mod:`~lenet_mnist.data.idx`: reading and writing IDX, bounded against hostile files;
* :mod:`~lenet_mnist.data.specs`: the datasets as pure data (files, hashes, mirrors);
* :mod:`~lenet_mnist.data.locate`: where files are looked for, reading one verified;
* :mod:`~lenet_mnist.data.download`: fetching from the mirrors, verified, atomically;
* :mod:`~lenet_mnist.data.mnist`: :func:`load_mnist` and :class:`MnistData`.

The names below are re-exported so ``from lenet_mnist.data import load_mnist`` works.
"""

from __future__ import annotations

from lenet_mnist.data.download import download_mnist
from lenet_mnist.data.locate import cache_dir, data_locations
from lenet_mnist.data.mnist import MnistData, load_mnist
from lenet_mnist.data.specs import DATASETS, ROLES, DatasetName, DatasetSpec, FileSpec, class_names

__all__ = [
    "DATASETS",
    "ROLES",
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
