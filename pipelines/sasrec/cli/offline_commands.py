"""``sasrec recommend-all`` and ``sasrec explain``: offline jobs on a published model.

Only argparse at import time; TensorFlow, pandas and the predictor load
inside the handlers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sasrec.cli.console import add_log_level_flag, configure_console
from sasrec.cli.data_flags import add_data_flags, data_options_from_args


def model_version_dir(path: Path) -> Path:
    """``path`` if it is a version directory, else the newest version published under it."""
    from sasrec.artifact import MANIFEST_FILE, latest_version

    if not path.exists():
        raise FileNotFoundError(f"--model {path}: no such directory")
    if (path / MANIFEST_FILE).is_file():
        return path
    latest = latest_version(path)
    if latest is None:
        raise ValueError(f"--model {path}: neither a model version nor a root with versions")
    return Path(latest)


def _recommend_all(args: argparse.Namespace) -> int:
    configure_console(args.log_level)
    from sasrec.cli.recommend_all import recommend_all
    from sasrec.runtime import configure_threads

    configure_threads()
    progress = (lambda line: print(line, file=sys.stderr, flush=True)) if args.progress else None
    summary = recommend_all(
        model_version_dir(args.model),
        data_options_from_args(args),
        args.out,
        k=args.k,
        include_history=args.include_history,
        chunk_users=args.chunk_users,
        progress=progress,
    )
    print(
        f"{summary.path}: {summary.users:,} users, {summary.rows:,} rows in "
        f"{summary.seconds:.1f} s ({summary.users_per_s:,.0f} users/s)"
    )
    return 0


def _explain(args: argparse.Namespace) -> int:
    configure_console(args.log_level)
    from sasrec.cli.attention_picture import explain_history, write_picture

    history = [part.strip() for part in args.history.split(",") if part.strip()]
    if not history:
        raise ValueError("--history: give at least one item id (comma-separated, oldest first)")
    if Path(args.out).suffix.lower() not in (".svg", ".html", ".htm"):
        raise ValueError(f"--out {args.out}: write .svg or .html")
    picture = explain_history(model_version_dir(args.model), history, k=args.k)
    out = write_picture(picture, args.out)
    blocks = len(picture.attention)
    heads = picture.attention[0].shape[0]
    print(
        f"{out}: {blocks} block(s) x {heads} head(s) over {len(picture.history)} history items, "
        f"top {len(picture.top_items)} items"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "recommend-all",
        help="top-k items for every user of a log, into a Parquet file",
        description="Scores every user of the cleaned log (their last max_len events) with a "
        "published model, with the server's rules (history excluded, popularity fallback for "
        "users the model does not know), and writes one row per user and rank: "
        "user_id, rank, item_id, score, fallback.",
    )
    p.add_argument(
        "--model", type=Path, required=True, help="a version OUT/<n>, or OUT for its newest"
    )
    p.add_argument("--out", type=Path, required=True, help="the Parquet file to write")
    p.add_argument("--k", type=int, default=20, help="items per user (default 20)")
    p.add_argument("--include-history", action="store_true", help="allow history items")
    p.add_argument(
        "--chunk-users", type=int, default=4096, help="users per step (bounds memory; 4096)"
    )
    p.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no progress lines on stderr"
    )
    add_log_level_flag(p)
    add_data_flags(p, prepared=True)
    p.set_defaults(func=_recommend_all)

    e = sub.add_parser(
        "explain",
        help="a picture of the attention over one history (.svg or .html)",
        description="Heatmaps of every block's and head's attention over the history, with "
        "item ids on the axes, and the top items with each history item's share.",
    )
    e.add_argument(
        "--model", type=Path, required=True, help="a version OUT/<n>, or OUT for its newest"
    )
    e.add_argument("--history", required=True, help="comma-separated item ids, oldest first")
    e.add_argument("--k", type=int, default=10, help="top items shown (default 10)")
    e.add_argument("--out", required=True, help="explain.svg or explain.html")
    add_log_level_flag(e)
    e.set_defaults(func=_explain)
