"""``python -m lenet_mnist``: the same as the ``lenet-mnist`` command."""

import sys

from lenet_mnist.cli import main

sys.exit(main())
