"""The ``lenet-mnist`` command: parses arguments and calls the library, nothing more.

Every user error (a missing file, bad data, a bad argument value) ends with one line
``lenet-mnist: error: ...`` on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from lenet_mnist._version import __version__

__all__ = ["build_parser", "main"]

_PROG = "lenet-mnist"


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="directory holding the four MNIST IDX files (.gz or not); default: "
        "$LENET_MNIST_DATA, else the user cache, else download",
    )
    parser.add_argument(
        "--no-download",
        action="store_true",
        help="fail instead of downloading when the data is not found locally",
    )


def _add_dataset(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        choices=("mnist", "fashion"),
        default="mnist",
        help="mnist (handwritten digits, default) or fashion (Fashion-MNIST; found in "
        "$LENET_MNIST_FASHION_DATA, /usr/share/datasets/fashion-mnist or the cache)",
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``lenet-mnist`` command (also used by the docs)."""
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Train, evaluate and use the LeNet-style CNN for MNIST handwritten digits.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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
        metavar="NAME",
        help="training recipe: tutorial (default), fast (99%% in seconds: bfloat16, "
        "one-cycle Adam, tf.data) or best (most accurate); sets the defaults below",
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
        help="network to build: seed, lenet5, fast, ... (default: the recipe's; tutorial: seed)",
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
        help="images per step (default: the recipe's; tutorial: 32)",
    )
    train.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="Adam's (peak) step size (default: the recipe's; tutorial: 0.001)",
    )
    train.add_argument("--seed", type=int, default=None, help="random seed for a repeatable run")
    train.add_argument(
        "--output", default="lenet.keras", help="where to save the model (default lenet.keras)"
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument(
        "--distribute",
        choices=("mirrored",),
        default=None,
        help="train data-parallel: mirrored = tf.distribute.MirroredStrategy over every "
        "local GPU (else the CPU); --batch-size is then the global batch",
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
        help="also draw loss and accuracy per epoch into this image (.png, .pdf, .svg; "
        "needs the plot extra). The history is always saved as JSON next to the model",
    )

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
        metavar="PNG",
        help="also write the 28x28 images as the model sees them, side by side, to this PNG",
    )
    _add_data_dir(predict)

    show = commands.add_parser(
        "show",
        help="draw the first images of a split with their labels",
        description="Draw the tutorial's picture: the first N images of a split in rows of "
        "ten, dark ink on white, each image's label under it (needs the plot extra).",
    )
    show.add_argument(
        "--split", choices=("train", "test"), default="train", help="which split (default train)"
    )
    show.add_argument("--n", type=int, default=20, help="how many images (default 20)")
    show.add_argument(
        "--output", default="samples.png", help="image file to write (default samples.png)"
    )
    _add_dataset(show)
    _add_data_dir(show)

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
        choices=("saved_model", "tflite", "onnx"),
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

    # serve: its own block; the command is _cmd_serve, the work lenet_mnist.serve.serve.
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

    commands.add_parser(
        "info",
        help="show versions, devices and where the data would be read from",
        description="Show the versions of lenet-mnist and its dependencies, the devices "
        "TensorFlow sees, and every place MNIST would be read from.",
    )
    return parser


def _quiet_tensorflow() -> None:
    # TensorFlow's C++ start-up chatter (oneDNN notes, CUDA probing on CPU-only machines)
    # is noise on a command line whose errors are one line. A user who wants it sets
    # TF_CPP_MIN_LOG_LEVEL themselves, and then nothing is hidden.
    if "TF_CPP_MIN_LOG_LEVEL" in os.environ or "tensorflow" in sys.modules:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    # TensorFlow 2.20+ logs through absl before absl's logging is initialised, which
    # ignores TF_CPP_MIN_LOG_LEVEL; only silencing file descriptor 2 during the import
    # and the device probe hides it. Python errors still surface: they are raised after
    # stderr is restored.
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _load_data(args: argparse.Namespace):  # type: ignore[no-untyped-def]  # noqa: ANN202
    from lenet_mnist.data import load_mnist

    return load_mnist(
        args.data_dir, download=not args.no_download, dataset=getattr(args, "dataset", "mnist")
    )


