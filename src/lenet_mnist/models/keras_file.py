"""Loading ``.keras`` files from strangers: read once, checked exactly, bounded, then built (internal).

A ``.keras`` file is a zip archive of ``config.json`` (the model as a tree of
``{"module", "class_name", "config"}`` records), ``metadata.json`` and
``model.weights.h5`` (HDF5). Keras rebuilds whatever the records name, and even in its
safe mode that includes its own operations (``keras.src.ops.core.Switch`` and friends,
which call functions with arguments taken from the file), any class under ``keras.*``,
and allocations as large as the file declares. :func:`load_keras_file` therefore

1. opens the path once (regular files only), refuses it if larger than ``max_bytes``, and
   reads the bytes; everything after works on those bytes only;
2. checks they are a zip archive from byte 0 to the end, with exactly the three members
   Keras writes, unencrypted, contiguous, within per-member and total size limits that
   are checked from the headers and again while decompressing;
3. parses ``config.json`` under a nesting-depth limit and walks it against an exact
   allow-list of ``(module, class_name, registered_name)`` records, each in the position
   where it may appear (a layer where layers go, an initializer where initializers go),
   with every option of every layer checked; refusals name the record and its JSON path;
4. infers, from the config alone, every variable Keras will create (shape and dtype, by
   shape inference over the layer graph), bounded by ``max_layers`` and ``max_params``;
5. opens ``model.weights.h5`` from memory and checks that it holds exactly those
   variables (plus optimizer state consistent with the trainable ones): no links, no
   external or virtual storage, no filters, no other objects;
6. only then hands the same verified bytes to Keras (see ``_build_with_keras`` for
   how, without Keras ever opening the caller's path), converting whatever Keras raises
   into :class:`~lenet_mnist.errors.ModelFileError`.

Everything before step 6 allocates at most a small multiple of the file's size, and
nothing is written anywhere before every check has passed.
"""

from __future__ import annotations

import functools
import gc
import inspect
import io
import json
import math
import os
import re
import stat
import struct
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final

import h5py  # type: ignore[import-untyped]
import keras
import numpy as np
import tensorflow as tf

from lenet_mnist.errors import ModelFileError, UnsafeModelError

# Importing the modules registers FusedBatchNorm and LeNet with Keras so files load.
from lenet_mnist.models.batch_norm import FusedBatchNorm
from lenet_mnist.models.lenet import LeNet

__all__ = [
    "ALLOWED_LAYERS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_CONFIG_BYTES",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_LAYERS",
    "DEFAULT_MAX_PARAMS",
    "MEMBERS",
    "load_keras_file",
]

#: Largest ``.keras`` file read, and largest total of its members once decompressed.
#: Keras takes about 6x a model's weights to build and load it: the largest model
#: these defaults admit (8.4 M float32 parameters) peaked at 197 MiB here (see
#: benchmarks/model_file_attacks.py).
DEFAULT_MAX_BYTES: Final = 32 * 1024 * 1024
#: Largest ``config.json``. The library's largest is 19.5 KB; parsed JSON can take up
#: to ~25x its size in Python objects (48 MiB for 2 MiB of ``{},``), so this also
#: bounds the parser's memory.
DEFAULT_MAX_CONFIG_BYTES: Final = 2 * 1024 * 1024
#: Deepest nesting of lists and objects in ``config.json`` (the library's: 10; a
#: frozen model nested in another: 14).
DEFAULT_MAX_DEPTH: Final = 64
#: Most layers (counted in nested models too) and most layer calls. The library's
#: models have at most 22; Keras took 1.4 s here to rebuild a chain of 256.
DEFAULT_MAX_LAYERS: Final = 256
#: Most model parameters (weights, biases, batch-norm statistics; optimizer state is
#: checked separately). The library's models have at most 198,442; 2**23 float32
#: parameters are 32 MiB, what ``DEFAULT_MAX_BYTES`` can hold.
DEFAULT_MAX_PARAMS: Final = 2**23

#: The members of a ``.keras`` archive, in the order Keras writes them.
MEMBERS: Final = ("metadata.json", "config.json", "model.weights.h5")
_MAX_METADATA_BYTES: Final = 64 * 1024

Shape = tuple[int | None, ...]

# --- reading the file once -------------------------------------------------------------


def _read_once(path: str | os.PathLike[str], max_bytes: int) -> tuple[str, bytes]:
    """Open ``path`` once and return its name and bytes; refuse what is not a small regular file."""
    name = os.fspath(path)
    try:
        # A stat before opening: opening a device or FIFO can block or have effects.
        before = Path(name).stat()
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"model file not found: {name}") from None
    if stat.S_ISDIR(before.st_mode):
        raise IsADirectoryError(f"expected a .keras model file, got a directory: {name}")
    if not stat.S_ISREG(before.st_mode):
        raise ModelFileError(
            f"{name}: not a regular file (a device, FIFO or socket cannot be a model file), "
            f"got mode {stat.filemode(before.st_mode)}"
        )
    if Path(name).suffix != ".keras":
        # Keras picks its loader by the name: an HDF5 file named .h5 would be loaded
        # by another code path than the one checked here.
        raise ModelFileError(f"model files must end in .keras, got {name!r}")
    if before.st_size > max_bytes:
        raise ModelFileError(
            f"{name}: the file is larger than the limit of {max_bytes} bytes "
            f"(raise max_bytes for larger models), got {before.st_size}"
        )
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(name, flags)
    with os.fdopen(fd, "rb") as file:
        now = os.fstat(file.fileno())
        if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (
            before.st_dev,
            before.st_ino,
        ):
            raise ModelFileError(f"{name}: the file was replaced while being opened")
        # One allocation of the announced size; a file that grows meanwhile is read on
        # only up to the limit.
        data = file.read(now.st_size + 1)
        if len(data) > now.st_size:
            data += file.read(max_bytes + 1 - len(data))
    if len(data) > max_bytes:
        raise ModelFileError(
            f"{name}: the file is larger than the limit of {max_bytes} bytes "
            f"(raise max_bytes for larger models), got more than {max_bytes}"
        )
    return name, data


# --- the zip archive -------------------------------------------------------------------

_LOCAL: Final = struct.Struct("<4sHHHHHLLLHH")
_CENTRAL: Final = struct.Struct("<4sHHHHHHLLLHHHHHLL")
_END: Final = struct.Struct("<4sHHHHLLH")
_DESCRIPTOR_SIGNATURE: Final = b"PK\x07\x08"
_HDF5_SIGNATURE: Final = b"\x89HDF\r\n\x1a\n"
# Bit 3: sizes in a data descriptor after the data; bit 11: UTF-8 names. Anything else
# (bit 0 encryption, bit 6 strong encryption, bit 13 masked headers ...) is refused.
_ALLOWED_FLAGS: Final = 0x0008 | 0x0800
_ZIP64_MARK: Final = 0xFFFFFFFF
# A deflated weights member may inflate at most this much (plus the slack): a small
# file then cannot cost much memory. Untrained models with zeroed optimizer state
# deflate about 3.3:1 here, trained weights 1.2:1.
_MAX_WEIGHTS_RATIO: Final = 32
_RATIO_SLACK: Final = 1024 * 1024


@dataclass(frozen=True)
class _Entry:
    name: str
    flags: int
    method: int
    crc: int
    compressed: int
    size: int
    offset: int


def _not_keras(name: str, why: str) -> ModelFileError:
    return ModelFileError(f"{name}: not a .keras model file ({why})")


def _central_directory(name: str, data: bytes) -> tuple[list[_Entry], int]:
    """Parse the end record and central directory; return the entries and where the directory starts."""
    if len(data) < _END.size or data[:4] != b"PK\x03\x04":
        raise _not_keras(name, "File is not a zip file")
    end = len(data) - _END.size
    signature, disk, cd_disk, on_disk, total, cd_size, cd_offset, comment = _END.unpack_from(
        data, end
    )
    if signature != b"PK\x05\x06" or comment:
        raise _not_keras(
            name, "the zip archive does not end where the file ends: a comment or trailing bytes"
        )
    if disk or cd_disk or on_disk != total:
        raise _not_keras(name, f"a multi-volume zip archive, got disk {disk}")
    if end >= 20 and data[end - 20 : end - 16] == b"PK\x06\x07":
        # A zip64 archive (more than 65,535 members, or 4 GiB): Keras never writes one.
        # Its real member count, for the message, is in the zip64 end record.
        (record,) = struct.unpack_from("<Q", data, end - 12)
        if record + 56 <= end - 20 and data[record : record + 4] == b"PK\x06\x06":
            (total,) = struct.unpack_from("<Q", data, record + 32)
        raise _not_keras(
            name,
            f"a .keras archive has exactly the members {', '.join(MEMBERS)}, "
            f"got a zip64 archive of {total} members",
        )
    if total > 16:
        # Refused before reading the directory: 100,000 entries cost seconds to parse.
        raise _not_keras(
            name,
            f"a .keras archive has exactly the members {', '.join(MEMBERS)}, got {total} members",
        )
    if cd_offset + cd_size != end or cd_size > 64 * 1024:
        raise _not_keras(name, "the zip central directory is not where its end record says")
    entries = []
    position = cd_offset
    for _ in range(total):
        if position + _CENTRAL.size > end:
            raise _not_keras(name, "truncated zip central directory")
        (
            signature,
            _made_by,
            _needed,
            flags,
            method,
            _time,
            _date,
            crc,
            compressed,
            size,
            name_length,
            extra_length,
            comment_length,
            start_disk,
            _internal,
            _external,
            offset,
        ) = _CENTRAL.unpack_from(data, position)
        if signature != b"PK\x01\x02":
            raise _not_keras(name, "bad zip central directory entry")
        raw_name = data[position + _CENTRAL.size : position + _CENTRAL.size + name_length]
        position += _CENTRAL.size + name_length + extra_length + comment_length
        if position > end:
            raise _not_keras(name, "truncated zip central directory")
        member = raw_name.decode("ascii", errors="replace")
        entries.append(_Entry(member, flags, method, crc, compressed, size, offset))
        if _ZIP64_MARK in (compressed, size, offset) or start_disk:
            raise _not_keras(name, f"zip64 or multi-volume member {member!r}")
    if position != end:
        raise _not_keras(name, "the zip central directory has trailing bytes")
    return entries, cd_offset


def _check_entries(
    name: str, data: bytes, entries: list[_Entry], cd_offset: int, max_bytes: int, max_config: int
) -> None:
    """Exact members, no encryption, sizes within limits, contiguous from byte 0 to the directory."""
    names = [entry.name for entry in entries]
    if sorted(names) != sorted(MEMBERS):
        if "config.json" not in names:
            raise _not_keras(name, "no config.json inside")
        raise _not_keras(
            name,
            f"a .keras archive has exactly the members {', '.join(MEMBERS)}, got {names}",
        )
    limits = {
        "config.json": max_config,
        "metadata.json": _MAX_METADATA_BYTES,
        "model.weights.h5": max_bytes,
    }
    for entry in entries:
        if entry.flags & ~_ALLOWED_FLAGS:
            raise _not_keras(
                name, f"member {entry.name} is encrypted or uses zip features Keras never writes"
            )
        if entry.method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _not_keras(
                name,
                f"member {entry.name} uses compression method {entry.method}, not stored or deflated",
            )
        if entry.method == zipfile.ZIP_STORED and entry.compressed != entry.size:
            raise _not_keras(name, f"member {entry.name} is stored with two different sizes")
        if (
            entry.name == "model.weights.h5"
            and entry.method == zipfile.ZIP_DEFLATED
            and entry.size > _MAX_WEIGHTS_RATIO * entry.compressed + _RATIO_SLACK
        ):
            raise ModelFileError(
                f"{name}: member {entry.name} would inflate more than {_MAX_WEIGHTS_RATIO}:1 "
                f"(Keras stores weights uncompressed, and trained weights shrink little), "
                f"got {entry.size} bytes from {entry.compressed}"
            )
        if entry.size > limits[entry.name]:
            raise ModelFileError(
                f"{name}: member {entry.name} declares more than the limit of "
                f"{limits[entry.name]} bytes, got {entry.size}"
            )
    total = sum(entry.size for entry in entries)
    if total > max_bytes:
        raise ModelFileError(
            f"{name}: the archive's members add up to more than the limit of {max_bytes} "
            f"bytes (raise max_bytes for larger models), got {total}"
        )
    # The local headers must follow each other from byte 0 to the central directory:
    # no bytes in front (polyglots), between (hidden data) or shared (overlapping members).
    position = 0
    for entry in sorted(entries, key=lambda item: item.offset):
        if entry.offset != position or position + _LOCAL.size > cd_offset:
            raise _not_keras(name, f"member {entry.name} is not where the zip directory says")
        (
            signature,
            _needed,
            flags,
            method,
            _time,
            _date,
            crc,
            compressed,
            size,
            name_length,
            extra_length,
        ) = _LOCAL.unpack_from(data, position)
        local_name = data[position + _LOCAL.size : position + _LOCAL.size + name_length]
        described = bool(flags & 0x0008)
        if (
            signature != b"PK\x03\x04"
            or flags != entry.flags
            or method != entry.method
            or local_name != entry.name.encode("ascii")
            or (
                not described
                and (crc, compressed, size) != (entry.crc, entry.compressed, entry.size)
            )
        ):
            raise _not_keras(name, f"the local header of {entry.name} disagrees with the directory")
        position += _LOCAL.size + name_length + extra_length + entry.compressed
        if described:
            if data[position : position + 4] == _DESCRIPTOR_SIGNATURE:
                position += 4
            position += 12
        if position > cd_offset:
            raise _not_keras(name, f"member {entry.name} runs into the zip directory")
    if position != cd_offset:
        raise _not_keras(name, "bytes between the last member and the zip directory")


