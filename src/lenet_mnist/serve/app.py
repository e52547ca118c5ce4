"""The ASGI app: TensorFlow Serving's REST predict, picture uploads, the drawing page.

Endpoints (every error is ``{"error": "<one line>"}`` with a 4xx status):

========================================  ==============================================
``GET /``                                 the drawing page (its assets under ``/static/``)
``GET /v1/models/lenet``                  TensorFlow Serving's model status
``POST /v1/models/lenet:predict``         TensorFlow Serving's predict (rows or columns)
``POST /v1/images:predict``               one picture as the body, or several, multipart
``GET /metrics``                          Prometheus metrics
========================================  ==============================================

``/v1/models/lenet/versions/1`` and ``/v1/models/lenet/versions/1:predict`` answer
too, as TensorFlow Serving does for a model whose only version is 1. Paths are an
exact allow-list; nothing in a request is ever used as a file name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from importlib import resources
from typing import Any, Final

import anyio
import anyio.to_thread
import keras
import numpy as np
import numpy.typing as npt
from python_multipart.multipart import parse_options_header
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lenet_mnist.images.prepare import prepare_image
from lenet_mnist.inference import predict_digits
from lenet_mnist.models.pretrained import pretrained
from lenet_mnist.models.saving import load_model
from lenet_mnist.serve.batcher import BatchResult, MicroBatcher
from lenet_mnist.serve.limits import ServeLimits
from lenet_mnist.serve.metrics import CONTENT_TYPE, ServeMetrics
from lenet_mnist.serve.payloads import (
    PICTURE_TYPES,
    PayloadTooLargeError,
    PredictRequest,
    parse_predict,
    split_pictures,
)
from lenet_mnist.serve.pictures import PicturePool

__all__ = ["MODEL_NAME", "MODEL_VERSION", "build_app"]

#: The model's name in TensorFlow Serving's URLs (``/v1/models/lenet``).
MODEL_NAME: Final = "lenet"
#: The one version served, as TensorFlow Serving numbers a model's directories.
MODEL_VERSION: Final = "1"

_log = logging.getLogger("lenet_mnist.serve")

_STATUS_PATHS: Final = (f"/v1/models/{MODEL_NAME}", f"/v1/models/{MODEL_NAME}/versions/1")
_PREDICT_PATHS: Final = tuple(f"{path}:predict" for path in _STATUS_PATHS)
_IMAGES_PATH: Final = "/v1/images:predict"
_ASSETS: Final = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
#: Endpoint label of each path (metrics); any other path counts as "other".
_ENDPOINTS: Final[Mapping[str, str]] = {
    **dict.fromkeys(_ASSETS, "page"),
    **dict.fromkeys(_STATUS_PATHS, "status"),
    **dict.fromkeys(_PREDICT_PATHS, "predict"),
    _IMAGES_PATH: "images",
    "/metrics": "metrics",
}
_ENDPOINT_NAMES: Final = frozenset(_ENDPOINTS.values()) | {"other"}
# The page needs nothing but its own assets and its own API.
_PAGE_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# Bodies larger than this are parsed in a worker thread, not on the event loop.
_PARSE_INLINE_BYTES: Final = 64 * 1024
_ERROR_NOTE: Final = "lenet_mnist.error_kind"
_MAX_MESSAGE: Final = 300


class _HTTPError(Exception):
    """An error answer: status, metrics kind and the one-line message."""

    def __init__(
        self, status: int, kind: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.headers = headers


def _one_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    line = text.splitlines()[0] if text.splitlines() else text
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 3] + "..."


def _error_response(
    scope: Scope, status: int, kind: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    note = scope.get(_ERROR_NOTE)
    if isinstance(note, dict):
        note["kind"] = kind
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class _Observe:
    """Pure ASGI middleware: times every request and counts it by endpoint and status."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        note: dict[str, str | None] = {"kind": None}
        scope[_ERROR_NOTE] = note
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            endpoint = _ENDPOINTS.get(scope["path"], "other")
            self.metrics.observe_request(
                endpoint, status, time.perf_counter() - started, note["kind"]
            )


