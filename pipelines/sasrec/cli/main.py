"""The ``sasrec`` command line: one entry point, sub-commands registered by each package.

Each module in ``COMMAND_MODULES`` exposes ``register(subparsers)``; those
modules import only argparse-level code at import time and load TensorFlow,
pandas or gRPC inside their handlers, so ``sasrec --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMAND_MODULES = (
    "sasrec.cli.data_commands",  # sasrec data synth|stats
    "sasrec.cli.train_commands",  # sasrec train|evaluate
    "sasrec.cli.serve_commands",  # sasrec serve|recommend
    "sasrec.cli.offline_commands",  # sasrec recommend-all|explain
    "sasrec.cli.demo",  # sasrec demo
)


class UserError(Exception):
    """An error caused by the user's input: printed without a traceback, exit code 2.

    ``ValueError`` (``DataError`` included: bad input files name the file and
    line) and ``OSError`` (a file that cannot be read or written: missing,
    a directory, no permission) are mapped the same way.
    """


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sasrec", description="SASRec sequential recommender: train, evaluate, serve."
    )
    from sasrec import __version__

    parser.add_argument("--version", action="version", version=f"sasrec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # "sasrec data stats", not just "sasrec data", in messages.
    command = " ".join(filter(None, (args.command, getattr(args, "data_command", None))))
    try:
        result = args.func(args)
    except (UserError, OSError, ValueError) as err:
        print(f"sasrec {command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sasrec {command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