def _cmd_train(args: argparse.Namespace, out: TextIO) -> int:
    from lenet_mnist.data import class_names
    from lenet_mnist.distribute import make_strategy, strategy_scope
    from lenet_mnist.evaluation import evaluate_model
    from lenet_mnist.history import history_path_for, save_history
    from lenet_mnist.recipes import build_recipe_model, get_recipe
    from lenet_mnist.serialization import save_model
    from lenet_mnist.training import train

    if args.plot_history is not None:
        from lenet_mnist.plotting import require_matplotlib

        require_matplotlib()  # fail before training, not after
    recipe = get_recipe(
        "fast" if args.fast else args.recipe,
        variant=args.variant,
        learning_rate=args.learning_rate,
    )
    data = _load_data(args)
    strategy = make_strategy(args.distribute) if args.distribute else None
    with strategy_scope(strategy):
        model = build_recipe_model(recipe, seed=args.seed)
    started = time.perf_counter()
    history = train(
        model,
        data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        verbose=0 if args.quiet else "auto",
        checkpoint_dir=args.checkpoint_dir,
        deterministic=args.deterministic,
        strategy=strategy,
        recipe=recipe,
        target_accuracy=args.target_accuracy,
    )
    report = evaluate_model(model, data, class_names=class_names(args.dataset))
    if strategy is not None:
        print(f"trained on {strategy.num_replicas_in_sync} replicas (mirrored)", file=out)
    path = save_model(model, args.output)
    history_file = save_history(history, history_path_for(path))
    seconds = time.perf_counter() - started
    print(f"test accuracy: {report.accuracy:.4f} (loss {report.loss:.4f})", file=out)
    val_accuracy = history.history.get("val_accuracy", [])
    if val_accuracy:
        # The tutorial's recipe ends on its last epoch, which is often not its best one.
        best = max(range(len(val_accuracy)), key=val_accuracy.__getitem__)
        print(
            f"{len(val_accuracy)} epochs in {seconds:.1f} s; best test accuracy "
            f"{val_accuracy[best]:.4f} after epoch {best + 1}",
            file=out,
        )
    print(f"model saved to {path}, training history to {history_file}", file=out)
    if args.plot_history is not None:
        from lenet_mnist.plotting import plot_history

        plot_history(history, args.plot_history)
        print(f"training curves drawn in {args.plot_history}", file=out)
    return 0


def _cmd_evaluate(args: argparse.Namespace, out: TextIO) -> int:
    from lenet_mnist.data import class_names
    from lenet_mnist.evaluation import evaluate_model
    from lenet_mnist.serialization import load_model

    if args.report is not None:
        from lenet_mnist.plotting import require_matplotlib

        require_matplotlib()  # fail before evaluating, not after
    model = load_model(args.model)
    data = _load_data(args)
    report = evaluate_model(model, data, class_names=class_names(args.dataset))
    print(
        f"test accuracy: {report.accuracy:.4f} ({report.num_images - len(report.misclassified)}"
        f"/{report.num_images}), loss {report.loss:.4f}",
        file=out,
    )
    if args.report is not None:
        from lenet_mnist.plotting import write_report

        files = write_report(report, data, args.report, title=f"Evaluation of {args.model}")
        names = report.class_names
        pairs = ", ".join(
            f"{names[t]} taken for {names[p]} ({c}x)" for t, p, c in report.most_confused(3)
        )
        print(f"most confused: {pairs or 'none'}", file=out)
        print(f"report written to {files['report.md'].parent}: {', '.join(files)}", file=out)
    return 0


def _cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    from lenet_mnist.data import class_names, load_mnist
    from lenet_mnist.plotting import plot_samples, require_matplotlib

    if args.n < 1:
        raise ValueError(f"--n must be at least 1, got {args.n}")
    require_matplotlib()
    # Raw bytes: a quarter of the memory of float32, and plot_samples takes uint8.
    data = load_mnist(
        args.data_dir, download=not args.no_download, normalize=False, dataset=args.dataset
    )
    images, labels = (
        (data.train_images, data.train_labels)
        if args.split == "train"
        else (data.test_images, data.test_labels)
    )
    plot_samples(images, labels, n=args.n, path=args.output, class_names=class_names(args.dataset))
    shown = min(args.n, len(images))
    print(f"the first {shown} {args.split} images, labelled, drawn in {args.output}", file=out)
    return 0


