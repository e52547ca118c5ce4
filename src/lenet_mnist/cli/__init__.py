"""The ``lenet-mnist`` command: parses arguments, checks them, calls the library.

* ``lenet_mnist.cli.parser``: the arguments of every command (``build_parser``);
* ``lenet_mnist.cli.checks``: every argument checked before any work;
* ``lenet_mnist.cli.commands``: what each command does.

Every user error (a missing file, bad data, a bad argument value) ends with one line
``lenet-mnist: error: ...`` on stderr and exit status 1, never a traceback; usage
errors (an unknown command or flag) are argparse's, with status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from lenet_mnist.cli.checks import check_arguments
from lenet_mnist.cli.commands import COMMANDS, quiet_tensorflow
from lenet_mnist.cli.parser import PROG, build_parser

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lenet-mnist`` command with ``argv`` (default ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 on a user error (reported in one line on
        stderr), 2 on a usage error (from argparse).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    from lenet_mnist.errors import LenetMnistError

    try:
        # Every argument, before any work (and before TensorFlow's slow import).
        check_arguments(args)
        quiet_tensorflow()
        return COMMANDS[args.command](args, sys.stdout)
    except (LenetMnistError, ValueError, TypeError, OSError, ImportError) as error:
        message = str(error) or type(error).__name__
        print(f"{PROG}: error: {message.splitlines()[0] if message else message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Keras's progress bar on a terminal ends without a newline: end its line first.
        if sys.stdout.isatty():
            print(file=sys.stdout, flush=True)
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