def _hdf5_at(data: bytes, weights_data_offset: int | None) -> int | None:
    """The offset of an HDF5 superblock signature in ``data`` other than the weights member's own."""
    # HDF5 looks for its signature at 0, 512, 1024, 2048 ... of a file.
    offset = 0
    while offset + len(_HDF5_SIGNATURE) <= len(data):
        if offset != weights_data_offset and data[offset : offset + 8] == _HDF5_SIGNATURE:
            return offset
        offset = 512 if offset == 0 else offset * 2
    return None


def _read_members(name: str, data: bytes, max_bytes: int, max_config: int) -> dict[str, bytes]:
    """Verify the archive's structure and return its three members, decompressed within the limits."""
    entries, cd_offset = _central_directory(name, data)
    _check_entries(name, data, entries, cd_offset, max_bytes, max_config)
    weights = next(entry for entry in entries if entry.name == "model.weights.h5")
    weights_start = None
    if weights.method == zipfile.ZIP_STORED:
        name_length, extra_length = struct.unpack_from("<HH", data, weights.offset + 26)
        weights_start = weights.offset + _LOCAL.size + name_length + extra_length
    polyglot = _hdf5_at(data, weights_start)
    if polyglot is not None:
        raise UnsafeModelError(
            f"{name}: refusing a file that is a zip archive and an HDF5 file at once (a "
            f"polyglot: Keras could read either), got an HDF5 signature at byte {polyglot}"
        )
    limits = {"config.json": max_config, "metadata.json": _MAX_METADATA_BYTES}
    members: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for entry in entries:
                limit = min(limits.get(entry.name, max_bytes), entry.size)
                # zipfile inflates at most what is asked for and stops at the declared
                # size (checked against the limits above): a header that understates
                # the content costs no more than it states.
                with archive.open(entry.name) as member:
                    content = member.read(limit + 1)
                    if len(content) > limit or member.read(1):
                        raise ModelFileError(
                            f"{name}: member {entry.name} inflates to more than its limit of "
                            f"{limit} bytes, got more than {limit}"
                        )
                if len(content) != entry.size:
                    raise _not_keras(
                        name,
                        f"member {entry.name} inflates to {len(content)} bytes, "
                        f"not the {entry.size} its header says",
                    )
                members[entry.name] = content
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, zlib.error) as error:
        raise _not_keras(name, _one_line(error)) from None
    if sum(len(content) for content in members.values()) > max_bytes:
        raise ModelFileError(
            f"{name}: the archive's members add up to more than the limit of {max_bytes} "
            f"bytes, got {sum(len(content) for content in members.values())}"
        )
    return members


# --- JSON, depth first -----------------------------------------------------------------

_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def _json_depth(raw: bytes) -> int:
    """Deepest nesting of ``[`` and ``{`` in JSON text, counted outside strings."""
    brackets = np.frombuffer(
        _STRING.sub(b'""', raw).translate(None, delete=bytes(set(range(256)) - set(b"[]{}"))),
        dtype=np.uint8,
    )
    if brackets.size == 0:
        return 0
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1).astype(np.int32)
    return int(np.cumsum(steps, dtype=np.int32).max())


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        duplicated = next(key for key, count in Counter(k for k, _ in pairs).items() if count > 1)
        raise ValueError(f"duplicate key {duplicated!r}")
    return result


def _parse_json(name: str, member: str, raw: bytes, max_depth: int) -> Any:
    """Parse JSON text whose nesting is at most ``max_depth`` (checked before parsing)."""
    depth = _json_depth(raw)
    if depth > max_depth:
        raise ModelFileError(
            f"{name}: {member} nests lists and objects deeper than the limit of {max_depth} "
            f"(raise max_depth for deeper models), got depth {depth}"
        )
    # JSON makes no reference cycles, and the collector, run again and again while a
    # million small lists are created, took 3-5 s here for 2 MiB of "[],".
    collecting = gc.isenabled()
    gc.disable()
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ModelFileError(f"{name}: {member} is not valid JSON ({_one_line(error)})") from None
    finally:
        if collecting:
            gc.enable()


# --- the allow-list --------------------------------------------------------------------

_LAYER: Final = "layer"
_MODEL: Final = "model"
_POLICY: Final = "dtype policy"
_INITIALIZER: Final = "initializer"
_REGULARIZER: Final = "regularizer"
_CONSTRAINT: Final = "constraint"
_OPTIMIZER: Final = "optimizer"
_SCHEDULE: Final = "learning-rate schedule"
_LOSS: Final = "loss"
_METRIC: Final = "metric"
_TENSOR: Final = "tensor reference"

_KERAS_LAYERS: Final = (
    "Activation",
    "Add",
    "Average",
    "AveragePooling2D",
    "BatchNormalization",
    "Concatenate",
    "Conv2D",
    "Cropping2D",
    "Dense",
    "DepthwiseConv2D",
    "Dropout",
    "ELU",
    "Flatten",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "Identity",
    "InputLayer",
    "LayerNormalization",
    "LeakyReLU",
    "MaxPooling2D",
    "Maximum",
    "Minimum",
    "Multiply",
    "Permute",
    "ReLU",
    "Rescaling",
    "Reshape",
    "SeparableConv2D",
    "Softmax",
    "SpatialDropout2D",
    "Subtract",
    "UpSampling2D",
    "ZeroPadding2D",
)
#: The Keras layers (``keras.layers.X``) a model file may contain.
ALLOWED_LAYERS: Final = _KERAS_LAYERS
_INITIALIZERS: Final = (
    "Constant",
    "GlorotNormal",
    "GlorotUniform",
    "HeNormal",
    "HeUniform",
    "LecunNormal",
    "LecunUniform",
    "Ones",
    "RandomNormal",
    "RandomUniform",
    "TruncatedNormal",
    "VarianceScaling",
    "Zeros",
)
_REGULARIZERS: Final = ("L1", "L1L2", "L2")
_CONSTRAINTS: Final = ("MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm")
_OPTIMIZERS: Final = (
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Ftrl",
    "Lamb",
    "Lion",
    "Nadam",
    "RMSprop",
    "SGD",
)
_SCHEDULES: Final = (
    "CosineDecay",
    "CosineDecayRestarts",
    "ExponentialDecay",
    "InverseTimeDecay",
    "PiecewiseConstantDecay",
    "PolynomialDecay",
)
_LOSSES: Final = (
    "BinaryCrossentropy",
    "BinaryFocalCrossentropy",
    "CategoricalCrossentropy",
    "CategoricalFocalCrossentropy",
    "CategoricalHinge",
    "Hinge",
    "Huber",
    "KLDivergence",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "SparseCategoricalCrossentropy",
    "SquaredHinge",
)
# No AUC or MeanIoU: their variables are sized by numbers in the config.
_METRICS: Final = (
    "Accuracy",
    "BinaryAccuracy",
    "BinaryCrossentropy",
    "CategoricalAccuracy",
    "CategoricalCrossentropy",
    "KLDivergence",
    "Mean",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "Precision",
    "Recall",
    "RootMeanSquaredError",
    "SparseCategoricalAccuracy",
    "SparseCategoricalCrossentropy",
    "SparseTopKCategoricalAccuracy",
    "TopKCategoricalAccuracy",
)


def _our_modules(cls: type, old: str) -> set[str]:
    # Files saved before the package moved a class keep its old module; Keras finds
    # the class by its registered name either way.
    return {old, cls.__module__}


#: Every record Keras may deserialize: (module, class_name) -> (category, registered names).
_RECORDS: Final[dict[tuple[str, str], tuple[str, frozenset[str | None]]]] = {
    **{("keras.layers", name): (_LAYER, frozenset({None})) for name in _KERAS_LAYERS},
    **{
        (module, "FusedBatchNorm"): (_LAYER, frozenset({"lenet_mnist>FusedBatchNorm"}))
        for module in _our_modules(FusedBatchNorm, "lenet_mnist.batch_norm")
    },
    ("keras.src.models.functional", "Functional"): (_MODEL, frozenset({"Functional", None})),
    ("keras", "Sequential"): (_MODEL, frozenset({None})),
    **{
        (module, "LeNet"): (_MODEL, frozenset({"lenet_mnist>LeNet"}))
        for module in _our_modules(LeNet, "lenet_mnist.lenet")
    },
    ("keras", "DTypePolicy"): (_POLICY, frozenset({None})),
    ("keras", "FloatDTypePolicy"): (_POLICY, frozenset({None})),
    **{("keras.initializers", name): (_INITIALIZER, frozenset({None})) for name in _INITIALIZERS},
    **{("keras.regularizers", name): (_REGULARIZER, frozenset({None})) for name in _REGULARIZERS},
    **{("keras.constraints", name): (_CONSTRAINT, frozenset({None})) for name in _CONSTRAINTS},
    **{("keras.optimizers", name): (_OPTIMIZER, frozenset({None})) for name in _OPTIMIZERS},
    **{("keras.optimizers.schedules", name): (_SCHEDULE, frozenset({None})) for name in _SCHEDULES},
    **{("keras.losses", name): (_LOSS, frozenset({None})) for name in _LOSSES},
    **{("keras.metrics", name): (_METRIC, frozenset({None})) for name in _METRICS},
}

#: Built-in functions a loss or metric may be given as, by name (never by code).
_LOSS_FUNCTIONS: Final = frozenset(
    {
        "binary_crossentropy",
        "binary_focal_crossentropy",
        "categorical_crossentropy",
        "categorical_focal_crossentropy",
        "categorical_hinge",
        "hinge",
        "huber",
        "kl_divergence",
        "mean_absolute_error",
        "mean_squared_error",
        "sparse_categorical_crossentropy",
        "squared_hinge",
    }
)
_METRIC_FUNCTIONS: Final = frozenset(
    {
        "binary_accuracy",
        "categorical_accuracy",
        "sparse_categorical_accuracy",
        "sparse_top_k_categorical_accuracy",
        "top_k_categorical_accuracy",
    }
)
_FUNCTION_MODULES: Final = {
    "builtins": _LOSS_FUNCTIONS | _METRIC_FUNCTIONS,
    "keras.losses": _LOSS_FUNCTIONS,
    "keras.metrics": _LOSS_FUNCTIONS | _METRIC_FUNCTIONS,
}

#: Names accepted where Keras looks an object up by a string.
_ACTIVATION_NAMES: Final = frozenset(
    {
        "celu",
        "elu",
        "exponential",
        "gelu",
        "hard_sigmoid",
        "hard_silu",
        "hard_swish",
        "leaky_relu",
        "linear",
        "log_softmax",
        "mish",
        "relu",
        "relu6",
        "selu",
        "sigmoid",
        "silu",
        "softmax",
        "softplus",
        "softsign",
        "swish",
        "tanh",
    }
)


_INITIALIZER_NAMES: Final = frozenset(_INITIALIZERS) | {
    "constant",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "ones",
    "random_normal",
    "random_uniform",
    "truncated_normal",
    "variance_scaling",
    "zeros",
}
_REGULARIZER_NAMES: Final = frozenset(_REGULARIZERS) | {"l1", "l2", "l1_l2"}
_CONSTRAINT_NAMES: Final = frozenset(_CONSTRAINTS) | {
    "max_norm",
    "min_max_norm",
    "non_neg",
    "unit_norm",
}
_OPTIMIZER_NAMES: Final = frozenset(name.lower() for name in _OPTIMIZERS)
_LOSS_NAMES: Final = _LOSS_FUNCTIONS | {"mse", "mae", "kld"}
_METRIC_NAMES: Final = (
    _LOSS_FUNCTIONS | _METRIC_FUNCTIONS | {"accuracy", "acc", "crossentropy", "mse", "mae"}
)
_NAMES_BY_CATEGORY: Final = {
    _INITIALIZER: _INITIALIZER_NAMES,
    _REGULARIZER: _REGULARIZER_NAMES,
    _CONSTRAINT: _CONSTRAINT_NAMES,
    _OPTIMIZER: _OPTIMIZER_NAMES,
    _LOSS: _LOSS_NAMES,
    _METRIC: _METRIC_NAMES,
}

