"""Server-side history on real servers: RecordEvents, then Recommend by user id alone.

Answers by user id are compared with the in-process API given the stored
history by hand. Both front ends, the embedded store and a real Redis shared
by two replicas; the slow tests kill -9 a ``sasrec serve`` process (and
Redis) and check that every acknowledged event is back after a restart.
"""

# ruff: noqa: F811 - pytest fixtures imported from test_server are parameters here
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from sasrec.cli.main import main
from sasrec.serving import RecommenderClient, RecommenderError, start_server
from sasrec.serving.native_frontend import native_frontend_available
from sasrec.serving.v1 import recommender_pb2 as pb
from sasrec.serving.v1 import recommender_pb2_grpc
from tests.serving.redis_server import RedisServer, free_port, require_redis

# test_server's module fixtures (a model version and its in-process API), used by name.
from tests.serving.test_server import FRONTENDS, assert_same, local, model_root  # noqa: F401

CODE = grpc.StatusCode
NOW = time.time()


@pytest.fixture(scope="module", params=FRONTENDS)
def server(model_root: Path, tmp_path_factory, request: pytest.FixtureRequest) -> Iterator:
    events = tmp_path_factory.mktemp("events") / "events.db"
    srv = start_server(
        model_root,
        port=0,
        max_batch_size=8,
        poll_seconds=0,
        frontend=request.param,
        event_store=f"sqlite:{events}",
        event_ttl_seconds=3600,
        stored_events=4,
        max_events_per_call=10,
    )
    yield srv
    srv.stop(grace=1)


@pytest.fixture(scope="module")
def client(server) -> Iterator[RecommenderClient]:
    with RecommenderClient(server.address, timeout=10, retries=0) as c:
        yield c


def stub(server):
    channel = grpc.insecure_channel(server.address)
    return channel, recommender_pb2_grpc.RecommenderStub(channel)


def test_recommend_by_user_id_reads_the_recorded_events(client, server, local) -> None:
    events = [("alice", "sku-03", NOW - 30), ("alice", "sku-01", NOW - 50, "view")]
    events += [("alice", "sku-02", NOW - 40, "cart"), ("bob", "sku-09", NOW - 1)]
    assert client.record_events(events) == 4
    # Stored in time order, whatever the order of the call.
    assert_same(
        client.recommend([], k=5, user_id="alice"),
        local.recommend(["sku-01", "sku-02", "sku-03"], k=5),
    )
    # The request's history is the most recent part.
    assert_same(
        client.recommend(["sku-20"], k=5, user_id="alice", explain=True),
        local.recommend(["sku-01", "sku-02", "sku-03", "sku-20"], k=5, explain=True),
    )
    assert_same(
        client.recommend(["sku-05"], k=3, user_id="carol"), local.recommend(["sku-05"], k=3)
    )
    channel, raw = stub(server)
    with channel:
        answer = raw.Recommend(pb.RecommendRequest(user_id="alice", k=2), timeout=10)
        assert answer.stored_history_length == 3
        batch = raw.RecommendBatch(
            pb.RecommendBatchRequest(
                requests=[
                    pb.RecommendRequest(user_id="bob", k=3),
                    pb.RecommendRequest(history=["sku-04"], k=3),
                ]
            ),
            timeout=10,
        )
    assert [r.stored_history_length for r in batch.responses] == [1, 0]
    want = local.recommend(["sku-09"], k=3)
    assert [i.item_id for i in batch.responses[0].items] == want.item_ids


def test_capacity_retries_and_retention(client, local) -> None:
    items = [f"sku-{i:02d}" for i in range(10, 16)]
    first = [("dave", item, NOW - 60 + i) for i, item in enumerate(items)]
    assert client.record_events(first) == 6
    assert client.record_events(first) == 6  # a retry stores nothing twice
    # stored_events=4: the four most recent.
    assert_same(client.recommend([], k=4, user_id="dave"), local.recommend(items[-4:], k=4))
    # Past the one-hour retention: acknowledged as not kept.
    assert client.record_events([("dave", "sku-30", NOW - 7200)]) == 0
    assert_same(client.recommend([], k=4, user_id="dave"), local.recommend(items[-4:], k=4))


def test_bad_events_are_invalid_argument_naming_the_field(client) -> None:
    bad = [
        ("erin", "sku-01"),
        ("", "sku-01"),
        ("erin", "", time.time() + 3600),
        ("erin", "x" * 300, None, "view"),
    ]
    with pytest.raises(RecommenderError) as err:
        client.record_events(bad)
    assert err.value.code == CODE.INVALID_ARGUMENT
    assert [v.field for v in err.value.field_violations] == [
        "events[1].user_id",
        "events[2].item_id",
        "events[2].time",
        "events[3].item_id",
    ]
    with pytest.raises(RecommenderError) as err:
        client.record_events([("erin", "sku-01")] * 11)
    assert [v.field for v in err.value.field_violations] == ["events"]
    with pytest.raises(RecommenderError) as err:
        client.record_events([])
    assert err.value.code == CODE.INVALID_ARGUMENT
    with pytest.raises(RecommenderError) as err:
        client.recommend([], user_id="u" * 300)
    assert [v.field for v in err.value.field_violations] == ["user_id"]
    assert client.recommend([], k=3, user_id="erin").fallback  # nothing of erin's stored


