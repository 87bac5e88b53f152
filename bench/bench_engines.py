"""Engines side by side: the engine call of a served batch, alternated in one process.

Loads one model version once per engine (``--engines``, default ``numpy``
and ``compiled``) and times ``Predictor.top_k`` (what both front ends call
for a batch of requests) on real request histories (``bench_serving.py``'s
Video.txt users, synthetic without it), k=10, history excluded, for each
batch size. The engines take turns ``--rounds`` times (order swapped every
round) so a shared machine's drift hits them alike; per engine and batch the
table gives the median over rounds of the CPU time of this thread per
request and of the wall-time p50 per call, and each engine's ratio to the
first. It also checks that every engine returns the first one's ids.

Usage::

    .venv/bin/python bench/bench_engines.py --model MODEL_DIR   # e.g. a bench_serving.py model
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_serving  # noqa: E402  (a sibling script, not a package)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a model version directory")
    parser.add_argument("--engines", nargs="+", default=["numpy", "compiled"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 32])
    parser.add_argument("--calls", type=int, default=300, help="engine calls per timing")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    from sasrec.runtime import configure_threads, limit_blas_threads

    configure_threads(1, 1)
    limit_blas_threads(1)
    import numpy as np

    from sasrec.serving.domain import RecommendationRequest
    from sasrec.serving.predictor import Predictor

    predictors = {name: Predictor.load(args.model, engine=name) for name in args.engines}
    first = predictors[args.engines[0]]
    _, histories = bench_serving.load_histories(2000, seed=0)
    prepared = [first.prepare(RecommendationRequest(history=tuple(h), k=10)) for h in histories]
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    header = " | ".join(f"{n} CPU us/req | {n} p50 ms/call" for n in args.engines)
    ratios = " | ".join(f"{n}/{args.engines[0]} CPU" for n in args.engines[1:])
    print(f"| batch | {header} | {ratios} |")
    print("| ---: " * (1 + 2 * len(args.engines) + len(args.engines) - 1) + "|")
    for size in args.batches:
        batches = [
            [prepared[(i * size + j) % len(prepared)] for j in range(size)]
            for i in range(args.calls)
        ]
        # Same answers (also warms): scores to float32 rounding, and the same
        # ids except where two scores are that close (their order may swap).
        want = [first.top_k(batch) for batch in batches[:20]]
        for name, predictor in predictors.items():
            for a, b in zip(want, (predictor.top_k(batch) for batch in batches[:20])):
                np.testing.assert_allclose(b.scores, a.scores, rtol=1e-4, atol=1e-5, err_msg=name)
                swapped = a.ids != b.ids
                gaps = np.abs(np.diff(a.scores, axis=1))
                close = np.zeros_like(swapped)
                close[:, 1:] |= gaps < 1e-4
                close[:, :-1] |= gaps < 1e-4
                assert not (swapped & ~close).any(), f"{name} differs at batch {size}"
        cpu: dict[str, list[float]] = {name: [] for name in predictors}
        wall: dict[str, list[float]] = {name: [] for name in predictors}
        for round_index in range(args.rounds):
            order = list(predictors.items())
            if round_index % 2:
                order.reverse()
            for name, predictor in order:
                calls = []
                start = time.thread_time()
                for batch in batches:
                    t0 = time.perf_counter()
                    predictor.top_k(batch)
                    calls.append(time.perf_counter() - t0)
                cpu[name].append(1e6 * (time.thread_time() - start) / (args.calls * size))
                wall[name].append(1e3 * statistics.median(calls))
        cpu_median = {name: statistics.median(v) for name, v in cpu.items()}
        cells = " | ".join(
            f"{cpu_median[n]:.0f} | {statistics.median(wall[n]):.3f}" for n in args.engines
        )
        base = cpu_median[args.engines[0]]
        ratio = " | ".join(f"{cpu_median[n] / base:.2f}" for n in args.engines[1:])
        print(f"| {size} | {cells} | {ratio} |", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
