"""Load benchmark of ``lenet-mnist serve`` on 127.0.0.1 (bounded: a fixed number of requests).

Starts ``python -m lenet_mnist serve`` (the pretrained model) on a free loopback port,
measures the time from the start of the process to its first answer, then for 1, 8,
32 and 128 concurrent clients sends a fixed number of

* single-instance JSON predictions (``POST /v1/models/lenet:predict``, one 28x28 image
  of integer pixels, as TensorFlow Serving's row format), and
* picture uploads (``POST /v1/images:predict``, a 280x280 PNG like the ones the drawing
  page sends),

and reports requests/s and the p50/p99 latency of each, then the server's resident
memory (RSS) before and after ``--memory-requests`` more JSON requests. Every client is
an asyncio task holding one keep-alive HTTP/1.1 connection, all in this one process (a
minimal client, so that the load generator, which shares the machine's cores with the
server, costs as little CPU as possible). Every answer's status is checked, and the
first answers of each run are compared with ``lenet_mnist.predict_digits`` in this
process. The server is stopped at the end, whatever happens.

Usage::

    python benchmarks/serve_benchmark.py --output benchmarks/serve_results.json
    python benchmarks/serve_benchmark.py --quick          # a smoke run, not the numbers
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
_LENGTH = re.compile(rb"content-length: *(\d+)", re.IGNORECASE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def machine() -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import lenet_mnist

    versions = {"python": platform.python_version(), "lenet_mnist": lenet_mnist.__version__}
    for name in ("tensorflow", "keras", "starlette", "uvicorn", "httptools", "uvloop"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:  # a missing optional package is just noted
            versions[name] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        **versions,
    }


# ------------------------------------------------------------------ payloads


def stroke_images(count: int, seed: int = 0) -> np.ndarray:
    """``(count, 28, 28)`` uint8 images of one or two bright bars (MNIST form)."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), np.uint8)
    for image in images:
        for _ in range(int(rng.integers(1, 3))):
            top, left = (int(v) for v in rng.integers(4, 14, size=2))
            height, width = (int(v) for v in rng.integers(3, 12, size=2))
            image[top : top + height, left : left + width] = rng.integers(120, 256)
    return images


