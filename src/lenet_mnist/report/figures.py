"""Pictures of the data and the model: sample grids, training curves, confusion matrices.

Needs matplotlib, the optional extra ``plot``::

    pip install "lenet-mnist[plot]"

matplotlib is imported only when a function here is called (see
:mod:`~lenet_mnist.report.canvas`). Every function returns its Figure and, given
``path``, also writes it (PNG, or PDF / SVG by the file's suffix), atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from lenet_mnist._util.checks import check_positive_int
from lenet_mnist._util.image_array import as_image_batch
from lenet_mnist.report.canvas import (
    check_figure_path,
    new_figure,
    require_matplotlib,
    save_figure,
)
from lenet_mnist.training.history import as_history_dict

if TYPE_CHECKING:
    import keras
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from lenet_mnist.data.mnist import MnistData
    from lenet_mnist.evaluation import EvaluationReport
    from lenet_mnist.inference import DigitPredictions

__all__ = [
    "MAX_SAMPLES",
    "check_report",
    "check_report_matches",
    "check_sample_count",
    "plot_confusion_matrix",
    "plot_history",
    "plot_misclassified",
    "plot_samples",
]

_WRONG: Final = "tab:red"
_RIGHT: Final = "black"
# The tutorial's 2 inches per column. Its 5 inches per row (20 x 10 inches for 2 x 10)
# left ~40% of the picture blank between the square images; a row now fits a 2-inch
# image and its caption.
_CELL_WIDTH: Final = 2.0
_SAMPLE_ROW_HEIGHT: Final = 2.45
_CAPTION_LINE_HEIGHT: Final = 0.25
#: The most images :func:`plot_samples` draws: 20 rows of 10, a 2000 x ~5000 pixel
#: picture; more is no longer a picture one looks at (and takes minutes to render).
MAX_SAMPLES: Final = 200
# The mistakes grid has no tutorial to match: rows just fit an image and three caption lines.
_MISTAKE_ROW_HEIGHT: Final = 3.0
_TITLE_HEIGHT: Final = 0.5
_CAPTION_SIZE: Final = 14
# About as many characters of a 14-point caption as fit under a 2-inch image.
_CAPTION_CHARS: Final = 16


def _check_class_names(class_names: Sequence[str] | None, num_classes: int) -> tuple[str, ...]:
    if class_names is None:
        return tuple(str(i) for i in range(num_classes))
    if isinstance(class_names, str) or not all(isinstance(name, str) for name in class_names):
        raise TypeError(f"class_names must be a sequence of str, got {class_names!r}")
    names = tuple(class_names)
    if len(names) < num_classes:
        raise ValueError(
            f"need a name for every class 0..{num_classes - 1}, got {len(names)} class names"
        )
    return names


def _class_indices(values: Any, count: int, what: str) -> npt.NDArray[np.int64]:
    array = np.asarray(values)
    if array.shape != (count,):
        raise ValueError(
            f"{what} must have shape ({count},) to match the images, got {array.shape}"
        )
    if count and (not np.issubdtype(array.dtype, np.integer) or array.min() < 0):
        raise ValueError(f"{what} must be class indices (integers >= 0), got dtype {array.dtype}")
    return array.astype(np.int64)


def _image_grid(
    pixels: npt.NDArray[np.float32],
    captions: Sequence[str],
    colors: Sequence[str],
    *,
    ncols: int,
    row_height: float,
    title: str | None = None,
) -> Figure:
    """Draw ``(N, 28, 28)`` images in [0, 1] in a grid, each caption as the x-axis label."""
    count = len(pixels)
    ncols = min(ncols, count)
    nrows = math.ceil(count / ncols)
    height = row_height * nrows + (_TITLE_HEIGHT if title else 0.0)
    figure = new_figure(_CELL_WIDTH * ncols, height)
    axes = figure.subplots(nrows, ncols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= count:
            ax.set_axis_off()
            continue
        # The tutorial's look: 'binary' maps MNIST's bright ink to dark ink on white.
        ax.imshow(pixels[k], cmap="binary", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(captions[k], color=colors[k], fontsize=_CAPTION_SIZE)
        if colors[k] != _RIGHT:
            for spine in ax.spines.values():
                spine.set_edgecolor(colors[k])
                spine.set_linewidth(3)
    if title:
        figure.suptitle(title, fontsize=16)
    return figure


def _mistake_caption(true: str, predicted: str) -> str:
    one_line = f"{true} → {predicted}"
    # Long class names (Fashion-MNIST) would run into the neighbouring caption.
    return one_line if len(one_line) <= _CAPTION_CHARS else f"{true}\n→ {predicted}"


def check_sample_count(n: object) -> int:
    """Return ``n`` if :func:`plot_samples` can draw that many images (1 .. :data:`MAX_SAMPLES`).

    Example:
        >>> check_sample_count(20)
        20
    """
    count = check_positive_int("n", n)
    if count > MAX_SAMPLES:
        raise ValueError(
            f"n must be at most {MAX_SAMPLES} (20 rows of 10 images; more makes a picture "
            f"too large to look at), got {count}"
        )
    return count


def plot_samples(
    images: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    predictions: npt.ArrayLike | DigitPredictions | None = None,
    n: int = 20,
    ncols: int = 10,
    path: str | os.PathLike[str] | None = None,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Draw the tutorial's picture: the first ``n`` images in a grid, the label under each.

    The tutorial's look, tighter: 2 inches per column and 2.45 per row (a 2 x 10 grid
    is 20 x 4.9 inches; the tutorial's 5-inch rows left ~40% of it blank), no ticks,
    the ``binary`` colour map (dark ink on white), the label as each image's x-axis
    label. With ``predictions``, a correct image keeps its black
    label and a wrong one gets a red frame and a red ``label → predicted`` caption
    (on two lines when long).

    Args:
        images: ``(N, 28, 28)`` or ``(N, 28, 28, 1)``; uint8 0..255 or float in [0, 1]
            (the library's image rule).
        labels: ``(N,)`` integer classes.
        predictions: ``(N,)`` integer predicted classes, or a
            :class:`~lenet_mnist.inference.DigitPredictions` for the same images.
        n: How many images, at most, from the start (fewer if ``N < n``); 1 ..
            :data:`MAX_SAMPLES` (200).
        ncols: Images per row.
        path: Also write the figure here (``.png``, ``.pdf`` or ``.svg``).
        class_names: Caption of each class, indexed by label (e.g.
            ``lenet_mnist.class_names("fashion")``); default the label number.
        title: A title above the grid; default none, as in the tutorial.

    Returns:
        The ``matplotlib.figure.Figure`` (``DPI`` = 100: 2000 x 490 pixels by default,
        50 more with a title).

    Raises:
        ImportError: matplotlib is missing (names the ``plot`` extra).
        ValueError: Bad images, labels or predictions of another length, a label with
            no class name, a bad ``path`` suffix, ``n`` outside 1 .. 200 or ``ncols``
            below 1.
        TypeError: ``n``/``ncols`` not an int, ``class_names`` not strings.

    Example:
        >>> import numpy as np
        >>> images = np.zeros((3, 28, 28), np.uint8)
        >>> figure = plot_samples(images, [7, 2, 1], predictions=[7, 2, 4])
        >>> [ax.get_xlabel() for ax in figure.axes]
        ['7', '2', '1 → 4']
    """
    check_sample_count(n)
    check_positive_int("ncols", ncols)
    target = check_figure_path(path)
    pixels = as_image_batch(images)[..., 0]
    truth = _class_indices(labels, len(pixels), "labels")
    guessed: npt.NDArray[np.int64] | None = None
    if predictions is not None:
        # A DigitPredictions (duck-typed: plotting needs no TensorFlow) or the digits.
        digits = getattr(predictions, "digits", predictions)
        guessed = _class_indices(digits, len(pixels), "predictions")
    shown = min(n, len(pixels))
    largest = (
        int(truth[:shown].max())
        if guessed is None
        else int(max(truth[:shown].max(), guessed[:shown].max()))
    )
    names = _check_class_names(class_names, largest + 1)
    captions: list[str] = []
    colors: list[str] = []
    for k in range(shown):
        label = names[truth[k]]
        if guessed is None or guessed[k] == truth[k]:
            captions.append(label)
            colors.append(_RIGHT)
        else:
            captions.append(_mistake_caption(label, names[guessed[k]]))
            colors.append(_WRONG)
    # A two-line caption (a long class name taken for another) needs one line more.
    two_lines = any("\n" in caption for caption in captions)
    row_height = _SAMPLE_ROW_HEIGHT + (_CAPTION_LINE_HEIGHT if two_lines else 0.0)
    figure = _image_grid(
        pixels[:shown], captions, colors, ncols=ncols, row_height=row_height, title=title
    )
    save_figure(figure, target)
    return figure


