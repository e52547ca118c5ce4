"""Write the small intersphinx inventories of docs/_inv/ (NumPy, TensorFlow, Keras, matplotlib).

The docs build offline, so intersphinx cannot download these projects' ``objects.inv``.
This script writes, in Sphinx's inventory format (version 2), an inventory for each
with only the names these docs refer to, each pointing at the page of the project's
online reference that documents it. ``docs/_inv/python.inv`` is not written here: it is
Python's own inventory, copied from Debian's ``python3-doc`` package
(``/usr/share/doc/python3/html/objects.inv``).

Run after adding a name: ``python scripts/make_docs_inventories.py``.
"""

from __future__ import annotations

import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs/_inv"

# project -> (version, {name: (role, uri relative to the base URL in docs/conf.py)})
INVENTORIES: dict[str, tuple[str, dict[str, tuple[str, str]]]] = {
    "numpy": (
        "2",
        {
            "numpy.ndarray": ("class", "reference/generated/numpy.ndarray.html"),
            "numpy.dtype": ("class", "reference/generated/numpy.dtype.html"),
            "numpy.generic": ("class", "reference/arrays.scalars.html#numpy.generic"),
            "numpy.float32": ("class", "reference/arrays.scalars.html#numpy.float32"),
            "numpy.float64": ("class", "reference/arrays.scalars.html#numpy.float64"),
            "numpy.uint8": ("class", "reference/arrays.scalars.html#numpy.uint8"),
            "numpy.int64": ("class", "reference/arrays.scalars.html#numpy.int64"),
            "numpy.typing.NDArray": ("class", "reference/typing.html#numpy.typing.NDArray"),
            "numpy.typing.ArrayLike": ("class", "reference/typing.html#numpy.typing.ArrayLike"),
            "numpy.typing.DTypeLike": ("class", "reference/typing.html#numpy.typing.DTypeLike"),
        },
    ),
    "tensorflow": (
        "2",
        {
            "tf.Tensor": ("class", "tf/Tensor"),
            "tf.data.Dataset": ("class", "tf/data/Dataset"),
            "tf.distribute.Strategy": ("class", "tf/distribute/Strategy"),
            "tf.config.PhysicalDevice": ("class", "tf/config/PhysicalDevice"),
        },
    ),
    "keras": (
        "3",
        {
            "keras.Model": ("class", "models/model/"),
            "keras.Sequential": ("class", "models/sequential/"),
            "keras.layers.Layer": ("class", "layers/base_layer/"),
            "keras.layers.BatchNormalization": (
                "class",
                "layers/normalization_layers/batch_normalization/",
            ),
            "keras.callbacks.Callback": ("class", "callbacks/base_callback/"),
        },
    ),
    "matplotlib": (
        "3",
        {
            "matplotlib.figure.Figure": (
                "class",
                "_as_gen/matplotlib.figure.Figure.html#matplotlib.figure.Figure",
            ),
            "matplotlib.axes.Axes": (
                "class",
                "_as_gen/matplotlib.axes.Axes.html#matplotlib.axes.Axes",
            ),
        },
    ),
}


def inventory(project: str, version: str, names: dict[str, tuple[str, str]]) -> bytes:
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    body = "".join(f"{name} py:{role} 1 {uri} -\n" for name, (role, uri) in sorted(names.items()))
    return header.encode() + zlib.compress(body.encode(), 9)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for project, (version, names) in INVENTORIES.items():
        path = OUT / f"{project}.inv"
        path.write_bytes(inventory(project, version, names))
        print(f"{path}: {len(names)} names")


if __name__ == "__main__":
    main()
