"""Shared fixtures. Tests never touch the internet: every test gets its own empty cache
directory and a mirror list pointing at a closed loopback port."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: The real MNIST files, when the environment provides them (CI sets this).
REAL_DATA_DIR = os.environ.get("LENET_MNIST_DATA")


@pytest.fixture(autouse=True)
def _offline_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("LENET_MNIST_CACHE", str(cache))
    # Port 9 (discard) on loopback: any download attempt fails fast, never leaves the machine.
    monkeypatch.setenv("LENET_MNIST_MIRRORS", "http://127.0.0.1:9/")
    return cache


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """Directory of the real MNIST files; skips the test when they are not available."""
    if not REAL_DATA_DIR or not Path(REAL_DATA_DIR).is_dir():
        pytest.skip("real MNIST data not available (set LENET_MNIST_DATA)")
    return Path(REAL_DATA_DIR)


@pytest.fixture(scope="session")
def real_data(real_data_dir: Path):
    """The real MNIST as ``load_mnist`` returns it by default (loaded once per session)."""
    from lenet_mnist import load_mnist

    return load_mnist(real_data_dir, download=False)


def make_tiny_data(n_train: int = 64, n_test: int = 32, seed: int = 0):
    """A small synthetic MnistData: each class is a distinct bright square, learnable fast."""
    from lenet_mnist import MnistData

    rng = np.random.default_rng(seed)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.uniform(0, 0.1, size=(n, 28, 28, 1)).astype(np.float32)
        for i, label in enumerate(labels):
            row, col = divmod(int(label), 5)
            images[i, 2 + row * 12 : 10 + row * 12, 1 + col * 5 : 5 + col * 5, 0] = 1.0
        return images, labels

    train_images, train_labels = split(n_train)
    test_images, test_labels = split(n_test)
    return MnistData(train_images, train_labels, test_images, test_labels)


@pytest.fixture
def tiny_data():
    return make_tiny_data()
