"""Faults at the gRPC edge, on both front ends: real servers on loopback ports.

Malformed request bodies, authentication corner cases, what the server binds,
SIGTERM with calls in flight and deadlines that pass before scoring. Fixtures
and helpers (a tiny model, free ports, ``Gate``) come from ``test_server``.
"""

from __future__ import annotations

import contextlib
import logging
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
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sasrec.serving import RecommenderClient, start_server
from sasrec.serving.server import RecommenderServer
from sasrec.serving.server_options import ServerOptions, resolve_auth_token
from sasrec.serving.v1 import recommender_pb2
from tests.serving.test_server import FRONTENDS, Gate, free_port, health_ok, publish, wait_for

CODE = grpc.StatusCode
TOKEN = "s3cret"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
RECOMMEND = "/sasrec.v1.Recommender/Recommend"
RECOMMEND_BATCH = "/sasrec.v1.Recommender/RecommendBatch"
MODEL_INFO = "/sasrec.v1.Recommender/GetModelInfo"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
GOOD_REQUEST = recommender_pb2.RecommendRequest(history=["sku-01", "sku-02"], k=3)


@pytest.fixture(scope="module")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serving-faults") / "models"
    root.mkdir()
    publish(root, 1, seed=1)
    return root


@pytest.fixture(scope="module", params=FRONTENDS)
def server(model_root: Path, request: pytest.FixtureRequest) -> Iterator:
    srv = start_server(
        model_root,
        port=0,
        max_batch_size=8,
        poll_seconds=0,
        auth_token=TOKEN,
        frontend=request.param,
    )
    yield srv
    srv.stop(grace=1)


def raw_call(channel: grpc.Channel, method: str, body: bytes, **kwargs) -> bytes:
    """One unary call with a raw body (no serializer): the bytes go out as they are."""
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    return call(body, timeout=10, **kwargs)


def status_of(channel: grpc.Channel, method: str, body: bytes, **kwargs) -> tuple:
    try:
        raw_call(channel, method, body, **kwargs)
    except grpc.RpcError as err:
        return err.code(), err.details()
    return CODE.OK, ""


# ------------------------------------------------------------ malformed bodies

NOT_PROTOBUF = b"\xff\xfe\xfd\x00 this is not a protobuf message"
BAD_UTF8 = b"\x0a\x02\xff\xfe"  # history[0] (field 1, string) = b"\xff\xfe"


@pytest.mark.parametrize(
    ("method", "body", "type_name"),
    [
        (RECOMMEND, NOT_PROTOBUF, "sasrec.v1.RecommendRequest"),
        (RECOMMEND, BAD_UTF8, "sasrec.v1.RecommendRequest"),
        (RECOMMEND_BATCH, NOT_PROTOBUF, "sasrec.v1.RecommendBatchRequest"),
        # requests[0] (field 1, message) holding the bad string
        (RECOMMEND_BATCH, b"\x0a\x04" + BAD_UTF8, "sasrec.v1.RecommendBatchRequest"),
        (MODEL_INFO, NOT_PROTOBUF, "sasrec.v1.GetModelInfoRequest"),
        (HEALTH_CHECK, NOT_PROTOBUF, None),  # native: gRPC C++'s own message
        (HEALTH_CHECK, BAD_UTF8, None),  # service (field 1) = b"\xff\xfe"
    ],
    ids=[
        "recommend-garbage",
        "recommend-utf8",
        "batch-garbage",
        "batch-utf8",
        "info-garbage",
        "health-garbage",
        "health-utf8",
    ],
)
def test_malformed_body_is_invalid_argument_without_error_logs(
    server, caplog: pytest.LogCaptureFixture, method: str, body: bytes, type_name: str | None
) -> None:
    with grpc.insecure_channel(server.address) as channel:
        with caplog.at_level(logging.DEBUG):
            code, details = status_of(channel, method, body, metadata=AUTH)
            # Give a late log line (grpcio logs after the call ends) a chance to appear.
            time.sleep(0.2)
        assert code == CODE.INVALID_ARGUMENT, (code, details)
        assert type_name is None or type_name in details
        assert len(details) < 200
        loud = [r for r in caplog.records if r.levelno > logging.WARNING or r.exc_info]
        assert loud == [], [(r.name, r.levelname, r.getMessage()) for r in loud]
        # The server is fine afterwards.
        answer = raw_call(channel, RECOMMEND, GOOD_REQUEST.SerializeToString(), metadata=AUTH)
        assert len(recommender_pb2.RecommendResponse.FromString(answer).items) == 3


