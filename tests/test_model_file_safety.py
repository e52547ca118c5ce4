"""Model files from strangers (issue 13): refused in one line, quickly, in bounded memory.

Every attack class of the issue has a builder in ``_hostile_models`` that writes its
file from scratch (zipfile, json, h5py). Each is refused with the library's error, in
under 2 s, without the file or its directory changing and without anything written;
the memory-heavy ones are also measured in a fresh process (peak RSS under 256 MiB
above the import baseline). Beyond refusals: the Switch payload provably works on
Keras's own safe mode and provably does nothing here; the bytes Keras builds from are
the bytes checked, even if the file is swapped after it is opened; every model this
library builds, and ordinary Keras image classifiers, round-trip exactly.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import _hostile_models as hm
import lenet_mnist as lm
from lenet_mnist.errors import ModelFileError, UnsafeModelError
from lenet_mnist.models import keras_file as _keras_file

ERRORS = {"ModelFileError": ModelFileError, "UnsafeModelError": UnsafeModelError}
TIME_LIMIT = 2.0
MEMORY_LIMIT = 256 * 1024 * 1024


@pytest.fixture(autouse=True, scope="module")
def _imported() -> None:
    # Timings below are of refusals, not of the first import of Keras's loader.
    with pytest.raises(FileNotFoundError):
        lm.load_model("/nonexistent/warm-up.keras")


@pytest.fixture
def no_temporary_files(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Fail if the loader makes its private directory (only done once all checks pass)."""
    made: list[object] = []
    real = _keras_file.tempfile.TemporaryDirectory

    def spy(*args: Any, **kwargs: Any) -> Any:
        made.append(args or kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(_keras_file.tempfile, "TemporaryDirectory", spy)
    return made


def _snapshot(path: Path) -> tuple[object, ...]:
    info = path.lstat()
    listing = sorted(p.name for p in path.parent.iterdir())
    content = None
    if path.is_file() and not path.is_symlink() and info.st_size < 64 << 20:
        content = path.read_bytes()
    return info.st_size, info.st_mtime_ns, listing, content


def refuse(path: Path, error: type[Exception], match: str, **limits: int) -> str:
    """Load ``path``: it must be refused as ``error`` in time, leaving everything as it was."""
    before = _snapshot(path)
    started = time.perf_counter()
    with pytest.raises(error, match=match) as caught:
        lm.load_model(path, **limits)
    elapsed = time.perf_counter() - started
    assert elapsed < TIME_LIMIT, f"refusing {path.name} took {elapsed:.2f} s"
    assert _snapshot(path) == before
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- every attack class: refused, in time, with nothing changed or written ----------------


@pytest.mark.parametrize("name", list(hm.ATTACKS))
def test_attack_is_refused(name: str, tmp_path: Path, no_temporary_files: list[object]) -> None:
    if name in ("FIFO", "device (/dev/zero)") and not Path("/dev/zero").exists():
        pytest.skip("needs POSIX FIFOs and devices")
    attack = hm.ATTACKS[name]
    path = attack.build(tmp_path)
    message = refuse(path, ERRORS[attack.error], attack.match)
    assert message.startswith(str(path)) or "must end in .keras" in message
    assert no_temporary_files == []


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("name", [name for name, attack in hm.ATTACKS.items() if attack.heavy])
def test_heavy_attack_is_refused_in_bounded_memory(name: str, tmp_path: Path) -> None:
    attack = hm.ATTACKS[name]
    result = hm.measure_in_fresh_process(attack.build(tmp_path))
    kind, message = result["outcome"]
    assert issubclass(ERRORS[kind], ERRORS[attack.error]), message
    assert re.search(attack.match, message), message
    assert result["seconds"] < TIME_LIMIT
    assert result["peak_above_baseline"] < MEMORY_LIMIT, result


# --- operation nodes: the payload works on Keras's safe mode, and does nothing here ----


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback TCP listener nothing should ever connect to."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


def _global_state() -> tuple[object, ...]:
    return (
        keras.config.floatx(),
        keras.config.epsilon(),
        keras.config.image_data_format(),
        keras.config.dtype_policy().name,
        np.random.get_state()[1].tobytes(),
        random.getstate(),
    )


def test_op_node_graph_has_no_effect(
    tmp_path: Path, listener: socket.socket, no_temporary_files: list[object]
) -> None:
    marker = tmp_path / "outside" / "marker.png"
    marker.parent.mkdir()
    port = listener.getsockname()[1]
    path = hm.make_op_node_graph(tmp_path, marker=marker, port=port)
    before = _global_state()
    refuse(
        path,
        UnsafeModelError,
        r"refusing to load 'Switch' from module 'keras\.src\.ops\.core' at config\.layers\[1\]",
    )
    assert not marker.exists()
    assert list(marker.parent.iterdir()) == []
    with pytest.raises(BlockingIOError):
        listener.accept()  # no connection is waiting
    assert _global_state() == before
    assert no_temporary_files == []


@pytest.mark.slow
def test_op_node_payload_is_live_on_keras_safe_mode(tmp_path: Path) -> None:
    # The same file through Keras 3.15.1's own load_model, safe mode on, in a child
    # process: it writes the marker and changes Keras's global settings. (Keras itself
    # blocks get_file, so the fetch node raises there, after the others have run.)
    marker = tmp_path / "marker.png"
    path = hm.make_op_node_graph(tmp_path, marker=marker)
    script = textwrap.dedent(
        """
        import json, os, sys
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras
        try:
            keras.saving.load_model(sys.argv[1], safe_mode=True)
        except Exception:
            pass
        print(json.dumps([keras.config.floatx(), keras.config.epsilon(),
                          keras.config.image_data_format()]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [
        "float16",
        0.5,
        "channels_first",
    ]
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return  # the file-writing node needs matplotlib (the "plot" extra)
    assert marker.exists()


@pytest.mark.parametrize(
    ("module", "class_name", "config"),
    [
        ("keras.src.ops.core", "Switch", {}),
        ("keras.src.ops.core", "Cond", {}),
        ("keras.src.ops.core", "Map", {}),
        ("keras.src.ops.core", "Scan", {}),
        ("keras.src.ops.core", "WhileLoop", {"cond": None, "body": None}),
        ("keras.src.ops.core", "ForiLoop", {}),
        ("keras.src.ops.core", "AssociativeScan", {}),
        ("keras.src.ops.core", "VectorizedMap", {}),
        ("keras.src.ops.numpy", "Full", {"shape": [65536, 65536], "fill_value": 1}),
        ("keras.src.ops.numpy", "Arange", {}),
        ("keras.ops", "Switch", {}),
        ("keras.src.ops.operation", "Operation", {}),
        ("keras.layers", "Layer", {}),
    ],
)
def test_operation_nodes_are_refused(
    tmp_path: Path, module: str, class_name: str, config: dict[str, Any]
) -> None:
    path = hm.make_op_node(tmp_path, module, class_name, {"name": "op", **config})
    refuse(
        path,
        UnsafeModelError,
        rf"'{class_name}' from module '{re.escape(module)}' at config\.layers\[1\]",
    )


# --- spellings and aliases -------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "class_name"),
    [
        ("keras.layers", "Lambda"),
        ("keras", "layers.Lambda"),
        ("keras", "keras.layers.Lambda"),
        ("keras.layers", "core.Lambda"),
        ("keras.src.layers.core.lambda_layer", "Lambda"),
        ("keras.layers", "lambda"),
        ("keras.layers", "LAMBDA"),
        ("keras.layers", "TFOpLambda"),
        ("keras.layers", "SlicingOpLambda"),
    ],
)
def test_lambda_in_any_spelling_is_refused(tmp_path: Path, module: str, class_name: str) -> None:
    path = hm.make_spelled(tmp_path, module, class_name)
    refuse(
        path,
        UnsafeModelError,
        rf"a Lambda layer \('{re.escape(class_name)}' .* at config\.layers\[5\]",
    )


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            {"module": "keras", "class_name": "layers.Dense"},
            r"'layers\.Dense' from module 'keras' at config\.layers\[6\]: a dotted",
        ),
        (
            {"class_name": "Dense "},
            r"'Dense ' from module 'keras\.layers' at config\.layers\[6\]: a dotted or aliased",
        ),
        (
            {"module": "keras.src.layers.core.dense"},
            r"'Dense' from module 'keras\.src\.layers\.core\.dense' at config\.layers\[6\]",
        ),
        ({"module": "keras"}, r"'Dense' from module 'keras' at config\.layers\[6\]"),
        ({"registered_name": "lenet_mnist>LeNet"}, r"registered as 'lenet_mnist>LeNet'"),
        ({"registered_name": "Custom>Dense"}, r"registered as 'Custom>Dense'"),
        ({"module": None}, r"'Dense' from module None"),
    ],
    ids=[
        "dotted",
        "space",
        "keras.src",
        "keras-root",
        "registered-ours",
        "registered-custom",
        "no-module",
    ],
)
def test_aliased_records_are_refused(tmp_path: Path, edit: dict[str, Any], match: str) -> None:
    def alias(config: dict[str, Any]) -> None:
        hm.layer_named(config, "fc1").update(edit)

    refuse(hm.rewritten(tmp_path, "alias.keras", alias), UnsafeModelError, match)


def test_registered_names_resolve_only_to_their_own_class(tmp_path: Path) -> None:
    # A string equal to a registered object's name is replaced by that object while
    # Keras rebuilds a call: refused anywhere outside registered_name.
    def plant(config: dict[str, Any]) -> None:
        hm.layer_named(config, "fc1")["config"]["kernel_initializer"]["config"]["seed"] = (
            "lenet_mnist>LeNet"
        )

    refuse(
        hm.rewritten(tmp_path, "named.keras", plant),
        UnsafeModelError,
        r"the string 'lenet_mnist>LeNet' at "
        r"config\.layers\[6\]\.config\.kernel_initializer\.config\.seed",
    )


# --- positions: each object only where its kind belongs --------------------------------


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        (
            "kernel_initializer",
            {
                "module": "keras.layers",
                "class_name": "Dense",
                "config": {"units": 1},
                "registered_name": None,
            },
            r"a layer is not an initializer",
        ),
        (
            "kernel_initializer",
            "lenet_mnist>FusedBatchNorm",
            r"the initializer 'lenet_mnist>FusedBatchNorm' .*: not a built-in name",
        ),
        ("kernel_initializer", "identity", r"the initializer 'identity'"),
        (
            "kernel_initializer",
            {
                "module": "keras.initializers",
                "class_name": "Orthogonal",
                "config": {},
                "registered_name": None,
            },
            r"'Orthogonal' from module 'keras\.initializers'",
        ),
        (
            "kernel_regularizer",
            {
                "module": "keras.regularizers",
                "class_name": "OrthogonalRegularizer",
                "config": {},
                "registered_name": None,
            },
            r"'OrthogonalRegularizer'",
        ),
        ("activation", "glu", r"the activation 'glu'"),
        (
            "activation",
            {
                "module": "keras.activations",
                "class_name": "function",
                "config": "relu",
                "registered_name": None,
            },
            r"the function 'relu' from module 'keras\.activations'",
        ),
        ("lora_rank", 4096, r"the option 'lora_rank' of Dense"),
        ("quantization_config", {"mode": "int8"}, r"a value of type dict|quantized Dense"),
        ("weights", [[0.0]], r"the option 'weights' of Dense"),
        ("dtype", "int8_from_float32", r"the dtype policy 'int8_from_float32'"),
        (
            "dtype",
            {
                "module": "keras",
                "class_name": "QuantizedDTypePolicy",
                "config": {"name": "int8_from_float32"},
                "registered_name": None,
            },
            r"'QuantizedDTypePolicy' from module 'keras'",
        ),
    ],
)
def test_layer_options_are_checked(tmp_path: Path, key: str, value: Any, match: str) -> None:
    def set_option(config: dict[str, Any]) -> None:
        hm.layer_named(config, "fc1")["config"][key] = value

    refuse(hm.rewritten(tmp_path, "option.keras", set_option), UnsafeModelError, match)


@pytest.mark.parametrize(
    ("node", "match"),
    [
        (
            {
                "args": [hm.tensor("flatten", [None, 1600])],
                "kwargs": {
                    "training": hm.function("keras.config", "enable_unsafe_deserialization")
                },
            },
            r"'enable_unsafe_deserialization' from module 'keras\.config' "
            r"at config\.layers\[6\]\.inbound_nodes\[0\]\.kwargs\.training",
        ),
        (
            {
                "args": [hm.tensor("flatten", [None, 1600])],
                "kwargs": {"origin": "http://127.0.0.1:9/"},
            },
            r"the call argument origin=",
        ),
        (
            {"args": [hm.tensor("flatten", [None, 1600]), "extra"], "kwargs": {}},
            r"the call arguments",
        ),
        (
            {"args": ["lenet_mnist>LeNet"], "kwargs": {}},
            r"the call argument at .*args\[0\]: not a tensor",
        ),
        (
            {
                "args": [{"class_name": "__numpy__", "config": {"value": [1], "dtype": "float32"}}],
                "kwargs": {},
            },
            r"'__numpy__' from module None",
        ),
        ([["flatten", 0, 0, {}]], r"a layer call"),
        (
            {"args": [hm.tensor("logits", [None, 64])], "kwargs": {}},
            r"refers to the layer 'logits', which is not defined before it",
        ),
        ({"args": [hm.tensor("flatten", [None, 1600])], "kwargs": {}, "extra": 1}, r"a layer call"),
    ],
    ids=[
        "function-kwarg",
        "url-kwarg",
        "extra-arg",
        "registered-name",
        "numpy",
        "legacy",
        "forward",
        "extra-key",
    ],
)
def test_node_arguments_are_tensor_references_only(tmp_path: Path, node: Any, match: str) -> None:
    def replace(config: dict[str, Any]) -> None:
        hm.layer_named(config, "fc1")["inbound_nodes"] = [node]

    refuse(hm.rewritten(tmp_path, "node.keras", replace), ModelFileError, match)


def test_compile_config_objects_are_checked(tmp_path: Path) -> None:
    cases = [
        (
            {
                "optimizer": {
                    "module": "keras.optimizers",
                    "class_name": "LossScaleOptimizer",
                    "config": {},
                    "registered_name": None,
                }
            },
            r"'LossScaleOptimizer'",
        ),
        ({"optimizer": "adam", "loss": "lenet_mnist>LeNet"}, r"the loss 'lenet_mnist>LeNet'"),
        (
            {
                "loss": {
                    "module": "keras.losses",
                    "class_name": "LossFunctionWrapper",
                    "config": {"fn": "os.system"},
                    "registered_name": None,
                }
            },
            r"'LossFunctionWrapper'",
        ),
        (
            {
                "metrics": [
                    {
                        "module": "keras.metrics",
                        "class_name": "AUC",
                        "config": {"num_thresholds": 10**9},
                        "registered_name": None,
                    }
                ]
            },
            r"'AUC' from module 'keras\.metrics'",
        ),
        ({"metrics": [hm.function("keras.utils", "get_file")]}, r"the function 'get_file'"),
        (
            {
                "optimizer": {
                    "module": "keras.optimizers",
                    "class_name": "Adam",
                    "config": {
                        "learning_rate": {
                            "module": "keras.layers",
                            "class_name": "Dense",
                            "config": {},
                            "registered_name": None,
                        }
                    },
                    "registered_name": None,
                }
            },
            r"a layer is not a learning-rate schedule",
        ),
        ({"loss": "mse", "unknown": 1}, r"the option 'unknown' of the compile config"),
    ]
    for index, (compile_config, match) in enumerate(cases):

        def add(config: dict[str, Any], compiled: dict[str, Any] = compile_config) -> None:
            config["compile_config"] = compiled

        refuse(hm.rewritten(tmp_path, f"compiled-{index}.keras", add), UnsafeModelError, match)


# --- polyglots: the files really are both, and are refused under either name -----------


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_zip_hdf5_polyglot_is_refused(tmp_path: Path, suffix: str) -> None:
    path = hm.make_polyglot(tmp_path, suffix)
    with zipfile.ZipFile(path) as archive:  # the zip view: a genuine model ...
        assert sorted(archive.namelist()) == sorted(_keras_file.MEMBERS)
    with h5py.File(path, "r") as h5:  # ... and the HDF5 view: another one
        assert "model_config" in h5.attrs
    match = r"must end in \.keras" if suffix == ".h5" else r"\(File is not a zip file\)"
    refuse(path, ModelFileError, match)


def test_hdf5_superblock_inside_the_zip_is_refused(tmp_path: Path) -> None:
    path = hm.make_polyglot_superblock(tmp_path)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
    with h5py.File(path, "r") as h5:  # HDF5 finds the superblock at byte 8192
        assert "layers" in h5
    refuse(path, UnsafeModelError, r"polyglot.*got an HDF5 signature at byte 8192")


# --- read once: the bytes loaded are the bytes checked ---------------------------------


def test_file_swapped_after_open_loads_what_was_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = hm.seed_model(tmp_path)
    expected = lm.load_model(path)
    hostile = hm.make_lambda_bytecode(tmp_path)
    marker = tmp_path / "code-ran"
    monkeypatch.setenv("LENET_MNIST_TEST_MARKER", str(marker))
    real_open = os.open
    opened: list[str] = []

    def open_then_swap(file: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        fd = real_open(file, flags, *args, **kwargs)
        if os.fspath(file) == str(path):
            opened.append(os.fspath(file))
            hostile.replace(path)  # the attacker wins the race, right after the open
        return fd

    monkeypatch.setattr(os, "open", open_then_swap)
    loaded = lm.load_model(path)
    monkeypatch.undo()
    assert opened == [str(path)]
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in expected.layers]
    images = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(loaded(images)), np.asarray(expected(images)))
    assert not marker.exists()
    # The path now holds the Lambda file, which is refused when it is what gets read.
    refuse(path, UnsafeModelError, r"a Lambda layer")


def test_the_users_path_is_opened_exactly_once(tmp_path: Path) -> None:
    # Every Python-level open (builtins.open, io.open, os.open, zipfile, pathlib)
    # raises the "open" audit event; a child process records them all.
    path = lm.save_model(lm.compile_model(lm.build_lenet("fast", seed=0)), tmp_path / "m.keras")
    script = textwrap.dedent(
        """
        import json, os, sys
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import lenet_mnist as lm
        import lenet_mnist.models.saving
        opened = []
        sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)
        model = lm.load_model(sys.argv[1])
        print(json.dumps([model.count_params(), opened]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    params, opened = json.loads(done.stdout.strip().splitlines()[-1])
    assert params == 57_114
    assert [name for name in opened if os.path.realpath(name) == os.path.realpath(path)] == [
        str(path)
    ]
    # Keras read a private copy named model.keras, in a directory since removed.
    copies = [name for name in opened if name.endswith("/model.keras")]
    assert copies
    assert all(not Path(name).exists() and Path(name).parent != tmp_path for name in copies)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_no_process_level_open_of_the_users_path_but_one(tmp_path: Path) -> None:
    # Also C-level opens (HDF5, TensorFlow): the system calls of the whole process.
    path = lm.save_model(lm.build_lenet("seed", seed=0), tmp_path / "traced.keras")
    log = tmp_path / "strace.log"
    done = subprocess.run(
        [
            str(shutil.which("strace")),
            "-f",
            "-e",
            "trace=open,openat,openat2,creat",
            "-o",
            str(log),
            sys.executable,
            "-c",
            "import sys, lenet_mnist as lm; lm.load_model(sys.argv[1])",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0 and "ptrace" in done.stderr:
        pytest.skip("ptrace is not permitted here")
    assert done.returncode == 0, done.stderr[-2000:]
    calls = [line for line in log.read_text().splitlines() if f'"{path}"' in line]
    assert len(calls) == 1, calls
    assert "O_RDONLY" in calls[0]


# --- memory and effects: the remaining published cases ---------------------------------


def test_lambda_bytecode_never_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "code-ran"
    monkeypatch.setenv("LENET_MNIST_TEST_MARKER", str(marker))
    path = hm.make_lambda_bytecode(tmp_path)
    refuse(path, UnsafeModelError, r"a Lambda layer \('Lambda' from module 'keras\.layers'\)")
    assert not marker.exists()
    lm.load_model(path, safe_mode=False)  # the named opt-out runs it: the payload is live
    assert marker.exists()


def test_enable_unsafe_deserialization_is_never_called(tmp_path: Path) -> None:
    refuse(hm.make_enable_unsafe(tmp_path), UnsafeModelError, r"enable_unsafe_deserialization")
    # Keras's own safe mode is still on: it still refuses a Lambda's bytecode.
    with pytest.raises(ValueError, match=r"lambda"):
        keras.saving.load_model(hm.make_lambda_bytecode(tmp_path), safe_mode=True)


def test_get_file_never_connects(tmp_path: Path, listener: socket.socket) -> None:
    refuse(
        hm.make_get_file(tmp_path),
        UnsafeModelError,
        r"the function 'get_file' from module 'keras\.utils' at "
        r"config\.layers\[6\]\.config\.kernel_initializer",
    )
    port = listener.getsockname()[1]
    refuse(
        hm.make_get_file(tmp_path, port=port),
        UnsafeModelError,
        rf"the call argument origin='http://127\.0\.0\.1:{port}/x' at "
        r"config\.layers\[6\]\.inbound_nodes\[0\]\.kwargs\.origin",
    )
    with pytest.raises(BlockingIOError):
        listener.accept()


def test_lookup_vocabulary_file_is_never_read(
    tmp_path: Path, no_temporary_files: list[object]
) -> None:
    # Refused from the config alone: Keras, which would read the file, is never reached.
    vocabulary = tmp_path / "vocabulary.txt"
    vocabulary.write_text("a\nb\n")
    path = hm.make_lookup_vocabulary(tmp_path, str(vocabulary))
    refuse(path, UnsafeModelError, r"'StringLookup' from module 'keras\.layers'")
    assert no_temporary_files == []


def test_hdf5_links_never_reach_outside(tmp_path: Path) -> None:
    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as h5:
        h5["data"] = np.ones((1600, 64), np.float32)
    path = hm.make_h5_external_link(tmp_path, target=str(secret))
    refuse(path, UnsafeModelError, r"ExternalLink .* got it at /layers/dense/vars/0")


# --- limits, and raising them ----------------------------------------------------------


def test_default_limits_fit_the_library_with_room() -> None:
    # The largest of the library's networks, against the defaults.
    largest = lm.build_lenet("robust")
    assert largest.count_params() * 40 < _keras_file.DEFAULT_MAX_PARAMS
    assert len(largest.layers) * 10 < _keras_file.DEFAULT_MAX_LAYERS


@pytest.mark.parametrize(
    ("limit", "value", "match"),
    [
        ("max_bytes", 100_000, r"the file is larger than the limit of 100000 bytes"),
        ("max_config_bytes", 1000, r"member config\.json declares more than the limit of 1000"),
        ("max_depth", 5, r"deeper than the limit of 5"),
        ("max_layers", 5, r"more layers than the limit of 5"),
        ("max_params", 100_000, r"more parameters than the limit of 100000"),
    ],
)
def test_each_limit_refuses_and_can_be_raised(
    tmp_path: Path, limit: str, value: int, match: str
) -> None:
    path = hm.seed_model(tmp_path)
    message = refuse(path, ModelFileError, match, **{limit: value})
    assert f"{limit}" in message or limit == "max_config_bytes"
    assert lm.load_model(path, **{limit: value * 100}).count_params() == 121_930


def test_a_chain_past_the_default_layer_limit_loads_when_raised(tmp_path: Path) -> None:
    inputs = keras.Input((1,))
    x = inputs
    for _ in range(_keras_file.DEFAULT_MAX_LAYERS):
        x = keras.layers.Dense(1)(x)
    path = lm.save_model(keras.Model(inputs, x), tmp_path / "chain.keras")
    refuse(path, ModelFileError, r"more layers than the limit of 256")
    model = lm.load_model(path, max_layers=2 * _keras_file.DEFAULT_MAX_LAYERS)
    assert len(model.layers) == _keras_file.DEFAULT_MAX_LAYERS + 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"max_bytes": 0}, ValueError, r"max_bytes must be at least 1, got 0"),
        ({"max_layers": -1}, ValueError, r"max_layers must be at least 1, got -1"),
        ({"max_params": 1.5}, TypeError, r"max_params must be an int, got float"),
        ({"max_depth": True}, TypeError, r"max_depth must be an int, got bool"),
        ({"safe_mode": "no"}, TypeError, r"safe_mode must be a bool, got str"),
    ],
)
def test_arguments_are_checked(
    tmp_path: Path, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        lm.load_model(hm.seed_model(tmp_path), **kwargs)


def test_path_must_be_a_path() -> None:
    with pytest.raises(TypeError, match=r"path must be a str or os\.PathLike, got int"):
        lm.load_model(3)  # type: ignore[arg-type]


def test_trusted_path_is_still_read_once_and_bounded(
    tmp_path: Path, no_temporary_files: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LENET_MNIST_TEST_MARKER", str(tmp_path / "code-ran"))
    path = hm.make_lambda_bytecode(tmp_path)
    with pytest.raises(ModelFileError, match=r"larger than the limit"):
        lm.load_model(path, safe_mode=False, max_bytes=1000)
    for make in (hm.make_device, hm.make_fifo):
        with pytest.raises(ModelFileError, match=r"not a regular file"):
            lm.load_model(make(tmp_path), safe_mode=False)
    assert no_temporary_files == []
    lm.load_model(path, safe_mode=False)
    assert len(no_temporary_files) == 1  # built from a private copy of the bytes read
    with pytest.raises(ModelFileError, match=r"cannot load the model"):
        lm.load_model(hm.make_deep_json(tmp_path), safe_mode=False)


# --- whatever goes wrong inside Keras is one of ours -----------------------------------


@pytest.mark.parametrize(
    "error",
    [
        RecursionError("maximum recursion depth exceeded"),
        MemoryError(),
        ModuleNotFoundError("No module named 'torch'"),
        tf.errors.ResourceExhaustedError(None, None, "OOM when allocating"),
        KeyError("vars"),
        OSError("Unable to synchronously open file"),
        zipfile.BadZipFile("Bad CRC-32"),
        IndexError("list index out of range"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_keras_errors_become_model_file_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise error

    monkeypatch.setattr(keras.saving, "load_model", broken)
    path = hm.seed_model(tmp_path)
    with pytest.raises(
        ModelFileError, match=rf"{path}: cannot load the model: {type(error).__name__}"
    ) as caught:
        lm.load_model(path)
    assert "\n" not in str(caught.value)


def test_bugs_are_not_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def buggy(*args: Any, **kwargs: Any) -> None:
        raise AttributeError("'NoneType' object has no attribute 'shape'")

    monkeypatch.setattr(keras.saving, "load_model", buggy)
    with pytest.raises(AttributeError):
        lm.load_model(hm.seed_model(tmp_path))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_mutated_model_files_load_or_are_refused(tmp_path: Path, data: st.DataObject) -> None:
    original = hm.seed_model(tmp_path).read_bytes()
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        kind = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
        position = data.draw(st.integers(0, len(mutated) - 1))
        if kind == "flip":
            mutated[position] = data.draw(st.integers(0, 255))
        elif kind == "truncate":
            del mutated[position:]
            if not mutated:
                break
        else:
            mutated[position:position] = data.draw(st.binary(min_size=1, max_size=8))
    path = tmp_path / "mutated.keras"
    path.write_bytes(bytes(mutated))
    try:
        model = lm.load_model(path)
    except ModelFileError as error:
        assert str(error).startswith(str(path))  # noqa: PT017
    else:
        assert model.count_params() == 121_930


# --- every model the library builds, and ordinary classifiers, round-trip exactly -------


def _library_models() -> dict[str, Callable[[], keras.Model]]:
    from lenet_mnist.recipes import compile_for_recipe, get_recipe

    def recipe_scheduled(name: str) -> keras.Model:
        model = lm.build_recipe_model(name, seed=0)
        return compile_for_recipe(model, get_recipe(name), 1000)

    models: dict[str, Callable[[], keras.Model]] = {}
    for variant in ("seed", "lenet5", "robust", "fast"):
        models[variant] = lambda v=variant: lm.build_lenet(v, seed=0)
        models[f"{variant}-compiled"] = lambda v=variant: lm.compile_model(
            lm.build_lenet(v, seed=0)
        )
    models["LeNet"] = lambda: lm.LeNet()
    models["LeNet-compiled"] = lambda: lm.compile_model(lm.LeNet())
    models["LeNet-3-classes"] = lambda: lm.compile_model(lm.LeNet(num_classes=3))
    models["recipe-fast"] = lambda: lm.build_recipe_model("fast", seed=0)
    models["recipe-best"] = lambda: lm.build_recipe_model("best", seed=0)
    models["recipe-fast-scheduled"] = lambda: recipe_scheduled("fast")
    models["recipe-best-scheduled"] = lambda: recipe_scheduled("best")
    models["pretrained"] = lm.pretrained
    return models


def _input_shape(model: keras.Model) -> tuple[int, ...]:
    return tuple(model.input_shape[1:]) if hasattr(model, "input_shape") else (28, 28, 1)


def _train_one_step(model: keras.Model) -> None:
    """One gradient step, so the optimizer's slots hold values worth comparing."""
    rng = np.random.default_rng(0)
    shape = (4, *_input_shape(model))
    outputs = model.output_shape[-1]
    model.fit(
        rng.random(shape, dtype=np.float32),
        rng.integers(0, outputs, 4),
        epochs=1,
        batch_size=4,
        verbose=0,
    )


def _assert_round_trip(model: keras.Model, path: Path, *, predict: bool = True) -> keras.Model:
    lm.save_model(model, path)
    loaded = lm.load_model(path)
    assert type(loaded) is type(model)
    assert [v.name for v in loaded.weights] == [v.name for v in model.weights]
    for mine, theirs in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(theirs), np.asarray(mine))
    if getattr(model, "optimizer", None) is not None:
        assert type(loaded.optimizer) is type(model.optimizer)
        assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
        for mine, theirs in zip(model.optimizer.variables, loaded.optimizer.variables, strict=True):
            np.testing.assert_array_equal(np.asarray(theirs), np.asarray(mine))
    if predict:
        images = np.random.default_rng(1).random((3, *_input_shape(model)), dtype=np.float32)
        theirs = np.asarray(loaded(images, training=False))
        mine = np.asarray(model(images, training=False))
        if any(isinstance(layer, lm.FusedBatchNorm) for layer in model.layers):
            # save_model writes FusedBatchNorm as Keras's BatchNormalization (same state,
            # same mathematics, another kernel): equal up to float rounding.
            np.testing.assert_allclose(theirs, mine, rtol=1e-4, atol=1e-4)
        else:
            np.testing.assert_array_equal(theirs, mine)
    return loaded


@pytest.mark.parametrize("name", list(_library_models()))
def test_library_models_round_trip(name: str, tmp_path: Path) -> None:
    model = _library_models()[name]()
    loaded = _assert_round_trip(model, tmp_path / f"{name}.keras")
    if isinstance(model, lm.LeNet):
        assert loaded.num_classes == model.num_classes


def test_a_deflated_archive_loads(tmp_path: Path) -> None:
    # Someone re-zipped the file: deflated members are fine (an untrained compiled
    # model's weights, zeroed optimizer slots and all, shrink 3.3:1).
    source = lm.save_model(lm.compile_model(lm.build_lenet("seed", seed=0)), tmp_path / "a.keras")
    config, weights = hm.parts(source)
    path = hm.write_archive(tmp_path / "deflated.keras", config, weights, compress=True)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("model.weights.h5")
        assert info.compress_type == zipfile.ZIP_DEFLATED
        assert info.file_size > 3 * info.compress_size
    assert lm.load_model(path).count_params() == 121_930


def test_trained_model_round_trips_with_its_optimizer_state(tmp_path: Path) -> None:
    model = lm.compile_model(lm.build_lenet("fast", seed=0))
    _train_one_step(model)
    _assert_round_trip(model, tmp_path / "trained.keras")


def test_shipped_pretrained_file_loads_and_predicts_as_before() -> None:
    shipped = Path(lm.__file__).parent / "weights" / "robust.keras"
    model = lm.load_model(shipped)
    reference = keras.saving.load_model(shipped)  # Keras alone, on our own file
    images = np.random.default_rng(2).random((5, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(model(images)), np.asarray(reference(images)))


def _classic_sequential() -> keras.Model:
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            layers.Rescaling(1 / 255.0, offset=0.1),
            layers.ZeroPadding2D(((1, 2), (0, 1))),
            layers.Conv2D(
                8,
                3,
                strides=2,
                kernel_regularizer="l2",
                kernel_constraint=keras.constraints.MaxNorm(3),
                bias_initializer=keras.initializers.Constant(0.1),
            ),
            layers.BatchNormalization(momentum=0.9),
            layers.ReLU(max_value=6.0),
            layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same"),
            layers.SeparableConv2D(8, 3, padding="same", depthwise_initializer="he_normal"),
            layers.LeakyReLU(0.1),
            layers.UpSampling2D(2),
            layers.Cropping2D(1),
            layers.MaxPooling2D(2, strides=1, padding="same"),
            layers.AveragePooling2D(2),
            layers.SpatialDropout2D(0.1, seed=1),
            layers.LayerNormalization(axis=[1, 2, 3]),
            layers.Conv2D(4, 1, groups=2, use_bias=False),
            layers.GlobalAveragePooling2D(keepdims=True),
            layers.Reshape((4,)),
            layers.Dense(10, kernel_regularizer=keras.regularizers.L1L2(0.01, 0.01)),
            layers.Dropout(0.2, noise_shape=(None, 10)),
            layers.Softmax(),
        ],
        name="classic",
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy", keras.metrics.SparseTopKCategoricalAccuracy(3)],
    )
    return model


def _merging_functional() -> keras.Model:
    layers = keras.layers
    inputs = keras.Input((8, 8, 3), name="picture")
    a = layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    b = layers.Conv2D(4, 3, padding="same", activation="swish", name="b")(inputs)
    merged = [
        layers.Add()([a, b]),
        layers.Subtract()([a, b]),
        layers.Multiply()([a, b]),
        layers.Average()([a, b]),
        layers.Maximum()([a, b]),
        layers.Minimum()([a, b]),
    ]
    x = layers.Concatenate(axis=-1)(merged)
    x = layers.Identity()(x)
    x = layers.GlobalMaxPooling2D()(x)
    x = layers.Activation("gelu")(x)
    x = layers.ELU(alpha=0.5)(x)
    x = layers.Reshape((4, 6))(x)
    x = layers.Permute((2, 1))(x)
    x = layers.Flatten()(x)
    shared = layers.Dense(5, name="shared")
    outputs = layers.Add()([shared(x), shared(x)])
    model = keras.Model(inputs, outputs, name="merging")
    model.compile(
        optimizer=keras.optimizers.RMSprop(centered=True, momentum=0.5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
    )
    return model


def _transfer_learning() -> keras.Model:
    base = _merging_functional()
    base.trainable = False
    inputs = keras.Input((8, 8, 3))
    x = base(inputs, training=False)
    outputs = keras.layers.Dense(3, name="head")(x)
    model = keras.Model(inputs, outputs, name="transfer")
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-3),
        loss=keras.losses.sparse_categorical_crossentropy,
        metrics=[keras.metrics.sparse_categorical_accuracy],
    )
    return model


def _sequential_inside_functional() -> keras.Model:
    block = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(4), keras.layers.BatchNormalization()],
        name="block",
    )
    inputs = keras.Input((6,))
    outputs = keras.layers.Dense(2)(block(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return model


def _channels_first() -> keras.Model:
    inputs = keras.Input((3, 8, 8))
    x = keras.layers.Conv2D(4, 3, data_format="channels_first")(inputs)
    x = keras.layers.BatchNormalization(axis=1)(x)
    x = keras.layers.MaxPooling2D(2, data_format="channels_first")(x)
    x = keras.layers.GlobalAveragePooling2D(data_format="channels_first")(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


ORDINARY: dict[str, tuple[Callable[[], keras.Model], bool]] = {
    "sequential with most layers": (_classic_sequential, True),
    "functional with every merge": (_merging_functional, True),
    "transfer learning (frozen nested model)": (_transfer_learning, True),
    "sequential inside functional": (_sequential_inside_functional, True),
    # TensorFlow's CPU kernels run NCHW convolutions only under XLA: weights compared.
    "channels_first": (_channels_first, False),
}


@pytest.mark.parametrize("name", list(ORDINARY))
def test_ordinary_keras_classifiers_round_trip(name: str, tmp_path: Path) -> None:
    build, predict = ORDINARY[name]
    model = build()
    if getattr(model, "optimizer", None) is not None:
        _train_one_step(model)
    _assert_round_trip(model, tmp_path / "model.keras", predict=predict)


def test_every_allowed_layer_is_exercised(tmp_path: Path) -> None:
    used: set[str] = set()
    for build, _ in ORDINARY.values():
        path = lm.save_model(build(), tmp_path / "model.keras")
        with zipfile.ZipFile(path) as archive:
            text = archive.read("config.json").decode()
        used |= set(re.findall(r'"module": "keras\.layers", "class_name": "(\w+)"', text))
    assert used == set(_keras_file.ALLOWED_LAYERS)


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: keras.optimizers.SGD(0.01),
        lambda: keras.optimizers.SGD(0.01, momentum=0.9),
        lambda: keras.optimizers.Adam(amsgrad=True),
        lambda: keras.optimizers.Adam(use_ema=True),
        lambda: keras.optimizers.Adam(gradient_accumulation_steps=2),
        lambda: keras.optimizers.AdamW(),
        lambda: keras.optimizers.Adamax(),
        lambda: keras.optimizers.Adagrad(),
        lambda: keras.optimizers.Adadelta(),
        lambda: keras.optimizers.Nadam(),
        lambda: keras.optimizers.RMSprop(),
        lambda: keras.optimizers.Ftrl(),
        lambda: keras.optimizers.Lion(),
        lambda: keras.optimizers.Lamb(),
        lambda: keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)),
        lambda: keras.optimizers.Adam(
            keras.optimizers.schedules.PiecewiseConstantDecay([5], [0.1, 0.01])
        ),
        lambda: keras.optimizers.Adam(keras.optimizers.schedules.PolynomialDecay(0.1, 10)),
        lambda: keras.optimizers.Adam(keras.optimizers.schedules.InverseTimeDecay(0.1, 10, 0.5)),
        lambda: keras.optimizers.Adam(keras.optimizers.schedules.CosineDecayRestarts(0.1, 10)),
    ],
    ids=[
        "SGD",
        "SGD-momentum",
        "Adam-amsgrad",
        "Adam-ema",
        "Adam-accumulation",
        "AdamW",
        "Adamax",
        "Adagrad",
        "Adadelta",
        "Nadam",
        "RMSprop",
        "Ftrl",
        "Lion",
        "Lamb",
        "ExponentialDecay",
        "PiecewiseConstantDecay",
        "PolynomialDecay",
        "InverseTimeDecay",
        "CosineDecayRestarts",
    ],
)
def test_keras_optimizers_round_trip(
    optimizer: Callable[[], keras.optimizers.Optimizer], tmp_path: Path
) -> None:
    model = lm.build_lenet("fast", seed=0)
    model.compile(
        optimizer=optimizer(),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    _train_one_step(model)
    _assert_round_trip(model, tmp_path / "model.keras")


@pytest.mark.parametrize(
    "policy", ["float32", "float64", "float16", "bfloat16", "mixed_bfloat16", "mixed_float16"]
)
def test_dtype_policies_round_trip(policy: str, tmp_path: Path) -> None:
    inputs = keras.Input((5,))
    x = keras.layers.Dense(4, dtype=policy)(inputs)
    x = keras.layers.LayerNormalization(dtype=policy)(x)
    model = keras.Model(inputs, keras.layers.Dense(2, dtype="float32")(x))
    _assert_round_trip(model, tmp_path / "model.keras")


# Keras 3.15 itself saves a LossScaleOptimizer's variables in two places and then
# warns that it skips them on loading; the file must still load.
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer:UserWarning")
def test_mixed_float16_compiled_model_loads(tmp_path: Path) -> None:
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = lm.build_lenet("seed", seed=0)
    finally:
        keras.config.set_dtype_policy(previous)
    lm.compile_model(model)
    _train_one_step(model)
    path = lm.save_model(model, tmp_path / "mixed.keras")
    loaded = lm.load_model(path)
    images = np.random.default_rng(3).random((2, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(np.asarray(loaded(images)), np.asarray(model(images)))


def test_optimizer_state_must_match_the_trainable_variables(tmp_path: Path) -> None:
    model = lm.compile_model(lm.build_lenet("seed", seed=0))
    path = lm.save_model(model, tmp_path / "compiled.keras")
    config, weights = hm.parts(path)

    def drop_a_slot(h5: h5py.File) -> None:
        del h5["optimizer/vars/3"]

    def copy_then(fill: Callable[[h5py.File], None]) -> bytes:
        import io

        def build(h5: h5py.File) -> None:
            with h5py.File(io.BytesIO(weights), "r") as source:
                for key in source:
                    source.copy(source[key], h5, name=key)
            fill(h5)

        return hm.h5_bytes(build)

    broken = hm.write_archive(tmp_path / "slot.keras", config, copy_then(drop_a_slot))
    refuse(broken, ModelFileError, r"variables not numbered|optimizer state")

    def renumber(h5: h5py.File) -> None:
        group = h5["optimizer/vars"]
        data = group["3"][()]
        del group["3"]
        group["3"] = np.zeros((data.shape[0] + 1, *data.shape[1:]), data.dtype)

    refuse(
        hm.write_archive(tmp_path / "slot-shape.keras", config, copy_then(renumber)),
        ModelFileError,
        r"optimizer state of 'lenet_seed' does not match its 8 trainable variables",
    )
    uncompiled = dict(config)
    uncompiled["compile_config"] = None
    refuse(
        hm.write_archive(tmp_path / "uncompiled.keras", uncompiled, weights),
        ModelFileError,
        r"optimizer state for a model compiled without an optimizer",
    )
