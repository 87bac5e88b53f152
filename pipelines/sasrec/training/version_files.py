"""What a published version records about its run, beside the model and the vocabulary."""

from __future__ import annotations

import dataclasses
from typing import Any

from sasrec.artifact import (
    DATA_STATS_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    POPULARITY_FILE,
    TRAINING_FILE,
    popularity_document,
)
from sasrec.config import SASRecConfig
from sasrec.training.final_evaluation import summarize
from sasrec.training.options import DataOptions, TrainOptions
from sasrec.training.preparation import Prepared
from sasrec.training.run_history import RunHistory
from sasrec.training.validation_callback import ValidationCallback


def version_files(
    prepared: Prepared,
    evaluation: dict[str, Any],
    validation: ValidationCallback,
    run_history: RunHistory,
    training_windows: int,
    data: DataOptions,
    config: SASRecConfig,
    train: TrainOptions,
    *,
    seconds: float,
    fit_seconds: float,
    xla_all_ready_epoch: int | None = None,
) -> dict[str, Any]:
    """The JSON files a version holds beside the model and its vocabulary, by file name.

    ``metrics.json`` (test evaluation, validation curve), ``data_stats.json``
    (what cleaning dropped, the split), ``history.json`` (losses, seconds per
    epoch), ``popularity.json`` (training counts, the serving fallback) and
    ``training.json`` (the options, which ``sasrec evaluate`` reuses).

    A resumed run's files describe the whole run: ``run_history`` holds
    every epoch, those before the interruption included, and ``seconds`` /
    ``fit_seconds`` count the earlier attempts up to their last checkpoint.

    ``xla_all_ready_epoch``: with XLA widths compiled ahead, the first epoch
    that began with all of them compiled (from there on the steps run the
    same programs as plain ``jit_compile=True``); None otherwise.
    """
    history = run_history.history()
    counts = prepared.train_item_counts()
    return {
        METRICS_FILE: {
            "summary": summarize(evaluation),
            "best_validation": {"epoch": validation.best_epoch + 1, "ndcg@10": validation.best},
            "validation": validation.records,
            "test": evaluation,
        },
        DATA_STATS_FILE: {"report": prepared.report.to_dict(), "split": prepared.split_summary()},
        HISTORY_FILE: {
            **{k: [float(v) for v in vals] for k, vals in history.items()},
            "epoch_seconds": run_history.epoch_seconds(),
            "epoch_cpu_seconds": run_history.epoch_cpu_seconds(),
            "training_windows": int(training_windows),
            "xla_all_ready_epoch": xla_all_ready_epoch,
        },
        POPULARITY_FILE: popularity_document(counts),
        TRAINING_FILE: {
            "data": dataclasses.asdict(data),
            "train": dataclasses.asdict(train),
            "model": config.to_dict(),
            "seconds": round(seconds, 1),
            "fit_seconds": round(fit_seconds, 1),
            "epochs_run": len(run_history.epochs),
            "resumed_at_epoch": run_history.resumed_at_epoch,
        },
    }
