"""The bounds that keep one request, or many, from exhausting the server.

Needs nothing beyond the standard library, so the limits can be checked (by the command
line, before anything starts) without the ``serve`` extra installed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Final

__all__ = ["ServeLimits"]

_MIB: Final = 1024 * 1024


@dataclass(frozen=True)
class ServeLimits:
    """Request limits of :func:`lenet_mnist.serve.server.serve` and :func:`~lenet_mnist.serve.app.build_app`.

    Memory is bounded by them before anything is allocated: a body is refused (413) as
    soon as its ``Content-Length`` or the bytes received so far pass
    ``max_body_bytes``, and at most ``large_bodies`` requests at a time may hold more
    than ``small_body_bytes`` of body (the others wait for a turn, up to
    ``body_timeout`` seconds, then get a 503). So the bodies held at once are at most
    about ``max_connections * small_body_bytes + large_bodies * max_body_bytes``:
    with the defaults 256 MiB + 64 MiB.

    Attributes:
        max_body_bytes: Largest request body, in bytes (default 16 MiB: a phone photo,
            or a JSON batch of ``max_instances`` images as floats).
        small_body_bytes: Bodies up to this size (bytes) are read without waiting for
            a turn (default 1 MiB, hundreds of JSON images).
        large_bodies: How many larger bodies may be read and held at once (default 4).
        max_instances: Most images in one JSON predict request (default 1024).
        max_pictures: Most pictures in one upload (default 64); each one goes through
            :func:`lenet_mnist.prepare_image`, whose own budget bounds one picture
            (100 megapixels decoded, the longer side reduced to 1024 pixels).
        header_timeout: Seconds a client may take to send a request's headers,
            counted from its first byte (or from the connection for the first
            request); then the connection is closed. Default 10.
        body_timeout: Seconds a client may take to send a request's body once its
            headers are in (default 30); then the answer is 408.
        keep_alive_timeout: Seconds an idle keep-alive connection stays open (uvicorn's
            ``timeout_keep_alive``; default 5).
        max_header_bytes: Most bytes of request line and headers (default 64 KiB);
            more closes the connection with a 400.
        max_connections: Connections (and requests) served at once; above it uvicorn
            answers 503 (its ``limit_concurrency``; default 256).
        picture_processes: Worker processes preparing uploaded pictures in parallel
            (default 2: the development machine's cores); 0 prepares them in a thread
            of the server process instead (no extra processes, one picture at a time).

    Raises:
        TypeError: A limit that is not an int (or, for the timeouts, a number).
        ValueError: A limit below 1 (timeouts: not positive and finite), or
            ``small_body_bytes`` above ``max_body_bytes``.

    Example:
        >>> ServeLimits(max_instances=16).max_instances
        16
        >>> ServeLimits(max_body_bytes=0)
        Traceback (most recent call last):
        ...
        ValueError: max_body_bytes must be at least 1, got 0
    """

    max_body_bytes: int = 16 * _MIB
    small_body_bytes: int = _MIB
    large_bodies: int = 4
    max_instances: int = 1024
    max_pictures: int = 64
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: int = 5
    max_header_bytes: int = 64 * 1024
    max_connections: int = 256
    picture_processes: int = 2

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name.endswith("_timeout") and field.name != "keep_alive_timeout":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise TypeError(f"{field.name} must be a number, got {type(value).__name__}")
                if not (math.isfinite(value) and value > 0):
                    raise ValueError(f"{field.name} must be positive and finite, got {value}")
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{field.name} must be an int, got {type(value).__name__}")
            least = 0 if field.name == "picture_processes" else 1
            if value < least:
                raise ValueError(f"{field.name} must be at least {least}, got {value}")
        if self.small_body_bytes > self.max_body_bytes:
            raise ValueError(
                "small_body_bytes must not exceed max_body_bytes, got "
                f"{self.small_body_bytes} > {self.max_body_bytes}"
            )
