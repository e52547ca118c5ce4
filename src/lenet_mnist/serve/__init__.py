"""``lenet-mnist serve``: a digit recognizer over HTTP, in TensorFlow Serving's format.

Public names:

* :func:`~lenet_mnist.serve.server.serve` -- run the server (uvicorn) until interrupted;
* :func:`~lenet_mnist.serve.app.build_app` -- the ASGI app itself, to test or to embed in another server;
* :class:`~lenet_mnist.serve.limits.ServeLimits` -- the request limits (body size, images, deadlines).

Needs the optional extra ``serve`` (``pip install "lenet-mnist[serve]"``: Starlette,
uvicorn with httptools, python-multipart, prometheus-client). ``import
lenet_mnist.serve`` works without it; using :func:`~lenet_mnist.serve.server.serve` or :func:`~lenet_mnist.serve.app.build_app` then
raises an ``ImportError`` that says what to install.

Example:
    >>> from lenet_mnist.serve import ServeLimits
    >>> ServeLimits().max_instances
    1024
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any, Final

from lenet_mnist.serve.limits import ServeLimits

if TYPE_CHECKING:
    from lenet_mnist.serve.app import build_app
    from lenet_mnist.serve.server import serve

__all__ = ["ServeLimits", "build_app", "serve"]

#: Import name of each package of the ``serve`` extra (its distribution name after it).
_EXTRA: Final = {
    "starlette": "starlette",
    "uvicorn": "uvicorn",
    "httptools": "httptools",
    "python_multipart": "python-multipart",
    "prometheus_client": "prometheus-client",
}
_LOCATIONS: Final = {"build_app": "app", "serve": "server"}


def require_serve_extra() -> None:
    """Raise ``ImportError`` naming the ``serve`` extra if one of its packages is missing.

    Example:
        >>> require_serve_extra()  # doctest: +SKIP
    """
    missing = [dist for name, dist in _EXTRA.items() if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(
            "lenet-mnist serve needs the serve extra: pip install 'lenet-mnist[serve]', "
            f"got no {', '.join(missing)}"
        )


def __getattr__(name: str) -> Any:
    module = _LOCATIONS.get(name)
    if module is None:
        raise AttributeError(f"module 'lenet_mnist.serve' has no attribute {name!r}")
    require_serve_extra()
    value = getattr(importlib.import_module(f"lenet_mnist.serve.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
