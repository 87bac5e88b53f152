"""Training speed and quality on the SASRec paper's Amazon Games data.

Runs the real ``sasrec train`` job (``sasrec.training``) on
``../shared/data/amazon-games/Video.txt`` with the paper's settings (or the
flags given) and reports, from one run:

- seconds per training epoch (median over epochs, validation excluded) and
  training sequences (windows) per second; ``steady_epoch_s`` is the median
  of the epochs that ran only compiled XLA programs (with compile-ahead,
  those after every width was compiled), to compare with
  ``--no-compile-ahead``;
- the sampled protocol (target + 100 negatives, up to 10,000 users) next to
  the paper's NDCG@10 0.5360 / HR@10 0.7410;
- full-ranking NDCG@10 / HR@10 (history excluded and included) with 95% CIs,
  next to the popularity and first-order Markov baselines.

``--seeds N`` (default 3) trains N times with training seeds ``--seed``,
``--seed + 1``, ... and reports each seed's figures with their CIs, then the
mean and standard deviation over the seeds. The evaluation's own randomness
(the sampled protocol's users and negatives, the bootstrap) comes from
``--eval-seed`` alone, so every seed is ranked on the same users against the
same negatives and the spread is the training's.

Usage::

    .venv/bin/python bench/bench_games.py --loss bce --epochs 8 --eval-every 100 --seeds 1  # speed
    .venv/bin/python bench/bench_games.py --loss bce --epochs 200 --eval-every 200 \
        --patience 1000 --adam-epsilon 1e-8                                    # paper protocol
    .venv/bin/python bench/bench_games.py --summarize LABEL   # seeds of LABEL in --results

Runs of one configuration can go to separate processes (``--seeds 1 --seed
S --label L`` each) and be aggregated afterwards with ``--summarize L``.

Each run prints its result as JSON and appends it as one line to
``--results`` (default ``bench/results/games.jsonl``, which git ignores).
The recorded figures and their commands are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "amazon-games" / "Video.txt"


# (protocol, model, metric) figures aggregated over seeds.
AGGREGATED = [
    (protocol, name, metric)
    for protocol in ("sampled", "full_excl", "full_incl")
    for name in ("sasrec", "popularity", "markov")
    for metric in ("ndcg@10", "hr@10")
]


def aggregate_seeds(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, standard deviation and each seed's figure with its CI, per reported metric.

    ``results`` are single-seed results as :func:`run_one` returns them (each
    metric a ``[value, [low, high]]`` pair). The standard deviation is the
    sample one (n - 1), 0.0 for a single seed.

    Example:
        >>> one = lambda v: {p: {m: {k: [v, [v - 0.01, v + 0.01]] for k in ("ndcg@10", "hr@10")}
        ...     for m in ("sasrec", "popularity", "markov")} for p in ("sampled", "full_excl",
        ...     "full_incl")}
        >>> summary = aggregate_seeds([{"seed": 1, **one(0.5)}, {"seed": 2, **one(0.6)}])
        >>> summary["sampled"]["sasrec"]["ndcg@10"]["mean"], summary["seeds"]
        (0.55, [1, 2])
    """
    if not results:
        raise ValueError("no result to aggregate")
    summary: dict[str, Any] = {"seeds": [r["seed"] for r in results]}
    for protocol, name, metric in AGGREGATED:
        pairs = [r[protocol][name][metric] for r in results]
        values = [pair[0] for pair in pairs]
        entry = {
            "mean": round(statistics.fmean(values), 4),
            "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
            "per_seed": [[r["seed"], *pair] for r, pair in zip(results, pairs)],
        }
        summary.setdefault(protocol, {}).setdefault(name, {})[metric] = entry
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The aggregate as lines: ``protocol model metric: mean ± sd (seed: value [CI], ...)``."""
    lines = [f"seeds {summary['seeds']}"]
    for protocol, name, metric in AGGREGATED:
        entry = summary[protocol][name][metric]
        seeds = ", ".join(
            f"{seed}: {value:.4f} [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else f"{seed}: {value:.4f}"
            for seed, value, ci in entry["per_seed"]
        )
        lines.append(
            f"{protocol} {name} {metric}: {entry['mean']:.4f} ± {entry['sd']:.4f} ({seeds})"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--loss", default="bce")
    p.add_argument("--num-negatives", type=int, default=1)
    p.add_argument(
        "--negative-sharing",
        choices=["sequence", "batch"],
        default="sequence",
        help="one set of negatives per sequence or per batch (SASRecConfig.negative_sharing)",
    )
    p.add_argument("--gbce-t", type=float, default=0.75)
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--hidden-dim", type=int, default=50)
    p.add_argument("--num-blocks", type=int, default=2)
    p.add_argument("--num-heads", type=int, default=1)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=42, help="training seed of the first run")
    p.add_argument("--seeds", type=int, default=3, help="runs, seeds --seed, --seed + 1, ...")
    p.add_argument(
        "--eval-seed",
        type=int,
        default=0,
        help="seeds the evaluation (sampled users and negatives, bootstrap), the same for all runs",
    )
    p.add_argument(
        "--summarize",
        metavar="LABEL",
        help="aggregate the results labelled LABEL in --results (no training)",
    )
    p.add_argument("--steps-per-execution", type=int, default=16)
    p.add_argument("--chunk-batches", type=int, default=None, help="default: TrainOptions'")
    p.add_argument("--adam-epsilon", type=float, default=1e-7)
    p.add_argument("--loss-normalization", choices=["epoch", "batch"], default="epoch")
    p.add_argument("--out", help="model root (default: a temporary directory)")
    p.add_argument("--label", default="", help="a tag stored with the result")
    p.add_argument(
        "--results",
        type=Path,
        default=ROOT / "bench" / "results" / "games.jsonl",
        help="JSON-lines file the result is appended to (default: %(default)s, git-ignored)",
    )
    p.add_argument(
        "--negatives",
        choices=["window", "history", "uniform"],
        default="window",
        help="negatives outside the window, outside the user's training items (the "
        "reference) or any item but the target (TrainOptions.negatives)",
    )
    p.add_argument(
        "--trained-windows",
        choices=["all", "newest"],
        default="all",
        help="train every target or each user's newest window only (TrainOptions.trained_windows)",
    )
    p.add_argument(
        "--sparse-item-updates",
        action="store_true",
        help="lazy-Adam item-table updates (TrainOptions.sparse_item_updates)",
    )
    p.add_argument(
        "--no-compile-ahead",
        dest="compile_ahead",
        action="store_false",
        help="compile every XLA width on the training thread (TrainOptions.compile_ahead)",
    )
    args = p.parse_args()
    if args.summarize is not None:
        lines = args.results.read_text().splitlines() if args.results.exists() else []
        results = [r for r in map(json.loads, lines) if r.get("label") == args.summarize]
        if not results:
            raise SystemExit(f"{args.results}: no result labelled {args.summarize!r}")
        print(format_summary(aggregate_seeds(results)))
        return
    if not Path(args.data).exists():
        raise SystemExit(f"{args.data}: not found (the shared data sets are not on this machine)")
    if args.seeds < 1:
        raise SystemExit(f"--seeds must be >= 1, received {args.seeds}")
    results = []
    for seed in range(args.seed, args.seed + args.seeds):
        result = run_one(args, seed)
        print(json.dumps(result, indent=2), flush=True)
        args.results.parent.mkdir(parents=True, exist_ok=True)
        with args.results.open("a") as fh:
            fh.write(json.dumps(result) + "\n")
        results.append(result)
    print(format_summary(aggregate_seeds(results)))


def _steady_median(epochs: list[float], all_ready_epoch: int | None) -> float | None:
    """Median seconds of the epochs that ran only compiled XLA programs.

    ``all_ready_epoch`` (1-based, from ``history.json``): the first epoch
    that began with every width compiled ahead; None (no compile-ahead):
    every epoch after the first.
    """
    steady = epochs[all_ready_epoch - 1 :] if all_ready_epoch else epochs[1:]
    return round(statistics.median(steady), 3) if steady else None


def run_one(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """One training run with training seed ``seed``; its figures as a JSON-able dict."""
    import keras

    from sasrec.training import DataOptions, TrainOptions, run_training

    keras.backend.clear_session()
    model = {
        "hidden_dim": args.hidden_dim,
        "num_blocks": args.num_blocks,
        "num_heads": args.num_heads,
        "max_len": args.max_len,
        "dropout": args.dropout,
        "loss": args.loss,
        "num_negatives": args.num_negatives,
        "negative_sharing": args.negative_sharing,
        "gbce_t": args.gbce_t,
    }
    data = DataOptions(path=args.data, preset="sasrec", min_user=1, min_item=1)
    train = TrainOptions(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        seed=seed,
        eval_seed=args.eval_seed,
        eval_every=args.eval_every,
        patience=args.patience,
        verbose=2,
        tensorboard=False,
        bootstrap=1000,
        negatives=args.negatives,
        trained_windows=args.trained_windows,
        steps_per_execution=args.steps_per_execution,
        adam_epsilon=args.adam_epsilon,
        loss_normalization=args.loss_normalization,
        sparse_item_updates=args.sparse_item_updates,
        compile_ahead=args.compile_ahead,
        **({} if args.chunk_batches is None else {"chunk_batches": args.chunk_batches}),
    )
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        version = run_training(args.out or tmp, data, model, train)
        history = json.loads((version / "history.json").read_text())
        metrics = json.loads((version / "metrics.json").read_text())
        training = json.loads((version / "training.json").read_text())
    epochs = history["epoch_seconds"]
    cpu = [s for s in history.get("epoch_cpu_seconds", []) if s is not None]
    steady = epochs[1:] or epochs  # the first epoch includes tracing
    median = statistics.median(steady)
    windows = history["training_windows"]
    test = metrics["test"]

    def pick(protocol: str, name: str, metric: str) -> list:
        entry = test[protocol][name][metric]
        return [round(entry["value"], 4), [round(x, 4) for x in entry["ci95"] or []]]

    return {
        "label": args.label,
        "seed": seed,
        "eval_seed": args.eval_seed,
        "num_users": test["sampled"]["sasrec"]["num_users"],
        "full_users": test["num_users"],
        "model": model,
        "negatives": args.negatives,
        "trained_windows": args.trained_windows,
        "batch_size": args.batch_size,
        "adam_epsilon": args.adam_epsilon,
        "loss_normalization": args.loss_normalization,
        "sparse_item_updates": args.sparse_item_updates,
        "compile_ahead": args.compile_ahead,
        "chunk_batches": train.chunk_batches,
        "eval_every": args.eval_every,
        "patience": args.patience,
        "epochs_run": len(epochs),
        "best_epoch": metrics["best_validation"]["epoch"],
        "first_epoch_s": epochs[0],
        "median_epoch_s": round(median, 3),
        # With compile-ahead, the epochs that began with every XLA width
        # compiled; without it, every epoch after the first (which compiles).
        "xla_all_ready_epoch": history.get("xla_all_ready_epoch"),
        "steady_epoch_s": _steady_median(epochs, history.get("xla_all_ready_epoch")),
        # Every epoch, so a run's slow phases show next to its median.
        "epoch_s": epochs,
        "sequences_per_s": round(windows / median, 1),
        # Process CPU seconds per epoch (every thread): on a shared machine
        # they compare configurations better than wall seconds.
        "median_epoch_cpu_s": round(statistics.median(cpu[1:] or cpu), 3) if cpu else None,
        "epoch_cpu_s": cpu,
        "validation_ndcg@10": [
            [r["epoch"], round(r["val_ndcg@10"], 4)] for r in metrics.get("validation", [])
        ],
        "total_s": round(time.time() - started, 1),
        "fit_s": training["fit_seconds"],
        "sampled": {
            n: {"ndcg@10": pick("sampled", n, "ndcg@10"), "hr@10": pick("sampled", n, "hr@10")}
            for n in ("sasrec", "popularity", "markov")
        },
        "full_excl": {
            n: {
                "ndcg@10": pick("full_ranking_exclude_history", n, "ndcg@10"),
                "hr@10": pick("full_ranking_exclude_history", n, "hr@10"),
            }
            for n in ("sasrec", "popularity", "markov")
        },
        "full_incl": {
            n: {
                "ndcg@10": pick("full_ranking_include_history", n, "ndcg@10"),
                "hr@10": pick("full_ranking_include_history", n, "hr@10"),
            }
            for n in ("sasrec", "popularity", "markov")
        },
    }


if __name__ == "__main__":
    main()
