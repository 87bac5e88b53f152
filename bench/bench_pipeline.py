"""Benchmark: read -> clean -> k-core -> vocabulary -> split -> windows on big CSV logs.

Generates CSV logs with string ids (``user-0001234``, ``sku-0004321``; Zipf item
popularity; about 20 events per user) in a temporary directory, then runs the
whole pipeline on each size in a fresh subprocess so peak memory
(``ru_maxrss``) is per size. Also times one epoch of the training
``tf.data`` pipeline on Amazon Games (``../shared/data``) when present.

Usage::

    .venv/bin/python bench/bench_pipeline.py                 # 1M, 3M, 10M events
    .venv/bin/python bench/bench_pipeline.py --sizes 1000000 --repeats 1

Prints a Markdown table (events/s, CPU, peak memory, seconds per stage);
the recorded results and their commands are in docs/benchmarks.md
("Pipeline").
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def generate(path: Path, events: int, seed: int = 0) -> None:
    """Writes a CSV log of ``events`` rows with string ids (vectorised)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(seed)
    n_users, n_items = max(events // 20, 1), max(events // 50, 1)
    users = rng.integers(0, n_users, events)
    items = (rng.zipf(1.3, events) - 1) % n_items
    ts = 1_600_000_000 + rng.integers(0, 365 * 86_400, events)

    def names(prefix: str, codes: np.ndarray, count: int) -> pa.Array:
        table = pa.array([f"{prefix}{i:07d}" for i in range(count)])
        return pc.take(table, pa.array(codes))

    table = pa.table(
        {
            "user_id": names("user-", users, n_users),
            "item_id": names("sku-", items, n_items),
            "timestamp": ts,
        }
    )
    pcsv.write_csv(table, path, write_options=pcsv.WriteOptions(quoting_style="none"))


def run_once(path: Path, max_len: int, min_user: int, min_item: int) -> dict:
    """The pipeline on one file, timed per stage (runs inside the subprocess)."""
    from sasrec.data.cleaning import prepare
    from sasrec.data.encoding import build_vocabulary, encode_sequences
    from sasrec.data.readers import load_interactions
    from sasrec.data.splitting import leave_one_out
    from sasrec.data.windows import training_windows

    times: dict[str, float] = {}
    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_start = before.ru_utime + before.ru_stime
    start = last = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal last
        now = time.perf_counter()
        times[name] = now - last
        last = now

    df, report = load_interactions(path)
    lap("read")
    df, report = prepare(df, min_user=min_user, min_item=min_item, report=report)
    lap("clean+k-core")
    vocab = build_vocabulary(df)
    lap("vocabulary")
    seqs = encode_sequences(df, vocab)
    lap("encode")
    split = leave_one_out(seqs)
    lap("split")
    inputs, positives = training_windows(split.train, max_len)
    lap("windows")
    total = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "rows": report.read["rows"],
        "events_after_clean": report.stats["events"],
        "users": report.stats["users"],
        "items": report.stats["items"],
        "windows": int(inputs.shape[0]),
        "stages": times,
        "total_s": total,
        "cpu_s": usage.ru_utime + usage.ru_stime - cpu_start,
        "peak_rss_mib": usage.ru_maxrss / 1024,
    }


def dataset_epochs(epochs: int) -> dict | None:
    """Seconds per epoch of ``make_training_dataset`` on Amazon Games (batch 128)."""
    video = SHARED / "amazon-games" / "Video.txt"
    if not video.exists():
        return None
    from sasrec.runtime import configure_threads

    configure_threads()
    from sasrec.data.cleaning import prepare
    from sasrec.data.dataset import make_training_dataset
    from sasrec.data.encoding import build_vocabulary, encode_sequences
    from sasrec.data.readers import load_interactions
    from sasrec.data.splitting import leave_one_out
    from sasrec.data.windows import training_windows

    df, report = load_interactions(video, preset="sasrec")
    df, _ = prepare(df, report=report)
    vocab = build_vocabulary(df)
    split = leave_one_out(encode_sequences(df, vocab))
    inputs, positives = training_windows(split.train, 50)
    ds = make_training_dataset(inputs, positives, vocab.num_items, 128, 1, seed=0)
    seconds, widths = [], {}
    for _ in range(epochs):
        t = time.perf_counter()
        for batch in ds:
            w = int(batch["item_ids"].shape[1])
            widths[w] = widths.get(w, 0) + 1
        seconds.append(time.perf_counter() - t)
    return {
        "windows": int(inputs.shape[0]),
        "batches": int(ds.cardinality()),
        "epoch_s": seconds,
        "median_epoch_s": statistics.median(seconds),
        "widths": {str(k): v // epochs for k, v in sorted(widths.items())},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=3, help="runs per size (median)")
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--min-user", type=int, default=5)
    parser.add_argument("--min-item", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5, help="dataset epochs to time")
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)  # subprocess mode
    args = parser.parse_args()

    if args.run:
        print(json.dumps(run_once(args.run, args.max_len, args.min_user, args.min_item)))
        return 0

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        for size in args.sizes:
            path = Path(tmp) / f"log-{size}.csv"
            t = time.perf_counter()
            generate(path, size)
            print(
                f"# generated {size:,} events ({path.stat().st_size / 2**20:.0f} MiB) in "
                f"{time.perf_counter() - t:.1f} s",
                file=sys.stderr,
            )
            runs = []
            for _ in range(args.repeats):
                out = subprocess.run(
                    [sys.executable, __file__, "--run", str(path), "--max-len", str(args.max_len),
                     "--min-user", str(args.min_user), "--min-item", str(args.min_item)],
                    check=True, capture_output=True, text=True, env={**os.environ},
                )  # fmt: skip
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            best = sorted(runs, key=lambda r: r["total_s"])[len(runs) // 2]
            best["all_totals_s"] = [r["total_s"] for r in runs]
            results.append((size, best))
            path.unlink()

    header = "events | users | items | windows | total s | CPU s | events/s | peak RSS MiB | stages"
    print(f"| {header} |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for size, r in results:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r["stages"].items())
        print(
            f"| {size:,} | {r['users']:,} | {r['items']:,} | {r['windows']:,} | "
            f"{r['total_s']:.2f} | {r['cpu_s']:.2f} | {size / r['total_s']:,.0f} | "
            f"{r['peak_rss_mib']:,.0f} | {stages} |"
        )
    if len(results) > 1:
        (s0, r0), (s1, r1) = results[0], results[-1]
        print(
            f"\ngrowth {s0:,} -> {s1:,} events ({s1 / s0:.1f}x): time x"
            f"{r1['total_s'] / r0['total_s']:.2f}, peak memory x"
            f"{r1['peak_rss_mib'] / r0['peak_rss_mib']:.2f}"
        )
    print("\nall totals (s): " + json.dumps({s: r["all_totals_s"] for s, r in results}))
    ds = dataset_epochs(args.epochs)
    if ds:
        print(
            f"\ntf.data training pipeline, Amazon Games ({ds['windows']:,} windows, "
            f"{ds['batches']} batches of 128, 1 negative): "
            f"median epoch {ds['median_epoch_s']:.2f} s "
            f"(epochs: {', '.join(f'{s:.2f}' for s in ds['epoch_s'])}); widths {ds['widths']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
