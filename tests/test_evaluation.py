"""EvaluationReport's numbers against independent, hand and loop computations."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lenet_mnist.evaluation import EvaluationReport, evaluate_model, report_from_logits


def _logits_for(predicted: list[int], num_classes: int, strength: float = 4.0) -> np.ndarray:
    return (np.eye(num_classes)[predicted] * strength).astype(np.float32)


def test_hand_computed_three_class_example() -> None:
    # true:      0 0 0 1 1 2
    # predicted: 0 0 1 1 2 2
    labels = np.array([0, 0, 0, 1, 1, 2])
    report = report_from_logits(_logits_for([0, 0, 1, 1, 2, 2], 3), labels)
    assert report.confusion.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert report.accuracy == pytest.approx(4 / 6)
    # precision = TP / predicted: class 0: 2/2, class 1: 1/2, class 2: 1/2
    np.testing.assert_allclose(report.precision, [1.0, 0.5, 0.5])
    # recall = TP / support: class 0: 2/3, class 1: 1/2, class 2: 1/1
    np.testing.assert_allclose(report.recall, [2 / 3, 0.5, 1.0])
    np.testing.assert_allclose(report.f1, [0.8, 0.5, 2 / 3])
    assert report.support.tolist() == [3, 2, 1]
    assert sorted(report.misclassified.tolist()) == [2, 4]
    assert report.most_confused(3) == [(0, 1, 1), (1, 2, 1)]
    assert report.labels.tolist() == labels.tolist()
    # Every logit row is [4, 0, 0] up to order: the same confidence and loss for each image.
    p_top = np.exp(4.0) / (np.exp(4.0) + 2.0)
    np.testing.assert_allclose(report.confidences, p_top, rtol=1e-6)
    expected_loss = -(4 * np.log(p_top) + 2 * np.log(1.0 / (np.exp(4.0) + 2.0))) / 6
    assert report.loss == pytest.approx(expected_loss)


def test_a_class_never_predicted_has_zero_precision_and_f1() -> None:
    report = report_from_logits(_logits_for([0, 0], 3), np.array([0, 1]))
    assert report.precision.tolist() == [0.5, 0.0, 0.0]
    assert report.recall.tolist() == [1.0, 0.0, 0.0]
    assert report.f1[1] == 0.0
    assert report.support.tolist() == [1, 1, 0]


def test_misclassified_are_ranked_by_confidence() -> None:
    logits = np.array(
        [[0.0, 1.0], [0.0, 5.0], [3.0, 0.0], [0.0, 2.0]], dtype=np.float32
    )  # all predicted wrong except row 2
    report = report_from_logits(logits, np.array([0, 0, 0, 0]))
    assert report.misclassified.tolist() == [1, 3, 0]
    confidences = report.confidences[report.misclassified]
    assert (np.diff(confidences) <= 0).all()


@settings(max_examples=40, deadline=None)
@given(
    logits=hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 40), st.integers(2, 6)),
        elements=st.floats(-20, 20, width=32),
    ),
    data=st.data(),
)
def test_report_agrees_with_a_loop_computation(logits: np.ndarray, data: st.DataObject) -> None:
    n, c = logits.shape
    labels = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    report = report_from_logits(logits, labels)
    predicted = logits.astype(np.float64).argmax(axis=1)
    confusion = np.zeros((c, c), dtype=np.int64)
    for t, p in zip(labels, predicted, strict=True):
        confusion[t, p] += 1
    assert report.confusion.tolist() == confusion.tolist()
    assert report.confusion.sum(axis=1).tolist() == report.support.tolist()
    assert report.num_images == n
    assert report.accuracy == pytest.approx(np.trace(report.confusion) / n)
    assert len(report.misclassified) == n - np.trace(confusion)
    for k in range(c):
        predicted_k = confusion[:, k].sum()
        expected = confusion[k, k] / predicted_k if predicted_k else 0.0
        assert report.precision[k] == pytest.approx(expected)
    json.dumps(report.to_dict(), allow_nan=False)


def test_to_dict_is_json_and_complete() -> None:
    names = ("zero", "one", "two")
    report = report_from_logits(
        _logits_for([0, 2, 2], 3), np.array([0, 1, 2], dtype=np.uint8), class_names=names
    )
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert d["num_images"] == 3
    assert d["accuracy"] == pytest.approx(2 / 3)
    assert d["class_names"] == list(names)
    assert d["confusion_matrix"] == [[1, 0, 0], [0, 0, 1], [0, 0, 1]]
    assert [row["support"] for row in d["per_class"]] == [1, 1, 1]
    assert d["misclassified"] == [
        {"index": 1, "true": 1, "predicted": 2, "confidence": pytest.approx(report.confidences[1])}
    ]
    assert d["most_confused"] == [{"true": 1, "predicted": 2, "count": 1}]


@pytest.mark.parametrize(
    ("logits", "labels", "match"),
    [
        (np.zeros((3, 10), np.float32), np.zeros(2, int), r"need logits \(N, C\).*got \(3, 10\)"),
        (np.zeros((0, 10), np.float32), np.zeros(0, int), r"N >= 1, got \(0, 10\)"),
        (np.zeros(10, np.float32), np.zeros(1, int), r"got \(10,\)"),
        (np.zeros((2, 10), np.float32), np.array([0, 10]), r"integers in 0\.\.9"),
        (np.zeros((2, 10), np.float32), np.array([0, -1]), r"integers in 0\.\.9"),
        (np.zeros((2, 10), np.float32), np.array([0.0, 1.0]), r"got float64 values"),
        (np.full((1, 10), np.nan, np.float32), np.array([0]), r"finite, got NaN"),
        (np.full((1, 10), np.inf, np.float32), np.array([0]), r"finite, got NaN or infinite"),
    ],
)
def test_bad_inputs_are_refused(logits: np.ndarray, labels: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        report_from_logits(logits, labels)


def test_bad_class_names_are_refused() -> None:
    logits = np.zeros((1, 3), np.float32)
    with pytest.raises(ValueError, match="need 3 class names, got 2"):
        report_from_logits(logits, np.array([0]), class_names=("a", "b"))
    with pytest.raises(TypeError, match="sequence of str, got 'abc'"):
        report_from_logits(logits, np.array([0]), class_names="abc")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"sequence of str, got \(1, 2, 3\)"):
        report_from_logits(logits, np.array([0]), class_names=(1, 2, 3))  # type: ignore[arg-type]


def test_evaluate_model_matches_predict_digits(tiny_data) -> None:
    from lenet_mnist import build_lenet, predict_digits

    model = build_lenet(seed=0)
    report = evaluate_model(model, tiny_data)
    assert isinstance(report, EvaluationReport)
    digits = predict_digits(model, tiny_data.test_images).digits
    assert report.predictions.tolist() == digits.tolist()
    assert report.labels.tolist() == tiny_data.test_labels.tolist()
    assert report.accuracy == pytest.approx(np.mean(digits == tiny_data.test_labels))
    assert report.class_names == tuple(str(i) for i in range(10))
