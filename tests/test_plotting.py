"""Figures are drawn for real: files exist, decode to the expected size, show something."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.image import imread

from conftest import make_tiny_data
from lenet_mnist import (
    plot_confusion_matrix,
    plot_history,
    plot_misclassified,
    plot_samples,
    write_report,
)
from lenet_mnist.data import MnistData, class_names
from lenet_mnist.evaluation import EvaluationReport, report_from_logits
from lenet_mnist.report.canvas import require_matplotlib

# A white page with a few dark strokes still has a standard deviation of about 0.1;
# a blank one has 0.
_BLANK_FLOOR = 0.02


def _png(path: Path, width: int, height: int) -> np.ndarray:
    """Decode a PNG, check its pixel size and that it is not blank; return RGB in [0, 1]."""
    assert path.is_file()
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(path)
    assert pixels.shape[:2] == (height, width)
    rgb = pixels[..., :3]
    assert rgb.std() > _BLANK_FLOOR
    return rgb


def _center_rgb(figure, ax) -> np.ndarray:
    """The rendered colour at the centre of an axes' box."""
    figure.canvas.draw()
    buffer = np.asarray(figure.canvas.buffer_rgba())
    box = ax.get_window_extent()
    x = int((box.x0 + box.x1) / 2)
    y = buffer.shape[0] - int((box.y0 + box.y1) / 2)
    return buffer[y, x, :3] / 255.0


def _report_for(data: MnistData, predicted: np.ndarray, **kwargs) -> EvaluationReport:
    logits = (np.eye(10)[predicted] * 3).astype(np.float32)
    # A per-image scale makes the confidences differ, so the ranking is visible.
    logits *= np.linspace(0.5, 2.0, len(predicted), dtype=np.float32)[:, None]
    return report_from_logits(logits, data.test_labels, **kwargs)


@pytest.fixture
def data() -> MnistData:
    return make_tiny_data(n_train=40, n_test=40)


# --- plot_samples -----------------------------------------------------------------------


def test_samples_are_the_tutorials_picture(tmp_path: Path, data: MnistData) -> None:
    out = tmp_path / "samples.png"
    figure = plot_samples(data.train_images, data.train_labels, path=out)
    # The tutorial's 2-inch columns; rows just fit a 2-inch image and its caption.
    assert tuple(figure.get_size_inches()) == pytest.approx((20.0, 4.9))
    _png(out, 2000, 490)
    assert [ax.get_xlabel() for ax in figure.axes] == [str(v) for v in data.train_labels[:20]]
    for ax in figure.axes:
        assert ax.get_xticks().size == 0
        assert ax.get_yticks().size == 0


def test_samples_draw_dark_ink_on_white() -> None:
    images = np.stack([np.zeros((28, 28), np.uint8), np.full((28, 28), 255, np.uint8)])
    figure = plot_samples(images, [0, 1])
    background, ink = (_center_rgb(figure, ax) for ax in figure.axes)
    np.testing.assert_allclose(background, 1.0, atol=0.01)
    np.testing.assert_allclose(ink, 0.0, atol=0.01)


def test_samples_mark_wrong_predictions_in_red(tmp_path: Path, data: MnistData) -> None:
    labels = data.test_labels[:12]
    predicted = labels.astype(np.int64).copy()
    predicted[[3, 7]] = (predicted[[3, 7]] + 1) % 10
    figure = plot_samples(
        data.test_images[:12], labels, predictions=predicted, n=12, ncols=6, path=tmp_path / "p.png"
    )
    assert tuple(figure.get_size_inches()) == pytest.approx((12.0, 4.9))
    _png(tmp_path / "p.png", 1200, 490)
    for k, ax in enumerate(figure.axes):
        label = ax.xaxis.label
        if k in (3, 7):
            assert label.get_text() == f"{labels[k]} → {predicted[k]}"
            assert label.get_color() == "tab:red"
        else:
            assert label.get_text() == str(labels[k])
            assert label.get_color() == "black"


def test_samples_take_digit_predictions_and_class_names(data: MnistData) -> None:
    from lenet_mnist.inference import DigitPredictions

    labels = np.array([9, 0, 3], np.uint8)
    digits = np.array([9, 6, 3], np.int64)
    result = DigitPredictions(
        digits, np.eye(10, dtype=np.float32)[digits], np.zeros((3, 10), np.float32)
    )
    names = class_names("fashion")
    figure = plot_samples(data.test_images[:3], labels, predictions=result, class_names=names)
    assert [ax.get_xlabel() for ax in figure.axes] == [
        "Ankle boot",
        "T-shirt/top\n→ Shirt",
        "Dress",
    ]


