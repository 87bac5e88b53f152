"""`sasrec train`: the training job, one orchestrator that reads top to bottom.

config -> interactions -> vocabulary -> sequences -> dataset -> fit -> evaluate -> save

Each step is a call into a small module; this file only wires them together
and decides where files go:

    OUT/1, OUT/2, ...      published versions (``sasrec.artifact``), renamed into place
    OUT/.checkpoint/       the in-progress run: Keras BackupAndRestore + early-stopping state
    OUT/tensorboard/       TensorBoard logs, one sub-folder per run
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sasrec.config import SASRecConfig
from sasrec.data.dataset import CHUNK_BATCHES

DATA_SYNTHETIC = "synthetic"
LOSS_NORMALIZATIONS = ("epoch", "batch")


@dataclass(frozen=True)
class DataOptions:
    """Where the interactions come from and how they are cleaned and split.

    Args:
        path: A log file, or ``None`` for the embedded synthetic shop log.
        preset: Reader preset (``ml-100k``, ``ml-1m``, ``sasrec``, ``amazon``, ``recbole``).
        reader: Extra :class:`~sasrec.data.reader_options.ReaderOptions` fields.
        min_user: k-core threshold for users.
        min_item: k-core threshold for items.
        min_rating: Keep events with ``rating >= min_rating``.
        event_types: Keep only these event types.
        collapse_repeats: Collapse consecutive repeats of an item.
        split: ``"leave_one_out"`` or ``"temporal"``.
        test_cutoff: Temporal split: test targets are after this unix time.
        valid_cutoff: Temporal split: training events are at or before this time.
        synthetic_users: Size of the synthetic log (users).
        synthetic_items: Size of the synthetic log (items).
        synthetic_seed: Seed of the synthetic log.
    """

    path: str | None = None
    preset: str | None = None
    reader: dict[str, Any] = field(default_factory=dict)
    min_user: int = 5
    min_item: int = 5
    min_rating: float | None = None
    event_types: tuple[str, ...] | None = None
    collapse_repeats: bool = False
    split: str = "leave_one_out"
    test_cutoff: float | None = None
    valid_cutoff: float | None = None
    synthetic_users: int = 4000
    synthetic_items: int = 1000
    synthetic_seed: int = 0

    def __post_init__(self) -> None:
        if self.split not in ("leave_one_out", "temporal"):
            raise ValueError(
                f"split must be 'leave_one_out' or 'temporal', received split={self.split!r}"
            )
        if self.path is None and self.preset is not None:
            raise ValueError(f"preset={self.preset!r} needs a data path")


@dataclass(frozen=True)
class TrainOptions:
    """How the model is fitted (the model's own hyper-parameters are in SASRecConfig).

    Args:
        epochs: Maximum epochs.
        batch_size: Training windows per batch.
        learning_rate: Adam learning rate.
        beta_2: Adam beta_2 (the paper uses 0.98).
        adam_epsilon: Adam epsilon (Keras' default 1e-7; TensorFlow 1's
            Adam, which the SASRec reference used, had 1e-8).
        seed: Seeds Python, NumPy, TensorFlow and the data pipeline.
        eval_every: Validate every this many epochs.
        patience: Validations without improvement before early stopping.
        max_valid_users: Validate on at most this many users (seeded sample).
        resume: Continue the interrupted run found in ``OUT/.checkpoint``.
        tensorboard: Write TensorBoard logs.
        verbose: Keras progress bar (1), one line per epoch (2) or silent (0).
        sampled_eval: Also report the paper's sampled protocol.
        bootstrap: Bootstrap samples for the 95% confidence intervals.
        exclude_seen_negatives: Never sample a window's own items as its
            negatives (the SASRec reference's sampler, and the paper's sampled
            evaluation draws its negatives the same way).
        bucket_multiple: Batch widths are multiples of this; None: the
            geometric widths 1, 2, 3, 4, 6, 8, 12, ... (fewer padded positions,
            but about twice as many shapes for XLA to compile in the first
            epoch: a win for long runs, 8 suits runs of a few epochs).
        chunk_batches: Each epoch sorts its shuffled windows by length within
            chunks of this many batches before cutting batches: larger chunks
            give batches of more similar lengths (less padding), smaller ones
            more varied batch company. 256 sorts a Games epoch (244 batches)
            whole: 10% faster epochs than 32 at equal quality (sampled
            NDCG@10 0.386 against 0.381 after 8 epochs; docs/benchmarks.md).
        steps_per_execution: Train steps per call into TensorFlow (Keras'
            ``steps_per_execution``): the Python of Keras' loop and of the
            function call runs once per this many steps. Same updates in
            the same order; per-batch callbacks see every n-th batch.
        loss_normalization: ``"epoch"``: every valid position of an epoch
            weighs the same (the model's ``loss_denominator`` is set to the
            mean valid positions per batch, unless the model config sets
            one). ``"batch"``: the mean over each batch's own positions,
            which under length bucketing gives a position of a batch of short
            histories several times the weight of one in a batch of long
            ones (on Games, paper settings: sampled NDCG@10 0.527 against
            0.538 with ``"epoch"``, full-ranking 0.030 against 0.033;
            docs/benchmarks.md 2d).
    """

    epochs: int = 200
    batch_size: int = 128
    learning_rate: float = 1e-3
    beta_2: float = 0.98
    adam_epsilon: float = 1e-7
    seed: int = 42
    eval_every: int = 1
    patience: int = 5
    max_valid_users: int = 10_000
    resume: bool = False
    tensorboard: bool = True
    verbose: int = 1
    sampled_eval: bool = True
    bootstrap: int = 1000
    exclude_seen_negatives: bool = True
    bucket_multiple: int | None = None
    chunk_batches: int = CHUNK_BATCHES
    steps_per_execution: int = 16
    loss_normalization: str = "epoch"

    def __post_init__(self) -> None:
        for name in (
            "epochs",
            "batch_size",
            "eval_every",
            "patience",
            "max_valid_users",
            "chunk_batches",
            "steps_per_execution",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, received {name}={value!r}")
        if self.bucket_multiple is not None and (
            not isinstance(self.bucket_multiple, int) or self.bucket_multiple < 1
        ):
            raise ValueError(
                f"bucket_multiple must be None or an int >= 1, received "
                f"bucket_multiple={self.bucket_multiple!r}"
            )
        if not 0 < self.learning_rate < 1:
            raise ValueError(
                f"learning_rate must be in (0, 1), received learning_rate={self.learning_rate}"
            )
        if not 0 < self.adam_epsilon < 1:
            raise ValueError(
                f"adam_epsilon must be in (0, 1), received adam_epsilon={self.adam_epsilon}"
            )
        if self.loss_normalization not in LOSS_NORMALIZATIONS:
            raise ValueError(
                f"loss_normalization must be one of {LOSS_NORMALIZATIONS}, received "
                f"loss_normalization={self.loss_normalization!r}"
            )


@dataclass
class Prepared:
    """The data side of a run: cleaned log, vocabulary, split and its report."""

    vocabulary: Any
    split: Any
    report: Any


def prepare_data(data: DataOptions) -> Prepared:
    """interactions -> cleaning -> vocabulary -> sequences -> split."""
    from sasrec.data.cleaning import prepare
    from sasrec.data.encoding import build_vocabulary, encode_sequences
    from sasrec.data.readers import load_interactions
    from sasrec.data.splitting import leave_one_out, temporal_split

    if data.path is None:
        from sasrec.data.data_report import DataReport
        from sasrec.data.synthetic import generate_synthetic_log

        df = generate_synthetic_log(
            num_users=data.synthetic_users,
            num_items=data.synthetic_items,
            seed=data.synthetic_seed,
        )
        report = DataReport(source={"path": None, "preset": DATA_SYNTHETIC, "format": "generated"})
    else:
        df, report = load_interactions(data.path, data.preset, **data.reader)
    df, report = prepare(
        df,
        min_user=data.min_user,
        min_item=data.min_item,
        min_rating=data.min_rating,
        event_types=data.event_types,
        collapse_repeats=data.collapse_repeats,
        report=report,
    )
    vocabulary = build_vocabulary(df)
    sequences = encode_sequences(df, vocabulary)
    if data.split == "leave_one_out":
        split = leave_one_out(sequences)
    else:
        split = temporal_split(
            sequences, test_cutoff=data.test_cutoff, valid_cutoff=data.valid_cutoff
        )
    if len(split.valid) == 0 or len(split.test) == 0:
        where = data.path or DATA_SYNTHETIC
        raise ValueError(
            f"{where}: too small to split: {len(split.valid)} validation and "
            f"{len(split.test)} test users after cleaning (leave-one-out needs users with "
            f">= 3 events; the temporal split needs events after the cutoffs)"
        )
    return Prepared(vocabulary=vocabulary, split=split, report=report)


def _valid_subset(split: Any, limit: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    users = np.arange(len(split.valid))
    if users.size > limit:
        users = np.sort(np.random.default_rng(seed).choice(users, size=limit, replace=False))
    return [split.valid.history(int(u)) for u in users], split.valid.targets[users]


def evaluate_split(
    model: Any,
    split: Any,
    num_items: int,
    max_len: int,
    *,
    which: str = "test",
    sampled: bool = True,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Full-ranking (history excluded and included) and sampled metrics, with baselines.

    Baselines (most popular, first-order Markov) are fitted on the same
    training sequences as the model and evaluated on the same cases.
    """
    from sasrec.engines.scorer import Scorer
    from sasrec.evaluation import (
        MarkovRecommender,
        PopularityRecommender,
        evaluate_full_ranking,
        evaluate_sampled,
    )

    cases = split.test if which == "test" else split.valid
    histories = [cases.history(i) for i in range(len(cases))]
    targets = cases.targets
    train = split.train
    scorers = {
        "sasrec": Scorer(model),
        "popularity": PopularityRecommender(num_items).fit(
            offsets=train.offsets, items=train.items
        ),
        "markov": MarkovRecommender(num_items).fit(offsets=train.offsets, items=train.items),
    }
    result: dict[str, Any] = {"cases": which, "num_users": len(cases)}
    for exclude in (True, False):
        key = "full_ranking_exclude_history" if exclude else "full_ranking_include_history"
        result[key] = {
            name: evaluate_full_ranking(
                fn,
                histories,
                targets,
                num_items,
                exclude_history=exclude,
                max_len=max_len,
                batch_size=256,
                num_bootstrap=bootstrap,
                seed=seed,
            )
            for name, fn in scorers.items()
        }
    if sampled:
        # Negatives avoid every item the user ever touched, as in the paper.
        user_items = [np.append(h, t) for h, t in zip(histories, targets)]
        result["sampled"] = {
            name: evaluate_sampled(
                fn,
                histories,
                targets,
                user_items,
                num_items,
                max_len=max_len,
                batch_size=256,
                num_bootstrap=bootstrap,
                seed=seed,
            )
            for name, fn in scorers.items()
        }
    return result


def summarize(evaluation: dict[str, Any]) -> dict[str, float]:
    """A flat ``name -> value`` view of an evaluation (for GetModelInfo and logs)."""
    flat: dict[str, float] = {}
    for protocol, short in (
        ("full_ranking_exclude_history", "full"),
        ("full_ranking_include_history", "full_incl"),
        ("sampled", "sampled"),
    ):
        for model_name, report in evaluation.get(protocol, {}).items():
            for metric, entry in report.items():
                if isinstance(entry, dict) and "value" in entry:
                    flat[f"{short}/{model_name}/{metric}"] = float(entry["value"])
    return flat


def format_evaluation(evaluation: dict[str, Any]) -> str:
    """Side-by-side tables of SASRec and the baselines, one per protocol."""
    from sasrec.evaluation import format_report

    parts = []
    for protocol, title in (
        ("full_ranking_exclude_history", "Full ranking, history excluded"),
        ("full_ranking_include_history", "Full ranking, history included"),
        ("sampled", "Sampled (target + 100 negatives, the paper's protocol)"),
    ):
        if protocol in evaluation:
            table = format_report(evaluation[protocol])
            parts.append(
                f"{title} — {evaluation['cases']} ({evaluation['num_users']} users)\n{table}"
            )
    verdict = sasrec_verdict(evaluation)
    if verdict:
        parts.append(verdict)
    return "\n\n".join(parts)


def sasrec_verdict(evaluation: dict[str, Any]) -> str:
    """Says plainly whether SASRec beat both baselines on full-ranking NDCG@10."""
    full = evaluation.get("full_ranking_exclude_history")
    if not full:
        return ""
    ours = full["sasrec"]["ndcg@10"]["value"]
    best_name = max((n for n in full if n != "sasrec"), key=lambda n: full[n]["ndcg@10"]["value"])
    best = full[best_name]["ndcg@10"]["value"]
    ratio = ours / best if best > 0 else float("inf")
    if ours > best:
        return f"SASRec beats the best baseline ({best_name}) {ratio:.2f}x on NDCG@10."
    return (
        f"WARNING: SASRec does NOT beat the {best_name} baseline on NDCG@10 "
        f"({ours:.4f} vs {best:.4f})."
    )


def run_training(
    out: str | Path,
    data: DataOptions,
    model_overrides: dict[str, Any],
    train: TrainOptions,
) -> Path:
    """Runs the whole job and returns the published version directory."""
    import keras

    from sasrec.artifact import publish_version, save_model_dir
    from sasrec.data.dataset import make_training_dataset
    from sasrec.data.windows import training_windows
    from sasrec.models import SASRec
    from sasrec.optimizers import FusedAdam
    from sasrec.runtime import configure_threads, keep_freed_memory
    from sasrec.training.epoch_timer import EpochTimer
    from sasrec.training.validation_callback import ValidationCallback

    # -- config
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; it must be a directory (or not exist yet)")
    configure_threads()
    keep_freed_memory()
    keras.utils.set_random_seed(train.seed)
    started = time.time()

    # -- interactions -> vocabulary -> sequences -> split
    prepared = prepare_data(data)
    vocab, split = prepared.vocabulary, prepared.split
    config = SASRecConfig(num_items=vocab.num_items, **model_overrides)
    if train.verbose:
        print(prepared.report.to_text() if hasattr(prepared.report, "to_text") else "", flush=True)
        print(f"split: {json.dumps(split.summary())}", flush=True)

    # -- dataset
    inputs, positives = training_windows(split.train, config.max_len)
    if train.loss_normalization == "epoch" and config.loss_denominator is None:
        config = config.replace(
            loss_denominator=mean_positions_per_batch(positives, train.batch_size)
        )
    dataset = make_training_dataset(
        inputs,
        positives,
        num_items=config.num_items,
        batch_size=train.batch_size,
        num_negatives=0 if config.loss == "softmax" else config.num_negatives,
        seed=train.seed,
        # Hundreds of negatives per position would cost a (B, t, n, d) gather;
        # one set per sequence (gSASRec) costs (B, n, d).
        negatives_per_sequence=config.num_negatives > 1,
        exclude_seen=train.exclude_seen_negatives,
        bucket_multiple=train.bucket_multiple,
        chunk_batches=train.chunk_batches,
    )

    # -- fit
    model = SASRec(**config.to_dict())
    # XLA fuses the many small ops of a SASRec step (measured 1.7x faster on
    # CPU); the full softmax has a data-dependent shape and cannot use it.
    model.compile(
        # Adam's arithmetic, with the ~35 small variables updated in one pass
        # instead of ~100 tiny kernels per step (docs/benchmarks.md, session 7).
        optimizer=FusedAdam(
            learning_rate=train.learning_rate, beta_2=train.beta_2, epsilon=train.adam_epsilon
        ),
        jit_compile=config.loss != "softmax",
        # A 128-sequence step of short histories takes a few ms; Keras' loop
        # and the function call cost about 1.5 ms of it (measured on Games:
        # 4.2 -> 3.6 s per epoch with 8 steps per call, identical losses).
        steps_per_execution=train.steps_per_execution,
    )
    checkpoint = out / ".checkpoint"
    if checkpoint.exists() and not train.resume:
        shutil.rmtree(checkpoint)
    if train.resume and checkpoint.exists():
        saved = json.loads((checkpoint / "run.json").read_text())
        if saved != _run_identity(data, config, train):
            raise ValueError(
                f"--resume: the checkpoint in {checkpoint} was made with other settings; "
                "rerun without --resume to start over"
            )
    checkpoint.mkdir(parents=True, exist_ok=True)
    (checkpoint / "run.json").write_text(json.dumps(_run_identity(data, config, train)))
    valid_histories, valid_targets = _valid_subset(split, train.max_valid_users, train.seed)
    validation = ValidationCallback(
        valid_histories,
        valid_targets,
        num_items=config.num_items,
        max_len=config.max_len,
        every=train.eval_every,
        patience=train.patience,
        state_dir=checkpoint,
        verbose=bool(train.verbose),
    )
    # Validation first: its state is saved before the backup of the same epoch,
    # so a resumed run never lacks the validation of an epoch it will skip.
    timer = EpochTimer()
    callbacks: list[Any] = [
        timer,
        validation,
        keras.callbacks.BackupAndRestore(str(checkpoint / "backup"), double_checkpoint=True),
    ]
    if train.tensorboard:
        run_name = time.strftime("%Y%m%d-%H%M%S")
        callbacks.append(keras.callbacks.TensorBoard(str(out / "tensorboard" / run_name)))
    # The dataset shuffles and buckets by itself; Keras must not try to.
    history = model.fit(
        dataset, epochs=train.epochs, callbacks=callbacks, verbose=train.verbose, shuffle=False
    )
    fit_seconds = time.time() - started

    # -- evaluate
    evaluation = evaluate_split(
        model,
        split,
        config.num_items,
        config.max_len,
        which="test",
        sampled=train.sampled_eval,
        bootstrap=train.bootstrap,
        seed=train.seed,
    )
    if train.verbose:
        print(format_evaluation(evaluation), flush=True)

    # -- save
    counts = np.bincount(split.train.items, minlength=config.num_items + 1)
    extra = {
        "metrics.json": {
            "summary": summarize(evaluation),
            "best_validation": {
                "epoch": validation.best_epoch + 1,
                "ndcg@10": validation.best,
            },
            "validation": validation.records,
            "test": evaluation,
        },
        "data_stats.json": {"report": prepared.report.to_dict(), "split": split.summary()},
        "history.json": {
            **{k: [float(v) for v in vals] for k, vals in history.history.items()},
            "epoch_seconds": timer.seconds,
            "training_windows": int(len(inputs)),
        },
        "popularity.json": {"counts": counts.tolist()},
        "training.json": {
            "data": dataclasses.asdict(data),
            "train": dataclasses.asdict(train),
            "model": config.to_dict(),
            "seconds": round(time.time() - started, 1),
            "fit_seconds": round(fit_seconds, 1),
            "epochs_run": len(history.history.get("loss", [])),
        },
    }
    version_dir = publish_version(
        out, lambda staging: save_model_dir(staging, model, vocab, extra_json=extra)
    )
    shutil.rmtree(checkpoint, ignore_errors=True)
    if train.verbose:
        print(f"saved {version_dir}", flush=True)
    return version_dir


def mean_positions_per_batch(positives: np.ndarray, batch_size: int) -> float:
    """Valid (``!= 0``) positions of ``positives`` per batch of an epoch, on average.

    Example:
        >>> mean_positions_per_batch(np.array([[0, 5], [6, 7], [0, 0]]), batch_size=2)
        1.5
    """
    batches = -(-len(positives) // batch_size)
    return float(np.count_nonzero(positives)) / max(batches, 1)


def _run_identity(data: DataOptions, config: SASRecConfig, train: TrainOptions) -> dict:
    """What must match for --resume to continue a checkpoint."""
    train_fields = dataclasses.asdict(train)
    for volatile in ("resume", "verbose", "epochs", "tensorboard", "steps_per_execution"):
        train_fields.pop(volatile)
    return json.loads(
        json.dumps(
            {"data": dataclasses.asdict(data), "model": config.to_dict(), "train": train_fields}
        )
    )
