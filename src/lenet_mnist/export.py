"""Exporting a trained model to run without Keras: SavedModel, LiteRT (TFLite) and ONNX.

Every exported model answers with the same two named outputs for a batch of images:

* ``logits``: ``(N, C)`` float32, the network's raw outputs;
* ``probabilities``: ``(N, C)`` float32, their softmax (each row sums to 1).

and takes the same input, named ``image``: ``(N, 28, 28, 1)`` float32 pixels in [0, 1]
(``N`` is free). The formats differ in what else they offer:

``saved_model`` (a directory; TensorFlow Serving, ``tf.saved_model.load``)
    Two signatures: ``serving_default`` takes float32 images in [0, 1];
    ``serving_uint8`` takes the raw uint8 pixels 0..255 and divides by 255 itself, so
    a server can pass image bytes straight through. A TensorFlow signature has one
    dtype per input, hence two of them rather than one that guesses the scale.
``tflite`` (a ``.tflite`` file; the LiteRT interpreter, ``lenet-mnist[tflite]``)
    One signature, ``serving_default``. With ``int8=True`` the weights and activations
    are quantized to int8, calibrated on ``calibration_images`` (use training images,
    a few hundred suffice); input and output stay float32, so callers do not change.
``onnx`` (a ``.onnx`` file; onnxruntime and other ONNX runtimes)
    Converted by Keras's own exporter, which uses tf2onnx: needs the optional extra
    ``lenet-mnist[onnx]``.

A model built in bfloat16 mixed precision (the ``fast`` recipe's) is rebuilt in float32,
with the same architecture and weights, before the ``tflite`` and ``onnx`` conversions:
neither LiteRT's converter nor ONNX runtimes take bfloat16 convolutions.

Files are written under a temporary name next to their destination and moved into
place when complete, so an interrupted export never leaves a half-written model
under ``path``.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import numpy.typing as npt

from lenet_mnist._util.atomic import atomic_write
from lenet_mnist._util.checks import check_choice, check_positive_int
from lenet_mnist._util.image_array import as_image_batch
from lenet_mnist._util.silence import silenced_output

if TYPE_CHECKING:
    import keras

__all__ = [
    "EXPORT_FORMATS",
    "ExportFormat",
    "calibration_sample",
    "check_export_path",
    "export_model",
]

#: The names of the formats :func:`export_model` writes.
ExportFormat = Literal["saved_model", "tflite", "onnx"]

#: The formats :func:`export_model` writes, with the file suffix each requires.
EXPORT_FORMATS: Final[dict[str, str]] = {"saved_model": "", "tflite": ".tflite", "onnx": ".onnx"}

_Outputs = dict[str, Any]


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _describe(value: Any, what: str) -> str:
    """``value``'s structure in words: ``"2 outputs as a dict with keys ['a', 'b']"``."""
    if isinstance(value, dict):
        return f"{len(value)} {what} as a dict with keys {sorted(map(str, value))}"
    if isinstance(value, list | tuple):
        return f"{len(value)} {what} as a {type(value).__name__}"
    return f"{what} of type {type(value).__name__}"


def _structure(model: keras.Model, name: str) -> Any:
    """``model.input`` or ``model.output`` (a tensor, list or dict), or ``None`` if unknown."""
    try:
        return getattr(model, name)
    except (AttributeError, ValueError):  # a Sequential model never called
        return None


def _check_model(model: keras.Model) -> int:
    """Check ``model`` maps ``(N, 28, 28, 1)`` images to ``(N, C)`` logits; return ``C``.

    Every refusal is a one-line ``ValueError`` (or ``TypeError`` for a non-model),
    raised before anything is written.
    """
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    # A functional model states its inputs and outputs: check them before calling it.
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if isinstance(inputs, list) and isinstance(outputs, list):
        given, returned = _structure(model, "input"), _structure(model, "output")
        if len(inputs) != 1 or isinstance(given, dict):
            raise ValueError(
                "model must take one input, (N, 28, 28, 1) float32 images, got "
                f"{_describe(given if given is not None else inputs, 'inputs')}"
            )
        if len(outputs) != 1 or isinstance(returned, dict):
            raise ValueError(
                "model must return one (N, classes) tensor of logits, got "
                f"{_describe(returned if returned is not None else outputs, 'outputs')}"
            )
    try:
        # A trial call also builds a subclassed model that was never called.
        output = model(np.zeros((2, 28, 28, 1), np.float32), training=False)
    except (ValueError, TypeError) as error:
        raise ValueError(
            "model must take (N, 28, 28, 1) float32 images, but calling it failed: "
            f"{_one_line(error)}"
        ) from error
    if isinstance(output, dict | list | tuple) or not hasattr(output, "shape"):
        raise ValueError(
            "model must return one (N, classes) tensor of logits, got "
            f"{_describe(output, 'outputs')}"
        )
    shape = tuple(output.shape)
    if len(shape) != 2 or shape[0] != 2:
        raise ValueError(f"model must return (N, classes) logits, got output shape {shape}")
    return int(shape[1])


