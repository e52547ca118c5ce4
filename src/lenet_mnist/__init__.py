"""lenet-mnist: the classic LeNet-style CNN for MNIST handwritten digits, as a library.

The tutorial's steps, one public function each::

    import lenet_mnist as lm

    lm.configure_gpu()                                   # 1. GPU setup (no-op on CPU)
    data = lm.load_mnist()                               # 2-5. load, normalize, channel axis
    model = lm.compile_model(lm.build_lenet("seed"))     # 6-7. the CNN, Adam + cross-entropy
    history = lm.train(model, data)                      # 8. 10 epochs, validated on test
    result = lm.predict_digits(model, data.test_images)  # 9. digits and probabilities

Names are imported on first use, so ``import lenet_mnist`` (and the CLI's ``--help``)
does not start TensorFlow until a function that needs it is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lenet_mnist._version import __version__

if TYPE_CHECKING:
    from lenet_mnist.batch_norm import FusedBatchNorm
    from lenet_mnist.data import MnistData, cache_dir, class_names, download_mnist, load_mnist
    from lenet_mnist.distribute import make_strategy
    from lenet_mnist.errors import (
        ChecksumError,
        DataNotFoundError,
        DownloadError,
        GPUAlreadyInitializedError,
        IdxFormatError,
        ImageError,
        LenetMnistError,
        ModelFileError,
        UnsafeModelError,
    )
    from lenet_mnist.evaluation import EvaluationReport, evaluate_model
    from lenet_mnist.export import export_model
    from lenet_mnist.gpu import configure_gpu
    from lenet_mnist.history import load_history, save_history
    from lenet_mnist.idx import decode_idx, encode_idx, read_idx
    from lenet_mnist.inference import DigitPredictions, predict_digits
    from lenet_mnist.lenet import LeNet
    from lenet_mnist.models import build_lenet
    from lenet_mnist.plotting import (
        plot_confusion_matrix,
        plot_history,
        plot_misclassified,
        plot_samples,
        write_report,
    )
    from lenet_mnist.preprocessing import prepare_image, save_image_strip
    from lenet_mnist.pretrained_model import pretrained
    from lenet_mnist.recipes import RECIPES, Recipe, build_recipe_model, get_recipe
    from lenet_mnist.serialization import load_model, save_model
    from lenet_mnist.training import compile_model, train

__all__ = [
    "RECIPES",
    "ChecksumError",
    "DataNotFoundError",
    "DigitPredictions",
    "DownloadError",
    "EvaluationReport",
    "FusedBatchNorm",
    "GPUAlreadyInitializedError",
    "IdxFormatError",
    "ImageError",
    "LeNet",
    "LenetMnistError",
    "MnistData",
    "ModelFileError",
    "Recipe",
    "UnsafeModelError",
    "__version__",
    "build_lenet",
    "build_recipe_model",
    "cache_dir",
    "class_names",
    "compile_model",
    "configure_gpu",
    "decode_idx",
    "download_mnist",
    "encode_idx",
    "evaluate_model",
    "export_model",
    "get_recipe",
    "load_history",
    "load_mnist",
    "load_model",
    "make_strategy",
    "plot_confusion_matrix",
    "plot_history",
    "plot_misclassified",
    "plot_samples",
    "predict_digits",
    "prepare_image",
    "pretrained",
    "read_idx",
    "save_history",
    "save_image_strip",
    "save_model",
    "train",
    "write_report",
]

# Public name -> the module defining it.
_LOCATIONS: dict[str, str] = {
    "ChecksumError": "errors",
    "DataNotFoundError": "errors",
    "DownloadError": "errors",
    "GPUAlreadyInitializedError": "errors",
    "IdxFormatError": "errors",
    "ImageError": "errors",
    "LenetMnistError": "errors",
    "ModelFileError": "errors",
    "UnsafeModelError": "errors",
    "MnistData": "data",
    "cache_dir": "data",
    "class_names": "data",
    "download_mnist": "data",
    "load_mnist": "data",
    "EvaluationReport": "evaluation",
    "evaluate_model": "evaluation",
    "export_model": "export",
    "make_strategy": "distribute",
    "configure_gpu": "gpu",
    "load_history": "history",
    "save_history": "history",
    "decode_idx": "idx",
    "encode_idx": "idx",
    "read_idx": "idx",
    "DigitPredictions": "inference",
    "FusedBatchNorm": "batch_norm",
    "predict_digits": "inference",
    "LeNet": "lenet",
    "build_lenet": "models",
    "RECIPES": "recipes",
    "Recipe": "recipes",
    "build_recipe_model": "recipes",
    "get_recipe": "recipes",
    "prepare_image": "preprocessing",
    "save_image_strip": "preprocessing",
    "pretrained": "pretrained_model",
    "plot_confusion_matrix": "plotting",
    "plot_history": "plotting",
    "plot_misclassified": "plotting",
    "plot_samples": "plotting",
    "write_report": "plotting",
    "load_model": "serialization",
    "save_model": "serialization",
    "compile_model": "training",
    "train": "training",
}


def __getattr__(name: str) -> Any:
    module = _LOCATIONS.get(name)
    if module is None:
        raise AttributeError(f"module 'lenet_mnist' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lenet_mnist.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
