"""The ``sasrec`` command line: argparse front ends of the data, training and serving packages.

Example:
    >>> from sasrec.cli import main
    >>> main(["--version"])  # doctest: +SKIP
"""

from sasrec.cli.main import main

__all__ = ["main"]