def plot_history(history: Any, path: str | os.PathLike[str] | None = None) -> Figure:
    """Draw loss and accuracy per epoch, training and validation, in two panels.

    Args:
        history: The ``keras.callbacks.History`` that :func:`lenet_mnist.train` returns,
            its ``history`` dict, or :func:`lenet_mnist.load_history`'s result.
            Needs ``"loss"`` and ``"accuracy"``; ``"val_loss"`` and ``"val_accuracy"``
            are drawn when present.
        path: Also write the figure here (``.png``, ``.pdf`` or ``.svg``).

    Returns:
        The Figure, 12 x 4.5 inches (1200 x 450 pixels).

    Raises:
        ImportError: matplotlib is missing (names the ``plot`` extra).
        ValueError: ``"loss"`` or ``"accuracy"`` missing, series of unequal length, or
            a bad ``path`` suffix.
        TypeError: Not a history.

    Example:
        >>> figure = plot_history({"loss": [0.2, 0.1], "accuracy": [0.94, 0.98],
        ...                        "val_loss": [0.1, 0.05], "val_accuracy": [0.97, 0.99]})
        >>> [ax.get_title() for ax in figure.axes]
        ['Loss', 'Accuracy']
    """
    series = as_history_dict(history)
    missing = [key for key in ("loss", "accuracy") if key not in series]
    if missing:
        raise ValueError(
            f"history needs 'loss' and 'accuracy' per epoch, got keys {sorted(series)}"
        )
    target = check_figure_path(path)
    require_matplotlib()
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    figure = new_figure(12.0, 4.5)
    loss_ax, accuracy_ax = figure.subplots(1, 2)
    epochs = np.arange(1, len(series["loss"]) + 1)
    panels: tuple[tuple[Axes, str, str, str], ...] = (
        (loss_ax, "loss", "Loss", "cross-entropy (nats)"),
        (accuracy_ax, "accuracy", "Accuracy", "accuracy"),
    )
    for ax, key, title, ylabel in panels:
        is_accuracy = key == "accuracy"
        for prefix, label, style in (("", "training", "o-"), ("val_", "validation", "s--")):
            values = series.get(prefix + key)
            if values is None:
                continue
            final = f"{values[-1]:.2%}" if is_accuracy else f"{values[-1]:.4f}"
            ax.plot(epochs, values, style, label=f"{label} (last {final})")
        ax.set_title(title, fontsize=13)
        ax.set_xlabel("epoch", fontsize=11)
        ax.set_ylabel(ylabel, fontsize=11)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if is_accuracy:
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(figure, target)
    return figure


