"""What each ``lenet-mnist`` command does: one small function each, calling the library.

Each takes the parsed arguments and the stream to print results to, and returns the
exit status. They import the library's modules on first use, so ``--help`` and usage
errors never start TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import TextIO

from lenet_mnist._version import __version__

__all__ = ["COMMANDS", "quiet_tensorflow"]


def quiet_tensorflow() -> None:
    """Hide TensorFlow's start-up log lines for this command, unless the user asked for logs."""
    # TensorFlow's C++ start-up chatter (oneDNN notes, CUDA probing on CPU-only machines)
    # is noise on a command line whose errors are one line. A user who wants it sets
    # TF_CPP_MIN_LOG_LEVEL below 3 themselves, and then nothing is hidden.
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3") != "3" or "tensorflow" in sys.modules:
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


def _load_data(args: argparse.Namespace, *, normalize: bool = True):  # type: ignore[no-untyped-def]  # noqa: ANN202
    from lenet_mnist.data.mnist import load_mnist
    from lenet_mnist.data.specs import DatasetName
    from lenet_mnist.errors import DownloadError

    dataset: DatasetName = getattr(args, "dataset", "mnist")
    try:
        return load_mnist(
            args.data_dir, download=not args.no_download, normalize=normalize, dataset=dataset
        )
    except DownloadError as error:
        variable = "LENET_MNIST_FASHION_DATA" if dataset == "fashion" else "LENET_MNIST_DATA"
        raise DownloadError(
            f"could not download the {dataset} data (offline?): set {variable} or --data-dir "
            "to a directory holding its four IDX files"
        ) from error


def _cmd_train(args: argparse.Namespace, out: TextIO) -> int:
    from lenet_mnist.data.specs import class_names
    from lenet_mnist.evaluation import evaluate_model
    from lenet_mnist.models.saving import save_model
    from lenet_mnist.recipes import build_recipe_model, get_recipe
    from lenet_mnist.training.distribute import make_strategy, strategy_scope
    from lenet_mnist.training.history import history_path_for, save_history
    from lenet_mnist.training.multiworker import chief_write_path, is_chief
    from lenet_mnist.training.train import train

    recipe = get_recipe(
        "fast" if args.fast else args.recipe,
        variant=args.variant,
        learning_rate=args.learning_rate,
    )
    # First: TF_CONFIG is checked before any work, and a multi-worker strategy must
    # exist before TensorFlow runs anything.
    strategy = make_strategy(args.distribute) if args.distribute else None
    data = _load_data(args)
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
        print(f"trained on {strategy.num_replicas_in_sync} replicas ({args.distribute})", file=out)
    # Every worker saves (saving may read distributed variables); only the chief keeps it.
    with chief_write_path(args.output, strategy) as target:
        path = save_model(model, target)
        history_file = save_history(history, history_path_for(path))
    chief = is_chief(strategy)
    seconds = time.perf_counter() - started
    print(f"test accuracy: {report.accuracy:.4f} (loss {report.loss:.4f})", file=out)
    val_accuracy = history.history.get("val_accuracy", [])
    if val_accuracy:
        # The tutorial's recipe ends on its last epoch, which is often not its best one.
        best = max(range(len(val_accuracy)), key=val_accuracy.__getitem__)
        epochs = f"{len(val_accuracy)} epoch" + ("" if len(val_accuracy) == 1 else "s")
        print(
            f"{epochs} in {seconds:.1f} s; best test accuracy "
            f"{val_accuracy[best]:.4f} after epoch {best + 1}",
            file=out,
        )
    if not chief:
        print("not the chief worker: the chief saves the model, history and plots", file=out)
        return 0
    print(f"model saved to {path}, training history to {history_file}", file=out)
    if args.plot_history is not None:
        from lenet_mnist.report.figures import plot_history

        plot_history(history, args.plot_history)
        print(f"training curves drawn in {args.plot_history}", file=out)
    return 0


