"""`lenet-mnist serve`: the API through real server processes, the page in a real browser.

Two servers run for the module: ``api`` is the command line itself
(``python -m lenet_mnist serve``, the pretrained model) and ``strict`` is
``lenet_mnist.serve.serve`` with a small untrained model saved by the test and tight
limits, so that the limit and timeout tests take seconds. Every answer of the servers
is compared with :func:`lenet_mnist.predict_digits` on the same model in this process.
"""

from __future__ import annotations

import asyncio
import doctest
import http.client
import importlib
import io
import json
import math
import os
import pkgutil
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lenet_mnist as lm

pytest.importorskip("starlette", reason="needs the serve extra")
pytest.importorskip("uvicorn", reason="needs the serve extra")

from lenet_mnist.serve import ServeLimits
from lenet_mnist.serve.batcher import BatchResult, MicroBatcher
from lenet_mnist.serve.payloads import (
    PayloadTooLargeError,
    parse_predict,
    split_pictures,
)

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 90.0  # seconds; a start takes about 5 s on the 2-core machine


# ------------------------------------------------------------------ pictures and images


def digit_images(count: int, seed: int = 0) -> np.ndarray:
    """``(count, 28, 28)`` uint8 images with a stroke or two in each (white on black)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), np.uint8)
    for image in images:
        for _ in range(int(rng.integers(1, 3))):
            top, left = (int(v) for v in rng.integers(4, 14, size=2))
            height, width = (int(v) for v in rng.integers(3, 12, size=2))
            image[top : top + height, left : left + width] = rng.integers(120, 256)
    return images


def stroke_picture(height: int = 120, width: int = 90, dark_on_light: bool = True) -> np.ndarray:
    """A photo-like grayscale picture of a "1": one vertical stroke."""
    picture = np.full((height, width), 225 if dark_on_light else 15, np.uint8)
    picture[height // 5 : height * 4 // 5, width // 2 - 4 : width // 2 + 4] = (
        25 if dark_on_light else 240
    )
    return picture


def encode(picture: np.ndarray, kind: str) -> bytes:
    import tensorflow as tf

    pixels = picture[..., np.newaxis]
    if kind == "png":
        return bytes(tf.io.encode_png(pixels).numpy())
    if kind == "jpeg":
        return bytes(tf.io.encode_jpeg(pixels, quality=95).numpy())
    if kind == "bmp":
        return bmp(picture)
    pil = pytest.importorskip("PIL.Image", reason=f"Pillow writes the {kind} test picture")
    buffer = io.BytesIO()
    pil.fromarray(picture).save(buffer, kind.upper())
    return buffer.getvalue()


def bmp(gray: np.ndarray) -> bytes:
    """An uncompressed 24-bit BMP of a grayscale array (no encoder needed)."""
    height, width = gray.shape
    row = (width * 3 + 3) & ~3
    pixels = b"".join(
        np.repeat(gray[y], 3).tobytes().ljust(row, b"\0") for y in range(height - 1, -1, -1)
    )
    header = struct.pack("<2sIHHI", b"BM", 54 + len(pixels), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    return header + info + pixels


def huge_png_header() -> bytes:
    """The start of a PNG claiming 20000 x 20000 pixels: over prepare_image's budget."""
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0\0\0\0"


def multipart(parts: list[tuple[str, bytes, str]], boundary: str = "lenetboundary") -> bytes:
    lines = []
    for name, data, kind in parts:
        lines.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{name}.bin"\r\nContent-Type: {kind}\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    return b"".join(lines) + f"--{boundary}--\r\n".encode()


