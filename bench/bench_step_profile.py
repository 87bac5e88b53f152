"""Where a steady SASRec train step's time goes, per batch width, against the FLOP count.

Builds the model ``sasrec train`` builds at the SASRec paper's Games settings
(23,715 items, d=50, 2 blocks, 1 head, max length 50, dropout 0.5, BCE with
one negative, batch 128, FusedAdam, XLA), times its compiled train step
(one step per call, median of ``--repeats`` after a warm-up) on batches whose
every position is a real item, and prints per width: step ms, the step's
FLOPs, the achieved GFLOP/s and its ratio to the machine's measured matmul
peak (a large float32 TensorFlow matmul on the same threads) and to the
theoretical peak given by ``--flops-per-cycle``.

FLOPs of one step over B sequences of width t (all positions real), d the
width, f the feed-forward inner width, k the blocks, n negatives; a multiply
and an add count as 2 FLOPs, the backward pass as twice the forward (the
usual 3x for matrix products):

    forward per block  = 2·B·t·d·d·4        Q, K, V and output projections
                       + 2·B·t·t·d·2        scores Q·Kᵀ and weights·V (full t x t)
                       + 2·B·t·d·f·2        the two feed-forward layers
    forward logits     = 2·B·t·d·(1 + n)    positive and negative scores
    step               = 3 · (k · block + logits)

Element-wise work (LayerNorm, dropout, softmax, the loss) and the optimizer
are left out: they are memory-bound. The dense Adam update of the item table
reads and writes about 7 arrays of (N + 1)·d floats per step (``table MB``
below); ``--sparse-item-updates`` profiles the lazy-Adam table instead.

Usage::

    .venv/bin/python bench/bench_step_profile.py
    .venv/bin/python bench/bench_step_profile.py --sparse-item-updates --repeats 30
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

WIDTHS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 50)


def step_flops(batch: int, width: int, d: int, ffn: int, blocks: int, negatives: int) -> float:
    """FLOPs of one train step (forward + backward) by the formula of the module docstring.

    Example:
        >>> step_flops(1, 1, 1, 1, 1, 1)
        60.0
    """
    block = 2 * batch * width * d * d * 4 + 2 * batch * width * width * d * 2
    block += 2 * batch * width * d * ffn * 2
    logits = 2 * batch * width * d * (1 + negatives)
    return 3.0 * (blocks * block + logits)


def matmul_peak(size: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of a float32 ``size`` x ``size`` TensorFlow matmul (median of ``repeats``)."""
    import tensorflow as tf

    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    matmul(a, b).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-items", type=int, default=23_715)
    p.add_argument("--hidden-dim", type=int, default=50)
    p.add_argument("--num-blocks", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--widths", default=",".join(map(str, WIDTHS)))
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--sparse-item-updates", action="store_true")
    p.add_argument(
        "--flops-per-cycle",
        type=float,
        default=64.0,
        help="float32 FLOPs per cycle and core: 2 AVX-512 FMA units x 16 lanes x 2 (default)",
    )
    args = p.parse_args()

    from sasrec.runtime import configure_threads, keep_freed_memory

    keep_freed_memory()
    threads, _ = configure_threads()
    import numpy as np

    from sasrec.config import SASRecConfig
    from sasrec.training.options import TrainOptions
    from sasrec.training.run import _compiled_model

    config = SASRecConfig(
        num_items=args.num_items, hidden_dim=args.hidden_dim, num_blocks=args.num_blocks,
        num_heads=1, max_len=50, dropout=0.5, loss="bce", num_negatives=1,
    )  # fmt: skip
    train = TrainOptions(steps_per_execution=1, sparse_item_updates=args.sparse_item_updates)
    model = _compiled_model(config, train)
    rng = np.random.default_rng(0)
    n, b, d = args.num_items, args.batch_size, args.hidden_dim
    ghz = _cpu_ghz()
    theoretical = threads * ghz * args.flops_per_cycle
    peak = matmul_peak()
    load = os.getloadavg()[0]
    print(f"threads {threads}, {ghz:.2f} GHz, theoretical peak {theoretical:.0f} GFLOP/s")
    print(f"measured float32 matmul peak {peak:.1f} GFLOP/s; load average {load:.2f}")
    table_mb = 7 * (n + 1) * d * 4 / 1e6
    print(f"item table dense Adam traffic about {table_mb:.0f} MB per step")
    print("width | step ms | GFLOP | GFLOP/s | / matmul peak | / theoretical")
    rows = []
    for width in (int(w) for w in args.widths.split(",")):
        batch = {
            "item_ids": rng.integers(1, n + 1, (b, width), dtype=np.int32),
            "positives": rng.integers(1, n + 1, (b, width), dtype=np.int32),
            "negatives": rng.integers(1, n + 1, (b, width, 1), dtype=np.int32),
        }
        model.train_on_batch(batch)  # the compile
        model.train_on_batch(batch)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            model.train_on_batch(batch)
            times.append(time.perf_counter() - start)
        ms = statistics.median(times) * 1e3
        flops = step_flops(b, width, d, d, args.num_blocks, 1)
        rate = flops / (ms / 1e3) / 1e9
        rows.append({"width": width, "ms": round(ms, 2), "gflop": round(flops / 1e9, 3)})
        print(
            f"{width:5d} | {ms:7.2f} | {flops / 1e9:5.3f} | {rate:7.2f} | "
            f"{rate / peak:13.3f} | {rate / theoretical:13.4f}",
            flush=True,
        )
    print(json.dumps({"peak_gflops": round(peak, 1), "load": load, "rows": rows}))


def _cpu_ghz() -> float:
    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(line.split(":")[1]) for line in f if line.startswith("cpu MHz")]
        return mhz[0] / 1e3
    except (OSError, IndexError, ValueError):
        return 0.0


if __name__ == "__main__":
    main()
