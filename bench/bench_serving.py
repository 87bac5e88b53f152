"""Serving benchmark: gRPC latency/throughput at concurrency 1, 8, 32 vs the in-process API.

The model has 23,715 items and max length 50 (the Amazon "Games" size of the
SASRec paper). Its weights are untrained (fixed seed): latency does not depend
on weight values. When ``../shared/data/amazon-games/Video.txt`` exists, the
vocabulary and the request histories come from it (real users' most recent
items); otherwise synthetic histories of the same size are used.

The server runs as ``sasrec serve`` in a child process (loopback only,
``--workers`` processes sharing the port); the load generator is another
child process: closed loop, C concurrent callers, each sending its next
request when the previous answer arrives. Two generators:

* ``native`` (default when built with ``make loadgen``): C++ gRPC, one async
  completion queue, ~0.1 ms of CPU per call;
* ``python``: ``grpc.aio``, ~0.3-0.4 ms of CPU per call, which on a 2-core
  machine takes CPU away from the server it measures.

Both open ``--channels`` separate connections (``SO_REUSEPORT`` balances
connections, not calls, over the workers). The server's CPU time per request
is read from ``/proc`` (all its processes). Every phase is bounded by a
request count and a time limit, so the script always stops.

Usage::

    make loadgen                                                  # once
    .venv/bin/python bench/bench_serving.py                       # full run
    .venv/bin/python bench/bench_serving.py --workers 2 --generator native python
    .venv/bin/python bench/bench_serving.py --requests 200 --seconds 5 --concurrency 1 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "amazon-games" / "Video.txt"
NATIVE = REPO / "bench" / "loadgen" / "build" / "loadgen"
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


def bench_in_process(
    model_dir: Path, histories: list[list[str]], requests: int, engine: str
) -> dict:
    from sasrec.runtime import limit_blas_threads
    from sasrec.serving import Recommender

    limit_blas_threads(1)
    rec = Recommender.load(model_dir, engine=engine)
    for h in histories[:50]:
        rec.recommend(h, k=10)
    latencies = []
    start = time.perf_counter()
    for i in range(requests):
        t0 = time.perf_counter()
        rec.recommend(histories[i % len(histories)], k=10)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    return summarize(f"in-process ({engine})", 1, latencies, elapsed)


def summarize(name: str, concurrency: int, latencies: list[float], elapsed: float) -> dict:
    return {
        "mode": name,
        "concurrency": concurrency,
        "requests": len(latencies),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * percentile(latencies, 99),
        "throughput_rps": len(latencies) / elapsed,
    }


async def _load(
    address: str, concurrency: int, histories: list, requests: int, seconds: float, channels: int
):
    import grpc

    from sasrec.serving.v1 import recommender_pb2 as pb
    from sasrec.serving.v1 import recommender_pb2_grpc as pb_grpc

    messages = [pb.RecommendRequest(history=h, k=10) for h in histories]
    # A local subchannel pool: each channel its own connection.
    options = [("grpc.use_local_subchannel_pool", 1)]
    opened = [grpc.aio.insecure_channel(address, options=options) for _ in range(channels)]
    try:
        stubs = [pb_grpc.RecommenderStub(channel) for channel in opened]
        for i, m in enumerate(messages[: 4 * concurrency]):  # warm the connections
            await stubs[i % channels].Recommend(m, timeout=10)
        latencies: list[float] = []
        errors: list[str] = []
        counter = iter(range(requests))
        end = time.perf_counter() + seconds

        async def caller(stub) -> None:
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

        cpu = time.process_time()
        start = time.perf_counter()
        await asyncio.gather(*(caller(stubs[c % channels]) for c in range(concurrency)))
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
    finally:
        for channel in opened:
            await channel.close()
    out = summarize("grpc-python", concurrency, latencies, elapsed)
    out["errors"] = len(errors)
    out["client_cpu_us_per_req"] = 1e6 * cpu / max(1, len(latencies))
    return out


def loadgen_main(args: argparse.Namespace) -> int:
    histories = json.loads(Path(args.histories).read_text())
    result = asyncio.run(
        _load(
            args.address,
            args.concurrency[0],
            histories,
            args.requests,
            args.seconds,
            args.channels,
        )
    )
    print(json.dumps(result))
    return 0


def run_loadgen(generator: str, address: str, concurrency: int, histories_file: Path, args) -> dict:
    common = [
        "--address", address, "--concurrency", str(concurrency),
        "--requests", str(args.requests), "--seconds", str(args.seconds),
        "--channels", str(args.channels),
    ]  # fmt: skip
    if generator == "native":
        text_file = histories_file.with_suffix(".txt")
        histories = json.loads(histories_file.read_text())
        text_file.write_text("\n".join(",".join(h) for h in histories) + "\n")
        cmd = [str(NATIVE), *common, "--histories", str(text_file)]
    else:
        cmd = [sys.executable, __file__, "--loadgen", *common, "--histories", str(histories_file)]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=args.seconds + 120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{generator} load generator failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        children = Path(f"/proc/{p}/task/{p}/children")
        if children.exists():
            todo.extend(int(c) for c in children.read_text().split())
    return out


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the processes (those still alive)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


class ServerProcess:
    """``sasrec serve`` in a child process, ready when every worker has its model."""

    def __init__(self, model_dir: Path, args, env: dict[str, str] | None = None) -> None:
        from sasrec.serving.worker_pool import free_port

        self.port, self.metrics = free_port("127.0.0.1"), free_port("127.0.0.1")
        if args.workers > 1:  # worker i serves metrics on metrics + i
            while any(_busy(self.metrics + i) for i in range(args.workers)):
                self.metrics = free_port("127.0.0.1")
        self.workers = args.workers
        cmd = [
            sys.executable, "-m", "sasrec.cli", "serve", "--model", str(model_dir),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(args.workers),
            "--metrics-port", str(self.metrics), "--poll-seconds", "0",
            "--max-batch-size", str(args.max_batch_size), "--max-wait-ms", str(args.max_wait_ms),
            "--busy-wait-ms", str(args.busy_wait_ms), "--engine", args.engine,
            "--max-concurrent", "1024", "--log-level", "WARNING", "--frontend", args.frontend,
            "--retrieval", getattr(args, "retrieval", "auto"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.time() + 300
        while not self.ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.proc.stderr.read()}")
            if time.time() > deadline:
                self.stop()
                raise RuntimeError("server not ready after 300 s")
            time.sleep(0.5)
        self.pids = process_tree(self.proc.pid)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def ready(self) -> bool:
        for i in range(self.workers):
            try:
                url = f"http://127.0.0.1:{self.metrics + i}/metrics"
                text = urllib.request.urlopen(url, timeout=2).read().decode()
            except OSError:
                return False
            if "sasrec_model_version 1.0" not in text:
                return False
        return True

    def cpu(self) -> float:
        return cpu_seconds(self.pids)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _busy(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


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
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument(
        "--engine", choices=["auto", "compiled", "numpy", "tensorflow"], default="auto"
    )
    parser.add_argument(
        "--frontend",
        choices=["python", "native"],
        default="python",
        help="server front end (native: `make native` first)",
    )
    parser.add_argument(
        "--generator",
        nargs="+",
        choices=["native", "python"],
        default=["native"] if NATIVE.exists() else ["python"],
        help="load generator(s) (native: `make loadgen` first)",
    )
    parser.add_argument("--channels", type=int, default=0, help="connections (0: 2 x workers)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--histories", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loadgen:
        return loadgen_main(args)

    if args.channels < 1:
        args.channels = 2 * args.workers
    if "native" in args.generator and not NATIVE.exists():
        raise SystemExit(f"{NATIVE} not built: run `make loadgen` (or --generator python)")
    from sasrec.runtime import configure_threads

    configure_threads(1, 1)
    items, histories = load_histories(2000, seed=0)
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        tmp_path = Path(tmp)
        model_dir = args.model or build_model_dir(tmp_path, items, args.hidden_dim, args.num_blocks)
        histories_file = tmp_path / "histories.json"
        histories_file.write_text(json.dumps(histories))
        results = [bench_in_process(model_dir, histories, min(args.requests, 2000), args.engine)]
        server = ServerProcess(model_dir, args)
        try:
            for generator in args.generator:
                for concurrency in args.concurrency:
                    before = server.cpu()
                    result = run_loadgen(
                        generator, server.address, concurrency, histories_file, args
                    )
                    result["server_cpu_us_per_req"] = (
                        1e6 * (server.cpu() - before) / max(1, result["requests"])
                    )
                    results.append(result)
        finally:
            server.stop()
    source = "Video.txt histories" if DATA.exists() else "synthetic histories"
    print(
        f"\nmodel: {len(items)} items, max_len {MAX_LEN}, d={args.hidden_dim}, "
        f"{args.num_blocks} blocks; {source}; k=10; engine={args.engine}, "
        f"frontend={args.frontend}, "
        f"workers={args.workers}, channels={args.channels}, "
        f"max_batch_size={args.max_batch_size}, max_wait_ms={args.max_wait_ms}, "
        f"busy_wait_ms={args.busy_wait_ms}\n"
    )
    print(
        "| mode | concurrency | requests | p50 ms | p99 ms | req/s | errors "
        "| server CPU us/req | client CPU us/req |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        server_cpu = r.get("server_cpu_us_per_req")
        client_cpu = r.get("client_cpu_us_per_req")
        print(
            f"| {r['mode']} | {r['concurrency']} | {r['requests']} | {r['p50_ms']:.2f} "
            f"| {r['p99_ms']:.2f} | {r['throughput_rps']:.0f} | {r.get('errors', 0)} "
            f"| {'' if server_cpu is None else f'{server_cpu:.0f}'} "
            f"| {'' if client_cpu is None else f'{client_cpu:.0f}'} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