def plot_confusion_matrix(
    report: EvaluationReport, path: str | os.PathLike[str] | None = None
) -> Figure:
    """Draw the confusion matrix: counts in the cells, class names on the axes, a colour bar.

    Rows are true classes, columns predicted ones. The colour scale is linear up to 1
    and logarithmic above (symlog), so the few mistakes off the diagonal stay visible
    beside the ~1000 correct images of each class; empty cells are white.

    Args:
        report: An :class:`~lenet_mnist.evaluation.EvaluationReport`; its
            ``class_names`` label the axes.
        path: Also write the figure here (``.png``, ``.pdf`` or ``.svg``).

    Returns:
        The Figure, 9.5 x 8.5 inches (950 x 850 pixels) for 10 short class names.

    Raises:
        ImportError: matplotlib is missing (names the ``plot`` extra).
        TypeError: ``report`` is not an EvaluationReport.
        ValueError: A bad ``path`` suffix.

    Example:
        >>> import numpy as np
        >>> from lenet_mnist.evaluation import report_from_logits
        >>> report = report_from_logits(np.eye(10, dtype=np.float32), np.arange(10))
        >>> figure = plot_confusion_matrix(report)
        >>> figure.axes[0].get_xlabel()
        'predicted class'
    """
    check_report(report)
    target = check_figure_path(path)
    require_matplotlib()
    from matplotlib.colors import SymLogNorm

    confusion = report.confusion
    num_classes = confusion.shape[0]
    longest = max(len(name) for name in report.class_names)
    # Long names (Fashion-MNIST) are set at an angle and need room below and left.
    extra = 0.08 * max(0, longest - 2)
    size = 0.55 * num_classes + 3.0
    figure = new_figure(size + 1.0 + extra, size + extra)
    ax = figure.subplots()
    norm = SymLogNorm(linthresh=1.0, linscale=0.5, vmin=0.0, vmax=max(1.0, float(confusion.max())))
    cmap = "Blues"
    image = ax.imshow(confusion, cmap=cmap, norm=norm, interpolation="nearest")
    colorbar = figure.colorbar(image, ax=ax, shrink=0.85)
    colorbar.set_label("images (log scale above 1)", fontsize=11)
    # Plain counts, not symlog's default 10^k labels: readers count images, not exponents.
    top = max(1.0, float(confusion.max()))
    ticks = [0.0] + [10.0**k for k in range(int(math.log10(top)) + 1)]
    colorbar.set_ticks(ticks, labels=[f"{t:.0f}" for t in ticks])
    for t in range(num_classes):
        for p in range(num_classes):
            count = int(confusion[t, p])
            if count == 0:
                continue
            shade = float(norm(count))
            ax.text(
                p,
                t,
                str(count),
                ha="center",
                va="center",
                fontsize=10 if count < 1000 else 9,
                color="white" if shade > 0.6 else "black",
            )
    positions = np.arange(num_classes)
    ax.set_xticks(positions, labels=report.class_names, fontsize=11)
    ax.set_yticks(positions, labels=report.class_names, fontsize=11)
    if longest > 2:
        ax.tick_params(axis="x", labelrotation=45)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
            label.set_rotation_mode("anchor")
    ax.set_xlabel("predicted class", fontsize=12)
    ax.set_ylabel("true class", fontsize=12)
    ax.set_title(
        f"Confusion matrix: {report.accuracy:.2%} of {report.num_images} test images correct",
        fontsize=13,
    )
    save_figure(figure, target)
    return figure


