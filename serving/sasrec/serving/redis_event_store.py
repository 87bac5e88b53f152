"""The shared event store: Redis, for replicas that must see the same events.

Each user is one sorted set, ``sasrec:events:<user_id>``: score = event time,
member = ``item_id \\x1f event_type \\x1f time``, so the same event recorded
twice is stored once and ties in time are ordered by item id, as in the
SQLite store. One ``MULTI``/``EXEC`` per call adds the events, drops those
past the retention period and beyond the capacity, and sets the key to
expire with its newest event.

Durability: an event is acknowledged only by a Redis that writes an
append-only file with an fsync per write (``appendonly yes``,
``appendfsync always``); the store checks that when it connects and refuses
any other setting, so a ``kill -9`` of Redis loses nothing acknowledged.
"""

from __future__ import annotations

from collections.abc import Sequence

from sasrec.serving.event_store import (
    DEFAULT_CAPACITY,
    DEFAULT_TTL_SECONDS,
    EventStoreError,
    StoredEvent,
)

KEY_PREFIX = "sasrec:events:"
_SEP = "\x1f"  # unit separator: never in a valid id (ids are checked for it)


class RedisEventStore:
    """Users' recent events in Redis, one sorted set per user.

    Args:
        url: ``redis://HOST:PORT[/DB]`` (``rediss://`` TLS, ``unix://PATH``).
        capacity: Events kept per user (the most recent).
        ttl_seconds: Events older than this are dropped.
        timeout: Seconds to connect and per command.

    Raises:
        EventStoreError: Redis unreachable, or not configured to fsync every write.

    Example:
        >>> store = RedisEventStore("redis://127.0.0.1:6379/0")  # doctest: +SKIP
        >>> store.append([StoredEvent("u", "a", 1.0)], now=1.0)  # doctest: +SKIP
        1
    """

    fast_reads = False  # a network round trip: read on a worker thread

    def __init__(
        self,
        url: str,
        capacity: int = DEFAULT_CAPACITY,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        timeout: float = 5.0,
    ) -> None:
        try:
            import redis
        except ImportError as err:
            raise EventStoreError(
                "the Redis event store needs the redis package: pip install 'sasrec[redis]'"
            ) from err
        self.url = url
        self.capacity = capacity
        self.ttl_seconds = ttl_seconds
        self._errors = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
            health_check_interval=30,
        )
        try:
            config = self._client.config_get("append*")
        except self._errors as err:
            raise EventStoreError(f"cannot reach event store {url}: {err}") from None
        if config.get("appendonly") != "yes" or config.get("appendfsync") != "always":
            raise EventStoreError(
                f"event store {url} is not durable: it has appendonly={config.get('appendonly')}"
                f" appendfsync={config.get('appendfsync')}; start Redis with --appendonly yes"
                " --appendfsync always (docs/serving.md, Server-side history)"
            )

    def append(self, events: Sequence[StoredEvent], now: float) -> int:
        cutoff = now - self.ttl_seconds
        by_user: dict[str, dict[str, float]] = {}
        for e in events:
            if e.time >= cutoff:
                member = f"{e.item_id}{_SEP}{e.event_type}{_SEP}{e.time!r}"
                by_user.setdefault(e.user_id, {})[member] = e.time
        if not by_user:
            return 0
        pipe = self._client.pipeline(transaction=True)
        for user_id, members in by_user.items():
            key = KEY_PREFIX + user_id
            pipe.zadd(key, members)
            pipe.zremrangebyscore(key, "-inf", f"({cutoff!r}")
            pipe.zremrangebyrank(key, 0, -self.capacity - 1)
            # The key outlives its newest event by the retention period, no more:
            # NX sets it on a new key, GT only ever lengthens it (events may come late).
            # Relative to ``now``, the caller's clock (never in the past: see the cutoff).
            expire_in = int(max(members.values()) + self.ttl_seconds - now) + 1
            pipe.expire(key, expire_in, nx=True)
            pipe.expire(key, expire_in, gt=True)
        try:
            pipe.execute()
        except self._errors as err:
            raise EventStoreError(f"event store {self.url}: {err}") from None
        return sum(len(members) for members in by_user.values())

    def history(self, user_id: str, now: float) -> list[str]:
        try:
            members = self._client.zrangebyscore(
                KEY_PREFIX + user_id, repr(now - self.ttl_seconds), "+inf"
            )
        except self._errors as err:
            raise EventStoreError(f"event store {self.url}: {err}") from None
        return [m.split(_SEP, 1)[0] for m in members[-self.capacity :]]

    def close(self) -> None:
        self._client.close()
