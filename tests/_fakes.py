"""Test helpers: small synthetic IDX datasets with a matching DatasetSpec, and a loopback
HTTP server serving fixed bytes. Used by test_data.py and test_cli.py."""

from __future__ import annotations

import gzip
import http.server
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lenet_mnist.data import ROLES, DatasetSpec, FileSpec
from lenet_mnist.data.idx import encode_idx, sha256_hex

FILE_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def tiny_arrays(n_train: int = 64, n_test: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """The conftest's learnable tiny dataset as raw IDX content: uint8 images, no channel."""
    from conftest import make_tiny_data

    data = make_tiny_data(n_train, n_test, seed)
    return {
        "train_images": np.round(data.train_images[..., 0] * 255).astype(np.uint8),
        "train_labels": data.train_labels.astype(np.uint8),
        "test_images": np.round(data.test_images[..., 0] * 255).astype(np.uint8),
        "test_labels": data.test_labels.astype(np.uint8),
    }


def dataset_spec(
    arrays: Mapping[str, np.ndarray],
    *,
    name: str = "tiny",
    env_var: str = "LENET_MNIST_TINY_DATA",
    mirrors: tuple[str, ...] = ("http://127.0.0.1:9/",),
) -> DatasetSpec:
    """A DatasetSpec whose hashes and shapes are those of ``arrays`` (encoded as IDX)."""
    files = {
        role: FileSpec(
            FILE_NAMES[role], sha256_hex(encode_idx(arrays[role])), tuple(arrays[role].shape)
        )
        for role in ROLES
    }
    return DatasetSpec(
        name=name,
        files=files,
        mirrors=mirrors,
        class_names=tuple(str(i) for i in range(10)),
        env_var=env_var,
    )


def file_bytes(arrays: Mapping[str, np.ndarray], *, compress: bool = True) -> dict[str, bytes]:
    """File name (with ``.gz`` when compressed) -> content, for the four roles."""
    out = {}
    for role in ROLES:
        data = encode_idx(arrays[role])
        name = FILE_NAMES[role]
        if compress:
            out[name + ".gz"] = gzip.compress(data, mtime=0)
        else:
            out[name] = data
    return out


def write_dataset(
    directory: Path, arrays: Mapping[str, np.ndarray], *, compress: bool = True
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in file_bytes(arrays, compress=compress).items():
        (directory / name).write_bytes(content)
    return directory


@dataclass
class Server:
    """What a running loopback server serves and has been asked for."""

    base: str
    routes: dict[str, bytes]
    requests: list[str] = field(default_factory=list)

    def url(self, prefix: str) -> str:
        return f"{self.base}/{prefix.strip('/')}/"


@contextmanager
def serve(routes: dict[str, bytes]) -> Iterator[Server]:
    """Serve ``routes`` (path without leading slash -> body) on 127.0.0.1, any free port.

    Unknown paths get a 404.
    """
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.lstrip("/")
            requests.append(path)
            body = routes.get(path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield Server(f"http://{host}:{port}", routes, requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
