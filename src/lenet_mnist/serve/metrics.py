"""The server's Prometheus metrics (``GET /metrics``), through ``prometheus_client``.

Each app has a registry of its own, so several apps in one process (tests, embedding)
never share or clash over counters. Label values come from fixed sets only -- the
endpoint names of the app, the status codes it sends, the error kinds below -- never
from the request, so no client can grow the number of series.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["CONTENT_TYPE", "ERROR_KINDS", "ServeMetrics"]

#: The ``Content-Type`` of Prometheus's text format.
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
#: Why a request failed, as the ``kind`` label of ``lenet_mnist_errors_total``.
ERROR_KINDS: Final = frozenset(
    {
        "bad_request",  # invalid JSON, shapes, values
        "bad_picture",  # not a picture, too large to decode, no ink
        "too_large",  # body or number of images over the limit
        "timeout",  # the body did not arrive in time
        "unsupported_media_type",
        "not_found",
        "method_not_allowed",
        "busy",  # no turn for a large body in time
        "internal",
    }
)
_LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
)  # fmt: skip


def _batch_buckets(max_batch: int) -> tuple[float, ...]:
    sizes = [1]
    while sizes[-1] * 2 < max_batch:
        sizes.append(sizes[-1] * 2)
    if sizes[-1] != max_batch:
        sizes.append(max_batch)
    return tuple(float(s) for s in sizes)


class ServeMetrics:
    """Counters and histograms of one app.

    Args:
        endpoints: The endpoint names used as ``endpoint`` label values.
        max_batch: The batcher's largest batch (the last batch-size bucket).

    Example:
        >>> metrics = ServeMetrics(["predict"], max_batch=8)
        >>> metrics.observe_request("predict", 200, 0.004)
        >>> b'lenet_mnist_requests_total{endpoint="predict",status="200"} 1.0' in metrics.render()
        True
    """

    def __init__(self, endpoints: Iterable[str], *, max_batch: int) -> None:
        self.endpoints = frozenset(endpoints)
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "lenet_mnist_requests",
            "HTTP requests answered, by endpoint and status code.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self._errors = Counter(
            "lenet_mnist_errors",
            "Requests answered with an error, by endpoint and kind.",
            ["endpoint", "kind"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "lenet_mnist_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, in seconds.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._batch_size = Histogram(
            "lenet_mnist_batch_size",
            "Images per model call.",
            buckets=_batch_buckets(max_batch),
            registry=self.registry,
        )
        self._model_seconds = Histogram(
            "lenet_mnist_model_seconds",
            "Duration of one model call (one batch), in seconds.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._images = Counter(
            "lenet_mnist_images",
            "Images predicted.",
            registry=self.registry,
        )
        # Children looked up once: labels() takes a lock and a dictionary lookup.
        self._latency_of = {name: self._latency.labels(name) for name in self.endpoints}

    def observe_request(
        self, endpoint: str, status: int, seconds: float, kind: str | None = None
    ) -> None:
        """Count one answered request (``kind`` for errors; one of :data:`ERROR_KINDS`)."""
        self._requests.labels(endpoint, str(status)).inc()
        self._latency_of[endpoint].observe(seconds)
        if status >= 400:
            self._errors.labels(endpoint, kind if kind in ERROR_KINDS else "internal").inc()

    def observe_batch(self, size: int, seconds: float) -> None:
        """Count one model call of ``size`` images that took ``seconds``."""
        self._batch_size.observe(size)
        self._model_seconds.observe(seconds)
        self._images.inc(size)

    def render(self) -> bytes:
        """The metrics in Prometheus's text format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
