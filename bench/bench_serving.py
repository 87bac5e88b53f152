"""Serving benchmark: gRPC latency/throughput at concurrency 1, 8, 32 vs the in-process API.

The model has 23,715 items and max length 50 (the Amazon "Games" size of the
SASRec paper). Its weights are untrained (fixed seed): latency does not depend
on weight values. When ``../shared/data/amazon-games/Video.txt`` exists, the
vocabulary and the request histories come from it (real users' most recent
items); otherwise synthetic histories of the same size are used.

The server runs in this process (``start_server``, loopback only); the load
generator runs in a child process with ``grpc.aio`` (C concurrent callers, each
sending its next request when the previous answer arrives). Every phase is
bounded by a request count and a time limit, so the script always stops.

Usage::

    .venv/bin/python bench/bench_serving.py                       # full run
    .venv/bin/python bench/bench_serving.py --requests 200 --seconds 5 --concurrency 1 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "amazon-games" / "Video.txt"
NUM_ITEMS = 23_715
MAX_LEN = 50


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def load_histories(count: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """Item ids in index order and ``count`` request histories (oldest first)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if DATA.exists():
        users: dict[str, list[str]] = {}
        with DATA.open() as fh:
            for line in fh:
                user, item = line.split()
                users.setdefault(user, []).append(item)
        items = sorted({i for seq in users.values() for i in seq}, key=int)
        sequences = list(users.values())
        picks = rng.choice(len(sequences), size=count, replace=len(sequences) < count)
        return items, [sequences[p][-MAX_LEN:] for p in picks]
    items = [str(i) for i in range(1, NUM_ITEMS + 1)]
    lengths = rng.integers(3, MAX_LEN + 1, size=count)
    return items, [[items[j] for j in rng.integers(0, NUM_ITEMS, size=n)] for n in lengths]


def build_model_dir(out: Path, items: list[str], hidden_dim: int, num_blocks: int) -> Path:
    import keras

    from sasrec.artifact import save_model_dir
    from sasrec.models import SASRec
    from sasrec.vocabulary import ItemVocabulary

    keras.utils.set_random_seed(0)
    model = SASRec(
        num_items=len(items),
        max_len=MAX_LEN,
        hidden_dim=hidden_dim,
        num_blocks=num_blocks,
        num_heads=1,
        dropout=0.0,
    )
    path = out / "1"
    save_model_dir(path, model, ItemVocabulary(items))
    return path


def bench_in_process(model_dir: Path, histories: list[list[str]], requests: int) -> dict:
    from sasrec.serving import Recommender

    rec = Recommender.load(model_dir)
    for h in histories[:50]:
        rec.recommend(h, k=10)
    latencies = []
    start = time.perf_counter()
    for i in range(requests):
        t0 = time.perf_counter()
        rec.recommend(histories[i % len(histories)], k=10)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    return summarize("in-process", 1, latencies, elapsed)


def summarize(name: str, concurrency: int, latencies: list[float], elapsed: float) -> dict:
    return {
        "mode": name,
        "concurrency": concurrency,
        "requests": len(latencies),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * percentile(latencies, 99),
        "throughput_rps": len(latencies) / elapsed,
    }


async def _load(address: str, concurrency: int, histories: list, requests: int, seconds: float):
    import grpc

    from sasrec.serving.v1 import recommender_pb2 as pb
    from sasrec.serving.v1 import recommender_pb2_grpc as pb_grpc

    messages = [pb.RecommendRequest(history=h, k=10) for h in histories]
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.RecommenderStub(channel)
        for m in messages[: 4 * concurrency]:  # warm the connection
            await stub.Recommend(m, timeout=10)
        latencies: list[float] = []
        errors: list[str] = []
        counter = iter(range(requests))
        end = time.perf_counter() + seconds

        async def caller() -> None:
            for i in counter:
                if time.perf_counter() > end:
                    return
                t0 = time.perf_counter()
                try:
                    await stub.Recommend(messages[i % len(messages)], timeout=10)
                except grpc.aio.AioRpcError as err:
                    errors.append(err.code().name)
                    continue
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    out = summarize("grpc", concurrency, latencies, elapsed)
    out["errors"] = len(errors)
    return out


def loadgen_main(args: argparse.Namespace) -> int:
    histories = json.loads(Path(args.histories).read_text())
    result = asyncio.run(
        _load(args.address, args.concurrency[0], histories, args.requests, args.seconds)
    )
    print(json.dumps(result))
    return 0


def run_loadgen(address: str, concurrency: int, histories_file: Path, args) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--loadgen",
        "--address",
        address,
        "--concurrency",
        str(concurrency),
        "--histories",
        str(histories_file),
        "--requests",
        str(args.requests),
        "--seconds",
        str(args.seconds),
    ]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=args.seconds + 120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=5000, help="most requests per phase")
    parser.add_argument("--seconds", type=float, default=20.0, help="longest phase")
    parser.add_argument("--model", type=Path, help="existing model dir (default: build one)")
    parser.add_argument("--hidden-dim", type=int, default=50)
    parser.add_argument("--num-blocks", type=int, default=2)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=0.0)
    parser.add_argument("--busy-wait-ms", type=float, default=2.0)
    parser.add_argument("--intra-op-threads", type=int, default=0, help="0: all cores")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--histories", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loadgen:
        return loadgen_main(args)

    from sasrec.runtime import configure_threads

    configure_threads(args.intra_op_threads or None, 1)
    from sasrec.serving import start_server

    items, histories = load_histories(2000, seed=0)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        tmp_path = Path(tmp)
        model_dir = args.model or build_model_dir(tmp_path, items, args.hidden_dim, args.num_blocks)
        histories_file = tmp_path / "histories.json"
        histories_file.write_text(json.dumps(histories))
        results = [bench_in_process(model_dir, histories, min(args.requests, 2000))]
        server = start_server(
            model_dir,
            port=0,
            poll_seconds=0,
            max_batch_size=args.max_batch_size,
            max_wait_ms=args.max_wait_ms,
            busy_wait_ms=args.busy_wait_ms,
        )
        try:
            for concurrency in args.concurrency:
                results.append(run_loadgen(server.address, concurrency, histories_file, args))
        finally:
            server.stop(grace=1)
    source = "Video.txt histories" if DATA.exists() else "synthetic histories"
    print(
        f"\nmodel: {len(items)} items, max_len {MAX_LEN}, d={args.hidden_dim}, "
        f"{args.num_blocks} blocks; {source}; k=10; "
        f"max_batch_size={args.max_batch_size}, max_wait_ms={args.max_wait_ms}, "
        f"busy_wait_ms={args.busy_wait_ms}, "
        f"intra_op_threads={configure_threads()[0]}\n"
    )
    print("| mode | concurrency | requests | p50 ms | p99 ms | req/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r['mode']} | {r['concurrency']} | {r['requests']} | {r['p50_ms']:.2f} "
            f"| {r['p99_ms']:.2f} | {r['throughput_rps']:.0f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