#: Dtype policies, and the dtype their variables get.
_POLICY_VARIABLE_DTYPE: Final = {
    "float16": "float16",
    "bfloat16": "bfloat16",
    "float32": "float32",
    "float64": "float64",
    "mixed_float16": "float32",
    "mixed_bfloat16": "float32",
}
_TENSOR_DTYPES: Final = frozenset(
    {"bfloat16", "float16", "float32", "float64", "uint8", "int8", "int16", "int32", "int64"}
)
_MAX_DIM: Final = 2**31 - 1
_MERGE_LAYERS: Final = frozenset(
    {"Add", "Average", "Concatenate", "Maximum", "Minimum", "Multiply", "Subtract"}
)


def _method_name(class_name: str) -> str:
    """``Conv2D`` -> ``conv2_d``: the suffix of the checker's method for a layer class."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", class_name).lower()


_MAX_RANK: Final = 8
_MAX_NAME: Final = 256
_MAX_LIST: Final = 1024
_NUMBERS: Final = frozenset({int, float, bool, type(None)})


# --- the checker -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Var:
    """A variable Keras will create: its shape, dtype, and whether an optimizer updates it."""

    shape: tuple[int, ...]
    dtype: str
    trainable: bool

    @property
    def size(self) -> int:
        return math.prod(self.shape) if self.shape else 1


@dataclass
class _Plan:
    """What the weights file must hold, found from the config."""

    entries: dict[tuple[str, ...], list[_Var]] = field(default_factory=dict)
    optimizers: dict[tuple[str, ...], list[_Var]] = field(default_factory=dict)
    params: int = 0
    layers: int = 0
    nodes: int = 0


@functools.cache
def _options(module: str, class_name: str) -> frozenset[str]:
    """The options (constructor arguments) of an allowed Keras class, by its public name.

    Initializers, regularizers, constraints, optimizers, schedules, losses and metrics
    name all their options in their signatures (Keras 3.15: every ``get_config`` key is
    one); a file may give no others.
    """
    namespace: Any = keras
    for part in module.split(".")[1:]:
        namespace = getattr(namespace, part)
    signature = inspect.signature(getattr(namespace, class_name).__init__)
    return frozenset(
        name
        for name, parameter in signature.parameters.items()
        if name != "self"
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    )


def _category(record: dict[str, Any]) -> str | None:
    """The allow-list category of a record, or None."""
    module, class_name = record.get("module"), record.get("class_name")
    if not isinstance(module, str) or not isinstance(class_name, str):
        return None
    found = _RECORDS.get((module, class_name))
    return found[0] if found else None


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


_PLAIN_KEY: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _path(keys: list[str | int]) -> str:
    path = ""
    for key in keys:
        path = _join(path, key)
    return path


def _join(path: str, key: str | int) -> str:
    """A JSON path one step down, like ``config.layers[3]`` (odd keys shown as ``[...]``)."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if not _PLAIN_KEY.fullmatch(key):
        return f"{path}[{_show(key)}]"
    return f"{path}.{key}" if path else key


def _where(path: str) -> str:
    return path or "the top level"