def test_samples_n_larger_than_the_images_shows_them_all(data: MnistData) -> None:
    figure = plot_samples(data.test_images[:3], data.test_labels[:3], n=20)
    assert len(figure.axes) == 3
    assert tuple(figure.get_size_inches()) == pytest.approx((6.0, 2.45))


def test_samples_fill_an_uneven_last_row_with_empty_cells(data: MnistData) -> None:
    figure = plot_samples(data.test_images, data.test_labels, n=13, ncols=5)
    visible = [ax for ax in figure.axes if ax.axison]
    assert len(figure.axes) == 15
    assert len(visible) == 13
    assert tuple(figure.get_size_inches()) == pytest.approx((10.0, 3 * 2.45))


def test_samples_many_rows_stay_compact() -> None:
    images = np.zeros((50, 28, 28), np.uint8)
    figure = plot_samples(images, np.zeros(50, np.uint8), n=50, title="fifty")
    assert tuple(figure.get_size_inches()) == pytest.approx((20.0, 5 * 2.45 + 0.5))
    assert figure.get_suptitle() == "fifty"


def test_samples_have_little_blank_space_between_rows(tmp_path: Path) -> None:
    # Issue 15: the tutorial's 5-inch rows left ~40% of the picture blank. Count the
    # pixel rows that are entirely white: only the gaps between and around the rows.
    images = np.full((20, 28, 28), 255, np.uint8)  # all ink: every image is a black square
    plot_samples(images, np.zeros(20, np.uint8), path=tmp_path / "s.png")
    rgb = _png(tmp_path / "s.png", 2000, 490)
    blank_rows = (rgb.min(axis=(1, 2)) > 0.99).mean()
    assert blank_rows < 0.25, blank_rows


def test_samples_are_bounded() -> None:
    images = np.zeros((201, 28, 28), np.uint8)
    with pytest.raises(ValueError, match=r"n must be at most 200 \(20 rows of 10 images.*got 201"):
        plot_samples(images, np.zeros(201, np.uint8), n=201)


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".JPG"])
def test_figures_write_jpeg_by_suffix(tmp_path: Path, data: MnistData, suffix: str) -> None:
    out = tmp_path / f"s{suffix}"
    plot_samples(data.train_images, data.train_labels, n=3, path=out)
    assert out.read_bytes()[:3] == b"\xff\xd8\xff"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n": 0}, ValueError, "n must be at least 1, got 0"),
        ({"n": 2.0}, TypeError, "n must be an int, got float"),
        ({"ncols": 0}, ValueError, "ncols must be at least 1, got 0"),
        ({"path": "samples.gif"}, ValueError, r"must end in one of .*got 'samples.gif'"),
        ({"predictions": [1, 2]}, ValueError, r"predictions must have shape \(4,\).*got \(2,\)"),
        ({"class_names": ("a", "b")}, ValueError, "need a name for every class.*got 2"),
        ({"class_names": "abcdefghij"}, TypeError, "sequence of str"),
    ],
)
def test_samples_refuse_bad_arguments(
    data: MnistData, kwargs: dict, error: type, match: str
) -> None:
    labels = np.array([5, 1, 2, 3], np.uint8)
    with pytest.raises(error, match=match):
        plot_samples(data.test_images[:4], labels, **kwargs)


