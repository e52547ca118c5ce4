"""Check the release artifacts as a user would meet them (tox -e pkg).

Builds the sdist and the wheel (the wheel from the sdist, so the sdist is proven
complete), checks their contents, installs the wheel into a fresh virtual environment
outside the source tree, and there runs ``lenet-mnist --help`` and ``--version`` and
imports every public name. Exits non-zero with a message on the first failure.

Usage: python scripts/check_package.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Directories of the source tree the sdist must hold completely.
SDIST_TREES = ("tests", "docs", "scripts", "benchmarks")

# Run inside the fresh venv, from an empty directory, so nothing comes from the tree.
IMPORT_CHECK = """
import importlib.metadata, sys
import lenet_mnist
if "tensorflow" in sys.modules:
    sys.exit("import lenet_mnist must not import TensorFlow (the exports are lazy)")
for name in lenet_mnist.__all__:
    getattr(lenet_mnist, name)  # raises if a lazy export is broken
from lenet_mnist import *  # noqa: F403
installed = importlib.metadata.version("lenet-mnist")
if installed != lenet_mnist.__version__:
    sys.exit(f"wheel metadata version {installed} != lenet_mnist.__version__ {lenet_mnist.__version__}")
print(f"imported all {len(lenet_mnist.__all__)} public names of lenet-mnist {installed}")
"""


def fail(message: str) -> None:
    print(f"check_package: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def run(*args: str | Path, cwd: Path | None = None) -> str:
    shown = (str(a) if "\n" not in str(a) else "<script>" for a in args)
    print("+", " ".join(shown))
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        fail(f"{args[0]} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def check_wheel(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "lenet_mnist/__init__.py",
        "lenet_mnist/py.typed",
        "lenet_mnist/cli/__init__.py",
        "lenet_mnist/weights/robust.keras",
    ):
        if required not in names:
            fail(f"{wheel.name} lacks {required}")
    stray = sorted(n for n in names if n.startswith(("tests/", "docs/", "benchmarks/")))
    if stray:
        fail(f"{wheel.name} ships files that are not the package: {stray[:5]}")
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    for field in ("Summary:", "Requires-Python:", "License-Expression:"):
        if field not in text:
            fail(f"{wheel.name} metadata has no {field}")
    # A package index shows the README without the files next to it: a relative image or
    # link there is broken. Only absolute http(s) URLs and in-page anchors may appear.
    relative = re.findall(r"\]\((?!https?://|#)([^)\s]+)\)", text)
    if relative:
        fail(f"{wheel.name} long description has relative links or images: {relative[:5]}")
    urls = [line for line in text.splitlines() if line.startswith(("Project-URL:", "Home-page:"))]
    if urls:
        # There is no public repository or site: list only URLs that exist.
        fail(f"{wheel.name} metadata lists URLs that do not exist: {urls}")
    print(f"wheel ok: {wheel.name} ({len(names)} files, py.typed included)")


def tracked_files(*directories: str) -> set[str]:
    """The files git tracks under ``directories`` (else every file there, minus build junk)."""
    git = shutil.which("git")
    if git is not None:
        result = subprocess.run(
            [git, "ls-files", "--", *directories],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0 and result.stdout.strip():
            return {line for line in result.stdout.splitlines() if not line.endswith(".keras")}
    return {
        path.relative_to(ROOT).as_posix()
        for directory in directories
        for path in (ROOT / directory).rglob("*")
        if path.is_file()
        and not {"__pycache__", "_build", ".hypothesis"} & set(path.parts)
        and path.suffix not in {".pyc", ".keras"}
    }


def check_sdist(sdist: Path) -> None:
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for required in ("pyproject.toml", "README.md", "LICENSE", "src/lenet_mnist/py.typed"):
        if required not in names:
            fail(f"{sdist.name} lacks {required}")
    # Packagers build and test from the sdist; the README's test command needs these.
    missing = sorted(tracked_files(*SDIST_TREES) - names)
    if missing:
        fail(f"{sdist.name} lacks files of {', '.join(SDIST_TREES)}: {missing[:5]}")
    for required in ("tox.ini", "scripts/test.sh", "CHANGELOG.md"):
        if required not in names:
            fail(f"{sdist.name} lacks {required}")
    print(f"sdist ok: {sdist.name} ({len(names)} entries)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build and install here instead of a temp dir")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]  # ordered under tox
    with tempfile.TemporaryDirectory(prefix="lenet-mnist-pkg-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        dist = work / "dist"
        run(sys.executable, "-m", "build", "--outdir", dist, ROOT)
        wheels = sorted(dist.glob("*.whl"))
        sdists = sorted(dist.glob("*.tar.gz"))
        if len(wheels) != 1 or len(sdists) != 1:
            fail(f"expected one wheel and one sdist in {dist}, got {wheels + sdists}")
        check_wheel(wheels[0])
        check_sdist(sdists[0])

        env = work / "venv"
        venv.EnvBuilder(with_pip=True, clear=True).create(env)
        python = env / "bin" / "python"
        run(python, "-m", "pip", "install", "--quiet", wheels[0])
        empty = work / "cwd"
        empty.mkdir(exist_ok=True)
        help_text = run(env / "bin" / "lenet-mnist", "--help", cwd=empty)
        if "usage: lenet-mnist" not in help_text:
            fail(f"unexpected --help output:\n{help_text}")
        version = run(env / "bin" / "lenet-mnist", "--version", cwd=empty).strip()
        print(version)
        print(run(python, "-c", IMPORT_CHECK, cwd=empty).strip())
    print("check_package: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
