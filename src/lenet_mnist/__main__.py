"""``python -m lenet_mnist``: the ``lenet-mnist`` command."""

from __future__ import annotations

import sys

from lenet_mnist.cli import main

if __name__ == "__main__":
    sys.exit(main())
