"""The pretrained model shipped in the package, on MNIST and on photo-like pictures."""

from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from handwriting import photo, random_style
from lenet_mnist import build_lenet, evaluate_model, predict_digits, prepare_image, pretrained
from lenet_mnist.cli import main
from lenet_mnist.models.pretrained import CALIBRATION_FILE, PRETRAINED_FILE, pretrained_temperature


@pytest.fixture(scope="module")
def model():
    return pretrained()


def test_weights_ship_in_the_package_and_are_small() -> None:
    weights = resources.files("lenet_mnist").joinpath(PRETRAINED_FILE)
    assert weights.is_file()
    assert len(weights.read_bytes()) < 2 * 1024 * 1024


def test_every_call_returns_an_independent_copy(model) -> None:
    other = pretrained()
    assert other is not model
    assert other.name == "lenet_robust"
    assert other.count_params() == 198_442
    before = model.get_layer("logits").get_weights()[0].copy()
    other.get_layer("logits").set_weights(
        [np.zeros_like(w) for w in other.get_layer("logits").get_weights()]
    )
    np.testing.assert_array_equal(model.get_layer("logits").get_weights()[0], before)
    np.testing.assert_array_equal(pretrained().get_layer("logits").get_weights()[0], before)


def test_its_weights_load_into_the_robust_network_with_the_same_predictions(model) -> None:
    # The file was trained with Keras's BatchNormalization; build_lenet("robust") now
    # uses FusedBatchNorm, which has the same state in the same order.
    rebuilt = build_lenet("robust", seed=0)
    rebuilt.set_weights(model.get_weights())
    images = np.random.default_rng(0).random((16, 28, 28, 1), np.float32)
    # pretrained() divides the logits by the shipped temperature, nothing else.
    expected = rebuilt(images).numpy() / pretrained_temperature()
    np.testing.assert_allclose(expected, model(images).numpy(), atol=1e-4)


def test_the_shipped_temperature_changes_probabilities_not_digits(model) -> None:
    calibration = json.loads(
        resources.files("lenet_mnist").joinpath(CALIBRATION_FILE).read_text("utf-8")
    )
    temperature = pretrained_temperature()
    assert temperature == calibration["temperature"]
    assert 0.05 <= temperature <= 20
    # T = 1 is shipped as "no temperature": pretrained() then adds no layer.
    assert (model.layers[-1].name == "temperature") == (temperature != 1.0)
    rebuilt = build_lenet("robust", seed=0)
    rebuilt.set_weights(model.get_weights())
    images = np.random.default_rng(1).random((64, 28, 28, 1), np.float32)
    raw = predict_digits(rebuilt, images)
    scaled = predict_digits(model, images)
    np.testing.assert_array_equal(raw.digits, scaled.digits)
    np.testing.assert_allclose(scaled.logits, raw.logits / temperature, rtol=1e-4, atol=1e-5)


def test_a_drawn_one_without_real_data(model) -> None:
    paper = np.full((200, 150), 225, np.uint8)
    paper[40:170, 70:80] = 30
    result = predict_digits(model, paper)
    assert int(result.digits[0]) == 1


@pytest.mark.slow
def test_mnist_test_accuracy(model, real_data) -> None:
    report = evaluate_model(model, real_data)
    assert report.accuracy >= 0.994


def _pictures(
    real_data, count: int, seed: int, **changes: object
) -> tuple[list[bytes], np.ndarray]:
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(real_data.test_images), size=count, replace=False)
    pictures = []
    for index in picks:
        style = replace(random_style(rng), **changes) if changes else random_style(rng)
        pictures.append(photo(real_data.test_images[index], style, rng))
    return pictures, real_data.test_labels[picks].astype(np.int64)


@pytest.mark.slow
def test_photo_like_pictures(model, real_data) -> None:
    # 1,000 test digits as photos: tinted, unevenly lit paper, dark ink, any size and
    # place, slight rotation and blur, noise, RGB or gray, PNG or JPEG (quality 50-95).
    pictures, labels = _pictures(real_data, 1000, seed=5)
    accuracy = float((predict_digits(model, pictures).digits == labels).mean())
    assert accuracy >= 0.97, accuracy


@pytest.mark.slow
@pytest.mark.parametrize(
    ("changes", "name"),
    [
        (
            {
                "stroke": -2,
                "digit_size": 200.0,
                "height": 280,
                "width": 280,
                "centre_y": 140.0,
                "centre_x": 140.0,
            },
            "thin",
        ),
        (
            {
                "stroke": 4,
                "digit_size": 160.0,
                "height": 260,
                "width": 240,
                "centre_y": 130.0,
                "centre_x": 120.0,
            },
            "thick",
        ),
        # The digit's 20x20 box starts 1 px left of the canvas: its ink touches the edge.
        (
            {
                "digit_size": 90.0,
                "height": 120,
                "width": 160,
                "centre_y": 60.0,
                "centre_x": 44.0,
                "angle": 0.0,
            },
            "left edge",
        ),
        (
            {
                "digit_size": 90.0,
                "height": 90,
                "width": 90,
                "centre_y": 45.0,
                "centre_x": 45.0,
                "angle": 0.0,
            },
            "tight crop",
        ),
    ],
)
def test_hard_cases(model, real_data, changes: dict[str, object], name: str) -> None:
    pictures, labels = _pictures(real_data, 60, seed=7, **changes)
    accuracy = float((predict_digits(model, pictures).digits == labels).mean())
    assert accuracy >= 0.93, (name, accuracy)


def test_cli_predicts_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paper = np.full((200, 150, 3), (230, 220, 200), np.uint8)
    paper[40:170, 70:80] = 30
    one = tmp_path / "one.jpg"
    one.write_bytes(tf.io.encode_jpeg(paper, quality=90).numpy())
    blank = tmp_path / "blank.png"
    blank.write_bytes(tf.io.encode_png(np.full((50, 50, 1), 200, np.uint8)).numpy())
    assert main(["predict", str(one)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{one}: 1 (p=")
    assert "runner-up" in line
    show = tmp_path / "seen.png"
    assert main(["predict", str(one), str(one), "--json", "--show", str(show)]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["digit"] for r in records] == [1, 1]
    assert records[0]["file"] == str(one)
    assert 0.5 < records[0]["probability"] <= 1.0
    assert records[0]["runner_up"] != 1
    strip = tf.io.decode_png(show.read_bytes()).numpy()
    assert strip.shape[2] == 1
    assert np.abs(strip[8:120:4, 8:120:4, 0] / 255 - prepare_image(one)).max() < 0.02
    assert main(["predict", str(blank)]) == 1
    assert f"lenet-mnist: error: {blank}: no ink found" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "missing.png")]) == 1
    assert "image file not found" in capsys.readouterr().err
    assert main(["predict"]) == 1
    assert "give either image files or --index, got neither" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_index_mode_still_works(
    real_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", "--index", "0", "1", "--data-dir", str(real_data_dir), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["index"], r["label"], r["digit"]) for r in records] == [(0, 7, 7), (1, 2, 2)]
    assert main(["predict", "a.png", "--index", "0"]) == 1
    assert "got both" in capsys.readouterr().err
