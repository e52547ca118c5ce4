"""Run a function once a module has been imported, without importing it.

``import lenet_mnist`` must stay light (no Keras, no TensorFlow) and still register the
library's Keras classes, so that ``keras.saving.load_model`` finds them whichever of
the two packages is imported first. :func:`when_imported` does that: if the module is
already imported it calls the function at once; otherwise it puts a finder at the
front of ``sys.meta_path`` that, when the module is imported, lets the normal finder
locate it and wraps its loader so that the function runs right after the module's
code has run. The finder then removes itself.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
import types
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["when_imported"]

_lock = threading.Lock()


class _CallingLoader(importlib.abc.Loader):
    """A module's own loader, which runs ``callback`` after the module has executed."""

    def __init__(self, loader: importlib.abc.Loader, finder: _PostImportFinder) -> None:
        self._loader = loader
        self._finder = finder

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        # The module keeps its own loader (resource readers and the like ask it).
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        self._finder.fire()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader that the other finders find for one module."""

    def __init__(self, name: str, callback: Callable[[], object]) -> None:
        self.name = name
        self.callback = callback
        self._searching = False

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name or self._searching:
            return None
        self._searching = True
        try:
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            self._searching = False
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _CallingLoader(spec.loader, self)
        return spec

    def fire(self) -> None:
        """Uninstall this finder, then run the callback (once)."""
        with _lock:
            if self not in sys.meta_path:
                return
            sys.meta_path.remove(self)
        self.callback()


def when_imported(name: str, callback: Callable[[], object]) -> None:
    """Call ``callback()`` once the top-level module ``name`` has been imported.

    Now if it is imported already (in ``sys.modules``); otherwise right after its
    import completes, in the importing thread, before ``import name`` returns. If the
    import fails the callback does not run (it runs after a later import that
    succeeds). Nothing is imported here.

    Args:
        name: A top-level module name, such as ``"keras"``.
        callback: Called with no arguments; what it raises propagates out of the
            import statement that triggered it.

    Raises:
        ValueError: ``name`` is empty or dotted.

    Example:
        >>> calls = []
        >>> when_imported("json", lambda: calls.append("json"))
        >>> calls
        ['json']
    """
    if not name or "." in name:
        raise ValueError(f"name must be a top-level module name, got {name!r}")
    with _lock:
        pending = name not in sys.modules
        if pending:
            sys.meta_path.insert(0, _PostImportFinder(name, callback))
    if not pending:
        callback()
