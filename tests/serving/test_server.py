"""A real gRPC server on a loopback port, the real client, the real model code.

Answers over gRPC are compared with the in-process API (same Predictor, no
network); error cases check the status code and the BadRequest field. The
contract tests run against both front ends: grpcio's asyncio server and the
native (C++) one (``make native``; required under ``make test``, skipped
when it is not built and ``SASREC_REQUIRE_NATIVE`` is unset).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import keras
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sasrec.artifact import publish_version, save_model_dir
from sasrec.models import SASRec
from sasrec.serving import (
    Recommender,
    RecommenderClient,
    RecommenderError,
    start_server,
)
from sasrec.serving.domain import Limits, Recommendation, RecommendationRequest
from sasrec.serving.native_frontend import native_frontend_available
from sasrec.serving.v1 import recommender_pb2, recommender_pb2_grpc
from sasrec.vocabulary import ItemVocabulary

NUM_ITEMS = 40
MAX_LEN = 6
ITEMS = [f"sku-{i:02d}" for i in range(1, NUM_ITEMS + 1)]
CODE = grpc.StatusCode
FRONTENDS = [
    "python",
    pytest.param(
        "native",
        marks=pytest.mark.skipif(
            not native_frontend_available() and os.environ.get("SASREC_REQUIRE_NATIVE") != "1",
            reason="native front end not built (make native)",
        ),
    ),
]


def save_version(path: Path, seed: int) -> None:
    """A tiny untrained SASRec with fixed seeds, saved as a model directory."""
    keras.utils.set_random_seed(seed)
    model = SASRec(
        num_items=NUM_ITEMS, max_len=MAX_LEN, hidden_dim=16, num_blocks=1, num_heads=2, dropout=0.0
    )
    counts = [0] * (NUM_ITEMS + 1)  # the shape `sasrec train` writes: index-aligned
    counts[5], counts[7] = 10, 20
    extra = {
        "popularity.json": {"counts": counts},
        "metrics.json": {
            "summary": {"full/sasrec/ndcg@10": 0.125},
            "test": {"full_ranking_exclude_history": {"sasrec": {"ndcg@10": {"value": 0.125}}}},
        },
    }
    save_model_dir(path, model, ItemVocabulary(ITEMS), extra_json=extra)


def publish(root: Path, version: int, seed: int) -> Path:
    """Publishes the next version as `sasrec train` does (staging dir + rename)."""
    path = publish_version(root, lambda target: save_version(target, seed))
    assert path == root / str(version)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serving-server") / "models"
    root.mkdir()
    publish(root, 1, seed=1)
    return root


@pytest.fixture(scope="module")
def local(model_root: Path) -> Recommender:
    return Recommender.load(model_root, max_batch_size=8)


@pytest.fixture(scope="module", params=FRONTENDS)
def server(model_root: Path, request: pytest.FixtureRequest) -> Iterator:
    srv = start_server(
        model_root,
        port=0,
        max_batch_size=8,
        poll_seconds=0,
        metrics_port=free_port(),
        frontend=request.param,
    )
    yield srv
    srv.stop(grace=1)


@pytest.fixture(scope="module")
def client(server) -> Iterator[RecommenderClient]:
    with RecommenderClient(server.address, timeout=10, retries=0) as c:
        yield c


def assert_same(got: Recommendation, want: Recommendation) -> None:
    assert got.item_ids == want.item_ids
    np.testing.assert_allclose(
        [i.score for i in got.items], [i.score for i in want.items], rtol=1e-5, atol=1e-6
    )
    assert got.model_version == want.model_version
    assert got.unknown_items == want.unknown_items and got.fallback == want.fallback
    assert [e.item_id for e in got.explanation] == [e.item_id for e in want.explanation]
    np.testing.assert_allclose(
        [e.weight for e in got.explanation], [e.weight for e in want.explanation], rtol=1e-5
    )
    for got_item, want_item in zip(got.items, want.items):
        assert [e.item_id for e in got_item.explanation] == [
            e.item_id for e in want_item.explanation
        ]
        np.testing.assert_allclose(
            [e.weight for e in got_item.explanation],
            [e.weight for e in want_item.explanation],
            rtol=1e-5,
        )


REQUESTS = [
    RecommendationRequest(history=("sku-01", "sku-02", "sku-03"), k=5),
    RecommendationRequest(history=("sku-10", "mystery"), k=3, explain=True),
    RecommendationRequest(
        history=("sku-05", "sku-12", "sku-05", "sku-30", "sku-02"), k=6, explain=True
    ),
    RecommendationRequest(history=tuple(ITEMS[:15]), k=8, include_history=True),
    RecommendationRequest(
        history=("sku-04",), k=10, allowed_items=("sku-01", "sku-02", "sku-09"), excluded_items=()
    ),
    RecommendationRequest(history=("sku-04", "sku-22"), excluded_items=tuple(ITEMS[:30])),
    RecommendationRequest(history=("who", "knows"), k=4, excluded_items=("sku-07",)),
    RecommendationRequest(history=(), k=2),
]


@pytest.mark.parametrize("request_", REQUESTS)
def test_recommend_equals_in_process_api(client, local, request_) -> None:
    got = client.recommend(
        request_.history,
        k=request_.k,
        include_history=request_.include_history,
        allowed_items=request_.allowed_items,
        excluded_items=request_.excluded_items,
        explain=request_.explain,
    )
    assert_same(got, local.recommend_batch([request_])[0])


def test_recommend_batch_equals_in_process_api(client, local) -> None:
    got = client.recommend_batch(REQUESTS * 3)
    assert len(got) == len(REQUESTS) * 3
    for g, w in zip(got, local.recommend_batch(REQUESTS * 3)):
        assert_same(g, w)
    assert client.recommend_batch([]) == []


def test_unknown_items_fallback_and_lists_over_grpc(client) -> None:
    rec = client.recommend(["nope", "sku-01", "nope"], k=3)
    assert rec.unknown_items == ("nope",) and not rec.fallback
    fallback = client.recommend(["nope"], k=3, excluded_items=["sku-05"])
    assert fallback.fallback and fallback.item_ids == ["sku-07", "sku-01", "sku-02"]
    allowed = client.recommend(["sku-03"], k=10, allowed_items=["sku-03", "sku-08", "sku-09"])
    assert sorted(allowed.item_ids) == ["sku-08", "sku-09"]
    denied = client.recommend(["sku-03"], k=39, excluded_items=["sku-08"])
    assert len(denied.items) == 38 and {"sku-03", "sku-08"}.isdisjoint(denied.item_ids)
    explained = client.recommend(["sku-03", "sku-08"], k=2, explain=True)
    assert {e.item_id for e in explained.explanation} == {"sku-03", "sku-08"}
    for item in explained.items:
        assert item.explanation and {e.item_id for e in item.explanation} <= {"sku-03", "sku-08"}
        assert sum(e.weight for e in item.explanation) <= 1.0 + 1e-6
    assert all(i.explanation == () for i in client.recommend(["sku-03"], k=2).items)


def test_model_info(client) -> None:
    info = client.model_info()
    assert (info.model_version, info.num_items, info.max_history_length) == (
        "1",
        NUM_ITEMS,
        MAX_LEN,
    )
    assert info.metrics == {"full/sasrec/ndcg@10": 0.125}
    assert info.trained_at is not None


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"history": ["sku-01"], "k": 1001}, "k"),
        ({"history": ["sku-01"], "k": -3}, "k"),
        ({"history": ["sku-01", "sku-02", "sku-03", ""]}, "history[3]"),
        ({"history": ["sku-01"] * 1001}, "history"),
        ({"history": ["sku-01"], "excluded_items": ["", "sku-02"]}, "excluded_items[0]"),
        ({"history": ["sku-01"], "allowed_items": ["a"] * 10_001}, "allowed_items"),
    ],
)
def test_invalid_argument_with_bad_request_details(client, kwargs, field) -> None:
    with pytest.raises(RecommenderError) as info:
        client.recommend(**kwargs)
    assert info.value.code == CODE.INVALID_ARGUMENT
    assert [v.field for v in info.value.field_violations] == [field]
    assert field in info.value.message


def test_batch_errors_name_the_request(client, server) -> None:
    bad = [REQUESTS[0], RecommendationRequest(history=("a", ""), k=5)]
    with pytest.raises(RecommenderError) as info:
        client.recommend_batch(bad)
    assert info.value.code == CODE.INVALID_ARGUMENT
    assert [v.field for v in info.value.field_violations] == ["requests[1].history[1]"]
    with pytest.raises(RecommenderError) as info:
        client.recommend_batch([REQUESTS[0]] * (Limits().max_batch_requests + 1))
    assert [v.field for v in info.value.field_violations] == ["requests"]


def test_raw_stub_status_details_and_no_wedge(server) -> None:
    """Garbage-ish inputs through the generated stub: errors, then normal service."""
    with grpc.insecure_channel(server.address) as channel:
        stub = recommender_pb2_grpc.RecommenderStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Recommend(recommender_pb2.RecommendRequest(history=["x", ""], k=2), timeout=5)
        assert info.value.code() == CODE.INVALID_ARGUMENT
        assert "history[1]: empty item id" in info.value.details()
        metadata = dict(info.value.trailing_metadata())
        assert "grpc-status-details-bin" in metadata
        weird = recommender_pb2.RecommendRequest(history=["\x00", "é" * 5000, "sku-01"], k=0)
        assert len(stub.Recommend(weird, timeout=5).items) == 10
        assert stub.GetModelInfo(recommender_pb2.GetModelInfoRequest(), timeout=5).num_items == 40


def test_concurrent_callers_get_the_in_process_answers(client, local) -> None:
    histories = [tuple(ITEMS[(i * 7) % 30 : (i * 7) % 30 + 1 + i % 6]) for i in range(20)]
    expected = {h: local.recommend(h, k=6) for h in histories}

    def caller(worker: int) -> list[tuple]:
        out = []
        for call in range(20):
            h = histories[(worker + call) % len(histories)]
            out.append((h, client.recommend(h, k=6)))
        return out

    with ThreadPoolExecutor(16) as pool:
        results = [r for chunk in pool.map(caller, range(16)) for r in chunk]
    assert len(results) == 320
    for h, got in results:
        assert_same(got, expected[h])


def test_event_loop_is_uvloop_when_installed(server) -> None:
    from sasrec.serving.event_loop import event_loop_kind, new_loop

    if server.options.frontend != "python":
        pytest.skip("the native front end has no Python event loop")
    uvloop = pytest.importorskip("uvloop")
    assert uvloop is not None and event_loop_kind() == "uvloop"
    loop = new_loop("asyncio")
    assert type(loop).__module__.startswith("asyncio")
    loop.close()
    with pytest.raises(ValueError, match="SASREC_EVENT_LOOP.*'tornado'"):
        new_loop("tornado")


def test_health_and_reflection(server) -> None:
    from google.protobuf import descriptor_pool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "sasrec.v1.Recommender"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        database = ProtoReflectionDescriptorDatabase(channel)
        services = database.get_services()
        assert "sasrec.v1.Recommender" in services and "grpc.health.v1.Health" in services
        pool = descriptor_pool.DescriptorPool(database)
        service = pool.FindServiceByName("sasrec.v1.Recommender")
        method = service.methods_by_name["Recommend"]
        assert method.input_type.fields_by_name["history"].number == 1


def test_prometheus_metrics(server, client) -> None:
    client.recommend(["sku-01"], k=2)
    with contextlib.suppress(RecommenderError):
        client.recommend(["sku-01"], k=-1)
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    assert 'sasrec_grpc_requests_total{code="OK",method="Recommend"}' in text
    assert 'sasrec_grpc_requests_total{code="INVALID_ARGUMENT",method="Recommend"}' in text
    assert 'sasrec_grpc_request_seconds_bucket{le="0.005",method="Recommend"}' in text
    assert "sasrec_batch_size_count" in text
    assert "sasrec_model_version 1.0" in text
    assert 'sasrec_reloads_total{result="failure"} 0.0' in text


# ----------------------------------------------------------------- lifecycle


class Gate:
    """Holds the batching thread (via batch_hook) or the model load (via load_hook)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, *_args: object) -> None:
        self.calls += 1
        if not self.release.is_set():
            self.entered.set()
            self.release.wait(30)


