"""The exceptions raised by lenet-mnist.

Every error of the library's own subclasses the standard exception a caller would
already catch for that kind of problem (``ValueError`` for bad content, ``OSError``
for files and the network, ``RuntimeError`` for calls made at the wrong time), so
``except ValueError`` keeps working while ``except LenetMnistError`` catches all of
ours.
"""

from __future__ import annotations

__all__ = [
    "ChecksumError",
    "DataNotFoundError",
    "DownloadError",
    "GPUAlreadyInitializedError",
    "IdxFormatError",
    "ImageError",
    "LenetMnistError",
    "ModelFileError",
    "UnsafeModelError",
]


class LenetMnistError(Exception):
    """Base class of every exception raised by lenet-mnist itself."""


class IdxFormatError(LenetMnistError, ValueError):
    """An IDX file (the MNIST file format) is malformed.

    Bad magic number, unknown type code, wrong dimensions, a truncated or oversized
    body, trailing bytes, or a size beyond the allowed limit.
    """


class ChecksumError(IdxFormatError):
    """A data file's content does not have the expected SHA-256 hash."""


class DataNotFoundError(LenetMnistError, FileNotFoundError):
    """The data files were found nowhere and downloading was not allowed."""


class DownloadError(LenetMnistError, OSError):
    """No mirror delivered a complete, verified copy of a data file."""


class GPUAlreadyInitializedError(LenetMnistError, RuntimeError):
    """GPU settings were changed after the TensorFlow runtime had started."""


class ImageError(LenetMnistError, ValueError):
    """An image cannot be used: not a readable image, bad pixels, or no ink in it."""


class ModelFileError(LenetMnistError, ValueError):
    """A file is not a readable ``.keras`` model archive."""


class UnsafeModelError(ModelFileError):
    """A ``.keras`` file asks to run code or to load objects outside the allowed set."""
