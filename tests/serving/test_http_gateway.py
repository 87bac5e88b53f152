"""The HTTP/JSON gateway on a real server, called with a real HTTP client (urllib).

Each route's answer is compared with the gRPC method's on the same server
(proto3 JSON mapping of the same message); errors get grpc-gateway's HTTP
status and a ``google.rpc.Status`` body; the token, the metrics and the
server-side history are the gRPC server's. Both front ends.
"""

# ruff: noqa: F811 - pytest fixtures imported from test_server are parameters here
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from sasrec.serving import start_server
from sasrec.serving.http_gateway import HTTP_STATUS, parse_grpc_timeout
from sasrec.serving.v1 import recommender_pb2 as pb
from sasrec.serving.v1 import recommender_pb2_grpc

# test_server's module fixtures (a model version), used by name.
from tests.serving.test_server import FRONTENDS, Gate, model_root  # noqa: F401

TOKEN = "s3cret"


@pytest.fixture(scope="module", params=FRONTENDS)
def server(model_root: Path, tmp_path_factory, request: pytest.FixtureRequest) -> Iterator:
    events = tmp_path_factory.mktemp("http-events") / "events.db"
    srv = start_server(
        model_root,
        port=0,
        http_port=0,
        max_batch_size=8,
        poll_seconds=0,
        frontend=request.param,
        auth_token=TOKEN,
        event_store=f"sqlite:{events}",
    )
    yield srv
    srv.stop(grace=1)


@pytest.fixture(scope="module")
def stub(server) -> Iterator[recommender_pb2_grpc.RecommenderStub]:
    with grpc.insecure_channel(server.address) as channel:
        yield recommender_pb2_grpc.RecommenderStub(channel)


def grpc_call(stub, method: str, message: Any) -> dict:
    answer = getattr(stub, method)(
        message, timeout=10, metadata=[("authorization", f"Bearer {TOKEN}")]
    )
    return json.loads(json_format.MessageToJson(answer))


def http(
    server, path: str, body: Any = None, token: str | None = TOKEN, headers: dict | None = None
) -> tuple[int, dict]:
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.http_port}{path}",
        data=data,
        method="GET" if body is None else "POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_recommend_equals_grpc(server, stub) -> None:
    body = {"history": ["sku-01", "sku-02", "mystery"], "k": 5, "explain": True}
    status, answer = http(server, "/v1/recommend", body)
    assert status == 200
    want = grpc_call(stub, "Recommend", json_format.ParseDict(body, pb.RecommendRequest()))
    assert answer == want
    assert answer["unknownItems"] == ["mystery"] and len(answer["items"]) == 5
    # The proto field names are accepted too (proto3 JSON mapping).
    status, snake = http(server, "/v1/recommend", {"history": ["sku-01"], "include_history": True})
    assert status == 200 and len(snake["items"]) == 10


def test_batch_and_model_info_equal_grpc(server, stub) -> None:
    body = {"requests": [{"history": ["sku-03"], "k": 2}, {"history": ["nope"], "k": 3}]}
    status, answer = http(server, "/v1/recommend:batch", body)
    assert status == 200
    assert answer == grpc_call(
        stub, "RecommendBatch", json_format.ParseDict(body, pb.RecommendBatchRequest())
    )
    status, info = http(server, "/v1/model")
    assert status == 200
    assert info == grpc_call(stub, "GetModelInfo", pb.GetModelInfoRequest())
    assert info["modelVersion"] == "1" and info["numItems"] == 40


def test_events_then_recommend_by_user_id(server, stub) -> None:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60))
    events = {
        "events": [
            {"userId": "web-1", "itemId": "sku-04", "time": stamp, "eventType": "view"},
            {"userId": "web-1", "itemId": "sku-08"},
        ]
    }
    status, answer = http(server, "/v1/events", events)
    assert (status, answer) == (200, {"recorded": 2})
    status, by_user = http(server, "/v1/recommend", {"userId": "web-1", "k": 4})
    assert status == 200 and by_user["storedHistoryLength"] == 2
    by_history = grpc_call(
        stub, "Recommend", pb.RecommendRequest(history=["sku-04", "sku-08"], k=4)
    )
    assert by_user["items"] == by_history["items"]
    # Recorded over HTTP, read over gRPC: one store.
    over_grpc = grpc_call(stub, "Recommend", pb.RecommendRequest(user_id="web-1", k=4))
    assert over_grpc == by_user