def test_malformed_reflection_request_is_invalid_argument(
    server, caplog: pytest.LogCaptureFixture
) -> None:
    with grpc.insecure_channel(server.address) as channel:
        stream = channel.stream_stream(REFLECTION)
        with caplog.at_level(logging.DEBUG), pytest.raises(grpc.RpcError) as info:
            list(stream(iter([NOT_PROTOBUF]), timeout=10, metadata=AUTH))
        assert info.value.code() == CODE.INVALID_ARGUMENT
        assert "grpc.reflection.v1alpha.ServerReflectionRequest" in info.value.details()
        loud = [r for r in caplog.records if r.levelno > logging.WARNING or r.exc_info]
        assert loud == [], [(r.name, r.levelname, r.getMessage()) for r in loud]


def test_malformed_body_needs_the_token_first(server) -> None:
    with grpc.insecure_channel(server.address) as channel:
        assert status_of(channel, RECOMMEND, NOT_PROTOBUF)[0] == CODE.UNAUTHENTICATED


# -------------------------------------------------------------- authentication


class WithToken(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds the bearer header to every call (plain-text channels take no call credentials)."""

    def _add(self, details):
        return details._replace(metadata=list(details.metadata or ()) + list(AUTH))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._add(details), request)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._add(details), requests)


def test_health_is_open_and_reflection_needs_the_token(server) -> None:
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as info:
            ProtoReflectionDescriptorDatabase(channel).get_services()
        assert info.value.code() == CODE.UNAUTHENTICATED
    with grpc.insecure_channel(server.address) as channel:
        authed = grpc.intercept_channel(channel, WithToken())
        services = ProtoReflectionDescriptorDatabase(authed).get_services()
        assert "sasrec.v1.Recommender" in services


@pytest.mark.parametrize(
    "values",
    [
        (f"Bearer {TOKEN}", "Bearer wrong"),
        ("Bearer wrong", f"Bearer {TOKEN}"),
        (f"Bearer {TOKEN}",) * 2,
    ],
    ids=["good-bad", "bad-good", "good-good"],
)
def test_two_authorization_headers_are_refused(server, values: tuple[str, ...]) -> None:
    metadata = tuple(("authorization", v) for v in values)
    with grpc.insecure_channel(server.address) as channel:
        code, details = status_of(channel, MODEL_INFO, b"", metadata=metadata)
        assert code == CODE.UNAUTHENTICATED, (code, details)
        assert status_of(channel, MODEL_INFO, b"", metadata=AUTH)[0] == CODE.OK


def test_empty_auth_token_flag_with_the_env_token_is_an_error() -> None:
    env = {"SASREC_AUTH_TOKEN": "from-env"}
    with pytest.raises(ValueError, match="SASREC_AUTH_TOKEN"):
        resolve_auth_token("", env)
    with pytest.raises(ValueError, match="empty"):
        resolve_auth_token(None, {"SASREC_AUTH_TOKEN": ""})
    assert resolve_auth_token(None, env) == "from-env"
    assert resolve_auth_token("flag", env) == "flag"
    assert resolve_auth_token(None, {}) is None
    with pytest.raises(ValueError, match="auth_token"):
        ServerOptions(auth_token="")


# ------------------------------------------------------------------- binding


def other_local_address() -> str | None:
    """A local IPv4 address other than 127.0.0.1 (127.0.0.2 on Linux), or None."""
    candidates = ["127.0.0.2"]
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("10.255.255.255", 1))  # no packet is sent: picks the outgoing interface
        candidates.append(s.getsockname()[0])
    for address in candidates:
        if address == "127.0.0.1":
            continue
        with socket.socket() as s:
            try:
                s.bind((address, 0))
            except OSError:
                continue
            return address
    return None


def reachable(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((host, port)) == 0


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_default_host_is_loopback_for_grpc_and_metrics(
    model_root: Path, frontend: str, caplog: pytest.LogCaptureFixture
) -> None:
    other = other_local_address()
    options = ServerOptions(port=0, metrics_port=free_port(), poll_seconds=0, frontend=frontend)
    assert options.host == "127.0.0.1"
    with caplog.at_level(logging.INFO, logger="sasrec.serving"):
        srv = RecommenderServer(model_root, options).start()
    try:
        url = f"http://127.0.0.1:{srv.metrics_port}/metrics"
        assert b"sasrec_model_loaded 1.0" in urllib.request.urlopen(url, timeout=5).read()
        with RecommenderClient(f"127.0.0.1:{srv.port}", retries=0) as client:
            assert client.health() == "SERVING"
        listening = {
            r.getMessage(): r.fields["address"]
            for r in caplog.records
            if r.getMessage() in ("gRPC server listening", "metrics listening")
        }
        assert listening == {
            "gRPC server listening": f"127.0.0.1:{srv.port}",
            "metrics listening": f"127.0.0.1:{srv.metrics_port}",
        }
        if other is None:
            pytest.skip("this machine has no local address besides 127.0.0.1")
        assert not reachable(other, srv.metrics_port), f"metrics answer on {other}"
        assert not reachable(other, srv.port), f"gRPC answers on {other}"
    finally:
        srv.stop(grace=0)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_given_host_is_bound_and_logged(
    model_root: Path, frontend: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="sasrec.serving"):
        srv = start_server(
            model_root, host="0.0.0.0", metrics_port=free_port(), poll_seconds=0, frontend=frontend
        )
    try:
        addresses = [
            r.fields["address"]
            for r in caplog.records
            if r.getMessage() in ("gRPC server listening", "metrics listening")
        ]
        assert addresses == [f"0.0.0.0:{srv.metrics_port}", f"0.0.0.0:{srv.port}"]
        assert reachable("127.0.0.1", srv.port) and reachable("127.0.0.1", srv.metrics_port)
    finally:
        srv.stop(grace=0)


# ---------------------------------------------------------- SIGTERM under load


class LogReader:
    """Collects a subprocess's stderr lines on a thread."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    @property
    def text(self) -> str:
        return "".join(self.lines)


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_sigterm_finishes_calls_in_flight_and_refuses_new_ones(
    model_root: Path, frontend: str
) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "sasrec.cli", "serve", "--model", str(model_root),
            "--host", "127.0.0.1", "--port", str(port), "--max-batch-size", "1",
            "--grace-seconds", "60", "--poll-seconds", "0", "--frontend", frontend,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    logs = LogReader(proc.stderr)
    address = f"127.0.0.1:{port}"
    try:
        with RecommenderClient(address) as c:
            assert wait_for(lambda: proc.poll() is not None or health_ok(c), timeout=120)
        assert proc.poll() is None, logs.text
        # Slow calls: each one is 128 model calls (--max-batch-size 1), 32 of them at once.
        batch = recommender_pb2.RecommendBatchRequest(requests=[GOOD_REQUEST] * 128)
        with grpc.insecure_channel(address) as channel:
            call = channel.unary_unary(
                RECOMMEND_BATCH,
                request_serializer=recommender_pb2.RecommendBatchRequest.SerializeToString,
                response_deserializer=recommender_pb2.RecommendBatchResponse.FromString,
            )
            in_flight = [call.future(batch, timeout=120) for _ in range(32)]
            time.sleep(0.2)  # on their way (the server looks for signals every 0.5 s)
            proc.send_signal(signal.SIGTERM)
            # Once the server says it refuses new calls (or has exited), a new call fails.
            assert wait_for(lambda: logs.has("refusing new calls") or proc.poll() is not None, 60)
            with RecommenderClient(address, retries=0, timeout=5) as late:
                with pytest.raises(Exception) as info:
                    late.recommend(["sku-01"], k=2)
                assert getattr(info.value, "code", None) == CODE.UNAVAILABLE, info.value
            codes = []
            for future in in_flight:
                try:
                    codes.append(("OK", len(future.result().responses)))
                except grpc.RpcError as err:
                    codes.append((err.code().name, err.details()))
        assert codes == [("OK", 128)] * len(in_flight), codes
        assert proc.wait(timeout=120) == 0
        assert logs.has('"msg": "stopped"'), logs.text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------ deadlines


def calls_recorded(srv, method: str, code: str) -> float:
    return srv.metrics.calls.labels(method=method, code=code)._value.get()


def skipped(srv) -> float:
    counter = srv.metrics.skipped
    return sum(counter.labels(reason=r)._value.get() for r in ("deadline", "cancelled"))


@pytest.mark.parametrize("frontend", FRONTENDS)
def test_deadline_passed_while_waiting_to_be_scored_is_not_scored(
    model_root: Path, frontend: str
) -> None:
    """Taken for scoring in time, held there past the deadline: not scored, DEADLINE_EXCEEDED."""
    gate = Gate()
    srv = start_server(
        model_root, max_batch_size=4, poll_seconds=0, batch_hook=gate, frontend=frontend
    )
    try:
        with (
            RecommenderClient(srv.address, timeout=10, retries=0) as c,
            ThreadPoolExecutor(1) as pool,
        ):
            late = pool.submit(c.recommend, ["sku-02"], 3, timeout=1.0)
            assert gate.entered.wait(10)  # taken for scoring, deadline not passed yet
            with pytest.raises(Exception) as info:
                late.result(30)
            assert getattr(info.value, "code", None) == CODE.DEADLINE_EXCEEDED
            time.sleep(0.3)  # the server's deadline is the client's plus the transit time
            gate.release.set()
            assert wait_for(lambda: calls_recorded(srv, "Recommend", "DEADLINE_EXCEEDED") == 1, 10)
            assert wait_for(lambda: skipped(srv) == 1, 10)
            assert calls_recorded(srv, "Recommend", "OK") == 0
            assert srv.metrics.batch_size._sum.get() == 0  # the model never ran
            assert len(c.recommend(["sku-01"], k=2).items) == 2  # and the server still serves
    finally:
        gate.release.set()
        srv.stop(grace=0)
