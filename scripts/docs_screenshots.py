"""Screenshots of the built HTML docs with headless Chromium, to look at them as a reader.

Build the docs first (``sphinx-build -E -W -n --keep-going -b html docs docs/_build/html``),
then run ``python scripts/docs_screenshots.py [OUT_DIR]`` (default ``docs/_build/screenshots``).
Needs Debian's ``chromium`` (``apt-get install -y chromium``). Each page is taken at a
desktop width and, for the API page, at a narrow one too.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HTML = Path(__file__).resolve().parents[1] / "docs/_build/html"
# (page, picture name, window width, window height)
PAGES = (
    ("index.html", "index", 1280, 1600),
    ("quickstart.html", "quickstart", 1280, 1600),
    ("api.html", "api-index", 1280, 1600),
    ("generated/lenet_mnist.load_mnist.html", "api-load_mnist", 1280, 1600),
    ("generated/lenet_mnist.RECIPES.html", "api-RECIPES", 1280, 1600),
    ("generated/lenet_mnist.data.specs.html", "api-data.specs", 1280, 2400),
    ("generated/lenet_mnist.load_mnist.html", "api-load_mnist-narrow", 420, 1600),
)


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HTML.parent / "screenshots"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium not found: apt-get install -y chromium", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    for page, name, width, height in PAGES:
        source = HTML / page
        if not source.is_file():
            print(f"{source} not found: build the docs first", file=sys.stderr)
            return 1
        picture = out / f"{name}.png"
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run(
                [
                    chromium,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    f"--user-data-dir={profile}",
                    f"--window-size={width},{height}",
                    f"--screenshot={picture}",
                    source.as_uri(),
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        print(picture)
    return 0


if __name__ == "__main__":
    sys.exit(main())
