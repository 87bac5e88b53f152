"""The event stores on real engines: an SQLite file and a real redis-server.

Both stores get the same calls and must keep the same histories; each
survives ``kill -9`` (of the writing process for SQLite, of Redis itself)
with every acknowledged event.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sasrec.serving.event_store import EventStoreError, StoredEvent, open_event_store
from sasrec.serving.redis_event_store import RedisEventStore
from sasrec.serving.sqlite_event_store import SqliteEventStore
from tests.serving.redis_server import RedisServer, require_redis


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    require_redis()
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


def make_store(kind: str, tmp_path: Path, redis_server, capacity: int = 3, ttl: float = 10.0):
    if kind == "sqlite":
        return SqliteEventStore(tmp_path / "events.db", capacity=capacity, ttl_seconds=ttl)
    server = redis_server()
    store = RedisEventStore(server.url, capacity=capacity, ttl_seconds=ttl)
    store._client.flushdb()
    return store


@pytest.fixture(params=["sqlite", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def lazy_redis(request: pytest.FixtureRequest):
    """The module's Redis, started only by the tests that ask for it."""
    return lambda: request.getfixturevalue("redis_server")


def ev(user: str, item: str, at: float, kind: str = "") -> StoredEvent:
    return StoredEvent(user, item, at, kind)


def test_keeps_the_most_recent_capacity_in_time_order(kind, tmp_path, lazy_redis) -> None:
    store = make_store(kind, tmp_path, lazy_redis, capacity=3)
    events = [ev("u", "e5", 105), ev("u", "e1", 101), ev("u", "e3", 103), ev("u", "e2", 102)]
    assert store.append(events, now=105) == 4
    assert store.history("u", now=105) == ["e2", "e3", "e5"]
    assert store.append([ev("u", "e4", 104)], now=105) == 1  # late, but recent enough
    assert store.history("u", now=105) == ["e3", "e4", "e5"]
    assert store.history("nobody", now=105) == []
    store.close()


def test_retention_drops_old_events(kind, tmp_path, lazy_redis) -> None:
    store = make_store(kind, tmp_path, lazy_redis, capacity=5, ttl=10.0)
    # 85 is past the 10 s retention at now=100: not stored, not counted.
    assert store.append([ev("u", "old", 85), ev("u", "a", 95), ev("u", "b", 99)], now=100) == 2
    assert store.history("u", now=100) == ["a", "b"]
    assert store.history("u", now=106) == ["b"]  # a (95) is now 11 s old
    assert store.history("u", now=110) == []
    store.close()


def test_same_event_once_ties_by_item_users_apart(kind, tmp_path, lazy_redis) -> None:
    store = make_store(kind, tmp_path, lazy_redis, capacity=5)
    batch = [ev("u", "b", 100), ev("u", "a", 100, "cart"), ev("v", "z", 99)]
    store.append(batch, now=100)
    store.append(batch, now=100)  # a retried call
    assert store.history("u", now=100) == ["a", "b"]
    assert store.history("v", now=100) == ["z"]
    store.append([ev("u", "a", 100, "view")], now=100)  # another type: another event
    assert store.history("u", now=100) == ["a", "a", "b"]
    store.close()


def test_sqlite_and_redis_keep_the_same_histories(tmp_path, redis_server) -> None:
    rng = random.Random(7)
    sqlite = SqliteEventStore(tmp_path / "events.db", capacity=4, ttl_seconds=50)
    redis = RedisEventStore(redis_server.url, capacity=4, ttl_seconds=50)
    redis._client.flushdb()
    users = [f"user-{i}" for i in range(6)]
    now = 1_000.0
    for _ in range(40):
        now += rng.uniform(0, 5)
        batch = [
            ev(
                rng.choice(users),
                f"sku-{rng.randrange(8)}",
                now - rng.uniform(0, 70),
                rng.choice(["", "view", "cart"]),
            )
            for _ in range(rng.randrange(1, 6))
        ]
        assert sqlite.append(batch, now) == redis.append(batch, now)
    for user in users:
        want = sqlite.history(user, now)
        assert redis.history(user, now) == want
        assert len(want) <= 4
    assert any(sqlite.history(user, now) for user in users)
    sqlite.close()
    redis.close()


def test_redis_without_fsync_is_refused(tmp_path) -> None:
    with (
        RedisServer(tmp_path / "redis", durable=False) as server,
        pytest.raises(EventStoreError, match="appendfsync always"),
    ):
        RedisEventStore(server.url)


