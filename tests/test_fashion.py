"""Fashion-MNIST on the real files (Debian's dataset-fashion-mnist package; CI installs it)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from lenet_mnist import build_lenet, class_names, load_mnist, save_model
from lenet_mnist.cli import build_parser, main
from lenet_mnist.data import DATASETS, cache_dir, data_locations


def _fashion_dir() -> Path | None:
    env = os.environ.get("LENET_MNIST_FASHION_DATA")
    candidates = [Path(env)] if env else []
    candidates += list(DATASETS["fashion"].system_dirs)
    for directory in candidates:
        if directory.is_dir() and any(directory.glob("t10k-labels-idx1-ubyte*")):
            return directory
    return None


needs_fashion = pytest.mark.skipif(
    _fashion_dir() is None,
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist, "
    "or set LENET_MNIST_FASHION_DATA)",
)


@pytest.fixture(scope="module")
def fashion():
    # No data_dir: found through the default places (the Debian package's directory),
    # with downloads disabled, so a pass proves the default search works.
    return load_mnist(dataset="fashion", download=False, normalize=False)


@pytest.mark.slow
@needs_fashion
def test_real_files_load_verified_with_the_mnist_layout(fashion) -> None:
    train_images, train_labels, test_images, test_labels = fashion
    assert train_images.shape == (60000, 28, 28, 1)
    assert test_images.shape == (10000, 28, 28, 1)
    assert train_images.dtype == test_images.dtype == np.uint8
    # Fashion-MNIST is balanced: 6,000 training and 1,000 test images of each class.
    assert np.bincount(train_labels).tolist() == [6000] * 10
    assert np.bincount(test_labels).tolist() == [1000] * 10
    # Its published first labels: ankle boot, T-shirt/top, T-shirt/top, dress.
    assert [class_names("fashion")[k] for k in train_labels[:4]] == [
        "Ankle boot",
        "T-shirt/top",
        "T-shirt/top",
        "Dress",
    ]
    # Clothes fill far more of the frame than pen strokes do (MNIST's mean is about 33).
    assert 60 < float(train_images.mean()) < 90


@pytest.mark.slow
@needs_fashion
def test_cli_evaluate_fashion_reports_class_names(tmp_path: Path, capsys) -> None:
    pytest.importorskip("matplotlib")
    model_file = save_model(build_lenet(seed=0), tmp_path / "untrained.keras")
    report_dir = tmp_path / "report"
    assert main(["evaluate", str(model_file), "--dataset", "fashion", "--no-download",
                 "--report", str(report_dir)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "/10000)" in out
    markdown = (report_dir / "report.md").read_text()
    for name in ("Ankle boot", "T-shirt/top", "Sneaker"):
        assert name in markdown


def test_dataset_option_is_on_train_evaluate_and_export() -> None:
    parser = build_parser()
    assert parser.parse_args(["train", "--dataset", "fashion"]).dataset == "fashion"
    assert parser.parse_args(["evaluate", "m.keras"]).dataset == "mnist"
    args = parser.parse_args(
        ["export", "m.keras", "--format", "tflite", "--output", "m.tflite", "--dataset", "fashion"]
    )
    assert args.dataset == "fashion"
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["train", "--dataset", "cifar10"])
    assert exit_info.value.code == 2


def test_the_debian_directory_is_a_default_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LENET_MNIST_FASHION_DATA", str(tmp_path / "env"))
    places = data_locations(tmp_path / "arg", dataset="fashion")
    assert [source for source, _ in places] == [
        "data_dir",
        "LENET_MNIST_FASHION_DATA",
        "system",
        "cache",
    ]
    assert places[2][1] == Path("/usr/share/datasets/fashion-mnist")
    assert places[3][1] == cache_dir("fashion")