def test_a_server_without_a_store_refuses_record_events(model_root: Path, local) -> None:
    with (
        start_server(model_root, port=0, poll_seconds=0) as srv,
        RecommenderClient(srv.address, timeout=10, retries=0) as client,
    ):
        with pytest.raises(RecommenderError) as err:
            client.record_events([("alice", "sku-01")])
        assert err.value.code == CODE.FAILED_PRECONDITION
        assert "--event-store" in err.value.message
        # user_id is only logged there, as before.
        assert_same(
            client.recommend(["sku-01"], k=3, user_id="alice"), local.recommend(["sku-01"], k=3)
        )


def test_two_replicas_share_redis(model_root: Path, tmp_path: Path, local) -> None:
    """An event recorded on one replica changes the other's answer (python + native)."""
    require_redis()
    with RedisServer(tmp_path / "redis") as redis:
        servers = [
            start_server(model_root, port=0, poll_seconds=0, frontend=f, event_store=redis.url)
            for f in ("python", "native" if native_frontend_available() else "python")
        ]
        try:
            one, two = (RecommenderClient(s.address, timeout=10, retries=0) for s in servers)
            before = two.recommend(["sku-07"], k=5, user_id="frank")
            assert_same(before, local.recommend(["sku-07"], k=5))
            assert one.record_events([("frank", "sku-11", NOW - 5), ("frank", "sku-12", NOW)]) == 2
            after = two.recommend(["sku-07"], k=5, user_id="frank")
            assert after.item_ids != before.item_ids
            assert_same(after, local.recommend(["sku-11", "sku-12", "sku-07"], k=5))
            redis.kill()  # the store is gone: UNAVAILABLE, nothing acknowledged
            with pytest.raises(RecommenderError) as err:
                one.record_events([("frank", "sku-13")])
            assert err.value.code == CODE.UNAVAILABLE and redis.url in err.value.message
            with pytest.raises(RecommenderError) as err:
                two.recommend([], user_id="frank")
            assert err.value.code == CODE.UNAVAILABLE
            assert len(two.recommend(["sku-07"], k=5).items) == 5  # no user id: still served
            one.close()
            two.close()
        finally:
            for s in servers:
                s.stop(grace=1)


def test_cli_bad_event_store_is_exit_2(model_root: Path, capsys) -> None:
    code = main(["serve", "--model", str(model_root), "--port", "0", "--event-store", "pg://x"])
    assert code == 2
    assert "sqlite:PATH or redis://" in capsys.readouterr().err


def serve(model_root: Path, port: int, store: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "sasrec"),
            "serve",
            "--model",
            str(model_root),
            "--port",
            str(port),
            "--poll-seconds",
            "0",
            "--event-store",
            store,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_serving(address: str, timeout: float = 120.0) -> RecommenderClient:
    client = RecommenderClient(address, timeout=5, retries=0)
    client.wait_until_serving(timeout)
    return client


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_kill_9_and_restart_loses_no_acknowledged_event(
    model_root: Path, tmp_path: Path, local, kind: str
) -> None:
    redis = None
    if kind == "redis":
        require_redis()
        redis = RedisServer(tmp_path / "redis").start()
        store = redis.url
    else:
        store = f"sqlite:{tmp_path / 'events.db'}"
    port = free_port()
    address = f"127.0.0.1:{port}"
    events = [("gina", f"sku-{i:02d}", NOW - 100 + i) for i in range(1, 5)]
    try:
        proc = serve(model_root, port, store)
        try:
            client = wait_serving(address)
            for event in events:
                assert client.record_events([event]) == 1
            client.close()
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if redis is not None:
            redis.kill()
            redis.start()
        proc = serve(model_root, port, store)
        try:
            client = wait_serving(address)
            got = client.recommend([], k=5, user_id="gina")
            assert_same(got, local.recommend([e[1] for e in events], k=5))
            client.close()
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    finally:
        if redis is not None:
            redis.kill()


def test_concurrent_record_events_calls(client, server, local) -> None:
    """32 callers at once (the native front end writes a batch's calls in one commit)."""
    from concurrent.futures import ThreadPoolExecutor

    def call(i: int):
        if i == 7:  # one bad call among them: refused alone
            events = [(f"par-{i}", "")]
        else:
            events = [(f"par-{i}", "sku-21", NOW - 3), (f"par-{i}", f"sku-{i + 1:02d}", NOW - 2)]
        try:
            return client.record_events(events)
        except RecommenderError as err:
            return err.code

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(call, range(32)))
    assert answers == [CODE.INVALID_ARGUMENT if i == 7 else 2 for i in range(32)]
    for i in (0, 13, 31):
        want = local.recommend(["sku-21", f"sku-{i + 1:02d}"], k=3)
        assert_same(client.recommend([], k=3, user_id=f"par-{i}"), want)
    assert client.recommend([], k=3, user_id="par-7").fallback


def test_cli_recommend_by_user_id(client, server, local, capsys) -> None:
    client.record_events([("cli-user", "sku-05", NOW - 2), ("cli-user", "sku-06", NOW - 1)])
    args = ["recommend", "--server", server.address, "--user-id", "cli-user", "--k", "4"]
    assert main([*args, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert [i["item_id"] for i in answer["items"]] == local.recommend(
        ["sku-05", "sku-06"], k=4
    ).item_ids
    assert main(["recommend", "--server", server.address]) == 2
    assert "--history, --user-id or both" in capsys.readouterr().err
