"""``python -m lenet_mnist``: the ``lenet-mnist`` command."""

from __future__ import annotations

import sys

from lenet_mnist.cli import main

# Guarded: worker processes started with multiprocessing's "spawn" (lenet-mnist serve's
# picture workers) import the main module again, and must not run the command.
if __name__ == "__main__":
    sys.exit(main())
