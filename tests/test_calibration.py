"""Temperature scaling, the expected calibration error and the "not sure" flag."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lenet_mnist import DigitPredictions
from lenet_mnist.models.calibration import (
    expected_calibration_error,
    fit_temperature,
    softmax,
)


def _overconfident(seed: int, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Logits whose softmax at temperature 1 is calibrated, then sharpened 3x."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    logits = rng.normal(0, 1, (n, 10))
    logits[np.arange(n), labels] += 1.5
    # Draw the labels from the softmax itself: then T = 1 is the true calibration.
    p = softmax(logits)
    labels = np.array([rng.choice(10, p=row) for row in p])
    return 3.0 * logits, labels


def test_fit_temperature_undoes_a_sharpening() -> None:
    logits, labels = _overconfident(0)
    temperature = fit_temperature(logits, labels)
    assert 2.7 < temperature < 3.3
    before = expected_calibration_error(softmax(logits), labels)
    after = expected_calibration_error(softmax(logits, temperature), labels)
    assert after < before / 3
    # The predictions themselves never change.
    np.testing.assert_array_equal(
        softmax(logits).argmax(axis=1), softmax(logits, temperature).argmax(axis=1)
    )


@settings(max_examples=20, deadline=None)
@given(scale=st.floats(0.2, 5.0), seed=st.integers(0, 1000))
def test_temperature_scales_with_the_logits(scale: float, seed: int) -> None:
    logits, labels = _overconfident(seed, 500)
    base = fit_temperature(logits, labels)
    assert fit_temperature(scale * logits, labels) == pytest.approx(scale * base, rel=2e-3)


def test_ece_of_known_cases() -> None:
    certain_and_right = np.eye(3)[[0, 1, 2]]
    assert expected_calibration_error(certain_and_right, np.array([0, 1, 2])) == 0.0
    certain_and_wrong = np.eye(3)[[1, 2, 0]]
    assert expected_calibration_error(certain_and_wrong, np.array([0, 1, 2])) == 1.0
    half = np.array([[0.6, 0.4], [0.6, 0.4]])
    assert expected_calibration_error(half, np.array([0, 1])) == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("logits", "labels", "message"),
    [
        (np.zeros((3,)), np.zeros(3, int), r"shape \(N, C\).*got \(3,\)"),
        (np.zeros((3, 1)), np.zeros(3, int), r"got \(3, 1\)"),
        (np.zeros((3, 4)), np.zeros(2, int), r"must be 3 integers, got shape \(2,\)"),
        (np.zeros((3, 4)), np.zeros(3), "dtype float64"),
        (np.zeros((3, 4)), np.array([0, 1, 4]), r"\[0, 3\], got \[0, 4\]"),
        (np.full((3, 4), np.nan), np.zeros(3, int), "finite, got NaN"),
    ],
)
def test_bad_inputs(logits: np.ndarray, labels: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_temperature(logits, labels)
    with pytest.raises(ValueError, match=message):
        expected_calibration_error(logits, labels)


@pytest.mark.parametrize("bins", [0, -1, 2.5, True])
def test_bad_bins(bins: object) -> None:
    with pytest.raises(ValueError, match=f"bins must be a positive integer, got {bins!r}"):
        expected_calibration_error(np.eye(2), np.array([0, 1]), bins)  # type: ignore[arg-type]


def test_confident_flags_low_top_probabilities() -> None:
    p = np.array([[0.95, 0.05], [0.6, 0.4], [0.1, 0.9]], np.float32)
    result = DigitPredictions(p.argmax(axis=1), p, np.log(p))
    np.testing.assert_allclose(result.confidence, [0.95, 0.6, 0.9])
    assert result.confident().tolist() == [True, False, True]
    assert result.confident(0.0).all()
    assert result.confident(0.95).tolist() == [True, False, False]


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan"), "0.9", True])
def test_confident_checks_its_threshold(threshold: object) -> None:
    p = np.array([[0.5, 0.5]], np.float32)
    result = DigitPredictions(np.array([0]), p, np.log(p))
    with pytest.raises(ValueError, match="threshold must be a number in \\[0, 1\\], got"):
        result.confident(threshold)  # type: ignore[arg-type]