def _cmd_evaluate(args: argparse.Namespace, out: TextIO) -> int:
    from lenet_mnist.data.specs import class_names
    from lenet_mnist.evaluation import evaluate_model
    from lenet_mnist.models.saving import load_model

    model = load_model(args.model)
    data = _load_data(args)
    report = evaluate_model(model, data, class_names=class_names(args.dataset))
    print(
        f"test accuracy: {report.accuracy:.4f} ({report.num_images - len(report.misclassified)}"
        f"/{report.num_images}), loss {report.loss:.4f}",
        file=out,
    )
    if args.report is not None:
        from lenet_mnist.report.written import write_report

        files = write_report(report, data, args.report, title=f"Evaluation of {args.model}")
        names = report.class_names
        pairs = ", ".join(
            f"{names[t]} taken for {names[p]} ({c}x)" for t, p, c in report.most_confused(3)
        )
        print(f"most confused: {pairs or 'none'}", file=out)
        print(f"report written to {files['report.md'].parent}: {', '.join(files)}", file=out)
    return 0


def _cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    from lenet_mnist.data.specs import class_names
    from lenet_mnist.report.figures import plot_samples

    # Raw bytes: a quarter of the memory of float32, and plot_samples takes uint8.
    data = _load_data(args, normalize=False)
    images, labels = (
        (data.train_images, data.train_labels)
        if args.split == "train"
        else (data.test_images, data.test_labels)
    )
    shown = min(args.n, len(images))
    split = "training" if args.split == "train" else "test"
    name = "Fashion-MNIST" if args.dataset == "fashion" else "MNIST"
    plot_samples(
        images,
        labels,
        n=args.n,
        path=args.output,
        class_names=class_names(args.dataset),
        title=f"The first {shown} {name} {split} images and their labels",
    )
    print(f"the first {shown} {args.split} images, labelled, drawn in {args.output}", file=out)
    return 0


def _cmd_predict(args: argparse.Namespace, out: TextIO) -> int:
    import json

    from lenet_mnist.images.batch import images_to_batch
    from lenet_mnist.images.strip import save_image_strip
    from lenet_mnist.inference import predict_digits

    records: list[dict[str, object]] = []
    # The pictures first: a file that is not one fails before the model is loaded.
    if args.files:
        images = images_to_batch(list(args.files))
        records = [{"file": name} for name in args.files]
    else:
        data = _load_data(args)
        images = images_to_batch(data.test_images[args.index])
        records = [{"index": i, "label": int(data.test_labels[i])} for i in args.index]
    if args.model is None:
        from lenet_mnist.models.pretrained import pretrained

        model = pretrained()
    else:
        from lenet_mnist.models.saving import load_model

        model = load_model(args.model)
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
        # Under each image: the predicted digit and its probability, e.g. "7 99%".
        captions = [f"{r['digit']} {round(100 * float(r['probability']))}%" for r in records]  # type: ignore[arg-type]
        path = save_image_strip(images, args.show, captions=captions)
        if not args.json:
            print(f"the images as the model sees them: {path}", file=out)
    return 0


def _cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    from lenet_mnist.export import calibration_sample, export_model
    from lenet_mnist.models.saving import load_model

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


def _cmd_info(args: argparse.Namespace, out: TextIO) -> int:
    import platform

    import keras
    import numpy as np
    import tensorflow as tf

    from lenet_mnist.data.locate import data_locations, find_all
    from lenet_mnist.data.specs import DATASETS

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
            state = "found" if find_all(directory, spec) is not None else "not found"
            print(f"  {source}: {directory} ({state})", file=out)
    return 0


def _cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    import lenet_mnist.serve as serving

    serving.serve(args.model, host=args.host, port=args.port, max_batch=args.max_batch, out=out)
    return 0


#: The function of each command, by name.
COMMANDS: Mapping[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "predict": _cmd_predict,
    "show": _cmd_show,
    "export": _cmd_export,
    "info": _cmd_info,
    "serve": _cmd_serve,
}