def check_report(report: object) -> None:
    """Raise ``TypeError`` unless ``report`` is an ``EvaluationReport``."""
    from lenet_mnist.evaluation import EvaluationReport

    if not isinstance(report, EvaluationReport):
        raise TypeError(f"report must be an EvaluationReport, got {type(report).__name__}")


def plot_misclassified(
    model_or_report: keras.Model | EvaluationReport,
    data: MnistData,
    *,
    n: int = 20,
    ncols: int = 10,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Draw the test images the model gets wrong, the most confident mistakes first.

    Each image is captioned ``true → predicted`` in red with the probability the model
    gave its (wrong) answer.

    Args:
        model_or_report: A model (evaluated on ``data`` first, see
            :func:`lenet_mnist.evaluate_model`) or an
            :class:`~lenet_mnist.evaluation.EvaluationReport` of ``data``'s test split.
        data: :class:`~lenet_mnist.MnistData`; only the test split is used.
        n: How many mistakes, at most.
        ncols: Images per row.
        path: Also write the figure here (``.png``, ``.pdf`` or ``.svg``).

    Returns:
        The Figure (2 inches per column, 3 per row, 0.5 for the title); a figure saying
        so if the model makes no mistake.

    Raises:
        ImportError: matplotlib is missing (names the ``plot`` extra).
        ValueError: The report is not of ``data``'s test split (another number of
            images or other labels), bad ``n``/``ncols``, a bad ``path`` suffix.
        TypeError: Neither a model nor a report.

    Example:
        >>> figure = plot_misclassified(model, load_mnist(), n=10)  # doctest: +SKIP
    """
    check_positive_int("n", n)
    check_positive_int("ncols", ncols)
    target = check_figure_path(path)
    from lenet_mnist.evaluation import EvaluationReport

    if isinstance(model_or_report, EvaluationReport):
        report = model_or_report
    else:
        import keras

        if not isinstance(model_or_report, keras.Model):
            raise TypeError(
                "model_or_report must be a keras.Model or an EvaluationReport, "
                f"got {type(model_or_report).__name__}"
            )
        from lenet_mnist.evaluation import evaluate_model

        report = evaluate_model(model_or_report, data)
    check_report_matches(report, data)
    require_matplotlib()
    chosen = report.misclassified[:n]
    total = len(report.misclassified)
    if len(chosen) == 0:
        figure = new_figure(6.0, 2.0)
        figure.text(
            0.5,
            0.5,
            f"No mistakes on {report.num_images} test images",
            ha="center",
            va="center",
            fontsize=16,
        )
        save_figure(figure, target)
        return figure
    pixels = as_image_batch(np.asarray(data.test_images)[chosen])[..., 0]
    names = report.class_names
    captions = [
        _mistake_caption(names[report.labels[i]], names[report.predictions[i]]) + "\n"
        f"p = {report.confidences[i]:.3f}"
        for i in chosen
    ]
    title = (
        f"The {len(chosen)} most confident of {total} mistakes on "
        f"{report.num_images} test images (true → predicted, p = model's probability)"
    )
    figure = _image_grid(
        pixels,
        captions,
        [_WRONG] * len(chosen),
        ncols=ncols,
        row_height=_MISTAKE_ROW_HEIGHT,
        title=title,
    )
    save_figure(figure, target)
    return figure


def check_report_matches(report: EvaluationReport, data: MnistData) -> None:
    """Raise ``ValueError`` unless ``report`` is of ``data``'s test split (same labels)."""
    labels = np.asarray(data.test_labels)
    if labels.shape != report.labels.shape or not np.array_equal(labels, report.labels):
        raise ValueError(
            "the report is not of this data's test split: its labels differ "
            f"({report.num_images} images in the report, got {labels.shape[0]} in the data)"
        )
