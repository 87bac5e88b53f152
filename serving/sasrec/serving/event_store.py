"""The event store protocol: where the server keeps each user's recent events.

Two stores implement it: :class:`~sasrec.serving.sqlite_event_store.SqliteEventStore`
(embedded, one file, no server) and
:class:`~sasrec.serving.redis_event_store.RedisEventStore` (shared by a fleet
of replicas). :func:`open_event_store` picks one from a location string, the
``sasrec serve --event-store`` value.

Both keep the same things in the same order: per user, events ordered by
time (ties by item id, then event type), the same event stored once, at most
``capacity`` of the most recent, none older than the retention period.
Every method blocks (disk or network); the servers call them off the event
loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

# The default retention: events older than this are dropped (30 days).
DEFAULT_TTL_SECONDS = 30 * 24 * 3600.0
# Events kept per user: a model reads at most its max_len (50 by default) anyway.
DEFAULT_CAPACITY = 50
# Most events in one RecordEvents call.
DEFAULT_MAX_EVENTS_PER_CALL = 1000


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event of a user, as stored.

    Args:
        user_id: The user.
        item_id: The item (the model's raw string id).
        time: Unix seconds.
        event_type: Optional kind (``""`` when not given).

    Example:
        >>> StoredEvent("u1", "sku-1", 1_700_000_000.0, "view").item_id
        'sku-1'
    """

    user_id: str
    item_id: str
    time: float
    event_type: str = ""


class EventStoreError(OSError):
    """The store could not be opened, reached or written (a call gets UNAVAILABLE)."""


class EventStore(Protocol):
    """Keeps each user's most recent events.

    Example:
        >>> store = open_event_store("sqlite:/tmp/events.db")  # doctest: +SKIP
        >>> store.append([StoredEvent("u1", "sku-1", 1e9)], now=1e9)  # doctest: +SKIP
        1
        >>> store.history("u1", now=1e9)  # doctest: +SKIP
        ['sku-1']
    """

    capacity: int
    ttl_seconds: float
    # True when a read is local and takes well under a millisecond (SQLite): the
    # Python front end then reads on its event loop instead of a worker thread,
    # whose two hand-offs cost more than the read.
    fast_reads: bool

    def append(self, events: Sequence[StoredEvent], now: float) -> int:
        """Stores ``events`` durably before returning; returns how many were kept.

        Events older than ``now - ttl_seconds`` are not stored (nor counted);
        each user keeps its ``capacity`` most recent events.
        """
        ...

    def history(self, user_id: str, now: float) -> list[str]:
        """The user's stored item ids within the retention period, oldest first."""
        ...

    def close(self) -> None:
        """Releases connections (events already acknowledged stay stored)."""
        ...


def open_event_store(
    location: str,
    capacity: int = DEFAULT_CAPACITY,
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
) -> EventStore:
    """Opens the store a location names.

    Args:
        location: ``sqlite:PATH`` (a file, created if absent) or
            ``redis://HOST:PORT[/DB]`` (``rediss://`` for TLS).
        capacity: Events kept per user.
        ttl_seconds: Retention period.

    Raises:
        ValueError: An unknown scheme, an empty path, or bad numbers.
        EventStoreError: The store cannot be opened (or Redis is not durable).

    Example:
        >>> open_event_store("memcached://x")
        Traceback (most recent call last):
        ...
        ValueError: event store must be sqlite:PATH or redis://HOST:PORT[/DB], received 'memcached://x'
    """
    if capacity < 1:
        raise ValueError(f"event store capacity must be >= 1, received {capacity}")
    if not ttl_seconds > 0:
        raise ValueError(f"event store ttl_seconds must be > 0, received {ttl_seconds}")
    if location.startswith("sqlite:"):
        path = location[len("sqlite:") :]
        if not path:
            raise ValueError("event store sqlite: needs a file path, e.g. sqlite:events.db")
        from sasrec.serving.sqlite_event_store import SqliteEventStore

        return SqliteEventStore(path, capacity=capacity, ttl_seconds=ttl_seconds)
    if location.startswith(("redis://", "rediss://", "unix://")):
        from sasrec.serving.redis_event_store import RedisEventStore

        return RedisEventStore(location, capacity=capacity, ttl_seconds=ttl_seconds)
    raise ValueError(
        f"event store must be sqlite:PATH or redis://HOST:PORT[/DB], received {location!r}"
    )
