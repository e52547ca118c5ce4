"""Check the release artifacts as a user would meet them (tox -e pkg).

Builds the sdist and the wheel (the wheel from the sdist, so the sdist is proven
complete), checks their contents, installs the wheel into a fresh virtual environment
outside the source tree, and there runs ``lenet-mnist --help`` and ``--version`` and
imports every public name. Exits non-zero with a message on the first failure.

Usage: python scripts/check_package.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

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
    for field in ("Summary:", "Requires-Python:", "License-Expression:", "Project-URL:"):
        if field not in text:
            fail(f"{wheel.name} metadata has no {field}")
    print(f"wheel ok: {wheel.name} ({len(names)} files, py.typed included)")


def check_sdist(sdist: Path) -> None:
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for required in ("pyproject.toml", "README.md", "LICENSE", "src/lenet_mnist/py.typed"):
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
