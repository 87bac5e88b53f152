"""Benchmark: a warm-start update (`sasrec train --init-from`) against retraining from scratch.

MovieLens 100K split by time: the base model trains on the first 90% of the
time range; then the whole log (the shop's log a week later) trains twice,
once warm-started from the base for a few epochs and once from scratch with
the default command. Both are evaluated on the same final split (leave one
out on the whole log, full ranking, history excluded), so their test figures
are comparable; the base model's own figure is on its own (earlier) split.

Usage::

    .venv/bin/python bench/bench_incremental.py                 # ../shared/data/ml-100k
    .venv/bin/python bench/bench_incremental.py --update-epochs 10 --json out.json

Prints a Markdown table: NDCG@10 and HR@10 with 95% CIs, Markov and
popularity on the same split, epochs run and training seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ML100K = REPO.parent / "shared" / "data" / "ml-100k" / "u.data"


def train(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "sasrec.cli", "train", "--verbose", "2", "--no-tensorboard", *argv]
    print("$", " ".join(cmd[1:]), flush=True)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def figures(version: Path) -> dict:
    metrics = json.loads((version / "metrics.json").read_text())["test"]
    training = json.loads((version / "training.json").read_text())
    full = metrics["full_ranking_exclude_history"]
    return {
        "users": metrics["num_users"],
        "ndcg": full["sasrec"]["ndcg@10"],
        "hr": full["sasrec"]["hr@10"],
        "markov": full["markov"]["ndcg@10"]["value"],
        "popularity": full["popularity"]["ndcg@10"]["value"],
        "epochs": training["epochs_run"],
        "fit_seconds": training["fit_seconds"],
        "items": training["model"]["num_items"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ML100K, help="ML-100K u.data")
    parser.add_argument("--fraction", type=float, default=0.9, help="base: this share of time")
    parser.add_argument("--update-epochs", type=int, default=10, help="warm-start epochs cap")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(f"{args.data}: not found (ML-100K's u.data; see ../shared/data/README)")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    lines = args.data.read_text().splitlines()
    times = [int(line.split("\t")[3]) for line in lines]
    cutoff = min(times) + args.fraction * (max(times) - min(times))
    common = ["--preset", "ml-100k", "--seed", str(args.seed)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base_log = tmp / "u.base.data"
        kept = [line for line, t in zip(lines, times) if t < cutoff]
        base_log.write_text("\n".join(kept) + "\n")
        print(f"base log: {len(kept):,} of {len(lines):,} events before {cutoff:.0f}", flush=True)
        runs = {}
        seconds = {"base": train(["--data", str(base_log), "--out", str(tmp / "m"), *common], env)}
        runs["base"] = figures(tmp / "m" / "1")
        seconds["update"] = train(
            ["--data", str(args.data), "--out", str(tmp / "m"), *common,
             "--init-from", str(tmp / "m" / "1"), "--epochs", str(args.update_epochs)],
            env,
        )  # fmt: skip
        runs["update"] = figures(tmp / "m" / "2")
        seconds["scratch"] = train(
            ["--data", str(args.data), "--out", str(tmp / "s"), *common], env
        )
        runs["scratch"] = figures(tmp / "s" / "1")
    with open("/proc/loadavg") as fh:
        load = " ".join(fh.read().split()[:3])
    print(f"\nload average at the end: {load}\n")
    print("| model | data | items | test users | NDCG@10 [95% CI] | HR@10 | Markov | popularity "
          "| epochs | fit s | command s |")  # fmt: skip
    print("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    data = {
        "base": f"first {args.fraction:.0%} of time",
        "update": "whole log",
        "scratch": "whole log",
    }
    for name, r in runs.items():
        lo, hi = r["ndcg"]["ci95"]
        print(
            f"| {name} | {data[name]} | {r['items']:,} | {r['users']:,} | "
            f"{r['ndcg']['value']:.4f} [{lo:.4f}, {hi:.4f}] | {r['hr']['value']:.4f} | "
            f"{r['markov']:.4f} | {r['popularity']:.4f} | {r['epochs']} | "
            f"{r['fit_seconds']:.1f} | {seconds[name]:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "seconds": seconds, "load": load}, indent=2))


if __name__ == "__main__":
    main()
