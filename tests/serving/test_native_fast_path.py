"""The native front end's fast path answers exactly as its Python path does.

Two real native servers serve the same model version on loopback ports, one
with the fast path (C++ parses plain Recommend calls and builds their
responses around one engine call per batch) and one without (every call
through Python). Each request is sent to both and the responses are compared
field by field: plain requests (fast), and requests the fast path hands to
Python (unknown ids, lists, explain, bad k), alone and mixed in concurrent
batches. Skipped when the native front end is not built (``make native``).
"""

from __future__ import annotations

import os
import socket
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import keras
import pytest

from sasrec.artifact import save_model_dir
from sasrec.models import SASRec
from sasrec.serving import start_server
from sasrec.serving.native_frontend import load_extension, native_frontend_available
from sasrec.serving.v1 import recommender_pb2 as pb
from sasrec.serving.v1 import recommender_pb2_grpc as pb_grpc
from sasrec.vocabulary import ItemVocabulary

pytestmark = pytest.mark.skipif(
    not native_frontend_available() and os.environ.get("SASREC_REQUIRE_NATIVE") != "1",
    reason="native front end not built (make native)",
)

NUM_ITEMS = 30
MAX_LEN = 5
ITEMS = [f"p{i}" for i in range(1, NUM_ITEMS + 1)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keras.utils.set_random_seed(3)
    model = SASRec(
        num_items=NUM_ITEMS, max_len=MAX_LEN, hidden_dim=8, num_blocks=1, num_heads=1, dropout=0.0
    )
    path = tmp_path_factory.mktemp("fast-path") / "1"
    save_model_dir(path, model, ItemVocabulary(ITEMS))
    return path


@pytest.fixture(scope="module")
def servers(model_dir: Path) -> Iterator[dict]:
    """``{"fast": (server, stub), "python": (server, stub)}``, both native."""
    out = {}
    channels = []
    try:
        for name, fast in (("fast", True), ("python", False)):
            srv = start_server(
                model_dir,
                port=0,
                max_batch_size=8,
                poll_seconds=0,
                metrics_port=free_port(),
                frontend="native",
                native_fast_path=fast,
            )
            channel = grpc.insecure_channel(srv.address)
            channels.append(channel)
            out[name] = (srv, pb_grpc.RecommenderStub(channel))
        yield out
    finally:
        for channel in channels:
            channel.close()
        for srv, _ in out.values():
            srv.stop(grace=1)


def call(stub, request: pb.RecommendRequest) -> tuple[str, pb.RecommendResponse | str]:
    """``("OK", response)`` or ``(code name, details)``."""
    try:
        return "OK", stub.Recommend(request, timeout=10)
    except grpc.RpcError as err:
        return err.code().name, err.details()


def ok_calls(server) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics").read()
    for line in text.decode().splitlines():
        if line.startswith('sasrec_grpc_requests_total{code="OK",method="Recommend"}'):
            return float(line.split()[-1])
    return 0.0


def assert_same_answers(got: list[tuple], want: list[tuple]) -> None:
    """Same codes and fields; scores and weights to float32 rounding (batches of other sizes)."""
    assert [code for code, _ in got] == [code for code, _ in want]
    for (code, a), (_, b) in zip(got, want):
        if code != "OK":
            assert a == b
            continue
        assert [i.item_id for i in a.items] == [i.item_id for i in b.items]
        assert [i.score for i in a.items] == pytest.approx([i.score for i in b.items], rel=1e-5)
        assert [e.item_id for e in a.explanation] == [e.item_id for e in b.explanation]
        assert [e.weight for e in a.explanation] == pytest.approx(
            [e.weight for e in b.explanation], rel=1e-5
        )
        for message in (a, b):
            message.ClearField("items")
            message.ClearField("explanation")
        assert a == b


# Plain requests: the fast path answers them.
PLAIN = [
    pb.RecommendRequest(history=["p1", "p2", "p3"], k=4),
    pb.RecommendRequest(history=["p7"]),  # k 0: the default 10
    pb.RecommendRequest(history=["p2", "p2", "p9"], k=5),  # a repeated item
    pb.RecommendRequest(history=["p4", "p5"], k=3, include_history=True),
    pb.RecommendRequest(history=["p4", "p5"], k=1000),  # k over the catalogue: all but history
    # Longer than the model's window: the last MAX_LEN items are read.
    pb.RecommendRequest(history=[f"p{i}" for i in range(1, 12)], k=6, include_history=True),
    pb.RecommendRequest(history=["p30"], k=1),
]
# Requests the fast path leaves to Python (each for one of its rules).
SLOW = [
    pb.RecommendRequest(history=["p1", "nope"], k=4),  # unknown id: reported
    pb.RecommendRequest(history=["nope"], k=4),  # none known: popularity fallback
    pb.RecommendRequest(history=[], k=4),
    pb.RecommendRequest(history=["p1", ""], k=4),  # empty id: INVALID_ARGUMENT
    pb.RecommendRequest(history=["p1"], k=1001),  # over max_k: INVALID_ARGUMENT
    pb.RecommendRequest(history=["p1"], k=-1),
    pb.RecommendRequest(history=["p1", "p2"], k=5, explain=True),
    pb.RecommendRequest(history=["p1", "p2"], k=5, allowed_items=["p3", "p4", "p5"]),
    pb.RecommendRequest(history=["p1", "p2"], k=5, excluded_items=["p3"]),
    pb.RecommendRequest(history=["p1"], k=5, model_version="1"),
    pb.RecommendRequest(history=["p1"], k=5, model_version="7"),  # not loaded: NOT_FOUND
    # Longer than the window, history excluded: the older items are denied.
    pb.RecommendRequest(history=[f"p{i}" for i in range(1, 12)], k=8),
]


@pytest.mark.parametrize("request_index", range(len(PLAIN) + len(SLOW)))
def test_same_answer_with_and_without_the_fast_path(servers, request_index: int) -> None:
    request = (PLAIN + SLOW)[request_index]
    got = call(servers["fast"][1], request)
    want = call(servers["python"][1], request)
    assert got == want


def test_plain_requests_answer_as_expected(servers) -> None:
    # Hand-checkable properties, beyond agreeing with the Python path.
    code, answer = call(servers["fast"][1], pb.RecommendRequest(history=["p4", "p5"], k=1000))
    assert code == "OK"
    ids = [item.item_id for item in answer.items]
    assert len(ids) == NUM_ITEMS - 2 and not {"p4", "p5"} & set(ids)
    scores = [item.score for item in answer.items]
    assert scores == sorted(scores, reverse=True)
    assert answer.model_version == "1" and not answer.fallback and not answer.unknown_items
    code, answer = call(servers["fast"][1], pb.RecommendRequest(history=["p7"]))
    assert code == "OK" and len(answer.items) == 10


def test_fast_and_python_calls_mixed_in_batches(servers) -> None:
    # 8 callers at once: batches hold fast-path and Python-path calls together.
    requests = (PLAIN + SLOW) * 6
    fast_stub, python_stub = servers["fast"][1], servers["python"][1]
    before = ok_calls(servers["fast"][0])
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda r: call(fast_stub, r), requests))
    want = [call(python_stub, r) for r in requests]
    assert_same_answers(got, want)
    # Every OK answer is counted, whichever path built it.
    assert ok_calls(servers["fast"][0]) - before == sum(code == "OK" for code, _ in got)


def test_finish_fast_refuses_arrays_of_the_wrong_shape() -> None:
    import numpy as np

    frontend = load_extension().Frontend("127.0.0.1:0", 4)
    frontend.set_fast_table(1, ITEMS, "1", "", MAX_LEN, 1000, 1000, 10)
    ids = np.zeros((2, 3), dtype=np.int32)
    scores = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="must be"):
        frontend.finish_fast(1, [1], ids, scores, [3])  # 1 call, 2 rows
    with pytest.raises(ValueError, match="changed"):
        frontend.finish_fast(2, [1, 2], ids, scores, [3, 3])  # another table's generation
    # Calls that are not waiting are skipped: none answered.
    assert frontend.finish_fast(1, [1, 2], ids, scores, [3, 3]) == 0
