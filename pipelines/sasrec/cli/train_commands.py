"""``sasrec train`` and ``sasrec evaluate``.

Only argparse (and the option dataclasses) at import time; TensorFlow loads
inside the handlers, after :func:`~sasrec.cli.console.configure_console` has
set its log threshold.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sasrec.cli.console import add_log_level_flag, configure_console
from sasrec.cli.data_flags import add_data_flags, data_options_from_args
from sasrec.cli.dataclass_flags import add_field_flags, values_from_args
from sasrec.cli.train_flags import (
    TRAIN_FLAGS,
    TRAIN_PREFIX,
    add_model_flags,
    add_training_flags,
    model_overrides_from_args,
    train_options_from_args,
)
from sasrec.training.options import TrainOptions

# The final-evaluation settings `sasrec evaluate` shares with `sasrec train`.
EVALUATION_FIELDS = ("sampled_eval", "bootstrap", "max_eval_users")


def _train(args: argparse.Namespace) -> int:
    configure_console(args.log_level)
    from sasrec.config import SASRecConfig

    data = data_options_from_args(args)
    model = model_overrides_from_args(args)
    train = train_options_from_args(args)
    if train.init_from is not None:
        # The base model's settings hold unless a flag changes them from its default.
        defaults = SASRecConfig.__dataclass_fields__
        model = {k: v for k, v in model.items() if v != defaults[k].default}
    # The strategy before TensorFlow's first op (TF_CONFIG is checked here).
    from sasrec.runtime import configure_threads
    from sasrec.training.distribution import start_distribution

    # The run's own thread counts: TensorFlow keeps the first ones it is given.
    configure_threads(inter_op=train.inter_op_threads())
    start_distribution(train.strategy)
    # Checked before the data is read, so a bad model flag fails at once. The
    # config checks the task's fields; the layers check theirs when built.
    SASRecConfig(num_items=1, **model).build_model()

    from sasrec.cli.main import UserError
    from sasrec.training.distribution import WorkerLostError
    from sasrec.training.run import run_training
    from sasrec.training.run_lock import OutputError

    try:
        run_training(args.out, data, model, train)
    except (OutputError, WorkerLostError) as err:
        # A full, read-only or busy --out, a lost worker: the environment, not a bug (exit 2).
        raise UserError(str(err)) from err
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    configure_console(args.log_level)
    from sasrec.artifact import TRAINING_FILE, load_model_dir
    from sasrec.runtime import configure_threads
    from sasrec.training.final_evaluation import evaluate_split
    from sasrec.training.options import DataOptions
    from sasrec.training.preparation import prepare_data
    from sasrec.training.report import format_evaluation

    settings = values_from_args(
        args, TrainOptions, prefix=TRAIN_PREFIX, flags=TRAIN_FLAGS, names=EVALUATION_FIELDS
    )
    configure_threads()
    artifact = load_model_dir(args.model)
    training_file = Path(artifact.path) / TRAINING_FILE
    if args.data_path is None and not training_file.exists():
        raise ValueError(f"{args.model}: no training.json; pass --data to say what to evaluate on")
    if args.data_path is None:
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
        prepared,
        artifact.config.num_items,
        artifact.config.max_len,
        which=args.cases,
        sampled=settings["sampled_eval"],
        bootstrap=settings["bootstrap"],
        max_users=settings["max_eval_users"],
        progress=lambda line: print(line, flush=True),
    )
    print(format_evaluation(evaluation))
    if args.json:
        from sasrec.cli.main import UserError
        from sasrec.io import atomic_write_text

        try:
            atomic_write_text(Path(args.json), json.dumps(evaluation, indent=2))
        except OSError as err:
            raise UserError(f"--json {args.json}: cannot write the report: {err}") from err
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Adds ``train`` and ``evaluate`` to the ``sasrec`` sub-command parsers."""
    p = sub.add_parser(
        "train",
        help="train, evaluate and publish a model version",
        description="Raw log in, a trained, evaluated, versioned model out (OUT/<n>/). "
        "Without --data it trains on the embedded synthetic shop log.",
    )
    p.add_argument(
        "--out", required=True, help="model root; versions go to OUT/1, OUT/2, ... (required)"
    )
    add_log_level_flag(p)
    add_data_flags(p, prepared=True)
    add_model_flags(p)
    add_training_flags(p)
    p.set_defaults(func=_train)

    e = sub.add_parser(
        "evaluate",
        help="full-ranking and sampled metrics of a model version, beside baselines",
        description="Evaluate a model version on the data it was trained on: without --data "
        "the version's training.json says how the data was read, cleaned and split.",
    )
    e.add_argument("--model", required=True, help="a model version directory OUT/<n> (required)")
    e.add_argument(
        "--cases",
        choices=["test", "valid"],
        default="test",
        help="which targets to rank (default: %(default)s)",
    )
    e.add_argument(
        "--json", help="also write the full report to this JSON file (default: not written)"
    )
    add_log_level_flag(e)
    evaluation = e.add_argument_group("evaluation (as in sasrec train)")
    add_field_flags(
        evaluation, TrainOptions, prefix=TRAIN_PREFIX, flags=TRAIN_FLAGS, only=EVALUATION_FIELDS
    )
    add_data_flags(e, note="Used only with --data; without it, the training settings apply.")
    e.set_defaults(func=_evaluate)
