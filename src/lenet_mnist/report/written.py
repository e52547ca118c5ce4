"""The written evaluation report: a directory with JSON numbers, two pictures, a Markdown page."""

from __future__ import annotations

import json
import os
from pathlib import Path

from lenet_mnist._util.atomic import atomic_write
from lenet_mnist._util.checks import check_positive_int
from lenet_mnist.data.mnist import MnistData
from lenet_mnist.evaluation import EvaluationReport
from lenet_mnist.report.canvas import require_matplotlib
from lenet_mnist.report.figures import (
    check_report,
    check_report_matches,
    plot_confusion_matrix,
    plot_misclassified,
)

__all__ = ["write_report"]


def _percent(value: float) -> str:
    return f"{value:.2%}"


def _report_markdown(report: EvaluationReport, title: str, shown: int) -> str:
    names = report.class_names
    correct = report.num_images - len(report.misclassified)
    lines = [
        f"# {title}",
        "",
        f"- Test images: {report.num_images}",
        f"- Accuracy: {_percent(report.accuracy)} ({correct} / {report.num_images} correct)",
        f"- Loss: {report.loss:.4f} (mean cross-entropy, nats)",
        "",
        "## Most confused classes",
        "",
    ]
    confused = report.most_confused(3)
    if confused:
        lines += ["| true | predicted as | images |", "|---|---|---:|"]
        lines += [f"| {names[t]} | {names[p]} | {c} |" for t, p, c in confused]
    else:
        lines.append("No mistakes.")
    lines += [
        "",
        "## Confusion matrix",
        "",
        "Rows are true classes, columns predicted classes.",
        "",
        "![Confusion matrix](confusion_matrix.png)",
        "",
        "## Per class",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {name} | {report.precision[i]:.4f} | {report.recall[i]:.4f} | "
        f"{report.f1[i]:.4f} | {report.support[i]} |"
        for i, name in enumerate(names)
    ]
    lines += [
        "",
        "## Misclassified images",
        "",
        f"The {shown} most confident of {len(report.misclassified)} mistakes, "
        "captioned true → predicted with the model's probability.",
        "",
        "![Misclassified test images](misclassified.png)",
        "",
    ]
    return "\n".join(lines)


def write_report(
    report: EvaluationReport,
    data: MnistData,
    directory: str | os.PathLike[str],
    *,
    n_misclassified: int = 20,
    title: str = "Evaluation report",
) -> dict[str, Path]:
    """Write an evaluation report directory: JSON numbers, two pictures, a Markdown page.

    Files, each written atomically (existing ones are replaced):

    * ``report.json``: :meth:`EvaluationReport.to_dict`;
    * ``confusion_matrix.png``: :func:`plot_confusion_matrix`;
    * ``misclassified.png``: :func:`plot_misclassified` with ``n_misclassified``;
    * ``report.md``: accuracy, loss, the most confused pairs, per-class scores, and
      both pictures embedded by relative links (view it next to them).

    Args:
        report: The :class:`~lenet_mnist.evaluation.EvaluationReport` of ``data``'s
            test split.
        data: The data evaluated (its test images are drawn).
        directory: Where to write; created if missing.
        n_misclassified: How many mistakes to draw, at most.
        title: The Markdown page's heading.

    Returns:
        ``{file name: path}`` of the four files.

    Raises:
        ImportError: matplotlib is missing (names the ``plot`` extra).
        TypeError: ``report`` is not an EvaluationReport.
        ValueError: The report is not of ``data``'s test split.
        OSError: ``directory`` cannot be created or written.

    Example:
        >>> write_report(evaluate_model(model, data), data, "out")  # doctest: +SKIP
        {'report.json': PosixPath('out/report.json'), ...}
    """
    check_report(report)
    check_positive_int("n_misclassified", n_misclassified)
    check_report_matches(report, data)
    require_matplotlib()
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        name: folder / name
        for name in ("report.json", "confusion_matrix.png", "misclassified.png", "report.md")
    }
    text = json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n"
    atomic_write(files["report.json"], lambda tmp: tmp.write_text(text, encoding="utf-8"))
    plot_confusion_matrix(report, files["confusion_matrix.png"])
    plot_misclassified(report, data, n=n_misclassified, path=files["misclassified.png"])
    shown = min(n_misclassified, len(report.misclassified))
    page = _report_markdown(report, title, shown)
    atomic_write(files["report.md"], lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return files
