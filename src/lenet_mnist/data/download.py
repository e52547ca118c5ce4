"""Downloading a dataset's files from its mirrors, verified, atomically.

Each missing file is fetched as ``name.gz`` from each mirror in turn until one
delivers content with the expected hash; it is streamed into a temporary file next to
its final place and renamed there only once verified, so an interrupted or corrupt
download leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO, Final

from lenet_mnist._version import __version__
from lenet_mnist.data.locate import cache_dir, find_file, read_checked
from lenet_mnist.data.specs import DatasetName, DatasetSpec, FileSpec, get_spec
from lenet_mnist.errors import DownloadError, IdxFormatError

__all__ = ["download_file", "download_mnist", "mirrors_from_env"]

_USER_AGENT: Final = f"lenet-mnist/{__version__}"
# A compressed MNIST file is under 30 MB; a response much larger than that is not one.
_MAX_DOWNLOAD_BYTES: Final = 64 * 1024 * 1024
_STALE_PARTIAL_SECONDS: Final = 3600.0
_PARTIAL_PREFIX: Final = ".lenet-mnist-"
_PARTIAL_SUFFIX: Final = ".part"


def mirrors_from_env(spec: DatasetSpec) -> tuple[str, ...]:
    """The mirrors to try: ``$LENET_MNIST_MIRRORS`` (space-separated) or the dataset's own."""
    value = os.environ.get("LENET_MNIST_MIRRORS")
    if not value:
        return spec.mirrors
    return tuple(url if url.endswith("/") else url + "/" for url in value.split() if url)


def download_mnist(
    directory: str | os.PathLike[str] | None = None,
    *,
    dataset: DatasetName | str = "mnist",
    mirrors: tuple[str, ...] | list[str] | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download the four files of a dataset, verified, into ``directory``.

    Files already present and valid are kept. Each missing file is fetched as
    ``name.gz`` from each mirror in turn until one delivers content with the expected
    hash; it is streamed into a temporary file in ``directory`` and renamed into place
    only once verified, so no partial or corrupt file is ever left under the final
    name. Leftover temporaries of killed downloads are removed.

    Args:
        directory: Where to put the files; default :func:`cache_dir` of the dataset.
        dataset: ``"mnist"`` or ``"fashion"``.
        mirrors: Base URLs ending in ``/`` to try in turn; default the environment
            variable ``LENET_MNIST_MIRRORS`` (space-separated) or else the dataset's
            standard mirrors.
        timeout: Seconds to wait for each connection or read.

    Returns:
        The directory holding the files.

    Raises:
        DownloadError: Every mirror failed for some file; the message lists why.
        ValueError: ``timeout`` is not positive, or unknown ``dataset``.
    """
    spec = get_spec(dataset)
    if not timeout > 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    target = Path(directory) if directory is not None else cache_dir(spec.name)
    target.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(target)
    urls = tuple(mirrors) if mirrors is not None else mirrors_from_env(spec)
    for file in spec.files.values():
        existing = find_file(target, file)
        if existing is not None:
            try:
                read_checked(existing, file)
                continue
            except IdxFormatError:
                existing.unlink(missing_ok=True)
        download_file(file, target, urls, timeout=timeout)
    return target


def _remove_stale_partials(directory: Path) -> None:
    cutoff = time.time() - _STALE_PARTIAL_SECONDS
    for partial in directory.glob(f"{_PARTIAL_PREFIX}*{_PARTIAL_SUFFIX}"):
        with contextlib.suppress(OSError):
            if partial.stat().st_mtime < cutoff:
                partial.unlink()


def download_file(
    file: FileSpec, directory: Path, mirrors: tuple[str, ...], *, timeout: float = 60.0
) -> Path:
    """Fetch ``file`` into ``directory`` from the first mirror that delivers it verified."""
    final = directory / f"{file.name}.gz"
    failures: list[str] = []
    for base in mirrors:
        url = base + final.name
        fd, tmp_name = tempfile.mkstemp(
            prefix=f"{_PARTIAL_PREFIX}{file.name}-", suffix=_PARTIAL_SUFFIX, dir=directory
        )
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                _fetch(url, out, timeout=timeout)
            # Verifies gzip integrity, size limits and the content hash.
            read_checked(tmp, file)
            tmp.replace(final)
            return final
        except (OSError, IdxFormatError, http.client.HTTPException, ValueError) as error:
            failures.append(f"{url}: {error}")
        finally:
            tmp.unlink(missing_ok=True)
    # One short first line (what a command line shows), then one line per mirror.
    tried = (
        "".join(f"\n  {failure}" for failure in failures) if failures else " no mirrors configured"
    )
    raise DownloadError(f"could not download a verified copy of {final.name}:{tried}")


def _fetch(url: str, out: BinaryIO, *, timeout: float) -> None:
    if not url.startswith(("http://", "https://", "file://")):
        raise ValueError(f"unsupported URL scheme in {url!r}")
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})  # noqa: S310
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310
    except urllib.error.HTTPError as error:
        raise OSError(f"HTTP {error.code} {error.reason}") from None
    with response:
        declared = response.headers.get("Content-Length")
        total = 0
        while chunk := response.read(1 << 16):
            total += len(chunk)
            if total > _MAX_DOWNLOAD_BYTES:
                raise OSError(f"response exceeds {_MAX_DOWNLOAD_BYTES} bytes")
            out.write(chunk)
    # http.client's read(amt) ends quietly when the server closes early; say so plainly
    # rather than leave it to the gzip or hash check to fail with a vaguer message.
    if declared is not None and declared.isdigit() and total != int(declared):
        raise OSError(f"connection closed after {total} of {declared} bytes")