def canvas_pictures(count: int, seed: int = 0) -> list[bytes]:
    """280x280 PNGs of a thick white polyline on black: what the drawing page sends."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:280, 0:280].astype(np.float32)
    pictures = []
    for _ in range(count):
        canvas = np.zeros((280, 280), np.float32)
        points = rng.uniform(50, 230, size=(4, 2)).astype(np.float32)
        for (y0, x0), (y1, x1) in itertools.pairwise(points):
            dy, dx = y1 - y0, x1 - x0
            t = np.clip(((ys - y0) * dy + (xs - x0) * dx) / max(dy * dy + dx * dx, 1e-6), 0, 1)
            distance = np.hypot(ys - (y0 + t * dy), xs - (x0 + t * dx))
            canvas = np.maximum(canvas, np.clip(11 - distance, 0, 1))
        pixels = np.round(canvas * 255).astype(np.uint8)[..., np.newaxis]
        pictures.append(bytes(tf.io.encode_png(pixels).numpy()))
    return pictures


def http_request(path: str, body: bytes, content_type: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


# ------------------------------------------------------------------ the load


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    match = _LENGTH.search(head)
    if match is None:
        raise RuntimeError(f"an answer without Content-Length: {head[:200]!r}")
    body = await reader.readexactly(int(match.group(1)))
    return int(head[9:12]), body


async def run_load(port: int, requests: list[bytes], total: int, clients: int) -> dict[str, Any]:
    """Send ``total`` requests (cycling through ``requests``) from ``clients`` connections."""
    latencies: list[float] = []
    bodies: list[tuple[int, bytes]] = []
    errors: list[str] = []
    next_index = 0

    async def client() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while next_index < total:
                index = next_index
                next_index += 1
                request = requests[index % len(requests)]
                started = time.perf_counter()
                status, body = await _exchange(reader, writer, request)
                latencies.append(time.perf_counter() - started)
                if status != 200:
                    errors.append(f"{status}: {body[:200]!r}")
                elif index < 16:
                    bodies.append((index, body))
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    seconds = time.perf_counter() - started
    latencies.sort()
    return {
        "clients": clients,
        "requests": len(latencies),
        "seconds": seconds,
        "requests_per_s": len(latencies) / seconds,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "mean_ms": 1000 * statistics.fmean(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "_bodies": bodies,
    }


def check_answers(bodies: list[tuple[int, bytes]], expected: list[int]) -> None:
    for index, body in bodies:
        digit = json.loads(body)["predictions"][0]["digit"]
        if digit != expected[index % len(expected)]:
            raise RuntimeError(f"request {index}: digit {digit}, expected {expected[index]}")


# ------------------------------------------------------------------ the server


def start_server(port: int, log: Path) -> tuple[subprocess.Popen[bytes], float, bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    body = json.dumps({"instances": [np.zeros((28, 28), int).tolist()]}).encode()
    probe = http_request("/v1/models/lenet:predict", body, "application/json")
    started = time.perf_counter()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "lenet_mnist", "serve", "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = started + 120
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(probe)
                answer = sock.recv(65536)
            if answer.startswith(b"HTTP/1.1 200"):
                return process, time.perf_counter() - started, answer
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the server did not answer within 120 s")


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| requests | clients | requests/s | p50 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['kind']} | {row['clients']} | {row['requests_per_s']:,.0f} | "
            f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['errors']} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json-requests", type=int, default=5000, help="per JSON run")
    parser.add_argument("--picture-requests", type=int, default=2000, help="per upload run")
    parser.add_argument("--memory-requests", type=int, default=100_000)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few requests")
    parser.add_argument(
        "--memory-only", action="store_true", help="only the start time and the memory run"
    )
    args = parser.parse_args()
    if args.quick:
        args.json_requests, args.picture_requests, args.memory_requests = 300, 100, 1000
    for name in ("json_requests", "picture_requests", "memory_requests"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    import lenet_mnist as lm

    info = machine()
    model = lm.pretrained()
    images = stroke_images(64)
    json_requests = [
        http_request(
            "/v1/models/lenet:predict",
            json.dumps({"instances": [image.tolist()]}).encode(),
            "application/json",
        )
        for image in images
    ]
    json_expected = lm.predict_digits(model, images).digits.tolist()
    pictures = canvas_pictures(16)
    picture_requests = [http_request("/v1/images:predict", p, "image/png") for p in pictures]
    picture_expected = lm.predict_digits(model, pictures).digits.tolist()

    port = free_port()
    log = Path(tempfile.gettempdir()) / f"serve-benchmark-{port}.log"
    process, start_seconds, _ = start_server(port, log)
    results: dict[str, Any] = {"machine": info, "start_to_first_answer_s": start_seconds}
    print(f"server start to first answer: {start_seconds:.2f} s", flush=True)
    rows: list[dict[str, Any]] = []
    try:
        for kind, requests, total, expected in (
            ("JSON, 1 image", json_requests, args.json_requests, json_expected),
            ("PNG upload", picture_requests, args.picture_requests, picture_expected),
        )[: 0 if args.memory_only else 2]:
            for clients in args.clients:
                asyncio.run(run_load(port, requests, min(total, 4 * clients), clients))  # warm
                row = asyncio.run(run_load(port, requests, total, clients))
                check_answers(row.pop("_bodies"), expected)
                row["kind"] = kind
                rows.append(row)
                print(
                    f"{kind:14s} {clients:4d} clients: {row['requests_per_s']:8,.0f} req/s  "
                    f"p50 {row['p50_ms']:6.1f} ms  p99 {row['p99_ms']:6.1f} ms  "
                    f"errors {row['errors']}",
                    flush=True,
                )
        # RSS sampled every quarter of the run: a leak grows steadily, warm-up levels off.
        samples = [rss_mib(process.pid)]
        quarter = max(1, args.memory_requests // 4)
        done, runs = 0, []
        while done < args.memory_requests:
            count = min(quarter, args.memory_requests - done)
            run = asyncio.run(run_load(port, json_requests, count, 32))
            run.pop("_bodies")
            runs.append(run)
            done += count
            samples.append(rss_mib(process.pid))
        seconds = sum(r["seconds"] for r in runs)
        errors = sum(r["errors"] for r in runs)
        results["memory"] = {
            "requests": args.memory_requests,
            "clients": 32,
            "rss_mib": samples,
            "requests_per_s": args.memory_requests / seconds,
            "errors": errors,
        }
        print(
            f"RSS {' -> '.join(f'{v:.1f}' for v in samples)} MiB over {args.memory_requests:,} "
            f"more requests ({args.memory_requests / seconds:,.0f} req/s, {errors} errors)"
        )
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
    results["runs"] = rows
    results["machine"]["load_average_at_end"] = os.getloadavg()
    print()
    print(table(rows))
    print(
        f"\n{info['cpu']}, {info['cores']} cores, {info['date']}; load average at start "
        f"{', '.join(f'{v:.2f}' for v in info['load_average_at_start'])}, at end "
        f"{', '.join(f'{v:.2f}' for v in results['machine']['load_average_at_end'])}"
    )
    if args.output is not None:
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
