from __future__ import annotations

from pathlib import Path

import pytest

from lenet_mnist import build_lenet, save_model
from lenet_mnist._util.atomic import atomic_write


def test_new_file_is_complete_and_shareable(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    assert atomic_write(target, lambda tmp: tmp.write_text("hello")) == target
    assert target.read_text() == "hello"
    assert target.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_replacing_keeps_the_old_files_mode(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    target.chmod(0o600)
    atomic_write(target, lambda tmp: tmp.write_text("new"))
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o600


def test_failed_write_leaves_the_target_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(target, fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_temporary_keeps_the_suffix_writers_rely_on(tmp_path: Path) -> None:
    seen: list[str] = []
    atomic_write(tmp_path / "m.keras", lambda tmp: (seen.append(tmp.suffix), tmp.write_bytes(b"x")))
    assert seen == [".keras"]


def test_saved_models_are_shareable(tmp_path: Path) -> None:
    path = save_model(build_lenet(seed=0), tmp_path / "m.keras")
    assert path.stat().st_mode & 0o777 == 0o644
