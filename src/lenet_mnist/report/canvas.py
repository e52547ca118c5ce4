"""Figures without pyplot: matplotlib imported on first use, files written atomically.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas directly, not
through ``pyplot``: no global figure registry, no backend switch, nothing to close,
safe in servers and threads.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Final

from lenet_mnist._util.atomic import atomic_write
from lenet_mnist._util.paths import check_suffix

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "DPI",
    "FIGURE_FORMATS",
    "check_figure_path",
    "new_figure",
    "require_matplotlib",
    "save_figure",
]

_INSTALL_HINT: Final = 'plotting needs matplotlib: pip install "lenet-mnist[plot]"'
_DPI: Final = 100
# What matplotlib writes by itself, plus JPEG through Pillow (a dependency of matplotlib).
_FORMATS: Final = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".pdf": "pdf",
    ".svg": "svg",
}
DPI: Final = _DPI
#: The file suffixes figures can be written to, with matplotlib's format name each.
FIGURE_FORMATS: Final = _FORMATS


def require_matplotlib() -> ModuleType:
    """Import and return matplotlib, or say how to install it.

    Call it before long work whose result is to be plotted, to fail early.

    Raises:
        ImportError: matplotlib is not installed; the message names the extra,
            ``pip install "lenet-mnist[plot]"``.

    Example:
        >>> require_matplotlib().__name__
        'matplotlib'
    """
    try:
        import matplotlib
        import matplotlib.backends.backend_agg
        import matplotlib.figure
    except ImportError as error:
        raise ImportError(f"{_INSTALL_HINT} ({error})", name="matplotlib") from error
    return matplotlib


def new_figure(width: float, height: float) -> Figure:
    """A Figure of ``width`` x ``height`` inches on an Agg canvas (no pyplot)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def check_figure_path(path: str | os.PathLike[str] | None) -> Path | None:
    """``path`` as a ``Path`` if its suffix is a figure format (else ``ValueError``), or ``None``.

    Example:
        >>> check_figure_path("curves.jpg").suffix
        '.jpg'
    """
    if path is None:
        return None
    return check_suffix(path, _FORMATS, "figure files")


def save_figure(figure: Figure, target: Path | None) -> None:
    """Write ``figure`` to ``target`` (format by suffix) atomically; nothing for ``None``."""
    if target is not None:
        file_format = _FORMATS[target.suffix.lower()]
        atomic_write(target, lambda tmp: figure.savefig(tmp, format=file_format, dpi=_DPI))
