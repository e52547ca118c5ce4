"""Issue 15: variant, recipe and dataset names are ``Literal`` types mypy checks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import lenet_mnist as lm

SRC = Path(lm.__file__).resolve().parents[1]

SNIPPET = """\
import lenet_mnist as lm

lm.build_lenet("seed")
lm.build_lenet("nonexistent")
lm.get_recipe("fastest")
lm.build_recipe_model("best", seed=0)
lm.load_mnist(dataset="kmnist")
"""

CONFIG = """\
[mypy]
strict = True

[mypy-tensorflow.*,keras.*,tensorflow,keras]
ignore_missing_imports = True
"""


@pytest.mark.slow  # mypy reads the package and numpy's stubs: ~30 s without a cache
def test_mypy_catches_unknown_names(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    (tmp_path / "snippet.py").write_text(SNIPPET)
    (tmp_path / "mypy.ini").write_text(CONFIG)
    env = {"MYPYPATH": str(SRC), "PATH": str(Path(sys.executable).parent)}
    if shutil.which("git"):
        env["PATH"] += ":/usr/bin:/bin"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            "mypy.ini",
            "--no-incremental",
            "snippet.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    errors = [line for line in out.splitlines() if ": error: " in line]
    assert [line.split(":")[1] for line in errors] == ["4", "5", "7"], out
    assert 'Argument 1 to "build_lenet" has incompatible type "Literal[\'nonexistent\']"' in out
    assert 'Argument 1 to "get_recipe" has incompatible type "Literal[\'fastest\']"' in out
    assert '"load_mnist" has incompatible type "Literal[\'kmnist\']"' in out


def test_the_facade_lists_only_public_names() -> None:
    names = [name for name in dir(lm) if not name.startswith("__")]
    assert not {"Any", "TYPE_CHECKING", "annotations", "importlib"} & set(names)
    assert "build_lenet" in names