def health_status(address: str) -> str:
    with RecommenderClient(address, timeout=5, retries=0) as c:
        return c.health()


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_health_not_serving_until_warm_then_graceful_shutdown(
    model_root: Path, local, frontend: str
) -> None:
    load_gate, batch_gate = Gate(), Gate()
    srv = start_server(
        model_root,
        wait_ready=False,
        max_batch_size=4,
        poll_seconds=0,
        drain_seconds=2.0,
        load_hook=load_gate,
        batch_hook=batch_gate,
        frontend=frontend,
    )
    try:
        assert load_gate.entered.wait(30)
        assert health_status(srv.address) == "NOT_SERVING"
        with RecommenderClient(srv.address, timeout=5, retries=0) as c:
            with pytest.raises(RecommenderError) as info:
                c.recommend(["sku-01"])
            assert info.value.code == CODE.UNAVAILABLE
            # A retrying client rides out the load: UNAVAILABLE, backoff, answer.
            threading.Timer(0.3, load_gate.release.set).start()
            patient = RecommenderClient(srv.address, retries=40, backoff_seconds=0.02)
            with patient:
                started = time.monotonic()
                # (a fallback answer: the batching thread is held by batch_gate)
                assert patient.recommend(["nobody"], k=3).model_version == "1"
                assert time.monotonic() - started >= 0.25
            c.wait_until_serving(timeout=60)
            assert health_status(srv.address) == "SERVING"

            with ThreadPoolExecutor(2) as pool:
                in_flight = pool.submit(c.recommend, ["sku-01", "sku-02"], 4)
                assert batch_gate.entered.wait(10)  # the call is being scored
                stopper = pool.submit(srv.stop, 10)
                # Within drain_seconds: NOT_SERVING while calls are still accepted.
                assert wait_for(lambda: health_status(srv.address) == "NOT_SERVING", 5)
                assert not in_flight.done()
                batch_gate.release.set()
                answer = in_flight.result(10)
                stopper.result(20)
            assert_same(answer, local.recommend(["sku-01", "sku-02"], 4))
            assert srv.wait(0)
            with pytest.raises(RecommenderError) as info:
                c.recommend(["sku-01"], timeout=2)
            assert info.value.code == CODE.UNAVAILABLE
    finally:
        load_gate.release.set()
        batch_gate.release.set()
        srv.stop(grace=0)


