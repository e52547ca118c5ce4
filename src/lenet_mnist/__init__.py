"""lenet-mnist: the classic LeNet-style CNN for MNIST handwritten digits, as a library.

The tutorial's steps, one public function each::

    import lenet_mnist as lm

    lm.configure_gpu()                                   # 1. GPU setup (no-op on CPU)
    data = lm.load_mnist()                               # 2-5. load, normalize, channel axis
    model = lm.compile_model(lm.build_lenet("seed"))     # 6-7. the CNN, Adam + cross-entropy
    history = lm.train(model, data)                      # 8. 10 epochs, validated on test
    result = lm.predict_digits(model, data.test_images)  # 9. digits and probabilities

Names are imported on first use, so ``import lenet_mnist`` (and the command line's
``--help``) does not start TensorFlow until a function that needs it is used. It does
register the library's Keras classes (:class:`LeNet`, :class:`FusedBatchNorm`) as soon
as Keras is imported, by anyone, so ``keras.saving.load_model`` loads files that name
them whichever of the two packages is imported first.
"""

from __future__ import annotations

import ast
import importlib
from typing import TYPE_CHECKING

from lenet_mnist._version import __version__

# The public names, stated once: this block is the table. Type checkers read it as
# imports; at run time _public_names() reads it from this file's source, and each name
# is imported from its module on first use. To add a public name, add one line.
if TYPE_CHECKING:
    # `name as name`: an explicit re-export, so mypy --strict accepts `lm.name` in
    # users' code (no_implicit_reexport).
    from lenet_mnist.data.download import download_mnist as download_mnist
    from lenet_mnist.data.idx import decode_idx as decode_idx
    from lenet_mnist.data.idx import encode_idx as encode_idx
    from lenet_mnist.data.idx import read_idx as read_idx
    from lenet_mnist.data.locate import cache_dir as cache_dir
    from lenet_mnist.data.mnist import MnistData as MnistData
    from lenet_mnist.data.mnist import load_mnist as load_mnist
    from lenet_mnist.data.specs import class_names as class_names
    from lenet_mnist.errors import ChecksumError as ChecksumError
    from lenet_mnist.errors import DataNotFoundError as DataNotFoundError
    from lenet_mnist.errors import DownloadError as DownloadError
    from lenet_mnist.errors import GPUAlreadyInitializedError as GPUAlreadyInitializedError
    from lenet_mnist.errors import IdxFormatError as IdxFormatError
    from lenet_mnist.errors import ImageError as ImageError
    from lenet_mnist.errors import LenetMnistError as LenetMnistError
    from lenet_mnist.errors import ModelFileError as ModelFileError
    from lenet_mnist.errors import UnsafeModelError as UnsafeModelError
    from lenet_mnist.evaluation import EvaluationReport as EvaluationReport
    from lenet_mnist.evaluation import evaluate_model as evaluate_model
    from lenet_mnist.export import export_model as export_model
    from lenet_mnist.gpu import configure_gpu as configure_gpu
    from lenet_mnist.images.prepare import prepare_image as prepare_image
    from lenet_mnist.images.strip import save_image_strip as save_image_strip
    from lenet_mnist.inference import DigitPredictions as DigitPredictions
    from lenet_mnist.inference import predict_digits as predict_digits
    from lenet_mnist.models.batch_norm import FusedBatchNorm as FusedBatchNorm
    from lenet_mnist.models.lenet import LeNet as LeNet
    from lenet_mnist.models.pretrained import pretrained as pretrained
    from lenet_mnist.models.registry import build_lenet as build_lenet
    from lenet_mnist.models.saving import load_model as load_model
    from lenet_mnist.models.saving import save_model as save_model
    from lenet_mnist.recipes import RECIPES as RECIPES
    from lenet_mnist.recipes import Recipe as Recipe
    from lenet_mnist.recipes import build_recipe_model as build_recipe_model
    from lenet_mnist.recipes import compile_model as compile_model
    from lenet_mnist.recipes import get_recipe as get_recipe
    from lenet_mnist.report.figures import plot_confusion_matrix as plot_confusion_matrix
    from lenet_mnist.report.figures import plot_history as plot_history
    from lenet_mnist.report.figures import plot_misclassified as plot_misclassified
    from lenet_mnist.report.figures import plot_samples as plot_samples
    from lenet_mnist.report.written import write_report as write_report
    from lenet_mnist.training.distribute import make_strategy as make_strategy
    from lenet_mnist.training.history import load_history as load_history
    from lenet_mnist.training.history import save_history as save_history
    from lenet_mnist.training.train import train as train


def _public_names() -> dict[str, str]:
    """Public name -> its module, read from the ``if TYPE_CHECKING:`` block above."""
    source = __spec__.loader.get_source(__name__) if __spec__ and __spec__.loader else None  # type: ignore[attr-defined]
    if source is None:  # pragma: no cover - an install without its .py sources
        raise ImportError("lenet_mnist needs its source file __init__.py to list its names")
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            return {
                alias.name: str(statement.module)
                for statement in node.body
                if isinstance(statement, ast.ImportFrom)
                for alias in statement.names
            }
    raise ImportError("lenet_mnist/__init__.py has lost its table of names")  # pragma: no cover


_LOCATIONS = _public_names()
__all__ = ["__version__", *sorted(_LOCATIONS)]


def _register_keras_classes() -> None:
    # Importing the modules runs their @keras.saving.register_keras_serializable.
    importlib.import_module("lenet_mnist.models.batch_norm")
    importlib.import_module("lenet_mnist.models.lenet")


# Now if Keras is already imported; otherwise right after it is, without importing it.
# (Imported by name: the facade's only ``from lenet_mnist... import`` lines are its table.)
importlib.import_module("lenet_mnist._util.import_hook").when_imported(
    "keras", _register_keras_classes
)


def __getattr__(name: str) -> object:
    module = _LOCATIONS.get(name)
    if module is None:
        raise AttributeError(f"module 'lenet_mnist' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)