# ------------------------------------------------------------------ server processes


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def connection(self, timeout: float = 30.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        connection = self.connection()
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def json(
        self, method: str, path: str, body: object = None, raw: bytes | None = None
    ) -> tuple[int, object]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        status, _, content = self.request(method, path, data)
        return status, json.loads(content)

    def predict(self, body: object) -> tuple[int, object]:
        return self.json("POST", "/v1/models/lenet:predict", body)

    def pictures(self, data: bytes, content_type: str) -> tuple[int, object]:
        status, _, content = self.request(
            "POST", "/v1/images:predict", data, {"Content-Type": content_type}
        )
        return status, json.loads(content)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(command: list[str], port: int, log: Path) -> Server:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    server = Server(process, port, log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if server.request("GET", "/v1/models/lenet")[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"the server did not answer within {START_TIMEOUT} s:\n{log.read_text()}")


def stop_server(server: Server) -> str:
    alive = server.process.poll() is None
    workers = _picture_workers(server) if Path("/proc/self/stat").exists() else []
    server.process.terminate()
    try:
        server.process.wait(20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    output = server.log.read_text(errors="replace")
    assert alive, f"the server died during the tests:\n{output}"
    # The picture workers leave with the server (uvicorn re-raises SIGTERM to exit).
    assert workers, "no picture worker processes were found"
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers):
        assert time.monotonic() < deadline, f"picture workers {workers} outlived the server"
        time.sleep(0.1)
    return output


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The command line's server: ``python -m lenet_mnist serve``, the pretrained model."""
    port = free_port()
    log = tmp_path_factory.mktemp("api") / "server.log"
    command = [sys.executable, "-m", "lenet_mnist", "serve", "--port", str(port)]
    server = start_server([*command, "--max-batch", "32"], port, log)
    yield server
    output = stop_server(server)
    assert f"serving lenet (the pretrained model) on http://127.0.0.1:{port}" in output
    assert "Traceback" not in output, output


STRICT = ServeLimits(
    max_body_bytes=200_000,
    small_body_bytes=100_000,
    max_instances=4,
    max_pictures=2,
    header_timeout=1.0,
    body_timeout=1.5,
    keep_alive_timeout=1,
    max_header_bytes=4096,
)


@pytest.fixture(scope="module")
def small_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "small.keras"
    lm.save_model(lm.build_lenet(seed=3), path)
    return path


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory, small_model_file: Path) -> Iterator[Server]:
    """``serve()`` with a small untrained model and tight limits."""
    port = free_port()
    log = tmp_path_factory.mktemp("strict") / "server.log"
    code = (
        "from lenet_mnist.serve import ServeLimits, serve; "
        f"serve({str(small_model_file)!r}, port={port}, max_batch=8, limits=ServeLimits("
        + ", ".join(f"{k}={v!r}" for k, v in STRICT.__dict__.items())
        + "))"
    )
    server = start_server([sys.executable, "-c", code], port, log)
    yield server
    output = stop_server(server)
    assert "Traceback" not in output, output


@pytest.fixture(scope="module")
def pretrained() -> object:
    return lm.pretrained()


def assert_same(answer: list[dict[str, object]], expected: lm.DigitPredictions) -> None:
    assert [p["digit"] for p in answer] == expected.digits.tolist()
    probabilities = np.array([p["probabilities"] for p in answer], np.float32)
    np.testing.assert_allclose(probabilities, expected.probabilities, atol=2e-5)
    logits = np.array([p["logits"] for p in answer], np.float32)
    np.testing.assert_allclose(logits, expected.logits, atol=2e-4, rtol=1e-4)


# ------------------------------------------------------------------ success paths


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/v1/models/lenet", "/v1/models/lenet/versions/1"])
def test_model_status_is_tensorflow_servings(api: Server, path: str) -> None:
    status, answer = api.json("GET", path)
    assert status == 200
    assert answer == {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


@pytest.mark.slow
def test_predict_rows_integer_pixels(api: Server, pretrained: object) -> None:
    images = digit_images(5)
    status, answer = api.predict({"instances": images.tolist()})
    assert status == 200
    assert_same(answer["predictions"], lm.predict_digits(pretrained, images))


@pytest.mark.slow
def test_predict_rows_float_pixels_and_channel_axis(api: Server, pretrained: object) -> None:
    images = (digit_images(3, seed=1) / 255.0).astype(np.float32)[..., np.newaxis]
    for instances in (images.tolist(), [{"image": i} for i in images.tolist()]):
        status, answer = api.predict({"instances": instances})
        assert status == 200
        assert_same(answer["predictions"], lm.predict_digits(pretrained, images))


@pytest.mark.slow
def test_integers_are_0_to_255_and_any_fraction_makes_floats(api: Server) -> None:
    ones = np.zeros((28, 28), np.int64)
    ones[6:22, 12:16] = 1
    _, as_integers = api.predict({"instances": [ones.tolist()]})  # 1/255: almost black
    _, as_floats = api.predict({"instances": [(ones * 1.0).tolist()]})  # 1.0: white
    _, scaled = api.predict({"instances": [(ones * 255).tolist()]})
    _, dark = api.predict({"instances": [(ones / 255.0).tolist()]})
    assert as_floats["predictions"] == scaled["predictions"]
    np.testing.assert_allclose(
        as_integers["predictions"][0]["probabilities"],
        dark["predictions"][0]["probabilities"],
        atol=1e-6,
    )
    # One fraction anywhere makes every pixel of the request a float in [0, 1].
    mixed = ones.tolist()
    mixed[0][0] = 0.0
    _, answer = api.predict({"instances": [mixed]})
    assert answer["predictions"] == as_floats["predictions"]


@pytest.mark.slow
def test_predict_columnar_answers_outputs(api: Server, pretrained: object) -> None:
    images = digit_images(3, seed=2)
    expected = lm.predict_digits(pretrained, images)
    for inputs in (images.tolist(), {"image": images.tolist()}):
        status, answer = api.predict({"inputs": inputs})
        assert status == 200
        outputs = answer["outputs"]
        assert outputs["digit"] == expected.digits.tolist()
        np.testing.assert_allclose(outputs["probabilities"], expected.probabilities, atol=2e-5)


@pytest.mark.slow
def test_signatures_of_the_exported_saved_model(api: Server) -> None:
    images = digit_images(2, seed=4).tolist()
    for name in ("serving_default", "serving_uint8"):
        status, _ = api.predict({"signature_name": name, "instances": images})
        assert status == 200
    status, answer = api.predict(
        {"signature_name": "serving_uint8", "instances": [[[0.5] * 28] * 28]}
    )
    assert status == 400
    assert re.search("integer pixels 0..255", answer["error"])


@pytest.mark.slow
def test_portable_requests_fit_the_exported_saved_model(
    strict: Server, small_model_file: Path, tmp_path: Path
) -> None:
    # What TensorFlow Serving does with the same JSON: each instance becomes a row of
    # the signature's one input 'image', converted to the signature's dtype.
    import tensorflow as tf

    exported = lm.export_model(lm.load_model(small_model_file), tmp_path / "lenet" / "1")
    signatures = tf.saved_model.load(str(exported)).signatures
    images = digit_images(3, seed=8)[..., np.newaxis]
    for name, instances, dtype in (
        ("serving_default", (images / 255.0).tolist(), tf.float32),
        ("serving_uint8", images.tolist(), tf.uint8),
    ):
        body = {"signature_name": name, "instances": instances}
        status, answer = strict.predict(body)
        assert status == 200
        signature = signatures[name]
        (input_name,) = signature.structured_input_signature[1]
        assert input_name == "image"
        expected = signature(image=tf.constant(np.array(instances), dtype))
        probabilities = [p["probabilities"] for p in answer["predictions"]]
        np.testing.assert_allclose(probabilities, expected["probabilities"].numpy(), atol=2e-5)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["png", "jpeg", "bmp", "gif", "webp"])
def test_one_picture_as_the_body(api: Server, pretrained: object, kind: str) -> None:
    data = encode(stroke_picture(), kind)
    status, answer = api.pictures(data, f"image/{kind}")
    assert status == 200, answer
    assert_same(answer["predictions"], lm.predict_digits(pretrained, data))
    assert answer["predictions"][0]["digit"] == 1


@pytest.mark.slow
def test_several_pictures_as_multipart(api: Server, pretrained: object) -> None:
    pictures = [
        encode(stroke_picture(), "png"),
        encode(stroke_picture(200, 150, dark_on_light=False), "jpeg"),
        encode(np.asarray(digit_images(1, seed=5)[0]), "png"),
    ]
    body = multipart([(f"p{i}", p, "image/png") for i, p in enumerate(pictures)])
    status, answer = api.pictures(body, "multipart/form-data; boundary=lenetboundary")
    assert status == 200, answer
    assert_same(answer["predictions"], lm.predict_digits(pretrained, pictures))


@pytest.mark.slow
def test_page_and_its_assets_are_served(api: Server) -> None:
    status, headers, page = api.request("GET", "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in headers["content-security-policy"]
    assert b'<canvas id="pad"' in page
    # Every asset the page loads is served by the package itself: no other host.
    assets = re.findall(rb'(?:src|href)="([^"]+)"', page)
    assert assets
    for asset in assets:
        if asset.startswith(b"data:") or asset.startswith(b"/v1/") or asset == b"/metrics":
            continue
        assert asset.startswith(b"/static/"), asset
        status, headers, content = api.request("GET", asset.decode())
        assert status == 200, asset
        assert content, asset
        assert b"http://" not in content, asset
        assert b"https://" not in content, asset
    assert b"http://" not in page
    assert b"https://" not in page
    status, _, script = api.request("GET", "/static/app.js")
    assert b"pointerdown" in script
    assert b"/v1/images:predict" in script


# ------------------------------------------------------------------ bad input: 4xx, one line

PREDICT = "/v1/models/lenet:predict"
ROW = [0] * 28
IMAGE = [ROW] * 28

BAD_JSON = [
    (b"{", "invalid JSON"),
    (b"", "invalid JSON"),
    (b"\xff\xfe\xfa", "invalid JSON"),
    (b"[1, 2]", "must be a JSON object, got a list"),
    (b'{"instances": [[[NaN]]]}', "NaN and infinite values are not allowed, got NaN"),
    (b'{"instances": [[[Infinity]]]}', "got Infinity"),
    (b'{"instances": [[[-Infinity]]]}', "got -Infinity"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply|must be a JSON object"),
    (b'{"instances": [' + b"9" * 5000 + b"]}", "invalid JSON"),
]
BAD_BODIES = [
    ({}, "exactly one of .instances. .* got neither"),
    ({"instances": [IMAGE], "inputs": [IMAGE]}, "got both"),
    ({"instances": [IMAGE], "extra": 1}, "unknown keys.*got 'extra'"),
    ({"instances": []}, "at least one image, got an empty list"),
    ({"instances": IMAGE[0]}, "must be a 28x28 or 28x28x1 array, got a number"),
    ({"instances": 3}, "must be a list of 28x28 images, got a number"),
    ({"instances": [IMAGE[:27]]}, "image 0 must be a 28x28 or 28x28x1 array, got a list of 27"),
    ({"instances": [[ROW] * 27 + [ROW[:27]]]}, "got a row that is a list of 27"),
    ({"instances": [[[[0, 0]] * 28] * 28]}, "got a pixel that is a list of 2"),
    ({"instances": [[[[0]] * 28] * 27 + [ROW]]}, "got a pixel that is a number"),
    ({"instances": [[[[[0]]] * 28] * 28]}, "pixels must be numbers, got a list"),
    ({"instances": [[[True] * 28] * 28]}, "pixels must be numbers, got a boolean in image 0"),
    ({"instances": [IMAGE, [["1"] * 28] * 28]}, "got a string in image 1"),
    ({"instances": [[[None] * 28] * 28]}, "got null"),
    ({"instances": [[[{}] * 28] * 28]}, "got an object"),
    ({"instances": [[[256] * 28] * 28]}, r"0\.\.255, got values in \[256, 256\]"),
    ({"instances": [[[-1] * 28] * 28]}, r"0\.\.255, got values in \[-1, -1\]"),
    ({"instances": [[[1.5] * 28] * 28]}, r"\[0, 1\].*got values in \[1\.5, 1\.5\]"),
    ({"instances": [[[-0.25] * 28] * 28]}, r"got values in \[-0\.25, -0\.25\]"),
    ({"instances": [[[10**400] * 28] * 28]}, "too large|out of range"),
    ({"instances": [{"picture": IMAGE}]}, "only 'image', got {'picture'}"),
    ({"inputs": {"images": [IMAGE]}}, "only 'image', got {'images'}"),
    ({"signature_name": "predict", "instances": [IMAGE]}, "signature_name must be one of"),
    ({"instances": ["/etc/passwd"]}, "must be a 28x28 or 28x28x1 array, got a string"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("raw", "message"), BAD_JSON)
def test_bad_json_is_400(api: Server, raw: bytes, message: str) -> None:
    status, answer = api.json("POST", PREDICT, raw=raw)
    assert status == 400
    assert set(answer) == {"error"}
    assert "\n" not in answer["error"]
    assert re.search(message, answer["error"]), answer


@pytest.mark.slow
@pytest.mark.parametrize(("body", "message"), BAD_BODIES)
def test_bad_requests_are_400(api: Server, body: object, message: str) -> None:
    status, answer = api.predict(body)
    assert status == 400
    assert set(answer) == {"error"}
    assert "\n" not in answer["error"]
    assert re.search(message, answer["error"]), answer


@pytest.mark.slow
def test_json_with_1e400_is_refused(api: Server) -> None:
    text = json.dumps({"instances": [IMAGE]}).replace("0", "1e400", 1)
    status, answer = api.json("POST", PREDICT, raw=text.encode())
    assert status == 400
    assert re.search("finite", answer["error"])


BAD_PICTURES = [
    (b"hello", "image/png", 400, "not a readable picture"),
    (b"/etc/passwd", "image/png", 400, "not a readable"),  # bytes, never a path
    (b"", "image/png", 400, "empty"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "image/png", 400, "not a readable"),
    (huge_png_header(), "image/png", 400, "too large to decode"),
    (b"hello", "text/plain", 415, "Content-Type must be one of .*got 'text/plain'"),
    (b"hello", "", 415, "got ''"),
    (b"hello", "application/json", 415, "got 'application/json'"),
    (b"--x\r\n\r\nabc", "multipart/form-data", 400, "needs a boundary"),
    (b"--x\r\n\r\nabc", "multipart/form-data; boundary=x", 400, "no closing boundary"),
    (b"--x--\r\n", "multipart/form-data; boundary=x", 400, "no pictures"),
    (b"garbage", "multipart/form-data; boundary=x", 400, "malformed multipart"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("data", "kind", "code", "message"), BAD_PICTURES)
def test_bad_pictures(api: Server, data: bytes, kind: str, code: int, message: str) -> None:
    status, answer = api.pictures(data, kind)
    assert status == code
    assert set(answer) == {"error"}
    assert "\n" not in answer["error"]
    assert re.search(message, answer["error"]), answer


@pytest.mark.slow
def test_blank_and_truncated_pictures(api: Server) -> None:
    blank = encode(np.full((60, 60), 200, np.uint8), "png")
    status, answer = api.pictures(blank, "image/png")
    assert status == 400
    assert re.search("no ink found", answer["error"])
    photo = encode(stroke_picture(300, 200), "jpeg")
    status, answer = api.pictures(photo[: len(photo) // 3], "image/jpeg")
    assert status == 400
    assert re.search("not a readable", answer["error"])
    # In a multipart body, the error names the picture.
    body = multipart([("a", encode(stroke_picture(), "png"), "image/png"), ("b", blank, "x/y")])
    status, answer = api.pictures(body, "multipart/form-data; boundary=lenetboundary")
    assert status == 400
    assert answer["error"].startswith("picture 1: no ink found")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "path", "code", "message"),
    [
        ("GET", "/nope", 404, "no such endpoint, got /nope"),
        ("POST", "/v1/models/other:predict", 404, "got /v1/models/other:predict"),
        ("GET", "/static/../app.py", 404, "no such endpoint"),
        ("GET", "/static/index.html", 404, "no such endpoint"),
        ("GET", "/v1/models/lenet/versions/2", 404, "no such endpoint"),
        ("GET", PREDICT, 405, "accepts POST, got GET"),
        ("PUT", "/v1/images:predict", 405, "accepts POST, got PUT"),
        ("POST", "/", 405, "accepts GET, HEAD, got POST"),
        ("DELETE", "/metrics", 405, "/metrics accepts GET, HEAD, got DELETE"),
    ],
)
def test_unknown_paths_and_wrong_methods(
    api: Server, method: str, path: str, code: int, message: str
) -> None:
    status, headers, content = api.request(method, path, b"{}" if method != "GET" else None)
    assert status == code
    assert headers["content-type"] == "application/json"
    assert re.search(message, json.loads(content)["error"])
    if code == 405:
        assert "allow" in {k.lower() for k in headers}


# ------------------------------------------------------------------ limits and timeouts


@pytest.mark.slow
def test_too_many_images_is_413(strict: Server) -> None:
    status, answer = strict.predict({"instances": [IMAGE] * 5})
    assert status == 413
    assert re.search("at most 4 images per request, got 5", answer["error"])
    status, _ = strict.predict({"instances": [IMAGE] * 4})
    assert status == 200
    picture = encode(stroke_picture(), "png")
    body = multipart([(str(i), picture, "image/png") for i in range(3)])
    status, answer = strict.pictures(body, "multipart/form-data; boundary=lenetboundary")
    assert status == 413
    assert re.search("at most 2 pictures", answer["error"])


@pytest.mark.slow
def test_body_over_the_limit_is_413_before_it_is_read(strict: Server) -> None:
    with socket.create_connection(("127.0.0.1", strict.port), timeout=10) as sock:
        # Only the headers are sent: the answer cannot wait for the 10 MB.
        sock.sendall(
            f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n".encode()
        )
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"at most 200,000 bytes, got a Content-Length of 10,000,000" in answer


@pytest.mark.slow
def test_chunked_body_over_the_limit_is_413_while_streaming(strict: Server) -> None:
    with socket.create_connection(("127.0.0.1", strict.port), timeout=10) as sock:
        sock.sendall(
            f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"[" * 50_000
        for _ in range(5):  # 250 kB of the endless body, never its last chunk
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"at most 200,000 bytes, got more" in answer


@pytest.mark.slow
def test_large_bodies_within_the_limit_work(strict: Server) -> None:
    # Trailing white space is valid JSON: a body past small_body_bytes, under the limit.
    body = json.dumps({"instances": [[[0.123456789] * 28] * 28] * 4}).encode() + b" " * 80_000
    assert 100_000 < len(body) < 200_000  # over small_body_bytes: read in a turn
    status, answer = strict.json("POST", PREDICT, raw=body)
    assert status == 200
    assert len(answer["predictions"]) == 4


def _time_until_closed(port: int, data: bytes) -> tuple[float, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        if data:
            sock.sendall(data)
        started = time.monotonic()
        received = b""
        while True:
            piece = sock.recv(4096)
            if not piece:
                return time.monotonic() - started, received
            received += piece


@pytest.mark.slow
def test_stalled_clients_are_timed_out(strict: Server) -> None:
    # Nothing at all, then half a request line and half the headers: closed after
    # header_timeout (1 s), while the server keeps answering others.
    cases = [b"", b"POST /v1/mod", f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\n".encode()]
    with ThreadPoolExecutor(len(cases) + 1) as pool:
        stalled = [pool.submit(_time_until_closed, strict.port, data) for data in cases]
        body = pool.submit(
            _time_until_closed,
            strict.port,
            f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{".encode(),
        )
        assert strict.predict({"instances": [IMAGE]})[0] == 200
        for future in stalled:
            seconds, received = future.result()
            assert 0.8 < seconds < 5.0
            assert received == b""
        seconds, received = body.result()
    # A body that stops coming: 408 after body_timeout (1.5 s), one line of JSON.
    assert 1.3 < seconds < 6.0
    assert received.startswith(b"HTTP/1.1 408 ")
    assert b'{"error":"the body must arrive within 1.5 s, got 1 bytes in that time"}' in received


@pytest.mark.slow
def test_idle_keep_alive_connections_are_closed(strict: Server) -> None:
    connection = strict.connection()
    connection.request("GET", "/v1/models/lenet")
    assert connection.getresponse().read()
    sock = connection.sock
    assert sock is not None
    started = time.monotonic()
    assert sock.recv(10) == b""  # closed by the server after keep_alive_timeout (1 s)
    assert time.monotonic() - started < 5.0
    connection.close()


@pytest.mark.slow
def test_headers_over_the_limit_close_the_connection(strict: Server) -> None:
    request = f"GET /v1/models/lenet HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 8000}\r\n\r\n"
    seconds, received = _time_until_closed(strict.port, request.encode())
    assert received.startswith(b"HTTP/1.1 400 ")
    assert seconds < 5.0


def _picture_workers(server: Server) -> list[int]:
    workers = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == server.process.pid and b"spawn_main" in command:
            workers.append(int(stat.parent.name))
    return workers


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds workers through /proc")
def test_a_dead_picture_worker_is_replaced(strict: Server) -> None:
    picture = encode(stroke_picture(), "png")
    status, first = strict.pictures(picture, "image/png")
    assert status == 200
    workers = _picture_workers(strict)
    assert len(workers) == 2  # STRICT's picture_processes
    os.kill(workers[0], 9)
    time.sleep(0.5)
    # The request that meets the broken pool is retried on a new one: no error at all.
    status, answer = strict.pictures(picture, "image/png")
    assert status == 200, answer
    assert answer["predictions"][0]["digit"] == first["predictions"][0]["digit"]
    assert workers[0] not in _picture_workers(strict)


# ------------------------------------------------------------------ concurrency, metrics


@pytest.mark.slow
def test_64_concurrent_clients_all_answered_correctly(api: Server, pretrained: object) -> None:
    images = digit_images(64 * 4, seed=7)
    expected = lm.predict_digits(pretrained, images)

    def client(index: int) -> list[tuple[int, object]]:
        connection = api.connection()
        answers = []
        try:
            for k in range(4):  # keep-alive: four requests on one connection
                image = images[index * 4 + k]
                body = json.dumps({"instances": [image.tolist()]})
                connection.request("POST", PREDICT, body=body)
                response = connection.getresponse()
                answers.append((response.status, json.loads(response.read())))
        finally:
            connection.close()
        return answers

    before = _metric(api, "lenet_mnist_batch_size_count")
    with ThreadPoolExecutor(64) as pool:
        results = list(pool.map(client, range(64)))
    calls = _metric(api, "lenet_mnist_batch_size_count") - before
    flat = [answer for answers in results for answer in answers]
    assert all(status == 200 for status, _ in flat)
    predictions = [answer["predictions"][0] for _, answer in flat]
    assert_same(predictions, expected)
    # Batched: fewer model calls than requests.
    assert calls < len(flat), f"{calls} model calls for {len(flat)} requests"


def _metric(server: Server, name: str, labels: str = "") -> float:
    status, _, text = server.request("GET", "/metrics")
    assert status == 200
    pattern = "^" + re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "")
    match = re.search(pattern.encode() + rb" (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@pytest.mark.slow
def test_metrics_count_requests_errors_latency_and_batches(api: Server) -> None:
    api.predict({"instances": [IMAGE]})
    api.predict({"instances": 3})
    api.request("GET", "/nowhere")
    status, headers, text = api.request("GET", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    assert _metric(api, "lenet_mnist_requests_total", 'endpoint="predict",status="200"') >= 1
    assert _metric(api, "lenet_mnist_requests_total", 'endpoint="predict",status="400"') >= 1
    assert _metric(api, "lenet_mnist_errors_total", 'endpoint="predict",kind="bad_request"') >= 1
    assert _metric(api, "lenet_mnist_errors_total", 'endpoint="other",kind="not_found"') >= 1
    assert _metric(api, "lenet_mnist_request_duration_seconds_count", 'endpoint="predict"') >= 2
    assert _metric(api, "lenet_mnist_batch_size_count") >= 1
    assert _metric(api, "lenet_mnist_images_total") >= 1
    # Label values come from the app's own fixed set, never from the request path.
    assert b"nowhere" not in text


# ------------------------------------------------------------------ the command line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "--port must be in 0..65535, got 70000"),
        (["--max-batch", "0"], "--max-batch must be in 1..4096, got 0"),
        (["--host", ""], "--host must be a host name or IP address, got ''"),
        (["--model", "missing.keras"], "model file not found: missing.keras"),
    ],
)
def test_cli_checks_arguments_first(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from lenet_mnist.cli import main

    assert main(["serve", *args]) == 1
    assert capsys.readouterr().err == f"lenet-mnist: error: {message}\n"


@pytest.mark.slow
def test_cli_port_in_use_is_one_line(api: Server, capsys: pytest.CaptureFixture[str]) -> None:
    from lenet_mnist.cli import main

    assert main(["serve", "--port", str(api.port)]) == 1
    assert re.fullmatch(
        rf"lenet-mnist: error: \[Errno \d+\] cannot listen on 127\.0\.0\.1 port {api.port}: .+\n",
        capsys.readouterr().err,
    )


def test_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    import lenet_mnist.serve as serving

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a)
    )
    monkeypatch.delitem(serving.__dict__, "serve", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'lenet-mnist\[serve\]', got no uvicorn"):
        serving.serve  # noqa: B018


# ------------------------------------------------------------------ payloads and batcher


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_instances must be at least 1, got 0"):
        ServeLimits(max_instances=0)
    with pytest.raises(TypeError, match="max_pictures must be an int, got float"):
        ServeLimits(max_pictures=2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="body_timeout must be positive and finite, got inf"):
        ServeLimits(body_timeout=math.inf)
    with pytest.raises(ValueError, match="got 2 > 1"):
        ServeLimits(max_body_bytes=1, small_body_bytes=2)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-300, 300) | st.floats() | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=30) | st.dictionaries(st.text(max_size=9), children, max_size=3)
    ),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_parse_predict_accepts_or_raises_value_error(value: object) -> None:
    for body in ({"instances": value}, {"inputs": value}, value):
        try:
            raw = json.dumps(body).encode()
        except ValueError:
            continue
        try:
            request = parse_predict(raw, max_instances=8)
        except ValueError:
            continue
        assert request.images.dtype == np.float32
        assert request.images.shape[1:] == (28, 28, 1)
        assert request.images.min() >= 0.0
        assert request.images.max() <= 1.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 255), min_size=784, max_size=784), st.booleans())
def test_parse_predict_integer_images_round_trip(pixels: list[int], channel: bool) -> None:
    image = np.array(pixels, np.int64).reshape(28, 28)
    instance = image[..., np.newaxis] if channel else image
    request = parse_predict(
        json.dumps({"instances": [instance.tolist()]}).encode(), max_instances=1
    )
    np.testing.assert_array_equal(request.images[0, :, :, 0], (image / 255.0).astype(np.float32))


def test_parse_predict_limit_and_split_pictures() -> None:
    with pytest.raises(PayloadTooLargeError, match="at most 1 images per request, got 2"):
        parse_predict(json.dumps({"instances": [IMAGE, IMAGE]}).encode(), max_instances=1)
    parts = [("a", b"one", "image/png"), ("b", b"two\r\n--not-the-end", "image/gif")]
    body = multipart(parts)
    assert split_pictures(body, "multipart/form-data; boundary=lenetboundary", max_pictures=2) == [
        b"one",
        b"two\r\n--not-the-end",
    ]
    assert split_pictures(b"raw", "image/webp", max_pictures=1) == [b"raw"]
    with pytest.raises(PayloadTooLargeError, match="at most 1 pictures"):
        split_pictures(body, "multipart/form-data; boundary=lenetboundary", max_pictures=1)


def _fake_predict(sizes: list[int]):
    def predict(images: np.ndarray) -> BatchResult:
        sizes.append(len(images))
        flat = images.reshape(len(images), -1)
        digits = (flat[:, 0] * 10).astype(np.int64)
        probabilities = np.repeat(flat[:, :1], 10, axis=1).astype(np.float32)
        return BatchResult(digits, probabilities, probabilities)

    return predict


def test_batcher_batches_concurrent_requests_and_splits_answers() -> None:
    sizes: list[int] = []

    async def main() -> list[BatchResult]:
        batcher = MicroBatcher(_fake_predict(sizes), max_batch=8, max_delay=0.005)
        await batcher.start()
        try:
            requests = [np.full((1 + i % 3, 28, 28, 1), i / 100, np.float32) for i in range(40)]
            return await asyncio.gather(*(batcher.predict(r) for r in requests))
        finally:
            await batcher.close()

    results = asyncio.run(main())
    for i, result in enumerate(results):
        assert len(result.digits) == 1 + i % 3
        np.testing.assert_allclose(result.probabilities, i / 100, rtol=1e-6)
    assert sum(sizes) == sum(1 + i % 3 for i in range(40))
    assert max(sizes) <= 8
    assert len(sizes) < 40


def test_batcher_lone_request_does_not_wait() -> None:
    async def main() -> float:
        batcher = MicroBatcher(_fake_predict([]), max_batch=64, max_delay=0.5)
        await batcher.start()
        try:
            started = time.perf_counter()
            await batcher.predict(np.zeros((1, 28, 28, 1), np.float32))
            return time.perf_counter() - started
        finally:
            await batcher.close()

    assert asyncio.run(main()) < 0.25  # far less than max_delay: nobody else was arriving


def test_batcher_model_errors_reach_every_waiting_request() -> None:
    def broken(images: np.ndarray) -> BatchResult:
        raise RuntimeError("model exploded")

    async def main() -> list[object]:
        batcher = MicroBatcher(broken, max_batch=4, max_delay=0.0)
        await batcher.start()
        try:
            one = np.zeros((1, 28, 28, 1), np.float32)
            return await asyncio.gather(
                *(batcher.predict(one) for _ in range(3)), return_exceptions=True
            )
        finally:
            await batcher.close()

    outcomes = asyncio.run(main())
    assert all(isinstance(o, RuntimeError) and str(o) == "model exploded" for o in outcomes)


SERVE_MODULES = sorted(
    f"lenet_mnist.serve.{info.name}"
    for info in pkgutil.iter_modules(importlib.import_module("lenet_mnist.serve").__path__)
)


def test_serve_modules_are_found() -> None:
    # tests/test_doctests.py walks the top level only; the serve package's own are here.
    assert {"lenet_mnist.serve.app", "lenet_mnist.serve.payloads"} <= set(SERVE_MODULES)


@pytest.mark.parametrize("module_name", SERVE_MODULES)
def test_serve_docstring_examples(module_name: str) -> None:
    module = importlib.import_module(module_name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS, verbose=False)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, module_name)
    report: list[str] = []
    for test in tests:
        runner.run(test, out=report.append)
    if runner.failures:
        pytest.fail("".join(report), pytrace=False)


# ------------------------------------------------------------------ the page in a browser


def _browser():
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="needs selenium (serve-test extra)"
    )
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip(
            "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        )
    return webdriver, chromium, driver


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    webdriver, chromium, driver = _browser()
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=900,760",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield session
    finally:
        session.quit()


def _wait_for_answer(browser: Any, previous: str = "?") -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        shown = browser.find_element("id", "digit").text
        status = browser.find_element("id", "status").text
        assert not status, status
        if shown != previous:
            return str(shown)
        time.sleep(0.1)
    pytest.fail("the page showed no answer within 30 s")


@pytest.mark.slow
def test_page_draw_a_one_with_pointer_events(
    api: Server, browser: Any, pretrained: object, tmp_path: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    browser.get(f"http://127.0.0.1:{api.port}/")
    canvas = browser.find_element("id", "pad")
    assert len(browser.find_elements("css selector", "#bars li")) == 10
    # A mouse stroke: pointerdown, pointermoves down the middle, pointerup.
    actions = ActionChains(browser, duration=20)
    actions.move_to_element_with_offset(canvas, 5, -95).click_and_hold()
    for _ in range(19):
        actions.move_by_offset(-1, 10)
    actions.release().perform()
    shown = _wait_for_answer(browser)
    # The answer shown is the model's answer for the picture the page sent.
    png = browser.execute_script(
        "return document.getElementById('pad').toDataURL('image/png').split(',')[1]"
    )
    import base64

    expected = lm.predict_digits(pretrained, base64.b64decode(png))
    assert shown == str(int(expected.digits[0])) == "1"
    bars = browser.find_elements("css selector", "#bars li .value")
    values = [float(b.text.rstrip("%")) for b in bars]
    assert abs(sum(values) - 100) < 1.0
    assert max(values) == values[1]
    assert browser.save_screenshot(str(tmp_path / "page.png"))

    # Clear, then a touch stroke (a pen/touch pointer, not the mouse): a "7".
    browser.find_element("id", "clear").click()
    assert browser.find_element("id", "digit").text == "?"
    touch = PointerInput(interaction.POINTER_TOUCH, "finger")
    builder = ActionBuilder(browser, mouse=touch, duration=20)
    builder.pointer_action.move_to(canvas, -70, -80).pointer_down()
    for x, y in [(-20, -80), (30, -80), (70, -80), (50, -30), (30, 20), (10, 70), (0, 100)]:
        builder.pointer_action.move_to(canvas, x, y)
    builder.pointer_action.pointer_up()
    builder.perform()
    shown = _wait_for_answer(browser)
    png = browser.execute_script(
        "return document.getElementById('pad').toDataURL('image/png').split(',')[1]"
    )
    expected = lm.predict_digits(pretrained, base64.b64decode(png))
    assert shown == str(int(expected.digits[0]))


@pytest.mark.slow
def test_page_upload_a_picture(api: Server, browser: Any, tmp_path: Path) -> None:
    picture = tmp_path / "one.jpg"
    picture.write_bytes(encode(stroke_picture(300, 200), "jpeg"))
    browser.get(f"http://127.0.0.1:{api.port}/")
    browser.find_element("id", "file").send_keys(str(picture))
    assert _wait_for_answer(browser) == "1"
    # A file that is not a picture: the server's one-line reason is shown.
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    browser.find_element("id", "file").send_keys(str(text))
    deadline = time.monotonic() + 30
    while not browser.find_element("id", "status").text:
        assert time.monotonic() < deadline, "no error shown"
        time.sleep(0.1)
    assert "not a readable" in browser.find_element("id", "status").text