def skipped(srv) -> float:
    """Requests the batcher dropped unscored (deadline passed, or gRPC cancelled them)."""
    counter = srv.metrics.skipped
    return sum(counter.labels(reason=r)._value.get() for r in ("deadline", "cancelled"))


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_deadline_exceeded_skips_the_work(model_root: Path, frontend: str) -> None:
    gate = Gate()
    srv = start_server(
        model_root, max_batch_size=4, poll_seconds=0, batch_hook=gate, frontend=frontend
    )
    try:
        with (
            RecommenderClient(srv.address, timeout=10, retries=0) as c,
            ThreadPoolExecutor(1) as pool,
        ):
            holder = pool.submit(c.recommend, ["sku-01"], 3)
            assert gate.entered.wait(10)  # the worker is busy with the first call
            with pytest.raises(RecommenderError) as info:
                c.recommend(["sku-02"], k=3, timeout=1.0)
            assert info.value.code == CODE.DEADLINE_EXCEEDED
            # The server's deadline is the client's plus the transit time:
            # release the worker only once it has passed there too.
            time.sleep(0.2)
            gate.release.set()
            assert len(holder.result(10).items) == 3
            assert wait_for(lambda: skipped(srv) == 1, timeout=10)
        # The expired call was dropped before scoring: one batch (the holder) ran.
        assert srv.metrics.batch_size._sum.get() == 1
        assert skipped(srv) == 1
    finally:
        gate.release.set()
        srv.stop(grace=0)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_overload_is_resource_exhausted(model_root: Path, frontend: str) -> None:
    gate = Gate()
    srv = start_server(
        model_root,
        max_batch_size=1,
        poll_seconds=0,
        max_concurrent=2,
        batch_hook=gate,
        frontend=frontend,
    )
    try:
        with (
            RecommenderClient(srv.address, timeout=10, retries=0) as c,
            ThreadPoolExecutor(2) as pool,
        ):
            held = [pool.submit(c.recommend, [item], 2) for item in ("sku-01", "sku-02")]
            assert gate.entered.wait(10)
            # Both calls are inside the server: one held in scoring, one queued.
            assert wait_for(lambda: srv.queued_requests == 1, 10)
            with pytest.raises(RecommenderError) as info:
                c.recommend(["sku-03"], k=2)
            assert info.value.code == CODE.RESOURCE_EXHAUSTED
            gate.release.set()
            assert [len(f.result(10).items) for f in held] == [2, 2]
            assert len(c.recommend(["sku-03"], k=2).items) == 2  # recovered
    finally:
        gate.release.set()
        srv.stop(grace=0)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_tls_and_bearer_token(model_root: Path, tmp_path: Path, local, frontend: str) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = make_certificate(tmp_path)
    srv = start_server(
        model_root,
        max_batch_size=2,
        poll_seconds=0,
        tls_cert=cert,
        tls_key=key,
        auth_token="s3cret",
        frontend=frontend,
    )
    try:
        with RecommenderClient(srv.address, root_certificates=cert, retries=0) as anonymous:
            assert anonymous.health() == "SERVING"  # health needs no token
            with pytest.raises(RecommenderError) as info:
                anonymous.recommend(["sku-01"], k=2)
            assert info.value.code == CODE.UNAUTHENTICATED
        with RecommenderClient(srv.address, root_certificates=cert, token="wrong") as wrong:
            with pytest.raises(RecommenderError) as info:
                wrong.model_info()
            assert info.value.code == CODE.UNAUTHENTICATED
        with RecommenderClient(srv.address, root_certificates=cert, token="s3cret") as good:
            assert_same(good.recommend(["sku-01"], k=2), local.recommend(["sku-01"], k=2))
        with RecommenderClient(srv.address, token="s3cret", retries=0) as plaintext:
            with pytest.raises(RecommenderError) as info:
                plaintext.recommend(["sku-01"], k=2, timeout=2)
            assert info.value.code == CODE.UNAVAILABLE  # no TLS, no talk
    finally:
        srv.stop(grace=0)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_hot_reload_and_broken_version_rejected(tmp_path: Path, frontend: str) -> None:
    root = tmp_path / "models"
    root.mkdir()
    publish(root, 1, seed=1)
    srv = start_server(root, max_batch_size=2, poll_seconds=0.1, frontend=frontend)
    try:
        with RecommenderClient(srv.address, retries=0) as c:
            first = c.recommend(["sku-01", "sku-02"], k=5)
            assert first.model_version == "1"
            publish(root, 2, seed=2)
            assert wait_for(lambda: c.model_info().model_version == "2")
            second = c.recommend(["sku-01", "sku-02"], k=5)
            assert second.model_version == "2"
            v2 = Recommender.load(root / "2", max_batch_size=1, warm_up=False)
            assert_same(second, v2.recommend(["sku-01", "sku-02"], k=5))
            assert second.item_ids != first.item_ids  # a different model answers

            staging = root / ".tmp-3"
            shutil.copytree(root / "2", staging)
            model_file = staging / "model.keras"
            model_file.write_bytes(model_file.read_bytes()[:100])  # truncated, manifest intact
            os.rename(staging, root / "3")
            assert wait_for(lambda: srv.metrics.reloads.labels(result="failure")._value.get() == 1)
            time.sleep(0.5)  # several more polls: remembered, not retried
            assert srv.metrics.reloads.labels(result="failure")._value.get() == 1
            assert srv.metrics.reloads.labels(result="success")._value.get() == 1
            assert c.health() == "SERVING"
            assert_same(c.recommend(["sku-01", "sku-02"], k=5), second)
    finally:
        srv.stop(grace=0)


