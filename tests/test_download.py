"""Downloads against a loopback server that misbehaves, serving the real MNIST ``.gz`` files.

Whatever goes wrong -- an error status, an HTML page with status 200, a body cut short
with or without ``Content-Length``, a connection reset mid-file, a server that stops
sending, the wrong file -- the download fails with ``DownloadError`` and leaves nothing in
the target directory: no file under the final name and no temporary. The one exception
is a process killed mid-download (SIGKILL runs no cleanup): its hidden ``.part`` file
stays until a download an hour or more later removes it. An hour, because a younger
partial may belong to a download still running in another process; deleting that one
would make it fail.
"""

from __future__ import annotations

import gzip
import http.server
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lenet_mnist.data import DATASETS, cache_dir, download_mnist, load_mnist
from lenet_mnist.errors import ChecksumError, DownloadError

pytestmark = pytest.mark.realdata

SPEC = DATASETS["mnist"]
BIG = "train-images-idx3-ubyte.gz"  # the first file download_mnist fetches, 9.6 MB


@dataclass
class Misbehaving:
    """A loopback HTTP server over the real files; ``mode`` picks how it misbehaves."""

    root: Path
    mode: str = "ok"
    url: str = ""
    requests: list[str] = field(default_factory=list)
    half_sent: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def server(real_data_dir: Path) -> Iterator[Misbehaving]:
    state = Misbehaving(real_data_dir)

    class Handler(http.server.BaseHTTPRequestHandler):
        # HTTP/1.0: without Content-Length the body ends when the connection closes.
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:
            name = self.path.rsplit("/", 1)[-1]
            state.requests.append(name)
            file = state.root / name
            if self.path != f"/mnist/{name}" or not file.is_file() or state.mode == "404":
                self.send_error(404, "Not Found")
                return
            if state.mode == "500":
                self.send_error(500, "Internal Server Error")
                return
            body = file.read_bytes()
            if state.mode == "html":
                page = b"<html><body><h1>Service temporarily unavailable</h1></body></html>"
                self._head("text/html", len(page))
                self.wfile.write(page)
                return
            if state.mode == "wrong-file":
                # Another real MNIST file: a valid gzip and IDX file, just not this one.
                other = "train-labels-idx1-ubyte.gz"
                if name == other:
                    other = "t10k-labels-idx1-ubyte.gz"
                body = (state.root / other).read_bytes()
            length = None if state.mode == "cut-no-length" else len(body)
            self._head("application/gzip", length)
            if state.mode in ("ok", "wrong-file"):
                self.wfile.write(body)
                return
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            state.half_sent.set()
            if state.mode == "reset":
                # SO_LINGER 0: close() sends RST, as a crashed peer or middlebox would.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
            elif state.mode == "stall":
                state.release.wait(60)

        def _head(self, content_type: str, length: int | None) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            if length is not None:
                self.send_header("Content-Length", str(length))
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    host, port = httpd.server_address[:2]
    state.url = f"http://{host}:{port}/mnist/"
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def _listing(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir()) if directory.exists() else []


@pytest.mark.parametrize(
    ("mode", "match"),
    [
        ("404", r"HTTP 404"),
        ("500", r"HTTP 500"),
        ("html", r"content hash mismatch: expected sha256 ba891046"),
        ("wrong-file", r"content hash mismatch: expected sha256 ba891046"),
        ("cut-length", r"connection closed after 4815317 of 9630634 bytes"),
        ("cut-no-length", r"corrupt or truncated gzip data"),
        ("reset", r"train-images-idx3-ubyte\.gz: "),
        ("stall", r"timed out"),
    ],
)
def test_a_failed_download_leaves_nothing(
    server: Misbehaving, tmp_path: Path, mode: str, match: str
) -> None:
    server.mode = mode
    target = tmp_path / "cache"
    started = time.monotonic()
    with pytest.raises(DownloadError, match=match) as info:
        download_mnist(target, mirrors=[server.url], timeout=1.0)
    assert f"could not download a verified copy of {BIG}" in str(info.value)
    assert server.requests == [BIG]
    assert _listing(target) == []
    assert time.monotonic() - started < 30