def _serving_functions(model: keras.Model) -> tuple[Callable[..., _Outputs], ...]:
    """Return the float32 and uint8 serving functions of ``model``."""
    import tensorflow as tf

    float_spec = tf.TensorSpec(shape=(None, 28, 28, 1), dtype=tf.float32, name="image")
    uint8_spec = tf.TensorSpec(shape=(None, 28, 28, 1), dtype=tf.uint8, name="image")

    @tf.function(input_signature=[float_spec])  # type: ignore[untyped-decorator]
    def serve_float(image: tf.Tensor) -> _Outputs:
        logits = tf.cast(model(image, training=False), tf.float32)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}

    @tf.function(input_signature=[uint8_spec])  # type: ignore[untyped-decorator]
    def serve_uint8(image: tf.Tensor) -> _Outputs:
        return serve_float(tf.cast(image, tf.float32) / 255.0)  # type: ignore[no-any-return]

    return serve_float, serve_uint8


def _write_saved_model(model: keras.Model, directory: Path, *, uint8: bool) -> None:
    import keras

    serve_float, serve_uint8 = _serving_functions(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", serve_float)
    if uint8:
        archive.add_endpoint("serving_uint8", serve_uint8)
    archive.write_out(os.fspath(directory), verbose=False)


def _tflite_bytes(model: keras.Model, calibration: npt.NDArray[np.float32] | None) -> bytes:
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="lenet-mnist-export-") as tmp:
        saved = Path(tmp) / "saved_model"
        _write_saved_model(model, saved, uint8=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(os.fspath(saved))
        if calibration is not None:
            images = calibration

            def representative() -> Iterator[dict[str, npt.NDArray[np.float32]]]:
                for index in range(images.shape[0]):
                    yield {"image": images[index : index + 1]}

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            # Only int8 kernels: a layer that cannot be quantized fails the conversion
            # instead of silently staying float.
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        with warnings.catch_warnings():
            # Calibration runs TensorFlow's own tf.lite.Interpreter, which warns that it
            # is deprecated in favour of LiteRT; the warning is about TensorFlow's
            # internals, not about anything the caller can change.
            warnings.filterwarnings(
                "ignore",
                message=r"(?s)\s*Warning:.*LiteRT interpreter",
                category=UserWarning,
            )
            # The converter's C++ logging ("fully_quantize: 0, ...") is noise to a caller.
            with silenced_output():
                result: bytes = converter.convert()
    return result


def _import_onnx_exporter() -> None:
    try:
        importlib.import_module("tf2onnx")
        importlib.import_module("onnx")
    except ImportError as error:
        raise ImportError(
            "ONNX export needs tf2onnx and onnx; install them with "
            f"pip install 'lenet-mnist[onnx]' ({error})"
        ) from error


def _write_onnx(model: keras.Model, file: Path) -> None:
    import keras

    _import_onnx_exporter()
    image = keras.Input(shape=(28, 28, 1), dtype="float32", name="image")
    logits = model(image)
    probabilities = keras.layers.Softmax(name="probabilities")(logits)
    wrapper = keras.Model(image, {"logits": logits, "probabilities": probabilities})
    # Keras exports only models that have been called at least once.
    wrapper(np.zeros((1, 28, 28, 1), np.float32), training=False)
    wrapper.export(os.fspath(file), format="onnx", verbose=False)


def check_export_path(path: str | os.PathLike[str], format: str) -> Path:
    """``path`` as a ``Path`` if :func:`export_model` can write ``format`` there.

    The command line calls it before loading anything.

    Raises:
        ValueError: Unknown format or a wrong suffix.
        IsADirectoryError: A file format aimed at a directory.
        FileExistsError: A SavedModel aimed at something that is not one.

    Example:
        >>> check_export_path("model.onnx", "onnx").name
        'model.onnx'
    """
    check_choice("format", format, EXPORT_FORMATS)
    target = Path(path)
    _check_destination(target, format)
    return target


def _check_destination(target: Path, format: str) -> None:
    suffix = EXPORT_FORMATS[format]
    if suffix:
        if target.suffix != suffix:
            raise ValueError(f"{format} files must end in {suffix}, got {os.fspath(target)!r}")
        if target.is_dir():
            raise IsADirectoryError(f"expected a file path, got a directory: {os.fspath(target)}")
    elif target.exists() and not (target / "saved_model.pb").is_file():
        # Replacing a SavedModel deletes the old one; anything else is not ours to delete.
        raise FileExistsError(
            "refusing to replace something that is not a SavedModel directory, "
            f"got existing path {os.fspath(target)!r}"
        )


def _replace_directory(new: Path, target: Path) -> None:
    if not target.exists():
        new.replace(target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
    old.rmdir()
    target.replace(old)
    try:
        new.replace(target)
    except OSError:
        old.replace(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def calibration_sample(
    images: npt.ArrayLike, count: int = 1000, *, seed: int = 0
) -> npt.NDArray[np.float32]:
    """Draw ``count`` images at random (without replacement) to calibrate int8 quantization.

    Args:
        images: Training images, in any form the library's image rule accepts.
        count: How many to draw; all of them when there are fewer.
        seed: Seed of the draw, so the same images (and so the same quantized model)
            come out every time.

    Returns:
        ``(min(count, N), 28, 28, 1)`` float32 in [0, 1].

    Raises:
        ValueError: Bad images or ``count < 1``.
        TypeError: ``count`` or ``seed`` is not an int.

    Example:
        >>> import numpy as np
        >>> calibration_sample(np.zeros((50, 28, 28), np.uint8), 10).shape
        (10, 28, 28, 1)
    """
    check_positive_int("count", count)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    array = np.asarray(images)
    if array.ndim >= 1 and array.shape[0] > count:
        chosen = np.sort(np.random.default_rng(seed).choice(array.shape[0], count, replace=False))
        array = array[chosen]
    return as_image_batch(array)


def export_model(
    model: keras.Model,
    path: str | os.PathLike[str],
    format: ExportFormat | str = "saved_model",
    *,
    int8: bool = False,
    calibration_images: npt.ArrayLike | None = None,
) -> Path:
    """Export ``model`` for serving outside Keras (see the module documentation).

    Args:
        model: A model taking ``(N, 28, 28, 1)`` float32 images in [0, 1] and returning
            ``(N, C)`` logits, such as :func:`build_lenet`'s or :class:`LeNet`.
        path: Destination: a directory for ``saved_model`` (an existing SavedModel
            there is replaced; any other existing path is refused), a ``.tflite`` or
            ``.onnx`` file otherwise (an existing file is replaced). Parent
            directories are created.
        format: ``"saved_model"``, ``"tflite"`` or ``"onnx"``.
        int8: ``tflite`` only: quantize weights and activations to int8 (about 4x
            smaller), calibrated on ``calibration_images``.
        calibration_images: With ``int8``, the images whose activation ranges set the
            quantization scales: one image or a batch in any form
            the library's image rule accepts; use a few hundred training images.

    Returns:
        The path written.

    Raises:
        TypeError: ``model`` is not a ``keras.Model`` or ``int8`` is not a bool.
        ValueError: Unknown format, a wrong file suffix, a model that does not map
            ``(N, 28, 28, 1)`` images to one ``(N, C)`` tensor of logits (several
            inputs, list or dict outputs: one line, before anything is written),
            ``int8`` for a format other
            than ``tflite``, ``int8`` without ``calibration_images`` (or images given
            without ``int8``), or bad calibration images.
        FileExistsError: ``saved_model`` onto an existing path that is not a SavedModel.
        IsADirectoryError: A file format onto an existing directory.
        ImportError: ``onnx`` without the ``lenet-mnist[onnx]`` extra installed.

    Example:
        >>> import tempfile, pathlib
        >>> from lenet_mnist import build_lenet
        >>> with tempfile.TemporaryDirectory() as tmp:  # doctest: +SKIP
        ...     export_model(build_lenet(), pathlib.Path(tmp) / "lenet.tflite", "tflite").name
        'lenet.tflite'
    """
    if not isinstance(format, str) or format not in EXPORT_FORMATS:
        raise ValueError(f"unknown format; choose one of {sorted(EXPORT_FORMATS)}, got {format!r}")
    if not isinstance(int8, bool):
        raise TypeError(f"int8 must be a bool, got {type(int8).__name__}")
    if int8 and format != "tflite":
        raise ValueError(f"int8 quantization is only available for format 'tflite', got {format!r}")
    if int8 and calibration_images is None:
        raise ValueError("int8 quantization needs calibration_images (training images), got None")
    if not int8 and calibration_images is not None:
        raise ValueError(
            "calibration_images is only used with int8=True, got images and int8=False"
        )
    target = Path(path)
    _check_destination(target, format)
    calibration = as_image_batch(calibration_images) if calibration_images is not None else None
    _check_model(model)
    if format != "saved_model":
        from lenet_mnist.models.portable import float32_copy

        # LiteRT's converter and ONNX runtimes do not take bfloat16 convolutions.
        model = float32_copy(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    if format == "saved_model":
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            _write_saved_model(model, staging, uint8=True)
            _replace_directory(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target
    if format == "tflite":
        return atomic_write(target, lambda tmp: tmp.write_bytes(_tflite_bytes(model, calibration)))
    return atomic_write(target, lambda tmp: _write_onnx(model, tmp))
