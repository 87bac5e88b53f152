"""Two replicas behind one round_robin client: one is SIGTERMed mid-load and no call fails.

Two ``sasrec serve`` processes on loopback ports serve the same versions root;
one :class:`RecommenderClient` holds both addresses (round_robin, health
checks, retryPolicy on UNAVAILABLE). Four threads call without pause; one
replica gets SIGTERM (it drains: NOT_SERVING while still answering, then
refuses new calls and finishes those in flight) and the other takes the load.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sasrec.serving import RecommenderClient
from tests.serving.test_server import free_port, health_ok, publish, scrape, wait_for

pytestmark = pytest.mark.slow


def calls_ok(metrics_port: int) -> float:
    for line in scrape(metrics_port).splitlines():
        if line.startswith('sasrec_grpc_requests_total{code="OK",method="Recommend"}'):
            return float(line.split()[-1])
    return 0.0


def start_replica(root: Path, port: int, metrics: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable, "-m", "sasrec.cli", "serve", "--model", str(root),
            "--host", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics),
            "--drain-seconds", "1", "--grace-seconds", "5", "--poll-seconds", "0",
            "--log-level", "WARNING",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def test_sigterm_of_one_replica_fails_no_call(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    publish(root, 1, seed=1)
    ports = [free_port(), free_port()]
    metrics = [free_port(), free_port()]
    replicas = [start_replica(root, p, m) for p, m in zip(ports, metrics)]
    try:
        for port, proc in zip(ports, replicas):
            with RecommenderClient(f"127.0.0.1:{port}") as one:
                assert wait_for(lambda p=proc, c=one: p.poll() is not None or health_ok(c), 120)
                assert proc.poll() is None, proc.stderr.read()
        addresses = [f"127.0.0.1:{p}" for p in ports]
        client = RecommenderClient(addresses, timeout=5, retries=4)
        answered: list[str] = []
        failures: list[BaseException] = []
        stop = threading.Event()

        def caller(worker: int) -> None:
            i = 0
            while not stop.is_set():
                try:
                    rec = client.recommend([f"sku-{1 + (worker + i) % 40:02d}"], k=5)
                    answered.append(rec.model_version)
                except BaseException as err:  # every failure is a test failure
                    failures.append(err)
                i += 1

        threads = [threading.Thread(target=caller, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        # health() reads each replica's state on a channel without health checks.
        assert client.health() == "SERVING"
        time.sleep(2.0)
        # round_robin: both replicas answered before the stop.
        assert calls_ok(metrics[0]) > 10 and calls_ok(metrics[1]) > 10
        before = len(answered)
        replicas[0].send_signal(signal.SIGTERM)
        assert replicas[0].wait(timeout=30) == 0
        after_stop = calls_ok(metrics[1])
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        client.close()
        assert not failures, failures[:3]
        assert len(answered) > before + 20  # the load went on during and after the stop
        assert calls_ok(metrics[1]) > after_stop + 10  # the survivor took it
    finally:
        for proc in replicas:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