def _resolve_model(model: keras.Model | str | os.PathLike[str] | None) -> keras.Model:
    if model is None:
        return pretrained()
    if isinstance(model, str | os.PathLike):
        return load_model(model)
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"model must be a keras.Model, a .keras file path or None, got {type(model).__name__}"
        )
    return model


def _make_predict(model: keras.Model) -> Callable[[npt.NDArray[np.float32]], BatchResult]:
    def predict(images: npt.NDArray[np.float32]) -> BatchResult:
        result = predict_digits(model, images)
        return BatchResult(result.digits, result.probabilities, result.logits)

    return predict


def _warm_up(predict: Callable[[npt.NDArray[np.float32]], BatchResult]) -> None:
    """Compile the model's one-image and batch paths and TensorFlow's picture ops."""
    for count in (1, 2):
        result = predict(np.zeros((count, 28, 28, 1), np.float32))
        if result.probabilities.shape != (count, 10):
            raise ValueError(
                "model must map (N, 28, 28, 1) images to (N, 10) digit logits, got output "
                f"shape {result.probabilities.shape}"
            )
    stroke = np.zeros((40, 30), np.uint8)
    stroke[8:32, 13:17] = 255
    prepare_image(stroke)


def _rows(result: BatchResult) -> list[dict[str, Any]]:
    probabilities = result.probabilities.tolist()
    logits = result.logits.tolist()
    return [
        {"digit": digit, "probabilities": p, "logits": z}
        for digit, p, z in zip(result.digits.tolist(), probabilities, logits, strict=True)
    ]


def _columns(result: BatchResult) -> dict[str, Any]:
    return {
        "digit": result.digits.tolist(),
        "probabilities": result.probabilities.tolist(),
        "logits": result.logits.tolist(),
    }


def _asset(name: str) -> bytes:
    return resources.files("lenet_mnist.serve").joinpath("static", name).read_bytes()


