"""Every argument of a ``lenet-mnist`` command, checked before any work.

No training, loading or downloading starts with an argument that would fail later. The
checks are the library's own (suffixes, places to write, bounds, the data
directory); this module only calls them up front and names the command-line flag in
their messages. A missing parent directory is refused, not created.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from lenet_mnist._util.checks import check_positive_int, check_seed
from lenet_mnist._util.paths import check_output_path
from lenet_mnist.models.file_path import check_existing_file

__all__ = ["check_arguments"]

_T = TypeVar("_T")


def _flag(flag: str, name: str, check: Callable[..., _T], *args: Any) -> _T:
    """Run a library check, naming the command-line ``flag`` instead of the parameter."""
    try:
        return check(*args)
    except (TypeError, ValueError) as error:
        message = str(error)
        if message.startswith(name):
            message = flag + message[len(name) :]
        raise type(error)(message) from None


def _data_dir(args: argparse.Namespace) -> None:
    if args.data_dir is not None:
        from lenet_mnist.data.locate import check_data_dir

        check_data_dir(args.data_dir, dataset=getattr(args, "dataset", "mnist"))


def _figure(path: str, flag: str) -> None:
    from lenet_mnist.report.canvas import check_figure_path, require_matplotlib

    check_figure_path(path)
    check_output_path(path, flag)
    require_matplotlib()


def _train(args: argparse.Namespace) -> None:
    from lenet_mnist.models.file_path import check_model_path
    from lenet_mnist.recipes import get_recipe
    from lenet_mnist.training.limits import check_batch_size, check_target_accuracy

    get_recipe("fast" if args.fast else args.recipe, learning_rate=args.learning_rate)
    if args.epochs is not None:
        _flag("--epochs", "epochs", check_positive_int, "epochs", args.epochs)
    if args.batch_size is not None:
        _flag("--batch-size", "batch_size", check_batch_size, args.batch_size)
    _flag("--seed", "seed", check_seed, args.seed)
    if args.deterministic and args.seed is None:
        raise ValueError(
            "--deterministic needs --seed S (the same seed then gives the same model), "
            "got no --seed"
        )
    _flag("--target-accuracy", "target_accuracy", check_target_accuracy, args.target_accuracy)
    check_model_path(args.output)
    check_output_path(args.output, "--output")
    if args.plot_history is not None:
        _figure(args.plot_history, "--plot-history")
    if args.checkpoint_dir is not None:
        check_output_path(args.checkpoint_dir, "--checkpoint-dir", directory=True)
    if args.distribute == "multi_worker":
        # The cluster's description comes first: every worker reads it before any data.
        from lenet_mnist.training.multiworker import read_tf_config

        read_tf_config()
    _data_dir(args)


def _evaluate(args: argparse.Namespace) -> None:
    check_existing_file(args.model, "model file")
    if args.report is not None:
        from lenet_mnist.report.canvas import require_matplotlib

        check_output_path(args.report, "--report", directory=True)
        require_matplotlib()
    _data_dir(args)


def _predict(args: argparse.Namespace) -> None:
    from lenet_mnist.data.specs import get_spec

    if bool(args.files) == (args.index is not None):
        raise ValueError(
            "give either image files or --index, got " + ("both" if args.files else "neither")
        )
    for name in args.files:
        check_existing_file(name, "image file")
    if args.model is not None:
        check_existing_file(args.model, "model file")
    if args.index is not None:
        count = get_spec("mnist").files["test_labels"].shape[0]
        bad = [i for i in args.index if not 0 <= i < count]
        if bad:
            raise ValueError(f"--index: test image indices must be in 0..{count - 1}, got {bad}")
    if args.show is not None:
        from lenet_mnist.images.strip import check_strip_path

        check_strip_path(args.show)
        check_output_path(args.show, "--show")
    _data_dir(args)


def _show(args: argparse.Namespace) -> None:
    from lenet_mnist.report.figures import check_sample_count

    _flag("--n", "n", check_sample_count, args.n)
    _figure(args.output, "--output")
    _data_dir(args)


def _export(args: argparse.Namespace) -> None:
    from lenet_mnist.data.specs import get_spec
    from lenet_mnist.export import check_export_path

    check_existing_file(args.model, "model file")
    if args.int8 and args.format != "tflite":
        raise ValueError(f"--int8 is only for --format tflite, got --format {args.format}")
    check_export_path(args.output, args.format)
    check_output_path(args.output, "--output", directory=args.format == "saved_model")
    if args.int8:
        available = get_spec(args.dataset).files["train_labels"].shape[0]
        count = _flag(
            "--calibration-images",
            "calibration_images",
            check_positive_int,
            "calibration_images",
            args.calibration_images,
        )
        if count > available:
            raise ValueError(
                f"--calibration-images must be at most the {available} training images, got {count}"
            )
        _data_dir(args)


def _info(args: argparse.Namespace) -> None:
    del args  # no arguments


def _serve(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in 0..65535, got {args.port}")
    if not 1 <= args.max_batch <= 4096:
        raise ValueError(f"--max-batch must be in 1..4096, got {args.max_batch}")
    if not args.host or any(c.isspace() for c in args.host):
        raise ValueError(f"--host must be a host name or IP address, got {args.host!r}")
    if args.model is not None:
        check_existing_file(args.model, "model file")
    import lenet_mnist.serve as serving

    serving.require_serve_extra()  # the extra, before loading anything


_CHECKS: Mapping[str, Callable[[argparse.Namespace], None]] = {
    "train": _train,
    "evaluate": _evaluate,
    "predict": _predict,
    "show": _show,
    "export": _export,
    "info": _info,
    "serve": _serve,
}


def check_arguments(args: argparse.Namespace) -> None:
    """Check every argument of the parsed command ``args`` before it does any work.

    Raises:
        ValueError, TypeError, OSError, ImportError, LenetMnistError: The first bad
            argument, with a message naming its flag (or path) and what was received.
    """
    _CHECKS[args.command](args)
