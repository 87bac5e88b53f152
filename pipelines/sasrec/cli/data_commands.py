"""``sasrec data synth``, ``sasrec data stats`` and ``sasrec data prepare``.

Only argparse at import time; pandas and the pipeline load inside the handlers
so ``sasrec --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sasrec.cli.data_flags import add_data_flags, data_options_from_args
from sasrec.data.prepared_layout import DEFAULT_ROWS_PER_FILE, DEFAULT_SHARDS
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

    prepare = sub.add_parser(
        "prepare",
        help="read, clean, encode and split a log into a PREPARED folder of Parquet shards",
        description="The data side of `sasrec train` as a job of its own: the same flags and "
        "rules, on pandas (one process) or Apache Spark (a cluster). `sasrec train --prepared "
        "OUT` trains on the result.",
    )
    prepare.add_argument(
        "--out", required=True, type=Path, help="the PREPARED folder to create (required)"
    )
    prepare.add_argument(
        "--engine",
        choices=("pandas", "spark"),
        default="pandas",
        help="pandas (one process, the log in memory) or spark (PySpark; the log never "
        "reaches the driver) (default: %(default)s)",
    )
    prepare.add_argument(
        "--shards",
        type=int,
        default=DEFAULT_SHARDS,
        help="users are hashed into this many shard folders (default: %(default)s)",
    )
    prepare.add_argument(
        "--rows-per-file",
        type=int,
        default=DEFAULT_ROWS_PER_FILE,
        help="at most this many users per Parquet file (default: %(default)s)",
    )
    spark = prepare.add_argument_group("spark engine")
    spark.add_argument(
        "--spark-master",
        default=None,
        help="Spark master URL (local[2], spark://host:7077, yarn, k8s://...) "
        "(default: the session's own, local[*] when none is configured)",
    )
    spark.add_argument(
        "--spark-remote",
        default=None,
        metavar="URL",
        help="Spark Connect server (sc://host:15002) instead of a master (default: not used)",
    )
    spark.add_argument(
        "--spark-conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        type=_spark_conf,
        help="a Spark setting for the session, repeatable (e.g. spark.driver.memory=4g) "
        "(default: none)",
    )
    spark.add_argument(
        "--checkpoint-dir",
        default=None,
        help="where the k-core's per-pass checkpoints go (default: a folder beside --out, "
        "removed at the end)",
    )
    add_data_flags(prepare)
    prepare.set_defaults(func=_prepare)


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


def _spark_conf(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, received {text!r}")
    return key.strip(), value.strip()


def _prepare(args: argparse.Namespace) -> int:
    import dataclasses
    import time

    from sasrec.data.prepared import check_shard_settings

    data = data_options_from_args(args)
    check_shard_settings(args.shards, args.rows_per_file)
    if args.out.exists():
        raise ValueError(
            f"--out {args.out}: exists already; a PREPARED folder is never overwritten"
        )
    started = time.perf_counter()
    options = dataclasses.asdict(data)
    if args.engine == "spark":
        from sasrec.data.spark_pipeline import prepare_with_spark
        from sasrec.data.spark_session import SparkSettings

        settings = SparkSettings(
            master=args.spark_master,
            remote=args.spark_remote,
            checkpoint_dir=args.checkpoint_dir,
            conf=tuple(args.spark_conf),
        )
        report, summary = prepare_with_spark(
            data, args.out, settings, shards=args.shards, rows_per_file=args.rows_per_file
        )
    else:
        from sasrec.data.prepared import sequence_table, write_prepared
        from sasrec.training.preparation import encode_and_split, load_clean_log

        df, report = load_clean_log(data)
        vocabulary, sequences, split = encode_and_split(df, data)
        del df
        summary = split.summary()
        write_prepared(
            args.out,
            sequence_table(sequences, split),
            vocabulary,
            report,
            summary,
            options=options,
            engine="pandas",
            shards=args.shards,
            rows_per_file=args.rows_per_file,
        )
    print(report.to_text())
    print(f"split: {json.dumps(summary)}")
    print(f"wrote {args.out} ({args.engine}, {time.perf_counter() - started:.1f} s)")
    return 0
