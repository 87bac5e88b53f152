"""NumPy engine CPU per request: scoring through the item table's row-major copy or its view.

``NumpySASRec`` multiplies the last hidden states by a row-major ``(d, N + 1)``
copy of the item table when the table fits ``SCORING_COPY_MAX_BYTES``, and by
the transposed view of the ``(N + 1, d)`` table otherwise. This script loads
the same model twice, once each way, and times ``Predictor.top_k`` (the
engine call of a served batch) for batch sizes 1, 16 and 32 on real request
histories (``bench_serving.py``'s Video.txt users, synthetic without it). The
two are alternated ``--rounds`` times in this one process and the median of
the CPU time of this thread per request is reported, which a busy machine
disturbs less than wall time.

Usage::

    .venv/bin/python bench/bench_scoring_table.py --model MODEL_DIR   # a bench_serving.py model
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_serving  # noqa: E402  (a sibling script, not a package)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a model version directory")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 32])
    parser.add_argument("--calls", type=int, default=60, help="engine calls per timing")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)

    from sasrec.runtime import configure_threads, limit_blas_threads

    configure_threads(1, 1)
    limit_blas_threads(1)
    import sasrec.engines.numpy_sasrec as numpy_sasrec
    from sasrec.serving.domain import RecommendationRequest
    from sasrec.serving.predictor import Predictor

    copied = Predictor.load(args.model, engine="numpy")
    cap = numpy_sasrec.SCORING_COPY_MAX_BYTES
    numpy_sasrec.SCORING_COPY_MAX_BYTES = 0  # the next load scores through the view
    viewed = Predictor.load(args.model, engine="numpy")
    numpy_sasrec.SCORING_COPY_MAX_BYTES = cap
    _, histories = bench_serving.load_histories(2000, seed=0)
    prepared = [copied.prepare(RecommendationRequest(history=tuple(h), k=10)) for h in histories]
    print("| batch | view us/request | copy us/request | copy/view |")
    print("| ---: | ---: | ---: | ---: |")
    for size in args.batches:
        batches = [
            [prepared[(i * size + j) % len(prepared)] for j in range(size)]
            for i in range(args.calls)
        ]
        times: dict[str, list[float]] = {"view": [], "copy": []}
        for predictor in (viewed, copied):
            predictor.top_k(batches[0])  # warm
        for _ in range(args.rounds):
            for name, predictor in (("view", viewed), ("copy", copied)):
                start = time.thread_time()
                for batch in batches:
                    predictor.top_k(batch)
                times[name].append(1e6 * (time.thread_time() - start) / (args.calls * size))
        view, copy = statistics.median(times["view"]), statistics.median(times["copy"])
        print(f"| {size} | {view:.0f} | {copy:.0f} | {copy / view:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
