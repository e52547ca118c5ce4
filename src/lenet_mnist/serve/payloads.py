"""Reading request bodies into images: TensorFlow Serving's JSON, pictures, multipart.

Everything here is a pure function of bytes already read (their size is bounded by the
app before they get here), and every failure is a ``ValueError`` whose message is one
line ending with what was received; :class:`PayloadTooLargeError` (a ``ValueError``
too) marks the ones answered with 413 rather than 400.

The JSON rule for the pixel scale follows the library's image contract, where the dtype
decides, never the values: if every pixel of a request is a JSON integer (``0``,
``255``), the request holds 0..255 pixels; if any pixel is written with a fraction or
an exponent (``0.5``, ``1.0``, ``1e-3``), they are all floats in [0, 1].
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

__all__ = [
    "PICTURE_TYPES",
    "PayloadTooLargeError",
    "PredictRequest",
    "parse_predict",
    "split_pictures",
]

#: Content types of a picture sent as the raw body of ``/v1/images:predict``.
PICTURE_TYPES: Final = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp"}
)
#: Signatures of the exported SavedModel (``lenet-mnist export --format saved_model``).
SIGNATURES: Final = frozenset({"serving_default", "serving_uint8"})
_REQUEST_KEYS: Final = frozenset({"signature_name", "instances", "inputs"})
_INPUT_NAME: Final = "image"
_SIDE: Final = 28


class PayloadTooLargeError(ValueError):
    """A request holds more images than allowed (answered with 413)."""


@dataclass(frozen=True)
class PredictRequest:
    """A parsed ``:predict`` request.

    Attributes:
        images: ``(N, 28, 28, 1)`` float32 in [0, 1], white ink on black.
        columnar: ``True`` for TensorFlow Serving's columnar form (``"inputs"``), whose
            answer is ``{"outputs": ...}``; ``False`` for the row form
            (``"instances"``), answered with ``{"predictions": [...]}``.
    """

    images: npt.NDArray[np.float32]
    columnar: bool


def _reject_constant(token: str) -> None:
    raise ValueError(f"NaN and infinite values are not allowed, got {token}")


def _describe(value: object) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    return "a number"


def _unwrap_named(value: object, where: str) -> object:
    """``{"image": x}`` (TensorFlow Serving's named input) as ``x``; others unchanged."""
    if isinstance(value, dict):
        if set(value) != {_INPUT_NAME}:
            names = ", ".join(repr(k) for k in sorted(value)[:5])
            raise ValueError(f"{where} names the model's inputs: only 'image', got {{{names}}}")
        return value[_INPUT_NAME]
    return value


def _rows(instance: object, where: str) -> list[list[Any]]:
    """The 28 rows of 28 pixel values of one 28x28 or 28x28x1 nested list."""
    shape_error = f"{where} must be a 28x28 or 28x28x1 array"
    if not isinstance(instance, list) or len(instance) != _SIDE:
        raise ValueError(f"{shape_error}, got {_describe(instance)}")
    for row in instance:
        if not isinstance(row, list) or len(row) != _SIDE:
            raise ValueError(f"{shape_error}, got a row that is {_describe(row)}")
    if not isinstance(instance[0][0], list):
        return instance
    # 28x28x1: one channel per pixel.
    rows: list[list[Any]] = []
    for row in instance:
        pixels = []
        for pixel in row:
            if not isinstance(pixel, list) or len(pixel) != 1:
                raise ValueError(f"{shape_error}, got a pixel that is {_describe(pixel)}")
            pixels.append(pixel[0])
        rows.append(pixels)
    return rows


def _instances(body: dict[str, Any], limit: int) -> tuple[list[object], bool]:
    if ("instances" in body) == ("inputs" in body):
        raise ValueError(
            'the request must have exactly one of "instances" (rows) or "inputs" (columns), '
            f"got {'both' if 'instances' in body else 'neither'}"
        )
    columnar = "inputs" in body
    batch = _unwrap_named(body["inputs"], '"inputs"') if columnar else body["instances"]
    key = '"inputs"' if columnar else '"instances"'
    if not isinstance(batch, list):
        raise ValueError(f"{key} must be a list of 28x28 images, got {_describe(batch)}")
    if not batch:
        raise ValueError(f"{key} must hold at least one image, got an empty list")
    if len(batch) > limit:
        raise PayloadTooLargeError(
            f"at most {limit} images per request, got {len(batch)}; split the batch"
        )
    if columnar:
        return batch, True
    return [_unwrap_named(item, f"instance {i}") for i, item in enumerate(batch)], False


def _pixel_types(images: list[list[list[Any]]]) -> set[type]:
    return {type(value) for rows in images for row in rows for value in row}


def _bad_pixel(images: list[list[list[Any]]]) -> tuple[int, str]:
    for index, rows in enumerate(images):
        for row in rows:
            for value in row:
                if type(value) not in (int, float):
                    return index, _describe(value)
    return -1, ""  # pragma: no cover - only called when a bad pixel exists


def _to_array(images: list[list[list[Any]]], uint8: bool) -> npt.NDArray[np.float32]:
    types = _pixel_types(images)
    if not types <= {int, float}:
        index, what = _bad_pixel(images)
        raise ValueError(f"pixels must be numbers, got {what} in image {index}")
    floats = float in types
    if uint8 and floats:
        raise ValueError(
            "signature 'serving_uint8' takes integer pixels 0..255, got fractional numbers"
        )
    try:
        array = np.array(images, dtype=np.float64)
    except OverflowError:
        raise ValueError("pixel values out of range, got a number too large") from None
    low, high = float(array.min()), float(array.max())
    if floats:
        if not np.isfinite(array).all():
            raise ValueError("pixels must be finite, got a number too large for a float")
        if low < 0.0 or high > 1.0:
            raise ValueError(
                "pixels written as fractions are floats in [0, 1] (send 0..255 as integers "
                f"only), got values in [{low:g}, {high:g}]"
            )
        result = array.astype(np.float32)
    else:
        if low < 0 or high > 255:
            raise ValueError(
                f"integer pixels must lie in 0..255, got values in [{low:.0f}, {high:.0f}]"
            )
        result = (array / 255.0).astype(np.float32)
    return result[..., np.newaxis]


def parse_predict(body: bytes, *, max_instances: int) -> PredictRequest:
    """Parse a TensorFlow Serving ``:predict`` request body into images.

    Accepted forms (``x`` is one image, a 28x28 or 28x28x1 nested list)::

        {"instances": [x, ...]}               {"instances": [{"image": x}, ...]}
        {"inputs": [x, ...]}                  {"inputs": {"image": [x, ...]}}

    with an optional ``"signature_name"``: ``"serving_default"`` (the default) or
    ``"serving_uint8"`` (integer pixels only), as in the exported SavedModel.

    Args:
        body: The request body: UTF-8 (or UTF-16/32) JSON.
        max_instances: Most images allowed.

    Returns:
        The images and which form was used.

    Raises:
        ValueError: Not JSON (``NaN``/``Infinity`` tokens included), not an object,
            unknown keys, wrong shapes, ragged lists, non-numbers (booleans, strings,
            null), values out of range.
        PayloadTooLargeError: More than ``max_instances`` images.

    Example:
        >>> import json
        >>> body = json.dumps({"instances": [[[255] * 28] * 28]}).encode()
        >>> request = parse_predict(body, max_instances=8)
        >>> request.images.shape, request.images.max(), request.columnar
        ((1, 28, 28, 1), np.float32(1.0), False)
    """
    try:
        request = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError(f"invalid JSON: nested too deeply, got {len(body):,} bytes") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"invalid JSON: not UTF-8 text, got {error.reason}") from None
    except json.JSONDecodeError as error:
        raise ValueError(
            f"invalid JSON ({error.msg} at line {error.lineno} column {error.colno}), "
            f"got {len(body):,} bytes"
        ) from None
    except ValueError as error:
        # NaN tokens (see _reject_constant), integers of more than 4300 digits.
        raise ValueError(f"invalid JSON: {str(error).splitlines()[0]}") from None
    if not isinstance(request, dict):
        raise ValueError(f"the request must be a JSON object, got {_describe(request)}")
    unknown = set(request) - _REQUEST_KEYS
    if unknown:
        names = ", ".join(repr(k) for k in sorted(unknown)[:5])
        raise ValueError(
            f'unknown keys: use "instances" or "inputs" (and "signature_name"), got {names}'
        )
    signature = request.get("signature_name", "serving_default")
    if signature not in SIGNATURES:
        raise ValueError(
            f"signature_name must be one of {sorted(SIGNATURES)}, got {_shorten(signature)}"
        )
    batch, columnar = _instances(request, max_instances)
    images = [_rows(item, f"image {i}") for i, item in enumerate(batch)]
    return PredictRequest(_to_array(images, signature == "serving_uint8"), columnar)