def _cmd_predict(args: argparse.Namespace, out: TextIO) -> int:
    import json

    from lenet_mnist.inference import images_to_batch, predict_digits
    from lenet_mnist.preprocessing import save_image_strip

    if bool(args.files) == (args.index is not None):
        raise ValueError(
            "give either image files or --index, got " + ("both" if args.files else "neither")
        )
    if args.model is None:
        from lenet_mnist.pretrained_model import pretrained

        model = pretrained()
    else:
        from lenet_mnist.serialization import load_model

        model = load_model(args.model)
    records: list[dict[str, object]] = []
    if args.files:
        images = images_to_batch(list(args.files))
        records = [{"file": name} for name in args.files]
    else:
        data = _load_data(args)
        count = len(data.test_images)
        bad = [i for i in args.index if not 0 <= i < count]
        if bad:
            raise ValueError(f"test image indices must be in 0..{count - 1}, got {bad}")
        images = images_to_batch(data.test_images[args.index])
        records = [{"index": i, "label": int(data.test_labels[i])} for i in args.index]
    result = predict_digits(model, images)
    for record, probs in zip(records, result.probabilities, strict=True):
        first, second = (int(k) for k in probs.argsort()[::-1][:2])
        record.update(
            digit=first,
            probability=round(float(probs[first]), 6),
            runner_up=second,
            runner_up_probability=round(float(probs[second]), 6),
        )
    if args.json:
        print(json.dumps(records, indent=2), file=out)
    else:
        for record in records:
            where = record.get("file", f"test[{record.get('index')}]")
            label = f", label {record['label']}" if "label" in record else ""
            print(
                f"{where}: {record['digit']} (p={record['probability']:.4f}), runner-up "
                f"{record['runner_up']} (p={record['runner_up_probability']:.4f}){label}",
                file=out,
            )
    if args.show is not None:
        path = save_image_strip(images, args.show)
        if not args.json:
            print(f"the images as the model sees them: {path}", file=out)
    return 0


def _cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    from lenet_mnist.export import calibration_sample, export_model
    from lenet_mnist.serialization import load_model

    model = load_model(args.model)
    calibration = (
        calibration_sample(_load_data(args).train_images, args.calibration_images)
        if args.int8 and args.format == "tflite"
        else None
    )
    path = export_model(
        model, args.output, args.format, int8=args.int8, calibration_images=calibration
    )
    kind = f"{args.format} (int8)" if args.int8 else args.format
    print(f"{kind} model written to {path}", file=out)
    return 0


def _cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    from pathlib import Path

    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in 0..65535, got {args.port}")
    if not 1 <= args.max_batch <= 4096:
        raise ValueError(f"--max-batch must be in 1..4096, got {args.max_batch}")
    if not args.host or any(c.isspace() for c in args.host):
        raise ValueError(f"--host must be a host name or IP address, got {args.host!r}")
    if args.model is not None and not Path(args.model).is_file():
        raise FileNotFoundError(f"model file not found: {args.model}")
    import lenet_mnist.serve as serving

    serving.require_serve_extra()  # before loading anything
    serving.serve(args.model, host=args.host, port=args.port, max_batch=args.max_batch, out=out)
    return 0


def _cmd_info(args: argparse.Namespace, out: TextIO) -> int:
    import platform

    import keras
    import numpy as np
    import tensorflow as tf

    from lenet_mnist.data import DATASETS, _find_all, data_locations

    print(f"lenet-mnist {__version__}", file=out)
    print(f"python {platform.python_version()} ({sys.executable})", file=out)
    print(
        f"tensorflow {tf.__version__}, keras {keras.__version__}, numpy {np.__version__}", file=out
    )
    devices = tf.config.list_physical_devices()
    print("devices: " + ", ".join(f"{d.name} ({d.device_type})" for d in devices), file=out)
    for name, spec in DATASETS.items():
        print(f"{name} data, looked for in this order:", file=out)
        for source, directory in data_locations(dataset=name):
            state = "found" if _find_all(directory, spec) is not None else "not found"
            print(f"  {source}: {directory} ({state})", file=out)
    return 0


_COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "predict": _cmd_predict,
    "show": _cmd_show,
    "export": _cmd_export,
    "info": _cmd_info,
    "serve": _cmd_serve,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lenet-mnist`` command with ``argv`` (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 on a user error (reported in one line on
        stderr), 2 on a usage error (from argparse).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_tensorflow()
    from lenet_mnist.errors import LenetMnistError

    try:
        return _COMMANDS[args.command](args, sys.stdout)
    except (LenetMnistError, ValueError, TypeError, OSError, ImportError) as error:
        message = str(error) or type(error).__name__
        print(f"{_PROG}: error: {message.splitlines()[0] if message else message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{_PROG}: interrupted", file=sys.stderr)
        return 130
