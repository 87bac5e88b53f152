"""Training speed and quality on the SASRec paper's Amazon Games data.

Runs the real ``sasrec train`` job (``sasrec.training``) on
``../shared/data/amazon-games/Video.txt`` with the paper's settings (or the
flags given) and reports, from one run:

- seconds per training epoch (median over epochs, validation excluded) and
  training sequences (windows) per second;
- the sampled protocol (target + 100 negatives, up to 10,000 users) next to
  the paper's NDCG@10 0.5360 / HR@10 0.7410;
- full-ranking NDCG@10 / HR@10 (history excluded and included) with 95% CIs,
  next to the popularity and first-order Markov baselines.

Usage::

    .venv/bin/python bench/bench_games.py --loss bce --epochs 8 --eval-every 100   # speed
    .venv/bin/python bench/bench_games.py --loss bce --epochs 200 --eval-every 200 \
        --patience 1000 --adam-epsilon 1e-8                                    # paper protocol

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

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "amazon-games" / "Video.txt"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--loss", default="bce")
    p.add_argument("--num-negatives", type=int, default=1)
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
    p.add_argument("--seed", type=int, default=42)
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
        choices=["unseen", "uniform"],
        default="unseen",
        help="negatives outside the window (the reference) or any item but the target",
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
    if not Path(args.data).exists():
        raise SystemExit(f"{args.data}: not found (the shared data sets are not on this machine)")

    from sasrec.training import DataOptions, TrainOptions, run_training

    model = {
        "hidden_dim": args.hidden_dim,
        "num_blocks": args.num_blocks,
        "num_heads": args.num_heads,
        "max_len": args.max_len,
        "dropout": args.dropout,
        "loss": args.loss,
        "num_negatives": args.num_negatives,
        "gbce_t": args.gbce_t,
    }
    data = DataOptions(path=args.data, preset="sasrec", min_user=1, min_item=1)
    train = TrainOptions(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        seed=args.seed,
        eval_every=args.eval_every,
        patience=args.patience,
        verbose=2,
        tensorboard=False,
        bootstrap=1000,
        exclude_seen_negatives=args.negatives == "unseen",
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
    steady = epochs[1:] or epochs  # the first epoch includes tracing
    median = statistics.median(steady)
    windows = history["training_windows"]
    test = metrics["test"]

    def pick(protocol: str, name: str, metric: str) -> list:
        entry = test[protocol][name][metric]
        return [round(entry["value"], 4), [round(x, 4) for x in entry["ci95"] or []]]

    result = {
        "label": args.label,
        "model": model,
        "negatives": args.negatives,
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
        # Every epoch, so a run's slow phases show next to its median.
        "epoch_s": epochs,
        "sequences_per_s": round(windows / median, 1),
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
    print(json.dumps(result, indent=2))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    with args.results.open("a") as fh:
        fh.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
