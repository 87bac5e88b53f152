"""`sasrec train` and `sasrec evaluate` (argparse only; the work is in ``train.py``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sasrec.config import LOSSES, POSITION_EMBEDDINGS
from sasrec.training.train import LOSS_NORMALIZATIONS, TrainOptions


def _add_data_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", help="interaction log (default: the embedded synthetic shop log)")
    g.add_argument("--preset", help="ml-100k, ml-1m, sasrec, amazon or recbole")
    g.add_argument("--sep", help="field delimiter (default: from the extension or sniffed)")
    g.add_argument("--no-header", action="store_true", help="the file has no header line")
    g.add_argument("--user-col", help="user column (name, or 0-based position)")
    g.add_argument("--item-col", help="item column (name, or 0-based position)")
    g.add_argument("--time-col", help="timestamp column; 'none' = file order is time order")
    g.add_argument("--event-col", help="event type column")
    g.add_argument("--rating-col", help="rating / weight column")
    g.add_argument("--timestamp-unit", help="s, ms, us, ns, iso or auto")
    g.add_argument("--strict", action="store_true", help="fail on the first bad timestamp")
    g.add_argument("--min-user", type=int, default=5, help="k-core: min events per user")
    g.add_argument("--min-item", type=int, default=5, help="k-core: min events per item")
    g.add_argument("--min-rating", type=float, help="keep events with rating >= this")
    g.add_argument("--event-types", help="comma-separated event types to keep")
    g.add_argument("--collapse-repeats", action="store_true")
    g.add_argument("--split", choices=["leave_one_out", "temporal"], default="leave_one_out")
    g.add_argument("--test-cutoff", type=float, help="temporal split: unix time")
    g.add_argument("--valid-cutoff", type=float, help="temporal split: unix time")
    g.add_argument("--synthetic-users", type=int, default=4000, help="size of the embedded log")
    g.add_argument("--synthetic-items", type=int, default=1000, help="size of the embedded log")
    g.add_argument("--synthetic-seed", type=int, default=0, help="seed of the embedded log")


def _column(value: str | None) -> Any:
    if value is None:
        return None
    if value.lower() == "none":
        return "__none__"
    return int(value) if value.isdigit() else value


def data_options_from_args(args: argparse.Namespace) -> Any:
    """Translates CLI flags into :class:`DataOptions` (no namespace goes further)."""
    from sasrec.training.train import DataOptions

    reader: dict[str, Any] = {}
    if args.sep is not None:
        reader["sep"] = args.sep.encode().decode("unicode_escape")
    if args.no_header:
        reader["header"] = False
    for flag, name in (
        ("user_col", "user"),
        ("item_col", "item"),
        ("time_col", "timestamp"),
        ("event_col", "event"),
        ("rating_col", "rating"),
    ):
        value = _column(getattr(args, flag))
        if value is not None:
            reader[name] = None if value == "__none__" else value
    if args.timestamp_unit:
        reader["timestamp_unit"] = args.timestamp_unit
    if args.strict:
        reader["strict"] = True
    return DataOptions(
        path=args.data,
        preset=args.preset,
        reader=reader,
        min_user=args.min_user,
        min_item=args.min_item,
        min_rating=args.min_rating,
        event_types=tuple(args.event_types.split(",")) if args.event_types else None,
        collapse_repeats=args.collapse_repeats,
        split=args.split,
        test_cutoff=args.test_cutoff,
        valid_cutoff=args.valid_cutoff,
        synthetic_users=args.synthetic_users,
        synthetic_items=args.synthetic_items,
        synthetic_seed=args.synthetic_seed,
    )


def _train(args: argparse.Namespace) -> int:
    from sasrec.training.train import run_training

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, received {args.batch_size}")
    if args.max_len < 1:
        raise ValueError(f"--max-len must be >= 1, received {args.max_len}")
    if args.bucket_multiple < 0:
        raise ValueError(f"--bucket-multiple must be >= 0, received {args.bucket_multiple}")
    if args.steps_per_execution < 1:
        raise ValueError(f"--steps-per-execution must be >= 1, received {args.steps_per_execution}")
    model = {
        "max_len": args.max_len,
        "hidden_dim": args.hidden_dim,
        "num_blocks": args.num_blocks,
        "num_heads": args.num_heads,
        "dropout": args.dropout,
        "norm_first": args.norm == "pre",
        "position_embedding": args.position_embedding,
        "attention_window": args.attention_window,
        "loss": args.loss,
        "num_negatives": args.num_negatives,
        "gbce_t": args.gbce_t,
    }
    train = TrainOptions(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        seed=args.seed,
        eval_every=args.eval_every,
        patience=args.patience,
        resume=args.resume,
        tensorboard=not args.no_tensorboard,
        verbose=args.verbose,
        sampled_eval=not args.no_sampled,
        exclude_seen_negatives=args.negatives == "unseen",
        bucket_multiple=args.bucket_multiple or None,
        chunk_batches=args.chunk_batches,
        steps_per_execution=args.steps_per_execution,
        loss_normalization=args.loss_normalization,
    )
    run_training(args.out, data_options_from_args(args), model, train)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from sasrec.artifact import load_model_dir
    from sasrec.runtime import configure_threads
    from sasrec.training.train import (
        DataOptions,
        evaluate_split,
        format_evaluation,
        prepare_data,
    )

    configure_threads()
    artifact = load_model_dir(args.model)
    training_file = Path(artifact.path) / "training.json"
    if args.data is None and not training_file.exists():
        raise ValueError(f"{args.model}: no training.json; pass --data to say what to evaluate on")
    if args.data is None:
        saved = json.loads(training_file.read_text())["data"]
        if saved.get("event_types") is not None:
            saved["event_types"] = tuple(saved["event_types"])
        data = DataOptions(**saved)
    else:
        data = data_options_from_args(args)
    prepared = prepare_data(data)
    if prepared.vocabulary != artifact.vocabulary:
        raise ValueError(
            "the data's item vocabulary differs from the model's: evaluate on the data it "
            "was trained on (omit --data to reuse the training settings)"
        )
    evaluation = evaluate_split(
        artifact.model,
        prepared.split,
        artifact.config.num_items,
        artifact.config.max_len,
        which=args.cases,
        sampled=not args.no_sampled,
        bootstrap=args.bootstrap,
    )
    print(format_evaluation(evaluation))
    if args.json:
        from sasrec.io import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps(evaluation, indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train, evaluate and publish a model version",
        description="Raw log in, a trained, evaluated, versioned model out (OUT/<n>/).",
    )
    p.add_argument("--out", required=True, help="model root; versions go to OUT/1, OUT/2, ...")
    _add_data_arguments(p)
    m = p.add_argument_group("model (see SASRecConfig)")
    m.add_argument("--max-len", type=int, default=50)
    m.add_argument("--hidden-dim", type=int, default=64)
    m.add_argument("--num-blocks", type=int, default=2)
    m.add_argument("--num-heads", type=int, default=1)
    m.add_argument("--dropout", type=float, default=0.2)
    m.add_argument("--norm", choices=["pre", "post"], default="pre")
    m.add_argument("--position-embedding", choices=POSITION_EMBEDDINGS, default="learned")
    m.add_argument("--attention-window", type=int)
    m.add_argument("--loss", choices=LOSSES, default="softmax")
    m.add_argument("--num-negatives", type=int, default=1)
    m.add_argument("--gbce-t", type=float, default=0.75)
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=200)
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--eval-every", type=int, default=1)
    t.add_argument("--patience", type=int, default=5)
    t.add_argument("--resume", action="store_true", help="continue an interrupted run")
    t.add_argument("--no-tensorboard", action="store_true")
    t.add_argument(
        "--bucket-multiple",
        type=int,
        default=0,
        help="batch widths in multiples of N (0: geometric widths, best for long runs)",
    )
    t.add_argument(
        "--chunk-batches",
        type=int,
        default=TrainOptions.chunk_batches,
        help="sort windows by length within chunks of N batches (larger: less padding)",
    )
    t.add_argument(
        "--steps-per-execution",
        type=int,
        default=16,
        help="train steps per call into TensorFlow (same result; less Python per step)",
    )
    t.add_argument(
        "--loss-normalization",
        choices=LOSS_NORMALIZATIONS,
        default="epoch",
        help="every position of an epoch weighs the same (epoch) or the mean of each batch",
    )
    t.add_argument("--no-sampled", action="store_true", help="skip the sampled protocol")
    t.add_argument(
        "--negatives",
        choices=["unseen", "uniform"],
        default="unseen",
        help="sampled negatives: items outside the window (the reference) or any but the target",
    )
    t.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    p.set_defaults(func=_train)

    e = sub.add_parser(
        "evaluate",
        help="full-ranking and sampled metrics of a model version, beside baselines",
    )
    e.add_argument("--model", required=True, help="a model version directory (OUT/<n>)")
    _add_data_arguments(e)
    e.add_argument("--cases", choices=["test", "valid"], default="test")
    e.add_argument("--bootstrap", type=int, default=1000, help="bootstrap samples for CIs")
    e.add_argument("--no-sampled", action="store_true", help="skip the sampled protocol")
    e.add_argument("--json", help="also write the full report to this JSON file")
    e.set_defaults(func=_evaluate)