@pytest.mark.parametrize(
    ("path", "body", "token", "status", "code", "field"),
    [
        ("/v1/recommend", {"history": ["sku-01"], "k": -1}, TOKEN, 400, 3, "k"),
        ("/v1/events", {"events": [{"userId": "u"}]}, TOKEN, 400, 3, "events[0].item_id"),
        ("/v1/recommend", b"{not json", TOKEN, 400, 3, None),
        ("/v1/recommend", {"histroy": ["sku-01"]}, TOKEN, 400, 3, None),
        ("/v1/recommend", b"\xff\xfe", TOKEN, 400, 3, None),
        ("/v1/recommend", {"history": ["sku-01"]}, None, 401, 16, None),
        ("/v1/model", None, "wrong", 401, 16, None),
    ],
)
def test_errors_map_to_http_status_and_status_body(
    server, path, body, token, status, code, field
) -> None:
    got_status, answer = http(server, path, body, token=token)
    assert (got_status, answer["code"]) == (status, code)
    assert answer["message"]
    if field is not None:
        (detail,) = answer["details"]
        assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
        assert [v["field"] for v in detail["fieldViolations"]] == [field]


def test_deadline_header_and_health(server) -> None:
    status, answer = http(
        server, "/v1/recommend", {"history": ["sku-01"]}, headers={"Grpc-Timeout": "soon"}
    )
    assert status == 400 and "Grpc-Timeout" in answer["message"]
    status, answer = http(
        server, "/v1/recommend", {"history": ["sku-01"]}, headers={"Grpc-Timeout": "5S"}
    )
    assert status == 200
    assert http(server, "/healthz", token=None) == (200, {"status": "SERVING"})


def test_http_calls_are_counted_with_the_grpc_ones(server) -> None:
    def count(code: str) -> float:
        labels = {"method": "Recommend", "code": code}
        return server.metrics.registry.get_sample_value("sasrec_grpc_requests_total", labels) or 0

    ok, bad = count("OK"), count("INVALID_ARGUMENT")
    http(server, "/v1/recommend", {"history": ["sku-02"]})
    http(server, "/v1/recommend", {"history": [""]})
    assert (count("OK"), count("INVALID_ARGUMENT")) == (ok + 1, bad + 1)


def test_status_mapping_and_timeout_parsing() -> None:
    assert HTTP_STATUS[grpc.StatusCode.RESOURCE_EXHAUSTED] == 429
    assert HTTP_STATUS[grpc.StatusCode.UNAVAILABLE] == 503
    assert HTTP_STATUS[grpc.StatusCode.FAILED_PRECONDITION] == 400
    assert len(HTTP_STATUS) == len(grpc.StatusCode)
    assert parse_grpc_timeout("2S") == 2.0 and parse_grpc_timeout("1500m") == 1.5
    with pytest.raises(ValueError, match="Grpc-Timeout"):
        parse_grpc_timeout("123456789S")


def test_over_the_concurrent_cap_is_429(model_root: Path) -> None:
    gate = Gate()
    srv = start_server(
        model_root, port=0, http_port=0, poll_seconds=0, max_concurrent=1, batch_hook=gate
    )
    try:
        with ThreadPoolExecutor(1) as pool:
            # Held in scoring (the batcher runs the hook before each batch).
            held = pool.submit(http, srv, "/v1/recommend", {"history": ["sku-01"]}, None)
            assert gate.entered.wait(10)
            status, answer = http(srv, "/v1/recommend", {"history": ["sku-02"]}, token=None)
            assert (status, answer["code"]) == (429, 8)
            gate.release.set()
            assert held.result(10)[0] == 200
        assert http(srv, "/v1/model", token=None)[0] == 200  # recovered
    finally:
        gate.release.set()
        srv.stop(grace=0)