class _Service:
    """The handlers of one app and the state they share."""

    def __init__(self, limits: ServeLimits, batcher: MicroBatcher, metrics: ServeMetrics) -> None:
        self.limits = limits
        self.batcher = batcher
        self.metrics = metrics
        self.large_turns = asyncio.Semaphore(limits.large_bodies)
        self.pictures = PicturePool(limits.picture_processes)
        self.parsers = anyio.CapacityLimiter(limits.large_bodies)
        status = {
            "model_version_status": [
                {
                    "version": MODEL_VERSION,
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }
        self.status_body = json.dumps(status, indent=1).encode()
        # Read once, here: requests are answered from memory and never touch files.
        self.assets = {path: (_asset(name), kind) for path, (name, kind) in _ASSETS.items()}

    # ------------------------------------------------------------------ the body

    @contextlib.asynccontextmanager
    async def body(self, request: Request) -> AsyncIterator[bytes]:
        """The request's body, read within the size limit and the deadline."""
        limits = self.limits
        declared = request.headers.get("content-length")
        length = -1
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                raise _HTTPError(
                    400, "bad_request", f"Content-Length must be a number, got {declared[:20]!r}"
                ) from None
            if length > limits.max_body_bytes:
                raise _HTTPError(
                    413,
                    "too_large",
                    f"the body must be at most {limits.max_body_bytes:,} bytes, got a "
                    f"Content-Length of {length:,}",
                )
        turn = False
        try:
            if length > limits.small_body_bytes:
                turn = await self._turn()
            chunks: list[bytes] = []
            total = 0
            try:
                with anyio.fail_after(limits.body_timeout):
                    async for chunk in request.stream():
                        total += len(chunk)
                        if total > limits.max_body_bytes:
                            raise _HTTPError(
                                413,
                                "too_large",
                                f"the body must be at most {limits.max_body_bytes:,} bytes, "
                                f"got more",
                            )
                        if total > limits.small_body_bytes and not turn:
                            turn = await self._turn()
                        chunks.append(chunk)
            except TimeoutError:
                raise _HTTPError(
                    408,
                    "timeout",
                    f"the body must arrive within {limits.body_timeout:g} s, got "
                    f"{total:,} bytes in that time",
                    {"Connection": "close"},
                ) from None
            except ClientDisconnect:
                raise _HTTPError(
                    400, "bad_request", f"the client disconnected, got {total:,} bytes"
                ) from None
            yield b"".join(chunks)
        finally:
            if turn:
                self.large_turns.release()

    async def _turn(self) -> bool:
        """Wait for one of the ``large_bodies`` turns; 503 when none frees up in time."""
        try:
            with anyio.fail_after(self.limits.body_timeout):
                await self.large_turns.acquire()
        except TimeoutError:
            raise _HTTPError(
                503,
                "busy",
                f"too many large requests at once, got no turn in {self.limits.body_timeout:g} s",
                {"Retry-After": "1"},
            ) from None
        return True

    # ------------------------------------------------------------------ handlers

    async def page(self, request: Request) -> Response:
        content, kind = self.assets[request.url.path]
        return Response(content, media_type=kind, headers=_PAGE_HEADERS)

    async def status(self, request: Request) -> Response:
        return Response(self.status_body, media_type="application/json")

    async def metrics_text(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    async def predict(self, request: Request) -> Response:
        with self.batcher.arriving():
            async with self.body(request) as body:
                try:
                    if len(body) > _PARSE_INLINE_BYTES:
                        parsed = await anyio.to_thread.run_sync(
                            self._parse, body, limiter=self.parsers
                        )
                    else:
                        parsed = self._parse(body)
                except PayloadTooLargeError as error:
                    raise _HTTPError(413, "too_large", _one_line(error)) from None
                except ValueError as error:
                    raise _HTTPError(400, "bad_request", _one_line(error)) from None
        result = await self.batcher.predict(parsed.images)
        if parsed.columnar:
            return JSONResponse({"outputs": _columns(result)})
        return JSONResponse({"predictions": _rows(result)})

    def _parse(self, body: bytes) -> PredictRequest:
        return parse_predict(body, max_instances=self.limits.max_instances)

    async def images(self, request: Request) -> Response:
        content_type = request.headers.get("content-type", "")
        kind = parse_options_header(content_type)[0].decode("latin-1").lower()
        if kind not in PICTURE_TYPES and kind != "multipart/form-data":
            allowed = ", ".join(sorted(PICTURE_TYPES | {"multipart/form-data"}))
            raise _HTTPError(
                415,
                "unsupported_media_type",
                f"Content-Type must be one of {allowed}, got {content_type[:60]!r}",
            )
        with self.batcher.arriving():
            async with self.body(request) as body:
                try:
                    pictures = split_pictures(
                        body, content_type, max_pictures=self.limits.max_pictures
                    )
                except PayloadTooLargeError as error:
                    raise _HTTPError(413, "too_large", _one_line(error)) from None
                except ValueError as error:
                    raise _HTTPError(400, "bad_request", _one_line(error)) from None
                images = await self._prepare_all(pictures)
        result = await self.batcher.predict(images)
        return JSONResponse({"predictions": _rows(result)})

    async def _prepare_all(self, pictures: list[bytes]) -> npt.NDArray[np.float32]:
        # Bytes only, never a path: prepare_image decodes them in memory.
        outcomes = await asyncio.gather(
            *(self.pictures.prepare(p) for p in pictures), return_exceptions=True
        )
        prepared: list[npt.NDArray[np.float32]] = []
        for index, outcome in enumerate(outcomes):
            if isinstance(outcome, ValueError):  # ImageError is a ValueError
                where = f"picture {index}: " if len(pictures) > 1 else ""
                raise _HTTPError(400, "bad_picture", where + _one_line(outcome))
            if isinstance(outcome, BaseException):
                raise outcome
            prepared.append(outcome)
        return np.stack(prepared)[..., np.newaxis]


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, _HTTPError)  # noqa: S101 - registered for _HTTPError only
    return _error_response(request.scope, error.status, error.kind, error.message, error.headers)


async def _starlette_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)  # noqa: S101 - registered for HTTPException only
    path = request.url.path
    shown = path if len(path) <= 80 else path[:77] + "..."
    if error.status_code == 404:
        return _error_response(request.scope, 404, "not_found", f"no such endpoint, got {shown}")
    if error.status_code == 405:
        # Sorted: Starlette builds the header from a set, in no fixed order.
        methods = (error.headers or {}).get("Allow", "").split(",")
        allowed = ", ".join(sorted(m.strip() for m in methods if m.strip()))
        return _error_response(
            request.scope,
            405,
            "method_not_allowed",
            f"{shown} accepts {allowed or 'other methods'}, got {request.method}",
            error.headers,
        )
    return _error_response(request.scope, error.status_code, "bad_request", str(error.detail))


async def _internal_error(request: Request, error: Exception) -> Response:
    _log.error("internal error answering %s %s", request.method, request.url.path, exc_info=error)
    return _error_response(request.scope, 500, "internal", "internal server error")


def build_app(
    model: keras.Model | str | os.PathLike[str] | None = None,
    *,
    max_batch: int = 64,
    max_delay: float = 0.002,
    limits: ServeLimits | None = None,
    on_ready: Callable[[], None] | None = None,
) -> Starlette:
    """Build the ASGI app serving ``model`` (run it with uvicorn, or embed it).

    The model is loaded and warmed up here (its one-image and batch functions are
    compiled), so the first request is as fast as the others and a model that does
    not map ``(N, 28, 28, 1)`` images to ``(N, 10)`` logits fails now, not then.

    Args:
        model: A ``keras.Model``, the path of a ``.keras`` file (read with
            :func:`lenet_mnist.load_model`, safe mode on), or ``None`` for
            :func:`lenet_mnist.pretrained`.
        max_batch: Most images per model call (1..4096).
        max_delay: Most seconds a batch waits for requests still being read (0..1).
        limits: Request limits (:class:`ServeLimits`; default ``ServeLimits()``).
        on_ready: Called once the app has started (its lifespan), before it serves.

    Returns:
        A Starlette app; its lifespan starts and stops the batcher.

    Raises:
        TypeError: A wrong argument type.
        ValueError: ``max_batch`` or ``max_delay`` out of range, or a model of the
            wrong shape.
        FileNotFoundError: A model path that does not exist.
        ModelFileError: A model file that is not a readable, safe ``.keras`` archive.

    Example:
        >>> import lenet_mnist as lm
        >>> app = build_app(lm.build_lenet(seed=0), max_batch=16)  # doctest: +SKIP
        >>> # uvicorn.run(app, host="127.0.0.1", port=8500)
    """
    if isinstance(max_batch, bool) or not isinstance(max_batch, int):
        raise TypeError(f"max_batch must be an int, got {type(max_batch).__name__}")
    if not 1 <= max_batch <= 4096:
        raise ValueError(f"max_batch must be in 1..4096, got {max_batch}")
    if isinstance(max_delay, bool) or not isinstance(max_delay, int | float):
        raise TypeError(f"max_delay must be a number of seconds, got {type(max_delay).__name__}")
    if not 0.0 <= max_delay <= 1.0:
        raise ValueError(f"max_delay must be in [0, 1] seconds, got {max_delay}")
    if limits is None:
        limits = ServeLimits()
    elif not isinstance(limits, ServeLimits):
        raise TypeError(f"limits must be a ServeLimits, got {type(limits).__name__}")
    if on_ready is not None and not callable(on_ready):
        raise TypeError(f"on_ready must be callable, got {type(on_ready).__name__}")
    predict = _make_predict(_resolve_model(model))
    _warm_up(predict)
    metrics = ServeMetrics(_ENDPOINT_NAMES, max_batch=max_batch)
    batcher = MicroBatcher(
        predict, max_batch=max_batch, max_delay=float(max_delay), on_batch=metrics.observe_batch
    )
    service = _Service(limits, batcher, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await batcher.start()
        service.pictures.start()
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            await service.pictures.close()
            await batcher.close()

    routes = [Route(path, service.page, methods=["GET"]) for path in _ASSETS]
    routes += [Route(path, service.status, methods=["GET"]) for path in _STATUS_PATHS]
    routes += [Route(path, service.predict, methods=["POST"]) for path in _PREDICT_PATHS]
    routes.append(Route(_IMAGES_PATH, service.images, methods=["POST"]))
    routes.append(Route("/metrics", service.metrics_text, methods=["GET"]))
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        _HTTPError: _http_error,
        HTTPException: _starlette_error,
        Exception: _internal_error,
    }
    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    app.add_middleware(_Observe, metrics=metrics)
    return app