def test_samples_refuse_bad_images_and_labels(data: MnistData) -> None:
    with pytest.raises(ValueError, match=r"images must have shape.*got \(4, 27, 28\)"):
        plot_samples(np.zeros((4, 27, 28), np.uint8), [0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\).*got \(3,\)"):
        plot_samples(data.test_images[:4], [0, 1, 2])
    with pytest.raises(ValueError, match=r"class indices.*got dtype float64"):
        plot_samples(data.test_images[:2], [0.0, 1.0])


# --- plot_history -----------------------------------------------------------------------

_HISTORY = {
    "loss": [0.30, 0.12, 0.08],
    "accuracy": [0.91, 0.96, 0.975],
    "val_loss": [0.10, 0.07, 0.06],
    "val_accuracy": [0.968, 0.978, 0.981],
}


def test_history_two_panels_train_and_validation(tmp_path: Path) -> None:
    out = tmp_path / "history.png"
    figure = plot_history(SimpleNamespace(history=_HISTORY), out)
    _png(out, 1200, 450)
    loss_ax, accuracy_ax = figure.axes
    assert (loss_ax.get_title(), accuracy_ax.get_title()) == ("Loss", "Accuracy")
    assert loss_ax.get_xlabel() == accuracy_ax.get_xlabel() == "epoch"
    for ax, key in ((loss_ax, "loss"), (accuracy_ax, "accuracy")):
        train_line, val_line = ax.get_lines()
        assert train_line.get_xdata().tolist() == [1, 2, 3]
        assert train_line.get_ydata().tolist() == _HISTORY[key]
        assert val_line.get_ydata().tolist() == _HISTORY["val_" + key]
        assert [t.get_text().split(" ")[0] for t in ax.get_legend().get_texts()] == [
            "training",
            "validation",
        ]


def test_history_without_validation_draws_training_only() -> None:
    figure = plot_history({"loss": [0.5], "accuracy": [0.8]})
    assert [len(ax.get_lines()) for ax in figure.axes] == [1, 1]


@pytest.mark.parametrize(
    ("history", "error", "match"),
    [
        ({"loss": [0.1]}, ValueError, r"needs 'loss' and 'accuracy'.*got keys \['loss'\]"),
        ({"loss": [0.1, 0.2], "accuracy": [0.9]}, ValueError, "one value per epoch, got lengths"),
        ({"loss": [], "accuracy": []}, ValueError, "is empty, got 0 epochs"),
        ({}, ValueError, "at least one metric, got an empty mapping"),
        ([0.1, 0.2], TypeError, "keras History or a mapping.*got list"),
        ({"loss": "0.1"}, TypeError, r"history\['loss'\] must be a sequence of numbers, got str"),
        ({"loss": ["a"], "accuracy": [1]}, TypeError, "must hold numbers, got str"),
    ],
)
def test_history_refuses_non_histories(history: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        plot_history(history)


# --- plot_confusion_matrix --------------------------------------------------------------


def test_confusion_matrix_has_counts_names_and_a_colour_bar(
    tmp_path: Path, data: MnistData
) -> None:
    predicted = data.test_labels.astype(np.int64).copy()
    predicted[:5] = (predicted[:5] + 3) % 10
    report = _report_for(data, predicted)
    out = tmp_path / "cm.png"
    figure = plot_confusion_matrix(report, out)
    _png(out, 950, 850)
    matrix_ax, colorbar_ax = figure.axes
    assert colorbar_ax.get_ylabel().startswith("images")
    assert [t.get_text() for t in matrix_ax.get_xticklabels()] == list(report.class_names)
    assert [t.get_text() for t in matrix_ax.get_yticklabels()] == list(report.class_names)
    assert matrix_ax.get_xlabel() == "predicted class"
    assert matrix_ax.get_ylabel() == "true class"
    cells = {
        (round(text.get_position()[1]), round(text.get_position()[0])): int(text.get_text())
        for text in matrix_ax.texts
    }
    expected = {
        (t, p): int(report.confusion[t, p])
        for t, p in zip(*np.nonzero(report.confusion), strict=True)
    }
    assert cells == expected
    assert sum(cells.values()) == len(data.test_labels)


def test_confusion_matrix_fits_fashion_names(tmp_path: Path, data: MnistData) -> None:
    report = _report_for(
        data, data.test_labels.astype(np.int64), class_names=class_names("fashion")
    )
    figure = plot_confusion_matrix(report, tmp_path / "cm.png")
    width, height = figure.get_size_inches()
    assert width > 9.5
    assert height > 8.5
    _png(tmp_path / "cm.png", round(width * 100), round(height * 100))
    labels = figure.axes[0].get_xticklabels()
    assert labels[9].get_text() == "Ankle boot"
    assert labels[9].get_rotation() == 45


def test_confusion_matrix_refuses_a_non_report() -> None:
    with pytest.raises(TypeError, match="must be an EvaluationReport, got dict"):
        plot_confusion_matrix({"confusion": np.eye(10)})  # type: ignore[arg-type]


# --- plot_misclassified -----------------------------------------------------------------


def test_misclassified_most_confident_first(tmp_path: Path, data: MnistData) -> None:
    predicted = (data.test_labels.astype(np.int64) + 1) % 10  # every image wrong
    report = _report_for(data, predicted)
    out = tmp_path / "wrong.png"
    figure = plot_misclassified(report, data, n=8, ncols=4, path=out)
    _png(out, 800, 650)
    image_axes = figure.axes
    assert len(image_axes) == 8
    # The per-image scale grows with the index, so the last images are the most confident.
    first = report.misclassified[0]
    assert first == len(data.test_labels) - 1
    caption = image_axes[0].get_xlabel()
    assert caption.startswith(f"{data.test_labels[first]} → {predicted[first]}\n")
    assert f"p = {report.confidences[first]:.3f}" in caption
    assert all(ax.xaxis.label.get_color() == "tab:red" for ax in image_axes)


def test_misclassified_from_a_model(data: MnistData) -> None:
    from lenet_mnist import build_lenet

    figure = plot_misclassified(build_lenet(seed=0), data, n=4)
    assert 1 <= len(figure.axes) <= 4


def test_misclassified_with_no_mistakes_says_so(tmp_path: Path, data: MnistData) -> None:
    report = _report_for(data, data.test_labels.astype(np.int64))
    figure = plot_misclassified(report, data, path=tmp_path / "none.png")
    assert figure.texts[0].get_text() == "No mistakes on 40 test images"
    _png(tmp_path / "none.png", 600, 200)


def test_misclassified_refuses_a_report_of_other_data(data: MnistData) -> None:
    report = _report_for(data, data.test_labels.astype(np.int64))
    other = make_tiny_data(n_train=40, n_test=40, seed=1)
    with pytest.raises(ValueError, match=r"not of this data's test split.*got 40 in the data"):
        plot_misclassified(report, other)
    with pytest.raises(TypeError, match=r"keras\.Model or an EvaluationReport, got str"):
        plot_misclassified("model.keras", data)  # type: ignore[arg-type]


# --- write_report -----------------------------------------------------------------------


def test_write_report_writes_the_four_files(tmp_path: Path, data: MnistData) -> None:
    predicted = data.test_labels.astype(np.int64).copy()
    predicted[:6] = (predicted[:6] + 5) % 10
    report = _report_for(data, predicted)
    files = write_report(report, data, tmp_path / "out", n_misclassified=4)
    assert sorted(files) == [
        "confusion_matrix.png",
        "misclassified.png",
        "report.json",
        "report.md",
    ]
    assert json.loads(files["report.json"].read_text()) == json.loads(json.dumps(report.to_dict()))
    _png(files["confusion_matrix.png"], 950, 850)
    _png(files["misclassified.png"], 800, 350)
    page = files["report.md"].read_text()
    assert "![Confusion matrix](confusion_matrix.png)" in page
    assert "![Misclassified test images](misclassified.png)" in page
    assert f"Accuracy: {report.accuracy:.2%} (34 / 40 correct)" in page
    for t, p, c in report.most_confused(3):
        assert f"| {t} | {p} | {c} |" in page
    # No temporary files left behind.
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == sorted(files)


# --- without matplotlib -----------------------------------------------------------------


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes every import of these names raise ImportError.
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)


@pytest.mark.usefixtures("no_matplotlib")
def test_without_matplotlib_plots_name_the_extra(tmp_path: Path, data: MnistData) -> None:
    report = _report_for(data, data.test_labels.astype(np.int64))
    hint = r'pip install "lenet-mnist\[plot\]"'
    with pytest.raises(ImportError, match=hint):
        require_matplotlib()
    with pytest.raises(ImportError, match=hint):
        plot_samples(data.test_images, data.test_labels)
    with pytest.raises(ImportError, match=hint):
        plot_history(_HISTORY)
    with pytest.raises(ImportError, match=hint):
        plot_confusion_matrix(report)
    with pytest.raises(ImportError, match=hint):
        plot_misclassified(report, data)
    with pytest.raises(ImportError, match=hint):
        write_report(report, data, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.usefixtures("no_matplotlib")
def test_without_matplotlib_the_cli_fails_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lenet_mnist.cli import main

    # The check comes before any data is read or any model loaded or trained.
    model_file = tmp_path / "m.keras"
    model_file.write_bytes(b"not read")
    for argv in (
        ["show", "--output", str(tmp_path / "s.png"), "--no-download"],
        ["evaluate", str(model_file), "--report", str(tmp_path / "r")],
        ["train", "--epochs", "1", "--plot-history", str(tmp_path / "h.png"), "--no-download"],
    ):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert (
            'lenet-mnist: error: plotting needs matplotlib: pip install "lenet-mnist[plot]"' in err
        )


def test_core_imports_without_matplotlib() -> None:
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "import lenet_mnist, lenet_mnist.cli, lenet_mnist.data, lenet_mnist.training.history\n"
        "import lenet_mnist.report.figures\n"
        "try:\n"
        "    lenet_mnist.report.figures.plot_history({'loss': [1.0], 'accuracy': [0.5]})\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert 'pip install "lenet-mnist[plot]"' in result.stdout


def test_no_module_imports_matplotlib_at_import_time() -> None:
    # The modules that need TensorFlow are too slow to import in a subprocess here; reading
    # them shows the same thing: matplotlib is imported only inside functions.
    import ast

    import lenet_mnist.cli.commands

    package = Path(lenet_mnist.__file__).parent
    for source in sorted(package.rglob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(name.split(".")[0] == "matplotlib" for name in names), source.name


# --- the command line, on the real data ---------------------------------------------------


def _data_args(real_data_dir: Path) -> list[str]:
    return ["--data-dir", str(real_data_dir), "--no-download"]


def test_cli_show_refuses_a_bad_count(capsys: pytest.CaptureFixture[str]) -> None:
    from lenet_mnist.cli import main

    assert main(["show", "--n", "0", "--no-download"]) == 1
    assert capsys.readouterr().err == "lenet-mnist: error: --n must be at least 1, got 0\n"


@pytest.mark.slow
def test_cli_show_draws_the_tutorials_picture(
    real_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lenet_mnist.cli import main

    out = tmp_path / "samples.png"
    assert main(["show", "--output", str(out), *_data_args(real_data_dir)]) == 0
    assert "the first 20 train images" in capsys.readouterr().out
    _png(out, 2000, 540)  # two rows of ten and a title, no blank bands
    test_out = tmp_path / "test.png"
    argv = ["show", "--split", "test", "--n", "5", "--output", str(test_out)]
    assert main([*argv, *_data_args(real_data_dir)]) == 0
    _png(test_out, 1000, 295)
    assert main(["show", "--output", str(tmp_path / "s.gif"), *_data_args(real_data_dir)]) == 1
    assert "must end in one of" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_evaluate_writes_a_report(
    real_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lenet_mnist import build_lenet, load_mnist, save_model
    from lenet_mnist.cli import main

    model_path = save_model(build_lenet(seed=0), tmp_path / "untrained.keras")
    report_dir = tmp_path / "out"
    argv = ["evaluate", str(model_path), "--report", str(report_dir), *_data_args(real_data_dir)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "most confused: " in printed
    assert sorted(p.name for p in report_dir.iterdir()) == [
        "confusion_matrix.png",
        "misclassified.png",
        "report.json",
        "report.md",
    ]
    _png(report_dir / "confusion_matrix.png", 950, 850)
    _png(report_dir / "misclassified.png", 2000, 650)
    saved = json.loads((report_dir / "report.json").read_text())
    labels = load_mnist(real_data_dir, download=False).test_labels
    confusion = np.array(saved["confusion_matrix"])
    assert confusion.sum(axis=1).tolist() == np.bincount(labels, minlength=10).tolist()
    assert saved["accuracy"] == pytest.approx(np.trace(confusion) / len(labels))
    assert f"test accuracy: {saved['accuracy']:.4f}" in printed
    worst = saved["most_confused"][0]
    assert f"{worst['true']} taken for {worst['predicted']} ({worst['count']}x)" in printed


def test_cli_train_saves_and_draws_the_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import lenet_mnist.cli
    from lenet_mnist.cli import main
    from lenet_mnist.training.history import load_history

    # The command's wiring is under test, not training on MNIST: tiny data keeps it fast.
    monkeypatch.setattr(lenet_mnist.cli.commands, "_load_data", lambda args: make_tiny_data())
    model_path = tmp_path / "m.keras"
    plot_path = tmp_path / "curves.png"
    argv = ["train", "--epochs", "2", "--batch-size", "16", "--seed", "0", "--quiet"]
    assert main([*argv, "--output", str(model_path), "--plot-history", str(plot_path)]) == 0
    history = load_history(tmp_path / "m.history.json")
    assert sorted(history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert all(len(values) == 2 for values in history.values())
    _png(plot_path, 1200, 450)
    printed = capsys.readouterr().out
    assert f"training history to {tmp_path / 'm.history.json'}" in printed
    assert f"training curves drawn in {plot_path}" in printed
