"""A/B of the epoch plan's sorting chunk on the Games data: alternating epochs, one model.

``chunk_batches`` (how many batches' worth of shuffled windows are sorted by
length together) changes how much padding the epoch trains on. Whole
``bench_games.py`` runs drift by up to 2x on this VM between runs, so this
benchmark trains one model (paper settings, FusedAdam, XLA, 16 steps per
call, as ``sasrec train`` does) and alternates whole epochs of the two plans
in A B B A order, after one warm-up epoch of each (it compiles every batch
width). It prints every epoch's seconds, the median of the per-pair ratios
B / A, and the share of trained positions that are real items.

Usage::

    .venv/bin/python bench/bench_epoch_ab.py --a 32 --b 256 --pairs 8
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon-games" / "Video.txt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=int, default=32, help="chunk_batches of plan A")
    parser.add_argument("--b", type=int, default=256, help="chunk_batches of plan B")
    parser.add_argument("--pairs", type=int, default=8)
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA}: not found (the shared data sets are not on this machine)")
    from sasrec.runtime import configure_threads, keep_freed_memory

    configure_threads()
    keep_freed_memory()
    import keras
    import numpy as np

    from sasrec.data.dataset import epoch_batches, make_training_dataset
    from sasrec.data.windows import training_windows
    from sasrec.models import SASRec
    from sasrec.optimizers import FusedAdam
    from sasrec.training.train import DataOptions, mean_positions_per_batch, prepare_data

    prepared = prepare_data(DataOptions(path=str(DATA), preset="sasrec", min_user=1, min_item=1))
    inputs, positives = training_windows(prepared.split.train, 50)
    num_items = prepared.vocabulary.num_items
    plans = {}
    for name, chunk in (("A", args.a), ("B", args.b)):
        plans[name] = make_training_dataset(
            inputs, positives, num_items=num_items, batch_size=128, num_negatives=1, seed=0,
            exclude_seen=True, chunk_batches=chunk,
        )  # fmt: skip
        real = total = 0
        for batch in epoch_batches(
            inputs, positives, num_items, 128, 0, np.random.default_rng(0), chunk_batches=chunk
        ):  # no negatives: only the widths are counted
            real += int((batch["positives"] != 0).sum())
            total += batch["positives"].size
        print(f"plan {name}: chunk_batches={chunk}, real positions {real / total:.3f}")

    keras.utils.set_random_seed(0)
    model = SASRec(
        num_items=num_items, max_len=50, hidden_dim=50, num_blocks=2, num_heads=1, dropout=0.5,
        loss="bce", loss_denominator=mean_positions_per_batch(positives, 128),
    )  # fmt: skip
    model.compile(optimizer=FusedAdam(1e-3, beta_2=0.98), jit_compile=True, steps_per_execution=16)

    def epoch(name: str) -> float:
        start = time.perf_counter()
        model.fit(plans[name], epochs=1, verbose=0, shuffle=False)
        return time.perf_counter() - start

    print(f"warm-up: A {epoch('A'):.1f} s, B {epoch('B'):.1f} s")
    ratios, times = [], {"A": [], "B": []}
    for pair in range(args.pairs):
        order = ("A", "B") if pair % 2 == 0 else ("B", "A")
        seconds = {name: epoch(name) for name in order}
        for name in "AB":
            times[name].append(seconds[name])
        ratios.append(seconds["B"] / seconds["A"])
        print(f"pair {pair}: A {seconds['A']:.2f} s, B {seconds['B']:.2f} s", flush=True)
    print(
        f"median s/epoch: A {statistics.median(times['A']):.3f}, "
        f"B {statistics.median(times['B']):.3f}; median B/A ratio {statistics.median(ratios):.3f} "
        f"(pairs {min(ratios):.2f}-{max(ratios):.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
