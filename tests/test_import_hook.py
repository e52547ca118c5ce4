"""when_imported: a callback after a module's import, without importing it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lenet_mnist._util.import_hook import when_imported


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh top-level package on sys.path that records when its code ran."""
    name = f"hooked_{tmp_path.name.replace('-', '_')}"
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text(
        "import sys\nsys.modules['__hook_log__'].append('executed')\nVALUE = 42\n"
    )
    (package / "data.txt").write_text("resource")
    (package / "sub.py").write_text("SUB = 1\n")
    log: list[str] = []
    monkeypatch.setitem(sys.modules, "__hook_log__", log)  # type: ignore[arg-type]
    monkeypatch.syspath_prepend(str(tmp_path))
    finders = list(sys.meta_path)
    yield name
    sys.meta_path[:] = finders
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def _log() -> list[str]:
    return sys.modules["__hook_log__"]  # type: ignore[return-value]


def test_the_callback_runs_right_after_the_import_and_only_once(fake_package: str) -> None:
    import importlib

    seen: list[object] = []
    when_imported(fake_package, lambda: seen.append(sys.modules[fake_package].VALUE))
    assert seen == []
    assert fake_package not in sys.modules  # nothing was imported by installing the hook
    module = importlib.import_module(fake_package)
    assert _log() == ["executed"]
    assert seen == [42]  # after the module's code ran, before import returned
    importlib.import_module(f"{fake_package}.sub")
    importlib.reload(module)
    assert seen == [42]
    assert not any(getattr(f, "name", None) == fake_package for f in sys.meta_path)


def test_the_module_keeps_its_own_loader(fake_package: str) -> None:
    import importlib
    from importlib import resources

    when_imported(fake_package, lambda: None)
    module = importlib.import_module(fake_package)
    assert type(module.__loader__).__name__ == "SourceFileLoader"
    assert module.__spec__.loader is module.__loader__
    assert resources.files(module).joinpath("data.txt").read_text() == "resource"


def test_an_imported_module_calls_back_at_once(fake_package: str) -> None:
    import importlib

    importlib.import_module(fake_package)
    seen: list[str] = []
    when_imported(fake_package, lambda: seen.append("now"))
    assert seen == ["now"]
    assert not any(getattr(f, "name", None) == fake_package for f in sys.meta_path)


def test_a_failed_import_does_not_call_back_and_a_later_one_does(
    fake_package: str, tmp_path: Path
) -> None:
    import importlib

    init = tmp_path / fake_package / "__init__.py"
    good = init.read_text()
    init.write_text("raise RuntimeError('broken install')\n")
    seen: list[str] = []
    when_imported(fake_package, lambda: seen.append("called"))
    with pytest.raises(RuntimeError, match="broken install"):
        importlib.import_module(fake_package)
    assert seen == []
    init.write_text(good)
    importlib.invalidate_caches()
    sys.modules.pop(fake_package, None)
    importlib.import_module(fake_package)
    assert seen == ["called"]


def test_a_module_nobody_can_find_is_left_to_the_import_system(fake_package: str) -> None:
    when_imported("no_such_module_anywhere_xyz", lambda: None)
    with pytest.raises(ModuleNotFoundError, match="no_such_module_anywhere_xyz"):
        __import__("no_such_module_anywhere_xyz")


@pytest.mark.parametrize("name", ["", "keras.layers"])
def test_only_top_level_names(name: str) -> None:
    with pytest.raises(ValueError, match=f"top-level module name, got {name!r}"):
        when_imported(name, lambda: None)
