"""Latency of the TensorFlow engine: the compiled inference function (top-k, exclusions in graph).

Builds a SASRec with the Amazon Games catalogue size (23,715 items, max length
50, d=50, 2 blocks) and times ``sasrec.engines.inference.InferenceFunction`` for batch
sizes 1 and 256 with real-looking histories (lengths drawn like Games: median
6 items), k=10, history excluded. Weights are random: latency does not depend
on them. Reports the median and p99 of per-call wall times in one run.

Usage::

    .venv/bin/python bench/bench_inference.py --calls 300
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from sasrec.padding import pad_left
from sasrec.runtime import configure_threads


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-items", type=int, default=23715)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--hidden-dim", type=int, default=50)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    p.add_argument("--calls", type=int, default=300)
    p.add_argument("--k", type=int, default=10)
    args = p.parse_args()
    configure_threads()
    from sasrec.engines.inference import InferenceFunction
    from sasrec.models import SASRec

    model = SASRec(
        num_items=args.num_items, max_len=args.max_len, hidden_dim=args.hidden_dim, loss="bce"
    )
    infer = InferenceFunction(model)
    rng = np.random.default_rng(0)
    results = {}
    for batch in args.batches:
        lengths = np.minimum(rng.geometric(1 / 9.3, size=(args.calls, batch)) + 2, args.max_len)
        inputs = [
            pad_left([rng.integers(1, args.num_items + 1, size=n) for n in row], args.max_len)
            for row in lengths
        ]
        exclude = np.ones(batch, dtype=bool)
        empty = np.zeros((batch, 0), dtype=np.int32)
        for warm in inputs[:5]:
            infer(warm, args.k, exclude, empty, empty)
        times = []
        for histories in inputs:
            start = time.perf_counter()
            infer(histories, args.k, exclude, empty, empty)
            times.append((time.perf_counter() - start) * 1000)
        results[batch] = {
            "median_ms": round(float(np.median(times)), 3),
            "p99_ms": round(float(np.percentile(times, 99)), 3),
            "per_history_us": round(float(np.median(times)) * 1000 / batch, 1),
        }
        print(
            f"batch {batch:>4}: median {results[batch]['median_ms']:.2f} ms, "
            f"p99 {results[batch]['p99_ms']:.2f} ms, "
            f"{results[batch]['per_history_us']:.0f} us per history",
            flush=True,
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
