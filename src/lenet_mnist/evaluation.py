"""Evaluating a trained model: accuracy, loss, confusion matrix, per-class scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import numpy.typing as npt

from lenet_mnist.data.mnist import MnistData
from lenet_mnist.inference import predict_digits

__all__ = ["EvaluationReport", "evaluate_model", "report_from_logits"]


@dataclass(frozen=True)
class EvaluationReport:
    """How a model does on the test split.

    Attributes:
        accuracy: Fraction of test images classified correctly, in [0, 1].
        loss: Mean cross-entropy of the softmax of the logits, in nats.
        confusion: ``(C, C)`` int64; ``confusion[t, p]`` counts images of true class
            ``t`` predicted as ``p``. Row sums are the per-class support.
        precision: ``(C,)`` float64 per class (0 where a class is never predicted).
        recall: ``(C,)`` float64 per class.
        f1: ``(C,)`` float64 per class, the harmonic mean of precision and recall.
        support: ``(C,)`` int64 test images per true class.
        misclassified: int64 indices into the test split of the wrongly classified
            images, most confident mistake first.
        predictions: ``(N,)`` int64 predicted class of every test image.
        labels: ``(N,)`` int64 true class of every test image.
        confidences: ``(N,)`` float32 probability of the predicted class.
        class_names: The name of each class.
    """

    accuracy: float
    loss: float
    confusion: npt.NDArray[np.int64]
    precision: npt.NDArray[np.float64]
    recall: npt.NDArray[np.float64]
    f1: npt.NDArray[np.float64]
    support: npt.NDArray[np.int64]
    misclassified: npt.NDArray[np.int64]
    predictions: npt.NDArray[np.int64]
    labels: npt.NDArray[np.int64]
    confidences: npt.NDArray[np.float32]
    class_names: tuple[str, ...]

    @property
    def num_images(self) -> int:
        """How many test images were evaluated."""
        return int(self.support.sum())

    def most_confused(self, k: int = 3) -> list[tuple[int, int, int]]:
        """Return the ``k`` most frequent mistakes as ``(true, predicted, count)``, largest first.

        Example:
            >>> import numpy as np
            >>> labels = np.array([4, 4, 9, 7]); logits = np.eye(10)[[9, 4, 4, 7]] * 5
            >>> report = report_from_logits(logits.astype(np.float32), labels)
            >>> report.most_confused(1)
            [(4, 9, 1)]
        """
        off = self.confusion.copy()
        np.fill_diagonal(off, 0)
        order = np.argsort(-off, axis=None, kind="stable")[:k]
        pairs = [(int(i // off.shape[1]), int(i % off.shape[1])) for i in order]
        return [(t, p, int(off[t, p])) for t, p in pairs if off[t, p] > 0]

    def to_dict(self) -> dict[str, Any]:
        """Return the report as plain JSON-serializable Python types.

        Keys: ``num_images``, ``accuracy``, ``loss``, ``class_names``,
        ``confusion_matrix`` (rows are true classes), ``per_class`` (precision, recall,
        F1, support per class), ``misclassified`` (``index``, ``true``, ``predicted``,
        ``confidence``; most confident mistake first) and ``most_confused`` (the three
        largest off-diagonal cells).

        Example:
            >>> import json
            >>> import numpy as np
            >>> logits = (np.eye(10)[[3, 5, 5]] * 4).astype(np.float32)
            >>> report = report_from_logits(logits, np.array([3, 3, 5]))
            >>> d = json.loads(json.dumps(report.to_dict()))
            >>> d["misclassified"][0]["true"], d["misclassified"][0]["predicted"]
            (3, 5)
        """
        return {
            "num_images": self.num_images,
            "accuracy": self.accuracy,
            "loss": self.loss,
            "class_names": list(self.class_names),
            "confusion_matrix": self.confusion.tolist(),
            "per_class": [
                {
                    "class": name,
                    "precision": float(self.precision[i]),
                    "recall": float(self.recall[i]),
                    "f1": float(self.f1[i]),
                    "support": int(self.support[i]),
                }
                for i, name in enumerate(self.class_names)
            ],
            "misclassified": [
                {
                    "index": int(i),
                    "true": int(self.labels[i]),
                    "predicted": int(self.predictions[i]),
                    "confidence": float(self.confidences[i]),
                }
                for i in self.misclassified
            ],
            "most_confused": [
                {"true": t, "predicted": p, "count": c} for t, p, c in self.most_confused(3)
            ],
        }


def report_from_logits(
    logits: npt.NDArray[np.float32],
    labels: npt.ArrayLike,
    *,
    class_names: tuple[str, ...] | None = None,
) -> EvaluationReport:
    """Build an :class:`EvaluationReport` from ``(N, C)`` logits and ``(N,)`` true labels.

    Args:
        logits: ``(N, C)`` finite raw model outputs (no softmax).
        labels: ``(N,)`` integer true classes in 0..C-1.
        class_names: ``C`` names; default ``"0"`` .. ``"C-1"``.

    Raises:
        ValueError: Shapes disagree, the batch is empty, a logit is NaN or infinite, a
            label is outside 0..C-1, or the number of class names is not C.
        TypeError: ``class_names`` is not a sequence of str.

    Example:
        >>> import numpy as np
        >>> report = report_from_logits(np.eye(10, dtype=np.float32)[[1, 2]], np.array([1, 7]))
        >>> report.accuracy, report.confusion[7, 2]
        (0.5, np.int64(1))
    """
    logits64 = np.asarray(logits, dtype=np.float64)
    truth = np.asarray(labels)
    if logits64.ndim != 2 or truth.shape != (logits64.shape[0],) or logits64.shape[0] == 0:
        raise ValueError(
            f"need logits (N, C) and labels (N,) with N >= 1, got {logits64.shape} and {truth.shape}"
        )
    if not np.isfinite(logits64).all():
        raise ValueError("logits must be finite, got NaN or infinite values")
    num_classes = logits64.shape[1]
    if not np.issubdtype(truth.dtype, np.integer) or truth.min() < 0 or truth.max() >= num_classes:
        raise ValueError(
            f"labels must be integers in 0..{num_classes - 1}, got {truth.dtype} values"
        )
    truth = truth.astype(np.int64)
    if class_names is not None and (
        isinstance(class_names, str) or not all(isinstance(name, str) for name in class_names)
    ):
        raise TypeError(f"class_names must be a sequence of str, got {class_names!r}")
    names = (
        tuple(class_names) if class_names is not None else tuple(str(i) for i in range(num_classes))
    )
    if len(names) != num_classes:
        raise ValueError(f"need {num_classes} class names, got {len(names)}")
    shifted = logits64 - logits64.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    probs = np.exp(log_probs)
    # argmax of the logits, not of their rounded softmax: exact, even for near-ties.
    predicted = logits64.argmax(axis=1).astype(np.int64)
    confidence = probs[np.arange(len(predicted)), predicted].astype(np.float32)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    true_pos = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_count > 0, true_pos / predicted_count, 0.0)
        recall = np.where(support > 0, true_pos / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    wrong = np.flatnonzero(predicted != truth)
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")].astype(np.int64)
    return EvaluationReport(
        accuracy=float(true_pos.sum() / len(truth)),
        loss=float(-log_probs[np.arange(len(truth)), truth].mean()),
        confusion=confusion,
        precision=precision,
        recall=recall,
        f1=f1,
        support=support.astype(np.int64),
        misclassified=wrong,
        predictions=predicted,
        labels=truth,
        confidences=confidence,
        class_names=names,
    )


def evaluate_model(
    model: keras.Model, data: MnistData, *, class_names: tuple[str, ...] | None = None
) -> EvaluationReport:
    """Evaluate ``model`` on the test split of ``data``.

    Args:
        model: A model returning logits for ``(batch, 28, 28, 1)`` images.
        data: :class:`MnistData`; only ``test_images`` and ``test_labels`` are used.
        class_names: Names for the classes; default ``"0"`` .. ``"9"``.

    Returns:
        The :class:`EvaluationReport`.

    Raises:
        ValueError: Bad images or labels.

    Example:
        >>> report = evaluate_model(model, load_mnist())  # doctest: +SKIP
        >>> round(report.accuracy, 3)  # doctest: +SKIP
        0.991
    """
    predictions = predict_digits(model, data.test_images)
    return report_from_logits(predictions.logits, data.test_labels, class_names=class_names)
