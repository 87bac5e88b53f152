"""``sasrec data synth`` and ``sasrec data stats``.

Only argparse at import time; pandas and the pipeline load inside the handlers
so ``sasrec --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sasrec.cli.data_flags import add_data_flags, data_options_from_args
from sasrec.training.options import DataOptions


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``data`` command group to the ``sasrec`` parser."""
    data = subparsers.add_parser("data", help="make, inspect and check interaction logs")
    sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")

    def show_help(args: argparse.Namespace) -> int:
        data.print_help()
        return 2

    data.set_defaults(func=show_help)

    synth = sub.add_parser("synth", help="write the synthetic shop log as CSV")
    synth.add_argument("--out", required=True, type=Path, help="CSV file to write (required)")
    # The embedded log's defaults, so `synth` writes the log `train` uses without --data.
    synth.add_argument(
        "--users",
        type=int,
        default=DataOptions.synthetic_users,
        help="number of users (default: %(default)s)",
    )
    synth.add_argument(
        "--items",
        type=int,
        default=DataOptions.synthetic_items,
        help="number of items (default: %(default)s)",
    )
    synth.add_argument(
        "--seed",
        type=int,
        default=DataOptions.synthetic_seed,
        help="random seed (default: %(default)s)",
    )
    synth.set_defaults(func=_synth)

    stats = sub.add_parser(
        "stats",
        help="read, clean and describe an interaction log",
        description="Read, clean and split a log with the same flags and defaults as "
        "`sasrec train`, and show what each step dropped. Without --data: the embedded "
        "synthetic shop log.",
    )
    stats.add_argument(
        "--json", type=Path, help="also write the report as JSON here (default: not written)"
    )
    add_data_flags(stats)
    stats.set_defaults(func=_stats)


def _synth(args: argparse.Namespace) -> int:
    from sasrec.data.synthetic import generate_synthetic_log
    from sasrec.io import atomic_write_text

    log = generate_synthetic_log(num_users=args.users, num_items=args.items, seed=args.seed)
    atomic_write_text(args.out, log.to_csv(index=False))
    print(
        f"wrote {args.out}: {len(log):,} events, {log['user_id'].nunique():,} users, "
        f"{log['item_id'].nunique():,} items (seed {args.seed})"
    )
    return 0


def _stats(args: argparse.Namespace) -> int:
    import json

    from sasrec.training.preparation import load_clean_log, split_log

    data = data_options_from_args(args)
    df, report = load_clean_log(data)
    print(report.to_text())
    _, split = split_log(df, data)
    print(f"split: {json.dumps(split.summary())}")
    if args.json:
        report.save(args.json)
        print(f"report written to {args.json}")
    return 0