def _show(value: Any) -> str:
    """A value from the file, for a message: its repr, one line, at most 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(record: dict[str, Any]) -> str:
    return f"{_show(record.get('class_name'))} from module {_show(record.get('module'))}"


class _Checker:
    """Walks a ``config.json`` against the allow-list and works out the variables it declares."""

    def __init__(
        self, name: str, *, max_layers: int, max_params: int, custom_names: frozenset[str]
    ) -> None:
        self.name = name
        self.max_layers = max_layers
        self.max_params = max_params
        self.custom_names = custom_names
        self.plan = _Plan()
        self.shared: dict[int, tuple[Any, Any]] = {}
        self.global_dtype = str(keras.config.dtype_policy().variable_dtype)
        self.data_format = str(keras.config.image_data_format())

    # Errors ------------------------------------------------------------------------

    def unsafe(self, what: str, path: str, why: str) -> UnsafeModelError:
        return UnsafeModelError(
            f"{self.name}: refusing to load {what} at {_where(path)}: {why}; "
            "pass safe_mode=False only for files you trust"
        )

    def bad(self, path: str, message: str) -> ModelFileError:
        return ModelFileError(f"{self.name}: config.json: {_where(path)}: {message}")

    # Pass 1: every record anywhere, in document order -------------------------------

    def scan(self, config: Any) -> None:
        """Refuse any record that is not on the allow-list, wherever it is.

        Depth first in document order (an enclosing record is reported before what it
        holds), keeping only the path to the current node: a config of a million
        values costs no more memory than its parsed form.
        """
        keys: list[str | int] = []
        stack: list[Iterator[tuple[str | int, Any]]] = []

        def enter(node: Any, key: str | int | None) -> None:
            if isinstance(node, dict):
                if "class_name" in node:
                    self._scan_record(node, _path(keys))
                stack.append(iter(node.items()))
            elif isinstance(node, list):
                # Numbers hold no records nor names: a long list of them is skipped at
                # C speed instead of being walked item by item.
                if not all(type(item) in _NUMBERS for item in node):
                    stack.append(iter(enumerate(node)))
            elif isinstance(node, str) and key != "registered_name":
                self.not_registered(node, _path(keys))

        enter(config, None)
        while stack:
            step = next(stack[-1], None)
            if step is None:
                stack.pop()
                if keys:
                    keys.pop()
                continue
            key, value = step
            keys.append(key)
            depth = len(stack)
            enter(value, key)
            if len(stack) == depth:  # a plain value: nothing to descend into
                keys.pop()

    def _scan_record(self, record: dict[str, Any], path: str) -> None:
        class_name = record["class_name"]
        module = record.get("module")
        if not isinstance(class_name, str) or not isinstance(module, str | None):
            raise self.unsafe(f"a record {_describe(record)}", path, "malformed record")
        inner = record.get("config")
        if class_name == "__lambda__" or (isinstance(inner, dict) and "code" in inner):
            raise self.unsafe(
                f"serialized Python code ({class_name!r})", path, "it would run code from the file"
            )
        if "lambda" in class_name.lower():
            raise self.unsafe(
                f"a Lambda layer ({_describe(record)})", path, "it carries arbitrary Python code"
            )
        if class_name == "__keras_tensor__":
            if module is not None or set(record) != {"class_name", "config"}:
                raise self.unsafe(_describe(record), path, "malformed tensor reference")
            return
        if class_name == "function":
            self._scan_function(record, path)
            return
        if "." in class_name or ">" in class_name or not class_name.isidentifier():
            raise self.unsafe(_describe(record), path, "a dotted or aliased class name")
        allowed = _RECORDS.get((module, class_name)) if module is not None else None
        if allowed is None:
            raise self.unsafe(
                _describe(record),
                path,
                "only the Keras layers, models and training objects on this library's "
                "allow-list, and lenet_mnist's own, are loaded",
            )
        registered = record.get("registered_name", class_name)
        if "registered_name" not in record and class_name in self.custom_names:
            registered = f"<{class_name} by class name>"
        if registered not in allowed[1]:
            raise self.unsafe(
                f"{_describe(record)} registered as {_show(registered)}",
                path,
                f"Keras would look the class up by that name; expected {sorted(map(str, allowed[1]))}",
            )
        shared = record.get("shared_object_id")
        if shared is not None:
            if isinstance(shared, bool) or not isinstance(shared, int):
                raise self.unsafe(_describe(record), path, "a shared_object_id that is not an int")
            first = self.shared.setdefault(shared, (module, class_name))
            if first != (module, class_name):
                raise self.unsafe(
                    _describe(record),
                    path,
                    f"it shares its object id with a {first[1]!r}: Keras would hand out "
                    "that object instead",
                )

    def _scan_function(self, record: dict[str, Any], path: str) -> None:
        module = record.get("module")
        name = record.get("config")
        allowed = _FUNCTION_MODULES.get(module) if isinstance(module, str) else None
        if (
            allowed is None
            or not isinstance(name, str)
            or name not in allowed
            or record.get("registered_name") not in (None, "function", name)
            or set(record) - {"module", "class_name", "config", "registered_name"}
        ):
            raise self.unsafe(
                f"the function {name!r} from module {module!r}",
                path,
                "only built-in losses and metrics may be named as functions",
            )

    # Pass 2: positions, options, shapes ---------------------------------------------

    def record(self, node: Any, path: str, category: str) -> tuple[str, dict[str, Any]]:
        """Check ``node`` is an allowed record of ``category``; return its class name and config."""
        if not isinstance(node, dict) or "class_name" not in node:
            raise self.bad(path, f"expected {_a(category)} record, got {type(node).__name__}")
        self._scan_record(node, path)
        if node["class_name"] == "function":
            if category not in (_LOSS, _METRIC):
                raise self.unsafe(
                    f"the function {node.get('config')!r}",
                    path,
                    f"a function is not {_a(category)}",
                )
            return "function", {}
        found = _category(node)
        if found != category:
            raise self.unsafe(
                _describe(node),
                path,
                f"not {_a(category)}" if found is None else f"{_a(found)} is not {_a(category)}",
            )
        allowed_keys = {"module", "class_name", "config", "registered_name", "shared_object_id"}
        if category in (_LAYER, _MODEL):
            allowed_keys |= {"build_config", "name", "inbound_nodes"}
        if category == _MODEL:
            allowed_keys.add("compile_config")
        extra = set(node) - allowed_keys
        if extra:
            raise self.unsafe(
                f"the key {sorted(extra)[0]!r} of {_describe(node)}", path, "not a key Keras writes"
            )
        config = node.get("config")
        if not isinstance(config, dict):
            raise self.bad(
                _join(path, "config"), f"expected an object, got {type(config).__name__}"
            )
        return str(node["class_name"]), config

    def leaf(self, node: Any, path: str, category: str) -> None:
        """An initializer, regularizer ... : a record or a name, its options plain values."""
        if isinstance(node, str):
            names = _NAMES_BY_CATEGORY.get(category, frozenset())
            if node not in names:
                raise self.unsafe(
                    f"the {category} {node!r}", path, "not a built-in name on the allow-list"
                )
            return
        class_name, config = self.record(node, path, category)
        if class_name == "function":
            return
        self.keys(
            config,
            set(_options(str(node["module"]), class_name)),
            _join(path, "config"),
            class_name,
        )
        for key, value in config.items():
            where = _join(_join(path, "config"), key)
            if category == _OPTIMIZER and key == "learning_rate" and isinstance(value, dict):
                self.leaf(value, where, _SCHEDULE)
            else:
                self.plain(value, where)

    def not_registered(self, text: str, path: str) -> None:
        """Refuse a string that names a registered object: Keras would swap that object in."""
        if text in self.custom_names:
            raise self.unsafe(f"the string {_show(text)}", path, "it names a registered object")

    def unexpected(self, value: Any, what: str, path: str, why: str) -> UnsafeModelError:
        """The error for ``value`` where it does not belong (a record's own problem first)."""
        if isinstance(value, dict) and "class_name" in value:
            self._scan_record(value, path)
        return self.unsafe(what, path, why)

    def plain(self, value: Any, path: str, *, strings: bool = True) -> None:
        """A number, bool, null, short string, or a short list of them."""
        items = value if isinstance(value, list) else [value]
        if len(items) > _MAX_LIST:
            raise self.bad(path, f"a list longer than {_MAX_LIST} items, got {len(items)}")
        for item in items:
            if item is None or isinstance(item, bool | int | float):
                continue
            if strings and isinstance(item, str) and len(item) <= _MAX_NAME:
                self.not_registered(item, path)
                continue
            raise self.unexpected(
                item,
                f"a value of type {type(item).__name__}",
                path,
                "only plain numbers and names are allowed here",
            )

    def count_layer(self, path: str) -> None:
        self.plan.layers += 1
        if self.plan.layers > self.max_layers:
            raise ModelFileError(
                f"{self.name}: config.json: more layers than the limit of {self.max_layers} "
                f"(raise max_layers for larger models), got more than {self.max_layers} at {path}"
            )

    def count_node(self, path: str) -> None:
        self.plan.nodes += 1
        if self.plan.nodes > self.max_layers:
            raise ModelFileError(
                f"{self.name}: config.json: more layer calls than the limit of {self.max_layers} "
                f"(raise max_layers for larger models), got more than {self.max_layers} at {path}"
            )

    def add_variables(self, chain: tuple[str, ...], variables: list[_Var], path: str) -> None:
        if chain in self.plan.entries:
            raise self.bad(path, f"two layers named {chain[-1]!r} in one model")
        self.plan.entries[chain] = variables
        self.plan.params += sum(var.size for var in variables)
        if self.plan.params > self.max_params:
            raise ModelFileError(
                f"{self.name}: config.json: the model has more parameters than the limit of "
                f"{self.max_params} (raise max_params for larger models), got more than "
                f"{self.max_params} by {path}"
            )

    # Models -------------------------------------------------------------------------

    def model(
        self,
        node: Any,
        path: str,
        chain: tuple[str, ...],
        trainable: bool,
        inputs: list[Shape] | None,
        recording: bool,
    ) -> tuple[list[Shape], list[Shape], list[_Var]]:
        """Check a model record; return its declared inputs, its outputs and its variables.

        Args:
            node: The record.
            path: Its JSON path.
            chain: The names of the models it is nested in (``()`` at the top).
            trainable: Whether the models it is nested in are trainable.
            inputs: The shapes it is called on (a nested model), or None for its own.
            recording: Add its variables to the plan (False when a nested model is
                inferred again for another call).
        """
        class_name, config = self.record(node, path, _MODEL)
        config_path = _join(path, "config")
        name = self.text(config, "name", config_path)
        if "name" in node and node["name"] != name:
            raise self.bad(path, f"the record's name {node['name']!r} is not its config's {name!r}")
        own = (*chain, name)
        trainable = trainable and self.flag(config, "trainable", config_path, True)
        if "dtype" in config:
            self.policy(config["dtype"], _join(config_path, "dtype"))
        if recording:
            self.add_variables(own, [], path)
        if class_name == "Functional":
            declared, outputs, variables = self.functional(
                config, path, own, trainable, inputs, recording
            )
            build = node.get("build_config")
            if build is not None:
                wanted = declared[0] if len(declared) == 1 else declared
                if not isinstance(build, dict) or set(build) != {"input_shape"}:
                    raise self.unsafe(
                        "a build_config",
                        _join(path, "build_config"),
                        "only {'input_shape': ...} is accepted",
                    )
                value = build["input_shape"]
                if (
                    value is not None
                    and self.shapes_of(value, _join(_join(path, "build_config"), "input_shape"))
                    != wanted
                ):
                    raise self.bad(
                        _join(path, "build_config"),
                        f"the model would be built for {value} but it takes {wanted}",
                    )
        elif class_name == "Sequential":
            declared, outputs, variables = self.sequential(
                node, config, path, own, trainable, inputs, recording
            )
        else:
            declared, outputs, variables = self.lenet(
                node, config, path, own, trainable, inputs, recording
            )
        compile_config = node.get("compile_config")
        if (
            recording
            and compile_config not in (None, {})
            and self.compile_config(compile_config, _join(path, "compile_config"))
        ):
            self.plan.optimizers[own] = [var for var in variables if var.trainable]
        return declared, outputs, variables

    def shapes_of(self, value: Any, path: str) -> Shape | list[Shape]:
        """A shape, or a list of shapes."""
        if isinstance(value, list) and value and all(isinstance(item, list) for item in value):
            if len(value) > 64:
                raise self.bad(path, f"more than 64 input shapes, got {len(value)}")
            return [self.shape_value(item, _join(path, index)) for index, item in enumerate(value)]
        return self.shape_value(value, path)

    def nested_call(
        self,
        layer: dict[str, Any],
        path: str,
        chain: tuple[str, ...],
        trainable: bool,
        calls: list[list[Shape]],
        recording: bool,
    ) -> tuple[list[list[Shape]], list[_Var]]:
        """A model used as a layer: built from its own inputs, then called on ``calls``."""
        declared, outputs, variables = self.model(layer, path, chain, trainable, None, recording)
        per_call = []
        for index, call in enumerate(calls):
            if call == declared:
                per_call.append(outputs)
            else:
                self.compatible(call, declared, _join(path, "inbound_nodes") + f"[{index}]")
                per_call.append(self.model(layer, path, chain, trainable, call, False)[1])
        return per_call, variables

    def functional(
        self,
        config: dict[str, Any],
        path: str,
        chain: tuple[str, ...],
        trainable: bool,
        inputs: list[Shape] | None,
        recording: bool,
    ) -> tuple[list[Shape], list[Shape], list[_Var]]:
        config_path = _join(path, "config")
        self.keys(
            config,
            {"name", "trainable", "layers", "input_layers", "output_layers", "dtype"},
            config_path,
            "Functional",
        )
        layers = config.get("layers")
        layers_path = _join(config_path, "layers")
        if not isinstance(layers, list) or not layers:
            raise self.bad(layers_path, "expected a non-empty list of layers")
        input_refs = self.refs(config.get("input_layers"), _join(config_path, "input_layers"))
        output_refs = self.refs(config.get("output_layers"), _join(config_path, "output_layers"))
        input_names = [ref[0] for ref in input_refs]
        if inputs is not None and len(inputs) != len(input_refs):
            raise self.bad(path, f"called on {len(inputs)} inputs, it has {len(input_refs)}")
        # Layer name -> per call (node) -> output shapes. Keras calls layers in this
        # order, so a reference to a later layer would make it loop over the list.
        produced: dict[str, list[list[Shape]]] = {}
        declared: dict[str, Shape] = {}
        variables: list[_Var] = []
        for index, layer in enumerate(layers):
            layer_path = f"{layers_path}[{index}]"
            if recording:
                self.count_layer(layer_path)
            if not isinstance(layer, dict):
                raise self.bad(layer_path, f"expected a layer record, got {type(layer).__name__}")
            if "class_name" in layer:
                self._scan_record(layer, layer_path)  # before its calls: name the layer first
            if "module" not in layer:
                raise self.unsafe(
                    f"the legacy record {_show(layer.get('class_name'))}",
                    layer_path,
                    "records without a module are looked up by name alone",
                )
            layer_name = layer.get("name")
            if not isinstance(layer_name, str) or layer_name in produced:
                raise self.bad(
                    layer_path, f"a missing or repeated layer name, got {_show(layer_name)}"
                )
            nodes = layer.get("inbound_nodes")
            if not isinstance(nodes, list):
                raise self.bad(_join(layer_path, "inbound_nodes"), "expected a list")
            if layer.get("class_name") == "InputLayer":
                _, layer_config = self.record(layer, layer_path, _LAYER)
                if nodes or layer_config.get("name") != layer_name:
                    raise self.bad(layer_path, "an InputLayer with inbound nodes or another name")
                shape = self.input_layer(layer_config, _join(layer_path, "config"))
                declared[layer_name] = shape
                if inputs is not None and layer_name in input_names:
                    actual = inputs[input_names.index(layer_name)]
                    self.compatible([actual], [shape], layer_path)
                    shape = actual
                produced[layer_name] = [[shape]]
                if recording:
                    self.add_variables((*chain, layer_name), [], layer_path)
                continue
            if not nodes:
                # Keras would still create it, and build it from its build_config.
                raise self.bad(layer_path, f"the layer {layer_name!r} is never called")
            calls: list[tuple[list[Shape], bool]] = []
            for node_index, node in enumerate(nodes):
                node_path = f"{_join(layer_path, 'inbound_nodes')}[{node_index}]"
                if recording:
                    self.count_node(node_path)
                calls.append(self.node_inputs(node, node_path, produced))
            if _category(layer) == _MODEL:
                outputs, layer_vars = self.nested_call(
                    layer, layer_path, chain, trainable, [shapes for shapes, _ in calls], recording
                )
                produced[layer_name] = outputs
                variables.extend(layer_vars)
                continue
            class_name, layer_config = self.record(layer, layer_path, _LAYER)
            if layer_config.get("name") != layer_name:
                raise self.bad(layer_path, f"the record's name {layer_name!r} is not its config's")
            config_of = _join(layer_path, "config")
            first_vars: list[_Var] = []
            outputs_per_call: list[list[Shape]] = []
            for node_index, (shapes, listed) in enumerate(calls):
                output, layer_vars = self.layer(
                    class_name, layer_config, config_of, shapes, listed, trainable
                )
                if node_index == 0:
                    self.build_config(
                        layer.get("build_config"), _join(layer_path, "build_config"), shapes, listed
                    )
                    first_vars = layer_vars
                elif [v.shape for v in layer_vars] != [v.shape for v in first_vars]:
                    raise self.bad(
                        f"{_join(layer_path, 'inbound_nodes')}[{node_index}]",
                        "a shared layer called on inputs of another shape",
                    )
                outputs_per_call.append([output])
            if recording:
                self.add_variables((*chain, layer_name), first_vars, layer_path)
            variables.extend(first_vars)
            produced[layer_name] = outputs_per_call
        for key, refs in (("input_layers", input_refs), ("output_layers", output_refs)):
            for layer_name, node_index, tensor_index in refs:
                if (
                    layer_name not in produced
                    or node_index >= len(produced[layer_name])
                    or tensor_index >= len(produced[layer_name][node_index])
                ):
                    raise self.bad(
                        _join(config_path, key),
                        f"no tensor {[layer_name, node_index, tensor_index]}",
                    )
        if any(name not in declared for name in input_names):
            raise self.bad(
                _join(config_path, "input_layers"), "every model input must be an InputLayer"
            )
        model_outputs = [produced[n][i][t] for n, i, t in output_refs]
        return [declared[name] for name in input_names], model_outputs, variables

    def sequential(
        self,
        node: dict[str, Any],
        config: dict[str, Any],
        path: str,
        chain: tuple[str, ...],
        trainable: bool,
        inputs: list[Shape] | None,
        recording: bool,
    ) -> tuple[list[Shape], list[Shape], list[_Var]]:
        config_path = _join(path, "config")
        self.keys(
            config,
            {"name", "trainable", "layers", "dtype", "build_input_shape"},
            config_path,
            "Sequential",
        )
        layers = config.get("layers")
        layers_path = _join(config_path, "layers")
        if not isinstance(layers, list) or not layers:
            raise self.bad(layers_path, "expected a non-empty list of layers")
        # Keras builds a Sequential model from either of these shapes: they must agree.
        built: Shape | None = None
        build = node.get("build_config")
        if build is not None:
            if not isinstance(build, dict) or set(build) != {"input_shape"}:
                raise self.unsafe(
                    "a build_config",
                    _join(path, "build_config"),
                    "only {'input_shape': ...} is accepted",
                )
            build = build["input_shape"]
        for value, where in (
            (build, _join(_join(path, "build_config"), "input_shape")),
            (config.get("build_input_shape"), _join(config_path, "build_input_shape")),
        ):
            if value is not None:
                shape_here = self.shape_value(value, where)
                if built is not None and shape_here != built:
                    raise self.bad(where, f"input shape {shape_here} is not {built}")
                built = shape_here
        shape: Shape | None = built
        start = 0
        first = layers[0]
        if isinstance(first, dict) and first.get("class_name") == "InputLayer":
            _, first_config = self.record(first, f"{layers_path}[0]", _LAYER)
            shape = self.input_layer(first_config, f"{layers_path}[0].config")
            if recording:
                self.count_layer(f"{layers_path}[0]")
                self.add_variables((*chain, first_config["name"]), [], f"{layers_path}[0]")
            if built is not None and built != shape:
                raise self.bad(
                    _join(path, "build_config"),
                    f"input shape {built} is not the InputLayer's {shape}",
                )
            start = 1
        if shape is None:
            # Keras would build each layer from its own build_config, unchecked.
            raise self.bad(path, "a Sequential model without an input shape (never built)")
        declared = [shape]
        if inputs is not None:
            self.compatible(inputs, declared, path)
            shape = inputs[0]
        variables: list[_Var] = []
        for index in range(start, len(layers)):
            layer = layers[index]
            layer_path = f"{layers_path}[{index}]"
            if recording:
                self.count_layer(layer_path)
                self.count_node(layer_path)
            if isinstance(layer, dict) and _category(layer) == _MODEL:
                outputs, layer_vars = self.nested_call(
                    layer, layer_path, chain, trainable, [[shape]], recording
                )
                if len(outputs[0]) != 1:
                    raise self.bad(layer_path, "a model with several outputs inside a Sequential")
                shape = outputs[0][0]
                variables.extend(layer_vars)
                continue
            class_name, layer_config = self.record(layer, layer_path, _LAYER)
            if class_name == "InputLayer":
                raise self.bad(layer_path, "an InputLayer after the first layer")
            config_of = _join(layer_path, "config")
            output, layer_vars = self.layer(
                class_name, layer_config, config_of, [shape], False, trainable
            )
            self.build_config(
                layer.get("build_config"), _join(layer_path, "build_config"), [shape], False
            )
            if recording:
                self.add_variables((*chain, layer_config["name"]), layer_vars, layer_path)
            variables.extend(layer_vars)
            shape = output
        return declared, [shape], variables

    def lenet(
        self,
        node: dict[str, Any],
        config: dict[str, Any],
        path: str,
        chain: tuple[str, ...],
        trainable: bool,
        inputs: list[Shape] | None,
        recording: bool,
    ) -> tuple[list[Shape], list[Shape], list[_Var]]:
        config_path = _join(path, "config")
        self.keys(config, {"name", "trainable", "dtype", "num_classes"}, config_path, "LeNet")
        classes = self.integer(config, "num_classes", config_path, 10, low=2, high=2**16)
        declared: list[Shape] = [(None, 28, 28, 1)]
        build = node.get("build_config")
        if build is not None and build != {"input_shape": [None, 28, 28, 1]}:
            raise self.bad(
                _join(path, "build_config"), "a LeNet is built for (None, 28, 28, 1) images"
            )
        if inputs is not None:
            self.compatible(inputs, declared, path)
        # The layers LeNet.__init__ creates, in the global dtype policy but for the
        # float32 logits (see lenet_mnist.lenet).
        layout: dict[str, list[tuple[int, ...]]] = {
            "conv1": [(3, 3, 1, 32), (32,)],
            "pool1": [],
            "conv2": [(3, 3, 32, 64), (64,)],
            "pool2": [],
            "flatten": [],
            "fc1": [(1600, 64), (64,)],
            "logits": [(64, classes), (classes,)],
        }
        variables: list[_Var] = []
        for layer_name, shapes in layout.items():
            dtype = "float32" if layer_name == "logits" else self.global_dtype
            layer_vars = [_Var(shape, dtype, trainable) for shape in shapes]
            if recording:
                self.count_layer(_join(path, layer_name))
                self.add_variables((*chain, layer_name), layer_vars, path)
            variables.extend(layer_vars)
        return declared, [(None, classes)], variables

    def compile_config(self, config: Any, path: str) -> bool:
        """Check a compile config; return whether it names an optimizer."""
        if not isinstance(config, dict):
            raise self.bad(path, f"expected an object, got {type(config).__name__}")
        self.keys(
            config,
            {
                "optimizer",
                "loss",
                "loss_weights",
                "metrics",
                "weighted_metrics",
                "run_eagerly",
                "steps_per_execution",
                "jit_compile",
                "auto_scale_loss",
            },
            path,
            "the compile config",
        )
        optimizer = config.get("optimizer")
        if optimizer is not None:
            self.leaf(optimizer, _join(path, "optimizer"), _OPTIMIZER)
        self.nested(config.get("loss"), _join(path, "loss"), _LOSS)
        self.nested(config.get("metrics"), _join(path, "metrics"), _METRIC)
        self.nested(config.get("weighted_metrics"), _join(path, "weighted_metrics"), _METRIC)
        weights = config.get("loss_weights")
        if isinstance(weights, dict) and len(weights) > _MAX_LIST:
            raise self.bad(_join(path, "loss_weights"), f"more than {_MAX_LIST} outputs")
        if isinstance(weights, dict):
            for key, value in weights.items():
                self.plain(value, _join(_join(path, "loss_weights"), key), strings=False)
        else:
            self.plain(weights, _join(path, "loss_weights"), strings=False)
        for key in ("run_eagerly", "steps_per_execution", "jit_compile", "auto_scale_loss"):
            value = config.get(key)
            if isinstance(value, list):
                raise self.bad(_join(path, key), "expected a plain value, got a list")
            self.plain(value, _join(path, key))
        return optimizer is not None

    def nested(self, value: Any, path: str, category: str, depth: int = 0) -> None:
        """Losses or metrics: one, or lists and dicts of them per output."""
        if value is None:
            return
        if isinstance(value, list) and depth < 2:
            if len(value) > _MAX_LIST:
                raise self.bad(path, f"a list longer than {_MAX_LIST} items, got {len(value)}")
            for index, item in enumerate(value):
                self.nested(item, _join(path, index), category, depth + 1)
        elif isinstance(value, dict) and "class_name" not in value and depth < 2:
            if len(value) > _MAX_LIST:
                raise self.bad(path, f"more than {_MAX_LIST} outputs, got {len(value)}")
            for key, item in value.items():
                self.nested(item, _join(path, key), category, depth + 1)
        else:
            self.leaf(value, path, category)

    # Nodes and shapes ---------------------------------------------------------------

    def refs(self, value: Any, path: str) -> list[tuple[str, int, int]]:
        """``input_layers``/``output_layers``: one ``[name, node, tensor]`` or a list or dict of them."""
        if isinstance(value, dict):
            items = list(value.values())
        elif isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
            items = [value]
        elif isinstance(value, list):
            items = value
        else:
            items = None
        if items is None or not 1 <= len(items) <= 64:
            raise self.bad(
                path, f"expected 1 to 64 [layer, node, tensor] references, got {_show(value)}"
            )
        refs = []
        for item in items:
            if not (
                isinstance(item, list)
                and len(item) == 3
                and isinstance(item[0], str)
                and all(
                    isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 1024
                    for i in item[1:]
                )
            ):
                raise self.bad(
                    path, f"expected [layer, node, tensor] references, got {_show(item)}"
                )
            refs.append((item[0], item[1], item[2]))
        return refs

    def node_inputs(
        self, node: Any, path: str, produced: dict[str, list[list[Shape]]]
    ) -> tuple[list[Shape], bool]:
        """One layer call: its input shapes, and whether they came as a list.

        Only tensor references to layers defined earlier, and ``training``/``mask``
        flags, are accepted: anything else would be deserialized and passed to the
        layer by Keras.
        """
        if not isinstance(node, dict) or set(node) != {"args", "kwargs"}:
            raise self.unsafe("a layer call", path, "a call is {'args': [...], 'kwargs': {...}}")
        args, kwargs = node["args"], node["kwargs"]
        if not isinstance(args, list) or len(args) != 1:
            raise self.unsafe(
                "the call arguments", _join(path, "args"), "a layer is called on its inputs only"
            )
        if not isinstance(kwargs, dict):
            raise self.bad(_join(path, "kwargs"), "expected an object")
        for key, value in kwargs.items():
            if (key == "training" and isinstance(value, bool | None)) or (
                key == "mask" and value is None
            ):
                continue
            raise self.unexpected(
                value,
                f"the call argument {key}={_show(value)}",
                _join(_join(path, "kwargs"), key),
                "only training=true/false/null and mask=null are passed to layers",
            )
        first = args[0]
        if isinstance(first, list) and 1 <= len(first) <= 64:
            refs, listed = first, True
        elif isinstance(first, dict) and first.get("class_name") == "__keras_tensor__":
            refs, listed = [first], False
        else:
            raise self.unexpected(
                first,
                "the call argument",
                f"{_join(path, 'args')}[0]",
                "not a tensor reference (__keras_tensor__) or a list of them",
            )
        shapes = [
            self.tensor(
                ref, f"{_join(path, 'args')}[0]" + (f"[{index}]" if listed else ""), produced
            )
            for index, ref in enumerate(refs)
        ]
        return shapes, listed

    def tensor(self, ref: Any, path: str, produced: dict[str, list[list[Shape]]]) -> Shape:
        if not isinstance(ref, dict) or ref.get("class_name") != "__keras_tensor__":
            raise self.unexpected(
                ref, "a call argument", path, "not a tensor reference (__keras_tensor__)"
            )
        config = ref.get("config")
        if not isinstance(config, dict) or set(config) != {"shape", "dtype", "keras_history"}:
            raise self.unsafe(
                "a tensor reference", path, "its config is {shape, dtype, keras_history}"
            )
        self.shape_value(config["shape"], _join(_join(path, "config"), "shape"))
        if config["dtype"] not in _TENSOR_DTYPES:
            raise self.unsafe(
                f"the tensor dtype {_show(config['dtype'])}", path, "not a numeric dtype"
            )
        history = config["keras_history"]
        if not (
            isinstance(history, list)
            and len(history) == 3
            and isinstance(history[0], str)
            and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in history[1:])
        ):
            raise self.bad(
                path, f"expected keras_history [layer, node, tensor], got {_show(history)}"
            )
        layer, node, index = history
        if layer not in produced:
            raise self.bad(path, f"refers to the layer {layer!r}, which is not defined before it")
        if node >= len(produced[layer]) or index >= len(produced[layer][node]):
            raise self.bad(path, f"refers to a tensor {history} that does not exist")
        return produced[layer][node][index]

    def compatible(self, actual: list[Shape], declared: list[Shape], path: str) -> None:
        if len(actual) != len(declared) or any(
            len(a) != len(d)
            or any(x is not None and y is not None and x != y for x, y in zip(a, d, strict=True))
            for a, d in zip(actual, declared, strict=False)
        ):
            raise self.bad(path, f"called on inputs of shape {actual}, it takes {declared}")

    def build_config(self, build: Any, path: str, inputs: list[Shape], listed: bool) -> None:
        """A layer's build_config must describe exactly the inputs it is called on.

        Keras builds the layer from it (allocating its variables) before the call.
        """
        if build is None:
            return
        if not isinstance(build, dict) or set(build) != {"input_shape"}:
            raise self.unsafe("a build_config", path, "only {'input_shape': ...} is accepted")
        value = build["input_shape"]
        got = self.shapes_of(value, _join(path, "input_shape"))
        wanted: Shape | list[Shape] = inputs if listed else inputs[0]
        if got != wanted:
            raise self.bad(
                path, f"Keras would build the layer for {got} but it is called on {wanted}"
            )

    def shape_value(self, value: Any, path: str = "") -> Shape:
        if not isinstance(value, list) or not 1 <= len(value) <= _MAX_RANK:
            raise self.bad(
                path, f"expected a shape (a list of 1 to {_MAX_RANK} sizes), got {_show(value)}"
            )
        for dim in value:
            if dim is not None and (
                isinstance(dim, bool) or not isinstance(dim, int) or not 0 < dim <= _MAX_DIM
            ):
                raise self.bad(path, f"expected sizes from 1 to {_MAX_DIM} or null, got {dim!r}")
        return tuple(value)

    # Values -------------------------------------------------------------------------

    def keys(self, config: dict[str, Any], allowed: set[str], path: str, what: str) -> None:
        extra = sorted(set(config) - allowed)
        if extra:
            raise self.unsafe(
                f"the option {extra[0]!r} of {what}",
                _join(path, extra[0]),
                "not an option this library checks",
            )

    def text(self, config: dict[str, Any], key: str, path: str) -> str:
        value = config.get(key)
        if isinstance(value, str):
            self.not_registered(value, _join(path, key))
        if not isinstance(value, str) or not 0 < len(value) <= _MAX_NAME or "/" in value:
            raise self.bad(
                _join(path, key),
                f"expected a name of 1 to {_MAX_NAME} characters without '/', got {_show(value)}",
            )
        return value

    def flag(self, config: dict[str, Any], key: str, path: str, default: bool) -> bool:
        value = config.get(key, default)
        if not isinstance(value, bool):
            raise self.bad(_join(path, key), f"expected true or false, got {value!r}"[:200])
        return value

    def integer(
        self,
        config: dict[str, Any],
        key: str,
        path: str,
        default: int | None,
        *,
        low: int = 1,
        high: int = _MAX_DIM,
    ) -> int:
        value = config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.bad(
                _join(path, key), f"expected an integer from {low} to {high}, got {value!r}"[:200]
            )
        return value

    def number(
        self, config: dict[str, Any], key: str, path: str, *, optional: bool = False
    ) -> None:
        value = config.get(key)
        if value is None and (optional or key not in config):
            return
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            raise self.bad(_join(path, key), f"expected a finite number, got {value!r}"[:200])

    def choice(
        self, config: dict[str, Any], key: str, path: str, options: set[Any], default: Any
    ) -> Any:
        value = config.get(key, default)
        if value not in options:
            raise self.unsafe(
                f"the option {key}={_show(value)}",
                _join(path, key),
                f"expected one of {sorted(map(str, options))}",
            )
        return value

    def pair(
        self, config: dict[str, Any], key: str, path: str, default: Any, *, low: int = 1
    ) -> tuple[int, int]:
        value = config.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value, value]
        if (
            not isinstance(value, list | tuple)
            or len(value) != 2
            or any(
                isinstance(v, bool) or not isinstance(v, int) or not low <= v <= _MAX_DIM
                for v in value
            )
        ):
            raise self.bad(
                _join(path, key), f"expected one or two integers >= {low}, got {value!r}"[:200]
            )
        return int(value[0]), int(value[1])

    def policy(self, value: Any, path: str) -> str:
        """A dtype policy (record or name); return the dtype of its variables."""
        if value is None:
            return self.global_dtype
        if isinstance(value, dict):
            _, config = self.record(value, path, _POLICY)
            self.keys(config, {"name"}, _join(path, "config"), "a dtype policy")
            value = config.get("name")
        if value not in _POLICY_VARIABLE_DTYPE:
            raise self.unsafe(
                f"the dtype policy {_show(value)}",
                path,
                f"expected one of {sorted(_POLICY_VARIABLE_DTYPE)}",
            )
        return _POLICY_VARIABLE_DTYPE[value]

    def data_format_of(self, config: dict[str, Any], path: str) -> str:
        value = config.get("data_format")
        if value is None:
            return self.data_format
        return str(
            self.choice(config, "data_format", path, {"channels_last", "channels_first"}, None)
        )

    def common(self, config: dict[str, Any], path: str, allowed: set[str], what: str) -> str:
        """The options every layer has; return the dtype of its variables."""
        self.keys(config, allowed | {"name", "trainable", "dtype"}, path, what)
        self.text(config, "name", path)
        self.flag(config, "trainable", path, True)
        for key, value in config.items():
            where = _join(path, key)
            if key == "activation" or key.endswith("_activation"):
                if not isinstance(value, str) or value not in _ACTIVATION_NAMES:
                    raise self.unexpected(
                        value,
                        f"the activation {_show(value)}",
                        where,
                        "not a built-in activation on the allow-list",
                    )
            elif key.endswith("_initializer"):
                self.leaf(value, where, _INITIALIZER)
            elif key.endswith("_regularizer"):
                if value is not None:
                    self.leaf(value, where, _REGULARIZER)
            elif key.endswith("_constraint") and value is not None:
                self.leaf(value, where, _CONSTRAINT)
        return self.policy(config.get("dtype"), _join(path, "dtype"))

    # Layers -------------------------------------------------------------------------

    def input_layer(self, config: dict[str, Any], path: str) -> Shape:
        self.keys(
            config,
            {"batch_shape", "dtype", "sparse", "ragged", "name", "optional"},
            path,
            "InputLayer",
        )
        self.text(config, "name", path)
        for key in ("sparse", "ragged", "optional"):
            if config.get(key, False) is not False:
                raise self.unsafe(
                    f"the option {key}={config[key]!r} of InputLayer",
                    _join(path, key),
                    "only dense, required inputs",
                )
        if config.get("dtype", "float32") not in _TENSOR_DTYPES:
            raise self.unsafe(
                f"the input dtype {_show(config.get('dtype'))}",
                _join(path, "dtype"),
                "not a numeric dtype",
            )
        return self.shape_value(config.get("batch_shape"), _join(path, "batch_shape"))

    def layer(
        self,
        class_name: str,
        config: dict[str, Any],
        path: str,
        inputs: list[Shape],
        listed: bool,
        trainable: bool,
    ) -> tuple[Shape, list[_Var]]:
        """Check one layer's options; return its output shape and its variables."""
        merge = class_name in _MERGE_LAYERS
        if merge != listed or (not merge and len(inputs) != 1):
            raise self.bad(path, f"{class_name} called on {len(inputs)} inputs")
        infer = getattr(self, "_infer_" + _method_name(class_name))
        output, specs, dtype = infer(config, path, inputs if merge else inputs[0])
        trainable = trainable and config.get("trainable", True) is True
        variables = [_Var(shape, dtype, trainable and own) for shape, own in specs]
        for dim in output:
            if dim is not None and not 0 < dim <= _MAX_DIM:
                raise self.bad(path, f"{class_name} would produce an output of shape {output}")
        return output, variables

    # Each _infer_X(config, path, input) -> (output shape, [(variable shape, trainable)], variable dtype)

    def _channels(self, shape: Shape, data_format: str, path: str, rank: int = 4) -> int:
        if len(shape) != rank:
            raise self.bad(path, f"expected a {rank}-D input, got shape {shape}")
        channels = shape[1] if data_format == "channels_first" else shape[-1]
        if channels is None:
            raise self.bad(path, f"the channel count of the input {shape} is unknown")
        return channels

    @staticmethod
    def _spatial(shape: Shape, data_format: str) -> tuple[int | None, int | None]:
        return (shape[2], shape[3]) if data_format == "channels_first" else (shape[1], shape[2])

    @staticmethod
    def _image(
        batch: int | None,
        spatial: tuple[int | None, int | None],
        channels: int | None,
        data_format: str,
    ) -> Shape:
        if data_format == "channels_first":
            return (batch, channels, *spatial)
        return (batch, *spatial, channels)

    def _window(
        self,
        sizes: tuple[int | None, int | None],
        kernel: tuple[int, int],
        strides: tuple[int, int],
        dilation: tuple[int, int],
        padding: str,
        path: str,
        *,
        pooling: bool = False,
    ) -> tuple[int | None, int | None]:
        out: list[int | None] = []
        for size, k, s, d in zip(sizes, kernel, strides, dilation, strict=True):
            if size is None:
                out.append(None)
                continue
            span = d * (k - 1) + 1
            value = (size - 1) // s + 1 if padding == "same" else (size - span) // s + 1
            if value <= 0 or (pooling and padding == "valid" and size < k):
                raise self.bad(path, f"a window of {kernel} does not fit an input of {sizes}")
            out.append(value)
        return out[0], out[1]

    def _conv_common(
        self, config: dict[str, Any], path: str, extra: set[str], what: str
    ) -> tuple[str, str, tuple[int, int], tuple[int, int], tuple[int, int], str, bool]:
        keys = {
            "kernel_size",
            "strides",
            "padding",
            "data_format",
            "dilation_rate",
            "activation",
            "use_bias",
            "bias_initializer",
            "bias_regularizer",
            "activity_regularizer",
            "bias_constraint",
        } | extra
        dtype = self.common(config, path, keys, what)
        kernel = self.pair(config, "kernel_size", path, None)
        strides = self.pair(config, "strides", path, 1)
        dilation = self.pair(config, "dilation_rate", path, 1)
        padding = str(self.choice(config, "padding", path, {"valid", "same"}, "valid"))
        data_format = self.data_format_of(config, path)
        use_bias = self.flag(config, "use_bias", path, True)
        if max(strides) > 1 and max(dilation) > 1:
            raise self.bad(path, "strides and dilation_rate cannot both exceed 1")
        return dtype, data_format, kernel, strides, dilation, padding, use_bias

    def _infer_conv2_d(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        dtype, fmt, kernel, strides, dilation, padding, use_bias = self._conv_common(
            config,
            path,
            {"filters", "groups", "kernel_initializer", "kernel_regularizer", "kernel_constraint"},
            "Conv2D",
        )
        filters = self.integer(config, "filters", path, None, high=2**16)
        groups = self.integer(config, "groups", path, 1, high=2**16)
        channels = self._channels(shape, fmt, path)
        if channels % groups or filters % groups:
            raise self.bad(
                path,
                f"{groups} groups do not divide {channels} input channels and {filters} filters",
            )
        spatial = self._window(self._spatial(shape, fmt), kernel, strides, dilation, padding, path)
        specs = [((*kernel, channels // groups, filters), True)] + (
            [((filters,), True)] if use_bias else []
        )
        return self._image(shape[0], spatial, filters, fmt), specs, dtype

    def _infer_depthwise_conv2_d(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        dtype, fmt, kernel, strides, dilation, padding, use_bias = self._conv_common(
            config,
            path,
            {
                "depth_multiplier",
                "depthwise_initializer",
                "depthwise_regularizer",
                "depthwise_constraint",
            },
            "DepthwiseConv2D",
        )
        multiplier = self.integer(config, "depth_multiplier", path, 1, high=2**16)
        channels = self._channels(shape, fmt, path)
        spatial = self._window(self._spatial(shape, fmt), kernel, strides, dilation, padding, path)
        out = channels * multiplier
        specs = [((*kernel, channels, multiplier), True)] + ([((out,), True)] if use_bias else [])
        return self._image(shape[0], spatial, out, fmt), specs, dtype

    def _infer_separable_conv2_d(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        dtype, fmt, kernel, strides, dilation, padding, use_bias = self._conv_common(
            config,
            path,
            {
                "filters",
                "depth_multiplier",
                "depthwise_initializer",
                "depthwise_regularizer",
                "depthwise_constraint",
                "pointwise_initializer",
                "pointwise_regularizer",
                "pointwise_constraint",
            },
            "SeparableConv2D",
        )
        filters = self.integer(config, "filters", path, None, high=2**16)
        multiplier = self.integer(config, "depth_multiplier", path, 1, high=2**16)
        channels = self._channels(shape, fmt, path)
        spatial = self._window(self._spatial(shape, fmt), kernel, strides, dilation, padding, path)
        specs: list[tuple[tuple[int, ...], bool]] = [
            ((*kernel, channels, multiplier), True),
            ((1, 1, channels * multiplier, filters), True),
        ]
        specs += [((filters,), True)] if use_bias else []
        return self._image(shape[0], spatial, filters, fmt), specs, dtype

    def _infer_dense(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        dtype = self.common(
            config,
            path,
            {
                "units",
                "activation",
                "use_bias",
                "kernel_initializer",
                "bias_initializer",
                "kernel_regularizer",
                "bias_regularizer",
                "activity_regularizer",
                "kernel_constraint",
                "bias_constraint",
                "quantization_config",
            },
            "Dense",
        )
        if config.get("quantization_config") is not None:
            raise self.unsafe(
                "a quantized Dense layer",
                _join(path, "quantization_config"),
                "quantization is not on the allow-list",
            )
        units = self.integer(config, "units", path, None)
        use_bias = self.flag(config, "use_bias", path, True)
        if len(shape) < 2 or shape[-1] is None:
            raise self.bad(path, f"Dense needs an input whose last size is known, got {shape}")
        specs = [((shape[-1], units), True)] + ([((units,), True)] if use_bias else [])
        return (*shape[:-1], units), specs, dtype

    def _pooling(self, config: dict[str, Any], path: str, shape: Shape, what: str) -> Any:
        dtype = self.common(config, path, {"pool_size", "strides", "padding", "data_format"}, what)
        pool = self.pair(config, "pool_size", path, 2)
        strides = (
            pool if config.get("strides") is None else self.pair(config, "strides", path, None)
        )
        padding = str(self.choice(config, "padding", path, {"valid", "same"}, "valid"))
        fmt = self.data_format_of(config, path)
        channels = self._channels(shape, fmt, path)
        spatial = self._window(
            self._spatial(shape, fmt), pool, strides, (1, 1), padding, path, pooling=True
        )
        return self._image(shape[0], spatial, channels, fmt), [], dtype

    def _infer_max_pooling2_d(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        return self._pooling(config, path, shape, "MaxPooling2D")

    def _infer_average_pooling2_d(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        return self._pooling(config, path, shape, "AveragePooling2D")

    def _global_pooling(self, config: dict[str, Any], path: str, shape: Shape, what: str) -> Any:
        dtype = self.common(config, path, {"data_format", "keepdims"}, what)
        fmt = self.data_format_of(config, path)
        channels = self._channels(shape, fmt, path)
        if self.flag(config, "keepdims", path, False):
            return self._image(shape[0], (1, 1), channels, fmt), [], dtype
        return (shape[0], channels), [], dtype

    def _infer_global_average_pooling2_d(
        self, config: dict[str, Any], path: str, shape: Shape
    ) -> Any:
        return self._global_pooling(config, path, shape, "GlobalAveragePooling2D")

    def _infer_global_max_pooling2_d(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        return self._global_pooling(config, path, shape, "GlobalMaxPooling2D")

    def _infer_flatten(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        dtype = self.common(config, path, {"data_format"}, "Flatten")
        self.data_format_of(config, path)
        rest = [dim for dim in shape[1:] if dim is not None]
        size = math.prod(rest) if len(rest) == len(shape) - 1 else None
        return (shape[0], size), [], dtype

    def _infer_reshape(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        dtype = self.common(config, path, {"target_shape"}, "Reshape")
        target = config.get("target_shape")
        if (
            not isinstance(target, list | tuple)
            or not 1 <= len(target) < _MAX_RANK
            or any(
                isinstance(d, bool) or not isinstance(d, int) or not (d == -1 or 0 < d <= _MAX_DIM)
                for d in target
            )
            or list(target).count(-1) > 1
        ):
            raise self.bad(
                _join(path, "target_shape"),
                f"expected a list of sizes (one may be -1), got {_show(target)}",
            )
        known = math.prod([d for d in target if d != -1])
        rest = [dim for dim in shape[1:] if dim is not None]
        if len(rest) != len(shape) - 1:
            out = tuple(None if d == -1 else d for d in target)
        else:
            total = math.prod(rest)
            if -1 in target:
                if total % known:
                    raise self.bad(path, f"cannot reshape {shape} to {target}")
                out = tuple(total // known if d == -1 else d for d in target)
            elif known != total:
                raise self.bad(path, f"cannot reshape {shape} to {target}")
            else:
                out = tuple(target)
        return (shape[0], *out), [], dtype

    def _infer_dropout(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        dtype = self.common(config, path, {"rate", "seed", "noise_shape"}, "Dropout")
        self._rate(config, path)
        noise = config.get("noise_shape")
        if noise is not None and (
            not isinstance(noise, list)
            or len(noise) != len(shape)
            or any(
                d is not None and (isinstance(d, bool) or not isinstance(d, int) or d < 1)
                for d in noise
            )
        ):
            raise self.bad(
                _join(path, "noise_shape"),
                f"expected a shape like the input's, got {_show(noise)}",
            )
        return shape, [], dtype

    def _rate(self, config: dict[str, Any], path: str) -> None:
        rate = config.get("rate")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate < 1:
            raise self.bad(_join(path, "rate"), f"expected a rate in [0, 1), got {rate!r}"[:200])
        seed = config.get("seed")
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int) or abs(seed) > 2**63
        ):
            raise self.bad(
                _join(path, "seed"), f"expected an integer seed or null, got {seed!r}"[:200]
            )

    def _infer_spatial_dropout2_d(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        dtype = self.common(config, path, {"rate", "seed", "data_format"}, "SpatialDropout2D")
        self._rate(config, path)
        self._channels(shape, self.data_format_of(config, path), path)
        return shape, [], dtype

    def _axis(self, shape: Shape, axis: Any, path: str) -> int:
        if (
            isinstance(axis, bool)
            or not isinstance(axis, int)
            or not -len(shape) <= axis < len(shape)
            or axis % len(shape) == 0
        ):
            raise self.bad(
                path, f"expected a feature axis of the {len(shape)}-D input, got {axis!r}"[:200]
            )
        return axis % len(shape)

    def _infer_batch_normalization(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        dtype = self.common(
            config,
            path,
            {
                "axis",
                "momentum",
                "epsilon",
                "center",
                "scale",
                "beta_initializer",
                "gamma_initializer",
                "moving_mean_initializer",
                "moving_variance_initializer",
                "beta_regularizer",
                "gamma_regularizer",
                "beta_constraint",
                "gamma_constraint",
                "synchronized",
                "renorm",
                "renorm_clipping",
                "renorm_momentum",
            },
            "BatchNormalization",
        )
        for key in ("momentum", "epsilon", "renorm_momentum"):
            self.number(config, key, path)
        self.flag(config, "synchronized", path, False)
        if config.get("renorm", False) is not False or config.get("renorm_clipping") is not None:
            raise self.unsafe(
                "batch renormalization",
                _join(path, "renorm"),
                "renorm adds variables this library does not check",
            )
        axis = self._axis(shape, config.get("axis", -1), _join(path, "axis"))
        channels = shape[axis]
        if channels is None:
            raise self.bad(path, f"the normalized axis of {shape} has an unknown size")
        specs = []
        if self.flag(config, "scale", path, True):
            specs.append(((channels,), True))
        if self.flag(config, "center", path, True):
            specs.append(((channels,), True))
        specs += [((channels,), False), ((channels,), False)]
        return shape, specs, dtype

    def _infer_fused_batch_norm(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        dtype = self.common(config, path, {"momentum", "epsilon"}, "FusedBatchNorm")
        for key in ("momentum", "epsilon"):
            self.number(config, key, path)
        channels = self._channels(shape, "channels_last", path)
        return (
            shape,
            [((channels,), True), ((channels,), True), ((channels,), False), ((channels,), False)],
            dtype,
        )

    def _infer_layer_normalization(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        dtype = self.common(
            config,
            path,
            {
                "axis",
                "epsilon",
                "center",
                "scale",
                "rms_scaling",
                "beta_initializer",
                "gamma_initializer",
                "beta_regularizer",
                "gamma_regularizer",
                "beta_constraint",
                "gamma_constraint",
            },
            "LayerNormalization",
        )
        self.number(config, "epsilon", path)
        if config.get("rms_scaling", False) is not False:
            raise self.unsafe("rms_scaling=True", _join(path, "rms_scaling"), "deprecated by Keras")
        axis = config.get("axis", -1)
        axes = axis if isinstance(axis, list) else [axis]
        if not 1 <= len(axes) <= _MAX_RANK:
            raise self.bad(
                _join(path, "axis"), f"expected 1 to {_MAX_RANK} axes, got {_show(axis)}"
            )
        resolved = sorted(self._axis(shape, item, _join(path, "axis")) for item in axes)
        param = tuple(shape[a] for a in resolved)
        if any(dim is None for dim in param) or len(set(resolved)) != len(resolved):
            raise self.bad(
                path, f"the normalized axes {axis} of {shape} are repeated or of unknown size"
            )
        specs = []
        if self.flag(config, "scale", path, True):
            specs.append((param, True))
        if self.flag(config, "center", path, True):
            specs.append((param, True))
        return shape, specs, dtype

    def _infer_activation(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        if "activation" not in config:
            raise self.bad(path, "an Activation layer without an activation")
        return shape, [], self.common(config, path, {"activation"}, "Activation")

    def _infer_re_lu(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        dtype = self.common(config, path, {"max_value", "negative_slope", "threshold"}, "ReLU")
        self.number(config, "max_value", path, optional=True)
        self.number(config, "negative_slope", path)
        self.number(config, "threshold", path)
        return shape, [], dtype

    def _infer_leaky_re_lu(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        dtype = self.common(config, path, {"negative_slope"}, "LeakyReLU")
        self.number(config, "negative_slope", path)
        return shape, [], dtype

    def _infer_elu(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        dtype = self.common(config, path, {"alpha"}, "ELU")
        self.number(config, "alpha", path)
        return shape, [], dtype

    def _infer_softmax(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        dtype = self.common(config, path, {"axis"}, "Softmax")
        axis = config.get("axis", -1)
        for item in axis if isinstance(axis, list) else [axis]:
            self._axis(shape, item, _join(path, "axis"))
        return shape, [], dtype

    def _infer_identity(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        return shape, [], self.common(config, path, set(), "Identity")

    def _infer_rescaling(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        dtype = self.common(config, path, {"scale", "offset"}, "Rescaling")
        self.number(config, "scale", path)
        self.number(config, "offset", path)
        return shape, [], dtype

    def _padding_pairs(
        self, config: dict[str, Any], key: str, path: str, default: Any
    ) -> tuple[tuple[int, int], tuple[int, int]]:
        value = config.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool):
            value = [[value, value], [value, value]]
        elif (
            isinstance(value, list | tuple)
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            value = [[value[0], value[0]], [value[1], value[1]]]
        if (
            not isinstance(value, list | tuple)
            or len(value) != 2
            or any(
                not isinstance(p, list | tuple)
                or len(p) != 2
                or any(
                    isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 2**16 for v in p
                )
                for p in value
            )
        ):
            raise self.bad(_join(path, key), f"expected padding sizes, got {_show(value)}")
        return (int(value[0][0]), int(value[0][1])), (int(value[1][0]), int(value[1][1]))

    def _infer_zero_padding2_d(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        dtype = self.common(config, path, {"padding", "data_format"}, "ZeroPadding2D")
        pads = self._padding_pairs(config, "padding", path, 1)
        fmt = self.data_format_of(config, path)
        channels = self._channels(shape, fmt, path)
        rows, cols = self._spatial(shape, fmt)
        spatial = tuple(
            None if n is None else n + sum(p) for n, p in zip((rows, cols), pads, strict=True)
        )
        return self._image(shape[0], (spatial[0], spatial[1]), channels, fmt), [], dtype

    def _infer_cropping2_d(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        dtype = self.common(config, path, {"cropping", "data_format"}, "Cropping2D")
        crops = self._padding_pairs(config, "cropping", path, 0)
        fmt = self.data_format_of(config, path)
        channels = self._channels(shape, fmt, path)
        rows, cols = self._spatial(shape, fmt)
        spatial = tuple(
            None if n is None else n - sum(c) for n, c in zip((rows, cols), crops, strict=True)
        )
        if any(n is not None and n <= 0 for n in spatial):
            raise self.bad(path, f"cropping {crops} leaves nothing of {shape}")
        return self._image(shape[0], (spatial[0], spatial[1]), channels, fmt), [], dtype

    def _infer_up_sampling2_d(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        dtype = self.common(config, path, {"size", "data_format", "interpolation"}, "UpSampling2D")
        size = self.pair(config, "size", path, 2)
        self.choice(
            config,
            "interpolation",
            path,
            {"nearest", "bilinear", "bicubic", "lanczos3", "lanczos5", "area"},
            "nearest",
        )
        fmt = self.data_format_of(config, path)
        channels = self._channels(shape, fmt, path)
        rows, cols = self._spatial(shape, fmt)
        spatial = tuple(
            None if n is None else n * s for n, s in zip((rows, cols), size, strict=True)
        )
        return self._image(shape[0], (spatial[0], spatial[1]), channels, fmt), [], dtype

    def _infer_permute(self, config: dict[str, Any], path: str, shape: Shape) -> Any:
        dtype = self.common(config, path, {"dims"}, "Permute")
        dims = config.get("dims")
        if not isinstance(dims, list) or sorted(dims) != list(range(1, len(shape))):
            raise self.bad(
                _join(path, "dims"),
                f"expected a permutation of 1..{len(shape) - 1}, got {_show(dims)}",
            )
        return (shape[0], *(shape[d] for d in dims)), [], dtype

    def _merge(self, config: dict[str, Any], path: str, shapes: list[Shape], what: str) -> Any:
        dtype = self.common(config, path, set(), what)
        if not 2 <= len(shapes) <= 64 or len({len(s) for s in shapes}) != 1:
            raise self.bad(path, f"{what} needs 2 to 64 inputs of one rank, got {shapes}")
        out: list[int | None] = []
        for dims in zip(*shapes, strict=True):
            known = {d for d in dims if d is not None and d != 1}
            if len(known) > 1:
                raise self.bad(path, f"{what} cannot combine shapes {shapes}")
            out.append(None if None in dims else max(dims, key=lambda d: d or 0))
        return tuple(out), [], dtype

    def _infer_add(self, config: dict[str, Any], path: str, shapes: list[Shape]) -> Any:
        return self._merge(config, path, shapes, "Add")

    def _infer_subtract(self, config: dict[str, Any], path: str, shapes: list[Shape]) -> Any:
        if len(shapes) != 2:
            raise self.bad(path, f"Subtract needs exactly 2 inputs, got {len(shapes)}")
        return self._merge(config, path, shapes, "Subtract")

    def _infer_multiply(self, config: dict[str, Any], path: str, shapes: list[Shape]) -> Any:
        return self._merge(config, path, shapes, "Multiply")

    def _infer_average(self, config: dict[str, Any], path: str, shapes: list[Shape]) -> Any:
        return self._merge(config, path, shapes, "Average")

    def _infer_maximum(self, config: dict[str, Any], path: str, shapes: list[Shape]) -> Any:
        return self._merge(config, path, shapes, "Maximum")

    def _infer_minimum(self, config: dict[str, Any], path: str, shapes: list[Shape]) -> Any:
        return self._merge(config, path, shapes, "Minimum")

    def _infer_concatenate(self, config: dict[str, Any], path: str, shapes: list[Shape]) -> Any:
        dtype = self.common(config, path, {"axis"}, "Concatenate")
        if not 1 <= len(shapes) <= 64 or len({len(s) for s in shapes}) != 1:
            raise self.bad(path, f"Concatenate needs 1 to 64 inputs of one rank, got {shapes}")
        axis = self._axis(shapes[0], config.get("axis", -1), _join(path, "axis"))
        out: list[int | None] = []
        for index, dims in enumerate(zip(*shapes, strict=True)):
            if index == axis:
                out.append(None if None in dims else sum(d for d in dims if d is not None))
            else:
                known = {d for d in dims if d is not None}
                if len(known) > 1:
                    raise self.bad(path, f"Concatenate cannot join shapes {shapes} on axis {axis}")
                out.append(
                    known.pop() if known and None not in dims else (known.pop() if known else None)
                )
        return tuple(out), [], dtype


# --- the weights file ------------------------------------------------------------------

_H5_DTYPES: Final = {
    "float16": np.dtype("<f2"),
    "float32": np.dtype("<f4"),
    "float64": np.dtype("<f8"),
    "int64": np.dtype("<i8"),
}
_MAX_ATTRIBUTE_BYTES: Final = 1024
#: Most slots per trainable variable an optimizer may keep (Adam with amsgrad keeps 3;
#: EMA and gradient accumulation add one each).
_MAX_SLOTS: Final = 6
_MAX_OPTIMIZER_SCALARS: Final = 8  # a LossScaleOptimizer saves its inner one's twice


@dataclass(frozen=True)
class _Found:
    path: str
    shape: tuple[int, ...]
    dtype: str


def _h5_dtype(dataset: h5py.Dataset) -> str | None:
    """The Keras dtype a dataset holds, or None if it is not one Keras writes."""
    if dataset.dtype == np.dtype("V2") and set(dataset.attrs) == {"dtype"}:
        return "bfloat16" if _small_attribute(dataset, "dtype") == "bfloat16" else None
    if set(dataset.attrs):
        return None
    for name, dtype in _H5_DTYPES.items():
        if dataset.dtype == dtype:
            return name
    return None


def _small_attribute(obj: h5py.Group | h5py.Dataset, key: str) -> Any:
    """An attribute's value, read only once its stored size is known to be small."""
    attribute = h5py.h5a.open(obj.id, key.encode())
    if attribute.get_storage_size() > _MAX_ATTRIBUTE_BYTES:
        return None
    value = obj.attrs[key]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else None


class _WeightsWalk:
    """Everything a weights file holds, once each part is known to be of a kind Keras writes."""

    def __init__(self, name: str, max_objects: int) -> None:
        self.name = name
        self.max_objects = max_objects
        self.objects = 0
        self.entries: dict[tuple[str, ...], list[_Found]] = {}
        self.optimizers: dict[tuple[str, ...], list[_Found]] = {}

    def unsafe(self, path: str, why: str) -> UnsafeModelError:
        return UnsafeModelError(
            f"{self.name}: refusing to load model.weights.h5: {why}; "
            f"pass safe_mode=False only for files you trust, got it at /{path}"
        )

    def bad(self, path: str, why: str) -> ModelFileError:
        return ModelFileError(f"{self.name}: model.weights.h5: {why}, got it at /{path}")

    def children(
        self, group: h5py.Group, path: str, attributes: frozenset[str] = frozenset()
    ) -> Iterator[tuple[str, str, Any]]:
        """(name, path, object) of a group's members, refusing links that are not plain hard links.

        ``attributes``: the names of the attributes the group may have.
        """
        self.objects += len(group)
        if self.objects > self.max_objects:
            raise self.bad(path, f"more than {self.max_objects} objects for a model of this size")
        if len(group.attrs) > len(attributes) or not set(group.attrs) <= attributes:
            raise self.unsafe(path, "attributes Keras never writes")
        for key in group:
            child = f"{path}/{key}" if path else key
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.SoftLink | h5py.ExternalLink) or not isinstance(
                link, h5py.HardLink
            ):
                raise self.unsafe(
                    child, f"a {type(link).__name__} (links may point outside the file)"
                )
            kind = group.get(key, getclass=True)
            if kind not in (h5py.Group, h5py.Dataset):
                raise self.unsafe(child, f"a {getattr(kind, '__name__', kind)} object")
            yield key, child, group[key]

    def dataset(self, dataset: h5py.Dataset, path: str) -> _Found:
        if dataset.is_virtual:
            raise self.unsafe(path, "a virtual dataset (it reads other files)")
        if dataset.external:
            raise self.unsafe(path, "a dataset with external storage (it reads other files)")
        plist = dataset.id.get_create_plist()
        if plist.get_nfilters():
            raise self.unsafe(path, "a filtered (compressed) dataset; Keras never writes one")
        if plist.get_layout() not in (h5py.h5d.CONTIGUOUS, h5py.h5d.COMPACT):
            raise self.unsafe(path, "a chunked or virtual dataset layout; Keras never writes one")
        shape = dataset.shape
        if shape is None or dataset.maxshape != shape:
            raise self.bad(path, "a dataset without a fixed shape")
        dtype = _h5_dtype(dataset)
        if dtype is None:
            raise self.bad(path, f"a dataset of dtype {dataset.dtype}, not one Keras writes")
        # Declared elements must be stored: a huge shape over a tiny file is refused
        # later by its shape, this catches data that would come from fill values.
        if dataset.id.get_storage_size() != math.prod(shape) * dataset.dtype.itemsize:
            raise self.bad(path, "a dataset whose data is not all in the file")
        return _Found(path, tuple(int(d) for d in shape), dtype)

    def group(
        self,
        group: h5py.Group,
        path: str,
        chain: tuple[str, ...],
        depth: int,
        optimizer_of: tuple[str, ...] | None,
    ) -> None:
        if depth > 32:
            raise self.bad(path, "groups nested deeper than 32 levels")
        members = list(self.children(group, path))
        by_name = {key: obj for key, _, obj in members}
        own = by_name.get("vars")
        if own is not None:
            if not isinstance(own, h5py.Group):
                raise self.bad(path, "a 'vars' that is not a group")
            label = _small_attribute(own, "name") if "name" in own.attrs else None
            if not isinstance(label, str) or not label:
                raise self.bad(f"{path}/vars" if path else "vars", "a 'vars' group without a name")
            chain = chain if optimizer_of is not None else (*chain, label)
        for key, child, obj in members:
            if key == "vars":
                datasets = {
                    index: (where, item)
                    for index, where, item in self.children(obj, child, frozenset({"name"}))
                }
                if set(datasets) != {str(index) for index in range(len(datasets))} or not all(
                    isinstance(item, h5py.Dataset) for _, item in datasets.values()
                ):
                    raise self.bad(child, f"variables not numbered 0 to {len(datasets) - 1}")
                found = [
                    self.dataset(datasets[str(index)][1], datasets[str(index)][0])
                    for index in range(len(datasets))
                ]
                if optimizer_of is not None:
                    # A LossScaleOptimizer keeps its own scalars, its inner optimizer the rest.
                    self.optimizers.setdefault(optimizer_of, []).extend(found)
                elif chain in self.entries:
                    raise self.bad(child, f"the variables of {'/'.join(chain)!r} twice")
                else:
                    self.entries[chain] = found
            elif isinstance(obj, h5py.Dataset):
                raise self.bad(child, "a dataset outside a 'vars' group")
            elif key == "optimizer" and optimizer_of is None:
                self.group(obj, child, chain, depth + 1, chain)
            elif optimizer_of is not None and (
                key != "inner_optimizer" or path.rsplit("/", 1)[-1] != "optimizer"
            ):
                raise self.bad(child, "a group in optimizer state that Keras never writes")
            else:
                self.group(obj, child, chain, depth + 1, optimizer_of)


def _check_weights(name: str, raw: bytes, plan: _Plan) -> None:
    """The weights file holds exactly the planned variables and consistent optimizer state."""
    walk = _WeightsWalk(name, max_objects=8 * (plan.layers + plan.nodes) + 64)
    try:
        with h5py.File(io.BytesIO(raw), "r") as h5:
            if len(h5.attrs):
                raise walk.unsafe("", "attributes Keras never writes")
            walk.group(h5, "", (), 0, None)
    except ModelFileError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise ModelFileError(
            f"{name}: model.weights.h5 is not a readable HDF5 file ({_one_line(error)})"
        ) from None
    for chain, found in walk.entries.items():
        if chain not in plan.entries:
            path = found[0].path if found else "/".join(chain)
            raise walk.bad(
                path, f"variables for {'/'.join(chain)!r}, which the config does not have"
            )
    for chain, expected in plan.entries.items():
        found = walk.entries.get(chain, [])
        got = [(f.shape, f.dtype) for f in found]
        want = [(v.shape, v.dtype) for v in expected]
        if got != want:
            where = found[0].path if found else "/".join(chain)
            raise walk.bad(
                where,
                f"the layer {'/'.join(chain[1:]) or chain[0]!r} must hold variables "
                f"{_shapes(want)} as its config says, it holds {_shapes(got)}",
            )
    total = sum(math.prod(f.shape) for found in walk.entries.values() for f in found)
    if total != plan.params:
        raise walk.bad("", f"{total} parameters where the config has {plan.params}")
    for chain, found in walk.optimizers.items():
        if chain not in plan.optimizers:
            raise walk.bad(
                found[0].path if found else "optimizer",
                "optimizer state for a model compiled without an optimizer",
            )
        _check_optimizer(walk, chain, found, plan.optimizers[chain])


def _check_optimizer(
    walk: _WeightsWalk, chain: tuple[str, ...], found: list[_Found], trainable: list[_Var]
) -> None:
    """Optimizer slots are copies of the trainable variables (k per variable), plus a few scalars."""
    scalars = [f for f in found if f.shape == ()]
    slots = Counter((f.shape, f.dtype) for f in found if f.shape != ())
    where = found[0].path if found else "optimizer"
    if len(scalars) > _MAX_OPTIMIZER_SCALARS or any(
        f.dtype not in ("int64", "float32") for f in scalars
    ):
        raise walk.bad(
            where,
            f"{len(scalars)} scalar optimizer variables, at most {_MAX_OPTIMIZER_SCALARS} are expected",
        )
    reference = Counter((v.shape, v.dtype) for v in trainable)
    total = sum(slots.values())
    per = len(trainable)
    copies = total // per if per else 0
    if (
        (per == 0 and total)
        or (per and (total % per or copies > _MAX_SLOTS))
        or slots != Counter({key: count * copies for key, count in reference.items()})
    ):
        raise walk.bad(
            where,
            f"optimizer state of {'/'.join(chain)!r} does not match its {per} trainable variables "
            f"(each must have the same number of slots of its own shape)",
        )


def _shapes(items: list[tuple[tuple[int, ...], str]]) -> str:
    return "[" + ", ".join(f"{dtype}{list(shape)}" for shape, dtype in items) + "]"


# --- putting it together ---------------------------------------------------------------


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _root_cause(error: BaseException) -> BaseException:
    """The innermost exception of a chain: Keras wraps errors in long messages of the whole config."""
    seen = {id(error)}
    while True:
        inner = error.__cause__ or error.__context__
        if inner is None or id(inner) in seen:
            return error
        seen.add(id(inner))
        error = inner


def _check_metadata(name: str, raw: bytes, max_depth: int) -> None:
    metadata = _parse_json(name, "metadata.json", raw, max_depth)
    if not isinstance(metadata, dict) or any(
        not isinstance(value, str | int | float | bool | None) for value in metadata.values()
    ):
        raise ModelFileError(
            f"{name}: metadata.json must be an object of plain values, got {type(metadata).__name__}"
        )


def _plan(name: str, config: Any, *, max_layers: int, max_params: int) -> _Plan:
    checker = _Checker(
        name,
        max_layers=max_layers,
        max_params=max_params,
        custom_names=frozenset(keras.saving.get_custom_objects()),
    )
    if not isinstance(config, dict):
        raise ModelFileError(
            f"{name}: config.json: expected a model record, got {type(config).__name__}"
        )
    checker.keys(
        config,
        {"module", "class_name", "config", "registered_name", "build_config", "compile_config"},
        "",
        "the model record",
    )
    checker.model(config, "", (), True, None, True)
    # Every position was checked above; a last pass over the whole tree (now known to
    # be of bounded size) refuses any record or registered name found anywhere.
    checker.scan(config)
    return checker.plan


#: What Keras (or TensorFlow, h5py, zipfile below it) raises for a bad file. Anything
#: else (AttributeError, NameError, AssertionError ...) is a bug and is not hidden.
_LOAD_ERRORS: Final = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    OSError,
    EOFError,
    RecursionError,
    MemoryError,
    ImportError,
    NotImplementedError,
    ArithmeticError,
    zipfile.BadZipFile,
    struct.error,
    tf.errors.OpError,
)


def _build_with_keras(
    name: str, write: Callable[[BinaryIO], object], safe_mode: bool
) -> keras.Model:
    """Build the model from the archive ``write`` writes, without Keras opening the caller's path.

    Keras 3's public ``keras.saving.load_model`` takes only a path ending in
    ``.keras``. Rebuilding through ``deserialize_keras_object`` and loading the weights
    ourselves would need Keras's private layout of the weights file, so the archive is
    written to a fresh private directory (``mkdtemp``: mode 0700, a new name no one
    else can know in advance or write to) as ``model.keras`` and loaded from there: the
    bytes Keras reads are the bytes checked, whatever happens to the caller's file
    meanwhile. Keras's own weights extraction, when memory is short, goes into the
    same directory; it is removed afterwards, loaded or not. Nothing is ever written
    next to the caller's file. ``write`` drops its bytes once written, so they are not
    held in memory twice while Keras reads them.
    """
    with tempfile.TemporaryDirectory(prefix="lenet-mnist-model-") as private:
        copy = Path(private) / "model.keras"
        fd = os.open(
            copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600
        )
        with os.fdopen(fd, "wb") as out:
            write(out)
        try:
            model = keras.saving.load_model(copy, safe_mode=safe_mode)
        except _LOAD_ERRORS as error:
            cause = _root_cause(error)
            raise ModelFileError(
                f"{name}: cannot load the model: {type(cause).__name__}: {_one_line(cause)}"
            ) from error
    if not isinstance(model, keras.Model):
        raise ModelFileError(f"{name}: the file holds no Keras model, got {type(model).__name__}")
    return model


def _repack(members: dict[str, bytes], out: BinaryIO) -> None:
    """Write the verified members as a fresh, stored zip archive in Keras's member order.

    Each member is dropped from ``members`` once written.
    """
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for member in MEMBERS:
            info = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, members.pop(member))


def load_keras_file(
    path: str | os.PathLike[str],
    *,
    safe_mode: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_config_bytes: int = DEFAULT_MAX_CONFIG_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_layers: int = DEFAULT_MAX_LAYERS,
    max_params: int = DEFAULT_MAX_PARAMS,
) -> keras.Model:
    """Read, check and load a ``.keras`` file (see the module docstring for the steps).

    Arguments are checked by the caller (:func:`lenet_mnist.load_model`).
    With ``safe_mode=False`` the file is still read once and bounded by ``max_bytes``,
    and loaded from a private copy, but neither its structure nor its config is checked.

    Raises:
        FileNotFoundError: No file at ``path``.
        IsADirectoryError: ``path`` is a directory.
        ModelFileError: Not a ``.keras`` file, over a limit, inconsistent, or Keras
            cannot build it.
        UnsafeModelError: Something outside the allow-list (with ``safe_mode``).
    """
    name, data = _read_once(path, max_bytes)
    if not safe_mode:
        read = [data]
        del data
        return _build_with_keras(name, lambda out: out.write(read.pop()), safe_mode=False)
    members = _read_members(name, data, max_bytes, max_config_bytes)
    del data
    _check_metadata(name, members["metadata.json"], max_depth)
    config = _parse_json(name, "config.json", members["config.json"], max_depth)
    plan = _plan(name, config, max_layers=max_layers, max_params=max_params)
    _check_weights(name, members["model.weights.h5"], plan)
    return _build_with_keras(name, lambda out: _repack(members, out), safe_mode=True)
