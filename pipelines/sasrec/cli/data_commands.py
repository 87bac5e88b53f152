"""``sasrec data synth`` and ``sasrec data stats``.

Only argparse at import time; pandas and the pipeline load inside the handlers
so ``sasrec --help`` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``data`` command group to the ``sasrec`` parser."""
    data = subparsers.add_parser("data", help="make, inspect and check interaction logs")
    sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")

    def show_help(args: argparse.Namespace) -> int:
        data.print_help()
        return 2

    data.set_defaults(func=show_help)

    synth = sub.add_parser("synth", help="write the synthetic shop log as CSV")
    synth.add_argument("--out", required=True, type=Path, help="CSV file to write")
    synth.add_argument("--users", type=int, default=4000, help="number of users (default 4000)")
    synth.add_argument("--items", type=int, default=1000, help="number of items (default 1000)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.set_defaults(func=_synth)

    stats = sub.add_parser("stats", help="read, clean and describe an interaction log")
    stats.add_argument("--data", required=True, type=Path, help="log file (or preset folder)")
    stats.add_argument("--preset", help="ml-100k, ml-1m, sasrec, amazon or recbole")
    stats.add_argument("--format", choices=("auto", "csv", "parquet", "json"), help="file format")
    stats.add_argument(
        "--sep",
        help="field delimiter, e.g. ';', '::', tab (default: from the extension or sniffed)",
    )
    stats.add_argument("--user-col", help="user id column (name, or 0-based position)")
    stats.add_argument("--item-col", help="item id column (name, or 0-based position)")
    stats.add_argument("--time-col", help="timestamp column; 'none' = file order is time order")
    stats.add_argument("--event-col", help="event type column")
    stats.add_argument("--rating-col", help="rating column")
    stats.add_argument("--timestamp-unit", choices=("auto", "s", "ms", "us", "ns", "iso"))
    stats.add_argument("--strict", action="store_true", help="fail on unparseable timestamps")
    stats.add_argument("--min-user", type=int, default=1, help="k-core: min events per user")
    stats.add_argument("--min-item", type=int, default=1, help="k-core: min events per item")
    stats.add_argument("--min-rating", type=float, help="keep ratings >= this")
    stats.add_argument("--collapse-repeats", action="store_true", help="collapse a a -> a")
    stats.add_argument("--json", type=Path, help="also write the report as JSON here")
    stats.set_defaults(func=_stats)


def _column(value: str | None) -> str | int | None:
    if value is None:
        return None
    return int(value) if value.isdigit() else value


def _separator(value: str | None) -> str | None:
    """Lets shells pass a tab as ``\\t`` or ``tab``."""
    if value is None:
        return None
    return {"\\t": "\t", "tab": "\t", "space": " "}.get(value, value)


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
    from sasrec.data.cleaning import prepare
    from sasrec.data.readers import load_interactions

    options: dict[str, object] = {}
    for key, value in (
        ("user", _column(args.user_col)),
        ("item", _column(args.item_col)),
        ("event", _column(args.event_col)),
        ("rating", _column(args.rating_col)),
        ("sep", _separator(args.sep)),
        ("format", args.format),
        ("timestamp_unit", args.timestamp_unit),
    ):
        if value is not None:
            options[key] = value
    if args.time_col is not None:
        options["timestamp"] = None if args.time_col.lower() == "none" else _column(args.time_col)
    if args.strict:
        options["strict"] = True
    df, report = load_interactions(args.data, preset=args.preset, **options)
    _, report = prepare(
        df,
        min_user=args.min_user,
        min_item=args.min_item,
        min_rating=args.min_rating,
        collapse_repeats=args.collapse_repeats,
        report=report,
    )
    print(report.to_text())
    if args.json:
        report.save(args.json)
        print(f"report written to {args.json}")
    return 0
