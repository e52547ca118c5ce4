"""Running the app with uvicorn: ``serve()``, and the guard against stalled clients.

uvicorn closes a keep-alive connection that stays idle after an answer
(``timeout_keep_alive``), but neither a connection that never finishes its request
line and headers nor one that sends headers without end; the app's own deadline
covers only the body. ``_GuardedProtocol`` -- uvicorn's httptools protocol,
extended through the parser callbacks httptools documents -- closes a connection
whose headers take longer than ``header_timeout`` and refuses more than
``max_header_bytes`` of them.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import multiprocessing
import os
import socket
import sys
from typing import Any, TextIO

import keras
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lenet_mnist.serve.app import MODEL_NAME, build_app
from lenet_mnist.serve.limits import ServeLimits

__all__ = ["serve"]


class _HeadersTooLargeError(ValueError):
    """Raised from a parser callback; uvicorn answers 400 and closes the connection."""


def _guarded_protocol(limits: ServeLimits) -> type[HttpToolsProtocol]:
    class _GuardedProtocol(HttpToolsProtocol):
        _guard: asyncio.TimerHandle | None = None
        _header_bytes = 0

        def _arm(self) -> None:
            self._disarm()
            self._header_bytes = 0
            self._guard = asyncio.get_running_loop().call_later(
                limits.header_timeout, self._headers_too_slow
            )

        def _disarm(self) -> None:
            if self._guard is not None:
                self._guard.cancel()
                self._guard = None

        def _headers_too_slow(self) -> None:
            self._guard = None
            transport = self.transport
            if not transport.is_closing():
                transport.close()

        def _count(self, size: int) -> None:
            self._header_bytes += size
            if self._header_bytes > limits.max_header_bytes:
                self._disarm()
                raise _HeadersTooLargeError(f"request headers over {limits.max_header_bytes} bytes")

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

    return _GuardedProtocol


def _check_host(host: object) -> str:
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, got {type(host).__name__}")
    if not host or any(c.isspace() for c in host) or len(host) > 253:
        raise ValueError(f"host must be a host name or IP address, got {host!r}")
    return host


def _check_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"port must be an int, got {type(port).__name__}")
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be in 0..65535 (0: any free port), got {port}")
    return port


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket; an address in use is an ``OSError`` here, not a log line."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host.strip("[]")).version == 6 else 0
    except ValueError:
        family = 0  # a host name: whatever it resolves to first
    infos = socket.getaddrinfo(
        host.strip("[]"), port, family or socket.AF_UNSPEC, socket.SOCK_STREAM
    )
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as error:
        sock.close()
        raise OSError(
            error.errno, f"cannot listen on {host} port {port}: {error.strerror}"
        ) from None
    sock.set_inheritable(True)
    return sock


def _loop_name() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def serve(
    model: keras.Model | str | os.PathLike[str] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8500,
    max_batch: int = 64,
    max_delay: float = 0.002,
    limits: ServeLimits | None = None,
    log_level: str = "warning",
    out: TextIO | None = None,
) -> None:
    """Serve ``model`` over HTTP until interrupted (Ctrl+C or SIGTERM).

    The endpoints are those of :func:`build_app`: the drawing page at ``/``,
    TensorFlow Serving's ``/v1/models/lenet`` and ``/v1/models/lenet:predict``,
    picture uploads at ``/v1/images:predict`` and Prometheus metrics at ``/metrics``.
    Run with uvicorn (httptools, and uvloop where installed), one process.

    Args:
        model: A ``keras.Model``, a ``.keras`` file path, or ``None`` for the
            pretrained model.
        host: The address to listen on. The default, ``127.0.0.1``, is reachable
            from this machine only; ``0.0.0.0`` opens the server to the network.
        port: The TCP port (0: any free one; the line printed names it).
        max_batch: Most images per model call (1..4096).
        max_delay: Most seconds a batch waits for requests still being read (0..1).
        limits: Request limits (:class:`ServeLimits`).
        log_level: uvicorn's log level: ``critical``, ``error``, ``warning``,
            ``info`` or ``debug``.
        out: Where to print the ``serving ... on http://...`` line once the server
            answers (default ``sys.stdout``).

    A script that calls it must do so under ``if __name__ == "__main__":``: the
    picture workers are started with ``spawn``, which imports the main module again.

    Raises:
        TypeError, ValueError: A bad argument (checked before the model is loaded).
        RuntimeError: Called from a worker process importing an unguarded script.
        FileNotFoundError, ModelFileError: A model file that is missing or unreadable.
        OSError: The address cannot be listened on (for example, the port is taken).

    Example:
        >>> serve("lenet.keras", port=8500)  # doctest: +SKIP
        serving lenet (lenet.keras) on http://127.0.0.1:8500 -- Ctrl+C stops it
    """
    if multiprocessing.parent_process() is not None:
        # A picture worker (started with "spawn") imports the main module again; a
        # script that calls serve() unguarded would start a server in every worker.
        raise RuntimeError(
            "serve() was called while a worker process imported the main module; call it "
            "under `if __name__ == '__main__':`, got a call from a multiprocessing child"
        )
    host = _check_host(host)
    port = _check_port(port)
    if limits is None:
        limits = ServeLimits()
    elif not isinstance(limits, ServeLimits):
        raise TypeError(f"limits must be a ServeLimits, got {type(limits).__name__}")
    if log_level not in ("critical", "error", "warning", "info", "debug"):
        raise ValueError(
            f"log_level must be critical, error, warning, info or debug, got {log_level!r}"
        )
    stream = sys.stdout if out is None else out
    if model is None:
        what = "the pretrained model"
    elif isinstance(model, str | os.PathLike):
        what = os.fspath(model)
    else:
        what = f"model {getattr(model, 'name', type(model).__name__)!r}"
    sock = _bind(host, port)
    try:
        bound_port = sock.getsockname()[1]
        shown_host = f"[{host}]" if ":" in host and not host.startswith("[") else host

        def ready() -> None:
            print(
                f"serving {MODEL_NAME} ({what}) on http://{shown_host}:{bound_port} "
                "-- Ctrl+C stops it",
                file=stream,
                flush=True,
            )

        app = build_app(
            model, max_batch=max_batch, max_delay=max_delay, limits=limits, on_ready=ready
        )
        # TensorFlow and Keras leave ~400,000 objects that the garbage collector would
        # traverse on every full collection, stalling all requests; this process is the
        # server's alone, so they are moved out of its reach once, after the warm-up.
        gc.collect()
        gc.freeze()
        config = uvicorn.Config(
            app,
            http=_guarded_protocol(limits),
            loop=_loop_name(),
            lifespan="on",
            log_level=log_level,
            access_log=False,
            timeout_keep_alive=limits.keep_alive_timeout,
            limit_concurrency=limits.max_connections,
            server_header=False,
        )
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