def _shorten(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def split_pictures(body: bytes, content_type: str, *, max_pictures: int) -> list[bytes]:
    r"""The encoded pictures of an ``/v1/images:predict`` body.

    Args:
        body: The request body.
        content_type: Its ``Content-Type`` header: one of :data:`PICTURE_TYPES` (the
            body is one picture) or ``multipart/form-data`` with a boundary (every part
            is one picture, whatever its field name, in order).
        max_pictures: Most parts allowed.

    Returns:
        One ``bytes`` per picture, not yet decoded.

    Raises:
        ValueError: A malformed multipart body, or one without parts.
        PayloadTooLargeError: More than ``max_pictures`` parts.

    Example:
        >>> body = b"--b\r\nContent-Type: image/png\r\n\r\nPNG\r\n--b--\r\n"
        >>> split_pictures(body, "multipart/form-data; boundary=b", max_pictures=4)
        [b'PNG']
    """
    kind, options = parse_options_header(content_type)
    if kind.decode("latin-1").lower() in PICTURE_TYPES:
        return [body]
    boundary = options.get(b"boundary")
    if not boundary:
        raise ValueError("multipart/form-data needs a boundary parameter, got none")
    parts: list[bytearray] = []
    ended = False

    def on_part_begin() -> None:
        if len(parts) >= max_pictures:
            raise PayloadTooLargeError(f"at most {max_pictures} pictures per request, got more")
        parts.append(bytearray())

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1] += data[start:end]

    def on_end() -> None:
        nonlocal ended
        ended = True

    try:
        parser = MultipartParser(
            boundary,
            {"on_part_begin": on_part_begin, "on_part_data": on_part_data, "on_end": on_end},
        )
        parser.write(body)
        parser.finalize()
    except FormParserError as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"malformed multipart body: {message}") from None
    if not ended:
        raise ValueError(f"malformed multipart body: no closing boundary, got {len(body):,} bytes")
    if not parts:
        raise ValueError("the multipart body holds no pictures, got no parts")
    return [bytes(part) for part in parts]