def health_ok(client: RecommenderClient) -> bool:
    try:
        return client.health(timeout=1) == "SERVING"
    except RecommenderError:
        return False


def test_cli_serve_recommend_and_sigterm(model_root: Path, tmp_path: Path, local) -> None:
    port = free_port()
    env = dict(os.environ, SASREC_AUTH_TOKEN="tok")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "sasrec.cli", "serve", "--model", str(model_root),
            "--host", "127.0.0.1", "--port", str(port), "--max-batch-size", "2",
            "--grace-seconds", "5", "--poll-seconds", "0",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        with RecommenderClient(f"127.0.0.1:{port}", token="tok") as c:
            ready = wait_for(lambda: proc.poll() is not None or health_ok(c), timeout=120)
            assert ready and proc.poll() is None, proc.stderr.read() if proc.poll() else "timeout"
        cli = subprocess.run(
            [
                sys.executable, "-m", "sasrec.cli", "recommend", "--server", f"127.0.0.1:{port}",
                "--history", "sku-01,sku-02,ghost", "--k", "3", "--explain",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        want = local.recommend(["sku-01", "sku-02", "ghost"], k=3)
        lines = cli.stdout.splitlines()
        assert lines[0] == "model version 1"
        assert "unknown history items (ignored): ghost" in lines[1]
        assert [line.split()[1] for line in lines[3:6]] == want.item_ids
        assert "attended history items (whole list):" in cli.stdout
        assert "because (history item: weight)" in lines[2]
        for line in lines[3:6]:  # each item names the history items behind it
            assert "sku-01: " in line or "sku-02: " in line
        bad = subprocess.run(
            [
                sys.executable, "-m", "sasrec.cli", "recommend", "--server", f"127.0.0.1:{port}",
                "--history", "sku-01", "--k", "5000",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
        assert bad.returncode == 2 and "INVALID_ARGUMENT" in bad.stderr and "k:" in bad.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        logs = proc.stderr.read()
        assert '"msg": "serving"' in logs and '"msg": "stopped"' in logs
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def scrape(metrics_port: int) -> str:
    return (
        urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
        .read()
        .decode()
    )


def calls_served(metrics_port: int) -> float:
    for line in scrape(metrics_port).splitlines():
        if line.startswith('sasrec_grpc_requests_total{code="OK",method="Recommend"}'):
            return float(line.split()[-1])
    return 0.0


def test_cli_workers_share_the_port_and_stop_together(model_root: Path, local) -> None:
    port, metrics = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "sasrec.cli", "serve", "--model", str(model_root),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
            "--metrics-port", str(metrics), "--grace-seconds", "5", "--poll-seconds", "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    want = local.recommend(["sku-01", "sku-02"], k=4)
    try:
        # Both workers must serve: each one's metrics report the loaded version.
        def both_ready() -> bool:
            try:
                return all("sasrec_model_version 1.0" in scrape(metrics + i) for i in (0, 1))
            except OSError:
                return False

        assert wait_for(lambda: proc.poll() is not None or both_ready(), timeout=180)
        assert proc.poll() is None, proc.stderr.read()
        # SO_REUSEPORT balances connections: 16 separate clients reach both workers.
        for _ in range(16):
            with RecommenderClient(
                f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
            ) as c:
                assert_same(c.recommend(["sku-01", "sku-02"], k=4), want)
        counts = [calls_served(metrics), calls_served(metrics + 1)]
        assert sum(counts) == 16 and min(counts) >= 1, counts
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def worker_pids(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    pids = []
    for pid in map(int, children):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            pids.append(pid)
    return pids


def start_pool(model_root: Path) -> subprocess.Popen:
    """``sasrec serve --workers 2`` on a free port (stderr captured as text)."""
    return subprocess.Popen(
        [
            sys.executable, "-m", "sasrec.cli", "serve", "--model", str(model_root),
            "--host", "127.0.0.1", "--port", str(free_port()), "--workers", "2",
            "--poll-seconds", "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_cli_workers_a_dead_worker_stops_the_pool(model_root: Path) -> None:
    proc = start_pool(model_root)
    try:
        assert wait_for(lambda: len(worker_pids(proc.pid)) == 2, timeout=60)
        os.kill(worker_pids(proc.pid)[0], signal.SIGKILL)
        assert proc.wait(timeout=60) == 1
        assert "worker exited unexpectedly" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_cli_workers_stop_when_the_supervisor_is_killed(model_root: Path) -> None:
    proc = start_pool(model_root)
    workers: list[int] = []
    try:
        assert wait_for(lambda: len(worker_pids(proc.pid)) == 2, timeout=60)
        workers = worker_pids(proc.pid)
        proc.kill()  # SIGKILL: no chance to forward a stop
        proc.wait()
        assert wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in workers), 60)
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