@pytest.mark.slow  # downloads and verifies all four real files
def test_a_bad_mirror_is_skipped_and_the_next_one_used(server: Misbehaving, tmp_path: Path) -> None:
    good = server.url
    server.mode = "ok"
    # The first "mirror" is a path the server does not have: a 404 for every file.
    target = download_mnist(tmp_path / "cache", mirrors=[good + "missing/", good], timeout=5.0)
    assert _listing(target) == sorted(f"{file.name}.gz" for file in SPEC.files.values())
    assert len(server.requests) == 8
    data = load_mnist(target, download=False)
    assert data.train_images.shape == (60000, 28, 28, 1)


def test_a_killed_download_leaves_only_a_hidden_partial_that_is_cleaned_later(
    server: Misbehaving, tmp_path: Path
) -> None:
    server.mode = "stall"
    target = tmp_path / "cache"
    code = (
        "import sys\n"
        "from lenet_mnist.data import download_mnist\n"
        "download_mnist(sys.argv[1], mirrors=[sys.argv[2]], timeout=60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(target), server.url])
    try:
        assert server.half_sent.wait(60), "the child never started downloading"
        time.sleep(0.5)  # let the child write what it received
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    left = _listing(target)
    assert len(left) == 1
    assert left[0].startswith(".lenet-mnist-train-images-idx3-ubyte-")
    assert left[0].endswith(".part")
    partial = target / left[0]
    assert 0 < partial.stat().st_size < (server.root / BIG).stat().st_size

    # Under an hour old: kept, it may be a download still running elsewhere.
    server.mode = "404"
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_mnist(target, mirrors=[server.url], timeout=5.0)
    assert _listing(target) == left
    # Older than an hour: removed by the next download attempt.
    old = time.time() - 3601
    os.utime(partial, (old, old))
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_mnist(target, mirrors=[server.url], timeout=5.0)
    assert _listing(target) == []


@pytest.mark.slow  # reads all four real files
def test_a_cached_file_with_a_wrong_hash_is_downloaded_again_once(
    server: Misbehaving, real_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LENET_MNIST_DATA", raising=False)
    cache = cache_dir("mnist")
    shutil.copytree(real_data_dir, cache)
    labels = cache / "t10k-labels-idx1-ubyte.gz"
    original = gzip.decompress(labels.read_bytes())
    labels.chmod(0o644)
    labels.write_bytes(gzip.compress(original[:-1] + bytes([(original[-1] + 1) % 10])))

    # The re-download delivers the wrong file too: refused after exactly one attempt,
    # and the bad cached copy is gone rather than used.
    monkeypatch.setenv("LENET_MNIST_MIRRORS", server.url)
    server.mode = "wrong-file"
    with pytest.raises(DownloadError, match=r"t10k-labels-idx1-ubyte\.gz: .*hash mismatch"):
        load_mnist()
    assert server.requests == ["t10k-labels-idx1-ubyte.gz"]
    assert not labels.exists()
    assert not [name for name in _listing(cache) if name.endswith(".part")]

    labels.write_bytes(gzip.compress(original[:-1] + bytes([(original[-1] + 1) % 10])))
    server.mode = "ok"
    server.requests.clear()
    data = load_mnist()
    assert server.requests == ["t10k-labels-idx1-ubyte.gz"]
    assert data.test_labels[-1] == original[-1]
    assert labels.read_bytes() == (real_data_dir / labels.name).read_bytes()


def test_a_supplied_file_with_a_wrong_hash_is_an_error_naming_it(
    server: Misbehaving, real_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    supplied = tmp_path / "supplied"
    shutil.copytree(real_data_dir, supplied)
    wrong = supplied / BIG
    wrong.chmod(0o644)
    # Another real MNIST file under this name: a valid IDX file, just not this one.
    wrong.write_bytes((real_data_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    monkeypatch.setenv("LENET_MNIST_MIRRORS", server.url)
    expected = SPEC.files["train_images"].sha256
    with pytest.raises(ChecksumError, match=rf"{wrong}: .*expected sha256 {expected}"):
        load_mnist(supplied)
    assert server.requests == []  # a supplied file is never replaced by a download
    assert wrong.read_bytes() == (real_data_dir / "t10k-labels-idx1-ubyte.gz").read_bytes()