def test_open_event_store_names_what_is_wrong(tmp_path) -> None:
    with pytest.raises(ValueError, match="sqlite:PATH or redis://"):
        open_event_store("postgres://db")
    with pytest.raises(ValueError, match="needs a file path"):
        open_event_store("sqlite:")
    with pytest.raises(ValueError, match="capacity"):
        open_event_store(f"sqlite:{tmp_path}/e.db", capacity=0)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(EventStoreError, match="a-file"):
        open_event_store(f"sqlite:{tmp_path}/a-file/events.db")
    with pytest.raises(EventStoreError, match="cannot reach"):
        RedisEventStore("redis://127.0.0.1:1/0", timeout=1.0)
    store = open_event_store(f"sqlite:{tmp_path}/e.db", capacity=2, ttl_seconds=5)
    assert isinstance(store, SqliteEventStore) and store.capacity == 2
    store.close()


WRITER = """
import sys, time
from sasrec.serving.sqlite_event_store import SqliteEventStore
from sasrec.serving.event_store import StoredEvent
store = SqliteEventStore(sys.argv[1], capacity=10, ttl_seconds=1e9)
for i in range(5):
    store.append([StoredEvent("u", f"sku-{i}", 100.0 + i)], now=200.0)
    print(f"acked {i}", flush=True)
time.sleep(60)
"""


def test_sqlite_acknowledged_events_survive_kill_9(tmp_path) -> None:
    path = tmp_path / "events.db"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        for i in range(5):
            assert writer.stdout.readline().strip() == f"acked {i}"
    finally:
        writer.kill()  # kill -9 while it holds the database open
        writer.wait(10)
    store = SqliteEventStore(path, capacity=10, ttl_seconds=1e9)
    assert store.history("u", now=200.0) == [f"sku-{i}" for i in range(5)]
    store.close()


def test_redis_acknowledged_events_survive_kill_9(tmp_path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        store = RedisEventStore(server.url, capacity=10, ttl_seconds=1e9)
        for i in range(5):
            assert store.append([ev("u", f"sku-{i}", 100.0 + i)], now=200.0) == 1
        store.close()
        server.kill()  # kill -9: no shutdown save, only the append-only file
        server.start()
        store = RedisEventStore(server.url, capacity=10, ttl_seconds=1e9)
        assert store.history("u", now=200.0) == [f"sku-{i}" for i in range(5)]
        store.close()
    finally:
        server.kill()


def test_concurrent_appends_all_land(kind, tmp_path, lazy_redis) -> None:
    """32 threads appending at once (SQLite: grouped commits) lose and mix nothing."""
    from concurrent.futures import ThreadPoolExecutor

    store = make_store(kind, tmp_path, lazy_redis, capacity=100, ttl=1e9)

    def writer(user: int) -> int:
        return sum(
            store.append([ev(f"user-{user}", f"sku-{i}", 100.0 + i)], now=200.0) for i in range(10)
        )

    with ThreadPoolExecutor(32) as pool:
        assert list(pool.map(writer, range(32))) == [10] * 32
    for user in range(32):
        assert store.history(f"user-{user}", now=200.0) == [f"sku-{i}" for i in range(10)]
    store.close()


def test_record_many_one_write_per_group(tmp_path) -> None:
    from sasrec.serving.errors import InvalidRequestError
    from sasrec.serving.user_history import UserHistory
    from sasrec.serving.v1 import recommender_pb2 as pb

    store = SqliteEventStore(tmp_path / "events.db", capacity=10, ttl_seconds=100)
    history = UserHistory(store, clock=lambda: 1_000.0)

    def request(*events):
        message = pb.RecordEventsRequest()
        for user, item, at in events:
            event = message.events.add(user_id=user, item_id=item)
            event.time.FromSeconds(at)
        return message

    answers = history.record_many(
        [
            request(("u", "a", 950), ("u", "old", 800)),  # 800 is past the 100 s retention
            request(("v", "", 990)),
            request(("v", "b", 990)),
        ]
    )
    assert answers[0] == 1 and answers[2] == 1
    assert isinstance(answers[1], InvalidRequestError)
    assert [v.field for v in answers[1].violations] == ["events[0].item_id"]
    assert store.history("u", 1_000.0) == ["a"] and store.history("v", 1_000.0) == ["b"]
    store.close()
