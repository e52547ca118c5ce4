"""The ``lenet-mnist`` command's arguments: one small function per command.

Every choice offered (datasets, recipes, networks, strategies, export formats) is read
from the library's registries, none of which imports TensorFlow, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
from typing import Any, Final

from lenet_mnist._version import __version__
from lenet_mnist.data.specs import DATASETS
from lenet_mnist.export import EXPORT_FORMATS
from lenet_mnist.models.registry import VARIANTS
from lenet_mnist.recipes import RECIPES
from lenet_mnist.training.distribute import STRATEGIES

__all__ = ["PROG", "build_parser"]

#: The command's name, in usage lines and error messages.
PROG: Final = "lenet-mnist"


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="directory holding the four MNIST IDX files (.gz or not); given, the only place "
        "looked (an error if it lacks them); default: $LENET_MNIST_DATA, else the user "
        "cache, else download",
    )
    parser.add_argument(
        "--no-download",
        action="store_true",
        help="fail instead of downloading when the data is not found locally",
    )


def _add_dataset(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        choices=sorted(DATASETS),
        default="mnist",
        help="mnist (handwritten digits, default) or fashion (Fashion-MNIST; found in "
        "$LENET_MNIST_FASHION_DATA, /usr/share/datasets/fashion-mnist or the cache)",
    )


def _train_parser(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="train the tutorial's model and report its test accuracy",
        description="Train a network on MNIST (the tutorial's recipe by default: 10 epochs, "
        "batch 32, Adam 0.001), validating on the test split every epoch, then save it.",
    )
    _add_data_dir(train)
    train.add_argument(
        "--recipe",
        default="tutorial",
        choices=sorted(RECIPES),
        help="training recipe (default tutorial): "
        + "; ".join(f"{name}: {recipe.description}" for name, recipe in RECIPES.items()).replace(
            "%", "%%"
        )
        + ". It sets the defaults below",
    )
    train.add_argument("--fast", action="store_true", help="same as --recipe fast")
    train.add_argument(
        "--target-accuracy",
        type=float,
        default=None,
        metavar="ACC",
        help="stop as soon as the test accuracy reaches ACC, e.g. 0.99",
    )
    train.add_argument(
        "--variant",
        default=None,
        choices=sorted(VARIANTS),
        help="network to build (default: the recipe's; tutorial: seed): "
        + "; ".join(f"{name}: {text}" for name, text in VARIANTS.items()),
    )
    train.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="passes over the training set (default: the recipe's; tutorial: 10)",
    )
    train.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="images per step, at most 8192 (memory) (default: the recipe's; tutorial: 32)",
    )
    train.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="Adam's (peak) step size (default: the recipe's; tutorial: 0.001)",
    )
    train.add_argument("--seed", type=int, default=None, help="random seed for a repeatable run")
    train.add_argument(
        "--output",
        default="lenet.keras",
        help="where to save the model, a .keras file whose directory exists (default lenet.keras)",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument(
        "--distribute",
        choices=sorted(STRATEGIES),
        default=None,
        help="train data-parallel: mirrored = tf.distribute.MirroredStrategy over every "
        "local GPU (else the CPU); multi_worker = MultiWorkerMirroredStrategy over the "
        "cluster in TF_CONFIG (run the same command on every worker; only the chief "
        "writes files). --batch-size is then the global batch",
    )
    _add_dataset(train)
    train.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help="save a checkpoint there after every epoch and, if DIR already holds one of "
        "this run, resume after its last completed epoch",
    )
    train.add_argument(
        "--deterministic",
        action="store_true",
        help="bit-identical results for the same --seed on the same machine and versions "
        "(needs --seed; slower on GPU)",
    )
    train.add_argument(
        "--plot-history",
        metavar="PATH",
        help="also draw loss and accuracy per epoch into this image (.png, .jpg, .jpeg, .pdf, "
        ".svg; needs the plot extra). The history is always saved as JSON next to the model",
    )


def _evaluate_parser(commands: Any) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="report a saved model's accuracy on the test split",
        description="Load a .keras model and report its accuracy and loss on the 10,000 test images.",
    )
    evaluate.add_argument("model", metavar="MODEL", help="a .keras model file")
    _add_dataset(evaluate)
    evaluate.add_argument(
        "--report",
        metavar="DIR",
        help="write report.json, confusion_matrix.png, misclassified.png and report.md "
        "into DIR (needs the plot extra)",
    )
    _add_data_dir(evaluate)


def _predict_parser(commands: Any) -> None:
    predict = commands.add_parser(
        "predict",
        help="recognize handwritten digits in image files (or MNIST test images)",
        description="Print the predicted digit of each image file (PNG, JPEG, BMP, GIF: a photo "
        "or scan of one digit, dark on light or light on dark), with its probability and the "
        "runner-up. Each picture is preprocessed into MNIST's form first (see --show). With "
        "--index, MNIST test images instead.",
    )
    predict.add_argument(
        "files", nargs="*", metavar="FILE", help="image files, one handwritten digit each"
    )
    predict.add_argument(
        "--model",
        metavar="MODEL",
        help="a .keras model file (default: the pretrained model shipped with lenet-mnist)",
    )
    predict.add_argument(
        "--index",
        type=int,
        nargs="+",
        metavar="I",
        help="MNIST test image indices (0..9999) instead of files",
    )
    predict.add_argument(
        "--json", action="store_true", help="print one JSON array instead of lines of text"
    )
    predict.add_argument(
        "--show",
        metavar="PICTURE",
        help="also write the 28x28 images as the model sees them, side by side, each with "
        "its predicted digit and probability, to this .png, .jpg or .jpeg file",
    )
    _add_data_dir(predict)


def _show_parser(commands: Any) -> None:
    show = commands.add_parser(
        "show",
        help="draw the first images of a split with their labels",
        description="Draw the tutorial's picture: the first N images of a split in rows of "
        "ten, dark ink on white, each image's label under it (needs the plot extra).",
    )
    show.add_argument(
        "--split", choices=("train", "test"), default="train", help="which split (default train)"
    )
    show.add_argument("--n", type=int, default=20, help="how many images, 1 to 200 (default 20)")
    show.add_argument(
        "--output",
        default="samples.png",
        help="image file to write: .png, .jpg, .jpeg, .pdf or .svg (default samples.png); "
        "its directory must exist",
    )
    _add_dataset(show)
    _add_data_dir(show)


def _export_parser(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="export a model for serving: SavedModel, LiteRT (.tflite) or ONNX",
        description="Convert a .keras model to a SavedModel directory, a LiteRT .tflite file "
        "(optionally int8-quantized, calibrated on training images) or an .onnx file. "
        "Every export takes float32 images in [0, 1] named 'image' and returns 'logits' "
        "and 'probabilities'.",
    )
    export.add_argument("model", metavar="MODEL", help="a .keras model file")
    export.add_argument(
        "--format",
        required=True,
        choices=sorted(EXPORT_FORMATS),
        help="saved_model (directory), tflite (LiteRT) or onnx (needs the onnx extra)",
    )
    export.add_argument("--output", required=True, metavar="PATH", help="where to write it")
    export.add_argument(
        "--int8",
        action="store_true",
        help="tflite only: quantize to int8, calibrated on training images",
    )
    export.add_argument(
        "--calibration-images",
        type=int,
        default=1000,
        metavar="N",
        help="with --int8: how many training images, drawn with a fixed seed (default 1000)",
    )
    _add_dataset(export)
    _add_data_dir(export)


def _serve_parser(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve a model over HTTP: a drawing page and TensorFlow Serving's REST API",
        description="Serve a model over HTTP until Ctrl+C: a page to draw a digit on (GET /), "
        "TensorFlow Serving's REST predict (POST /v1/models/lenet:predict), picture uploads "
        "(POST /v1/images:predict) and Prometheus metrics (GET /metrics). Concurrent "
        "requests are batched into one model call. Needs the serve extra.",
    )
    serve.add_argument(
        "--model",
        metavar="MODEL",
        help="a .keras model file (default: the pretrained model shipped with lenet-mnist)",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: the network)",
    )
    serve.add_argument(
        "--port", type=int, default=8500, help="TCP port (default 8500; 0: any free port)"
    )
    serve.add_argument(
        "--max-batch",
        type=int,
        default=64,
        metavar="N",
        help="most images per model call when requests are batched (1..4096, default 64)",
    )


def _info_parser(commands: Any) -> None:
    commands.add_parser(
        "info",
        help="show versions, devices and where the data would be read from",
        description="Show the versions of lenet-mnist and its dependencies, the devices "
        "TensorFlow sees, and every place MNIST would be read from.",
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``lenet-mnist`` command (also used by the docs)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train, evaluate and use the LeNet-style CNN for MNIST handwritten digits.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (
        _train_parser,
        _evaluate_parser,
        _predict_parser,
        _show_parser,
        _export_parser,
        _serve_parser,
        _info_parser,
    ):
        add(commands)
    return parser
