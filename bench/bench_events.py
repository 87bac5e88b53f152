"""Server-side history benchmark: RecordEvents throughput, Recommend by user id vs with history.

For each event store (the embedded SQLite file, then a real redis-server
with an append-only file fsynced at every write), the script starts
``sasrec serve --event-store ...`` in a child process (the Games-size model
of ``bench_serving.py``: 23,715 items, max length 50) and measures, with a
closed-loop ``grpc.aio`` load generator in this process:

* RecordEvents: calls of 1 event at concurrency 1 and 32, and calls of 100
  events at concurrency 8 (events acknowledged per second: each call is
  durable before its answer);
* Recommend by ``user_id`` alone (the server reads the user's 50 stored
  events) and Recommend with the same 50-item history in the request, at
  concurrency 1 and 32: p50/p99 latency and throughput, in the same run.

The load generator shares the 2 cores with the server: absolute numbers are
lower bounds, the ratio of the two Recommend modes is the result. Every
phase is bounded by a request count and a time limit.

Usage::

    .venv/bin/python bench/bench_events.py                          # both stores
    .venv/bin/python bench/bench_events.py --stores sqlite --requests 500 --seconds 5
    .venv/bin/python bench/bench_events.py --frontend native        # make native first
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from bench_serving import (  # noqa: E402 - bench/ put on the path above
    build_model_dir,
    cpu_seconds,
    load_histories,
    process_tree,
    summarize,
)

USERS = 2000
HISTORY = 50


def start_server(model_dir: Path, store: str, frontend: str) -> tuple[subprocess.Popen, str]:
    from sasrec.serving import RecommenderClient
    from sasrec.serving.worker_pool import free_port

    port = free_port("127.0.0.1")
    cmd = [
        sys.executable, "-m", "sasrec.cli", "serve", "--model", str(model_dir),
        "--port", str(port), "--poll-seconds", "0", "--max-concurrent", "1024",
        "--log-level", "WARNING", "--event-store", store, "--stored-events", str(HISTORY),
        "--frontend", frontend,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd)
    address = f"127.0.0.1:{port}"
    with RecommenderClient(address, timeout=5, retries=0) as client:
        client.wait_until_serving(300)
    return proc, address


async def run_phase(
    address: str, make_call, concurrency: int, requests: int, seconds: float
) -> tuple[list[float], float, int]:
    """Closed loop: ``concurrency`` callers, each awaiting its answer before the next call."""
    import grpc

    from sasrec.serving.v1 import recommender_pb2_grpc as pb_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.RecommenderStub(channel)
        for i in range(2 * concurrency):  # warm the connection
            await make_call(stub, i)
        latencies: list[float] = []
        errors = 0
        counter = iter(range(requests))
        end = time.perf_counter() + seconds

        async def caller() -> None:
            nonlocal errors
            for i in counter:
                if time.perf_counter() > end:
                    return
                t0 = time.perf_counter()
                try:
                    await make_call(stub, i)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return latencies, time.perf_counter() - start, errors


def bench_store(name: str, store: str, model_dir: Path, histories: list, args) -> list[dict]:
    from sasrec.serving.v1 import recommender_pb2 as pb

    proc, address = start_server(model_dir, store, args.frontend)
    pids = process_tree(proc.pid)
    results = []
    now = time.time()
    try:
        # Every user gets a 50-event history (batches of 100 events), timed as a phase.
        def events_of(user: int) -> list:
            history = histories[user % len(histories)]
            return [
                pb.Event(user_id=f"user-{user}", item_id=item, event_type="view")
                for item in history
            ]

        preload = [e for u in range(USERS) for e in events_of(u)]
        for e, at in zip(preload, range(len(preload))):
            e.time.FromNanoseconds(int((now - 3600 + at * 1e-3) * 1e9))
        batches = [preload[i : i + 100] for i in range(0, len(preload), 100)]

        async def record_batch(stub, i):
            await stub.RecordEvents(pb.RecordEventsRequest(events=batches[i % len(batches)]))

        async def record_one(stub, i):
            event = pb.Event(user_id=f"user-{i % USERS}", item_id=histories[0][i % HISTORY])
            await stub.RecordEvents(pb.RecordEventsRequest(events=[event]))

        by_user = [pb.RecommendRequest(user_id=f"user-{u}", k=10) for u in range(USERS)]
        with_history = [
            pb.RecommendRequest(history=histories[u % len(histories)], k=10) for u in range(USERS)
        ]

        async def recommend_user(stub, i):
            await stub.Recommend(by_user[i % USERS])

        async def recommend_history(stub, i):
            await stub.Recommend(with_history[i % USERS])

        phases = [
            ("RecordEvents x100 (preload)", record_batch, 8, len(batches), 100),
            ("RecordEvents x1", record_one, 1, args.requests, 1),
            ("RecordEvents x1", record_one, 32, args.requests, 1),
        ]
        for concurrency in (1, 32):
            phases.append(("Recommend by user_id", recommend_user, concurrency, args.requests, 0))
            phases.append(
                ("Recommend with history", recommend_history, concurrency, args.requests, 0)
            )
        for mode, call, concurrency, requests, events in phases:
            cpu = cpu_seconds(pids)
            latencies, elapsed, errors = asyncio.run(
                run_phase(address, call, concurrency, requests, args.seconds)
            )
            row = summarize(f"{name}: {mode}", concurrency, latencies, elapsed)
            row["errors"] = errors
            row["server_cpu_ms_per_call"] = (
                1000 * (cpu_seconds(pids) - cpu) / max(1, len(latencies))
            )
            if events:
                row["events_per_s"] = events * row["throughput_rps"]
            results.append(row)
            print(json.dumps(row), flush=True)
    finally:
        proc.terminate()
        proc.wait(60)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--stores", nargs="+", choices=["sqlite", "redis"], default=["sqlite", "redis"]
    )
    parser.add_argument("--requests", type=int, default=3000, help="most calls per phase")
    parser.add_argument("--seconds", type=float, default=15.0, help="longest phase")
    parser.add_argument(
        "--frontend", choices=["python", "native"], default="python", help="server front end"
    )
    args = parser.parse_args(argv)
    from tests.serving.redis_server import RedisServer

    items, histories = load_histories(USERS, seed=0)
    histories = [(h * HISTORY)[-HISTORY:] for h in histories]  # 50 items each
    rows = []
    with tempfile.TemporaryDirectory(prefix="sasrec-bench-events-") as tmp:
        model_dir = build_model_dir(Path(tmp), items, hidden_dim=50, num_blocks=2)
        for name in args.stores:
            if name == "sqlite":
                rows += bench_store(name, f"sqlite:{tmp}/events.db", model_dir, histories, args)
            else:
                with RedisServer(Path(tmp) / "redis") as redis:
                    rows += bench_store(name, redis.url, model_dir, histories, args)
    print(f"\nload average {os.getloadavg()}; {os.cpu_count()} cores")
    columns = ("c", 3), ("calls", 6), ("p50 ms", 8), ("p99 ms", 8), ("calls/s", 8), ("events/s", 9)
    print(f"{'mode':48} " + " ".join(f"{title:>{width}}" for title, width in columns))
    for r in rows:
        events = f"{r['events_per_s']:9.0f}" if "events_per_s" in r else " " * 9
        print(
            f"{r['mode']:48} {r['concurrency']:3d} {r['requests']:6d} {r['p50_ms']:8.2f}"
            f" {r['p99_ms']:8.2f} {r['throughput_rps']:8.0f} {events}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
