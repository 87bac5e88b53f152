"""Server-side user history: events in (``RecordEvents``), histories out (``Recommend``).

:class:`UserHistory` sits between the servicers and an
:class:`~sasrec.serving.event_store.EventStore`: it checks a
``RecordEventsRequest`` field by field, stamps events without a time, and
puts a user's stored events before the history a ``Recommend`` call sends.
Plain Python on protobuf messages, shared by both front ends; the store calls
block, so the Python front end runs them on a thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sasrec.serving.domain import Limits
from sasrec.serving.errors import FieldViolation, InvalidRequestError
from sasrec.serving.event_store import (
    DEFAULT_MAX_EVENTS_PER_CALL,
    EventStore,
    EventStoreError,
    StoredEvent,
)
from sasrec.serving.v1 import recommender_pb2 as pb

# Longest user id, item id or event type accepted (bytes of UTF-8 text are not counted).
MAX_ID_LENGTH = 256
# How far in the future an event's time may be (clock skew between machines).
MAX_FUTURE_SECONDS = 300.0
_SEPARATOR = "\x1f"  # the Redis store's field separator


class NoEventStoreError(RuntimeError):
    """RecordEvents on a server that keeps no events (FAILED_PRECONDITION)."""


class UserHistory:
    """Records users' events and merges their stored history into requests.

    Args:
        store: Where the events live.
        max_events_per_call: Most events in one ``RecordEvents`` call.
        clock: Unix seconds now (tests pass a fixed clock).

    Example:
        >>> from sasrec.serving.sqlite_event_store import SqliteEventStore
        >>> import tempfile, os
        >>> store = SqliteEventStore(os.path.join(tempfile.mkdtemp(), "ev.db"))
        >>> history = UserHistory(store, clock=lambda: 1e9)
        >>> history.record(pb.RecordEventsRequest(events=[pb.Event(user_id="u", item_id="a")]))
        1
        >>> request, stored = history.merge(pb.RecommendRequest(user_id="u", history=["b"]), 1000)
        >>> list(request.history), stored
        (['a', 'b'], 1)
    """

    def __init__(
        self,
        store: EventStore,
        max_events_per_call: int = DEFAULT_MAX_EVENTS_PER_CALL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.max_events_per_call = max_events_per_call
        self._clock = clock

    def record(self, request: pb.RecordEventsRequest) -> int:
        """Checks and stores the events; returns how many were kept.

        Raises:
            InvalidRequestError: Too many events, or any event invalid (every
                violation listed, as ``events[i].field``).
            EventStoreError: The store failed; nothing is acknowledged.
        """
        (answer,) = self.record_many([request])
        if isinstance(answer, Exception):
            raise answer
        return answer

    def record_many(self, requests: list[pb.RecordEventsRequest]) -> list[int | Exception]:
        """Several calls' events in one store write: one commit (and fsync) for all.

        The native front end answers the RecordEvents calls of a batch with
        it. Returns, per request, how many of its events were kept, or the
        :class:`InvalidRequestError` that refused it (its events are not
        stored; the others are). A store failure is every request's answer.
        """
        now = self._clock()
        cutoff = now - self.store.ttl_seconds
        answers: list[int | Exception] = []
        valid: list[StoredEvent] = []
        for request in requests:
            try:
                events = self.parse(request, now)
            except InvalidRequestError as err:
                answers.append(err)
                continue
            valid.extend(events)
            answers.append(sum(1 for e in events if e.time >= cutoff))
        if valid:
            try:
                self.store.append(valid, now)
            except EventStoreError as err:
                return [a if isinstance(a, Exception) else err for a in answers]
        return answers

    def parse(self, request: pb.RecordEventsRequest, now: float) -> list[StoredEvent]:
        """The request's events as :class:`StoredEvent`; raises on any invalid field."""
        cap = self.max_events_per_call
        if not request.events:
            raise InvalidRequestError([FieldViolation("events", "at least one event is needed")])
        if len(request.events) > cap:
            received = len(request.events)
            raise InvalidRequestError(
                [FieldViolation("events", f"at most {cap} events, received {received}")]
            )
        violations: list[FieldViolation] = []
        events = []
        for i, event in enumerate(request.events):
            for name in ("user_id", "item_id", "event_type"):
                problem = _id_problem(getattr(event, name), required=name != "event_type")
                if problem:
                    violations.append(FieldViolation(f"events[{i}].{name}", problem))
            if event.HasField("time"):
                at = event.time.seconds + event.time.nanos / 1e9
                if at > now + MAX_FUTURE_SECONDS:
                    violations.append(
                        FieldViolation(
                            f"events[{i}].time",
                            f"more than {MAX_FUTURE_SECONDS:.0f} s in the future"
                            f" ({event.time.ToJsonString()})",
                        )
                    )
            else:
                at = now
            events.append(StoredEvent(event.user_id, event.item_id, at, event.event_type))
        if violations:
            raise InvalidRequestError(violations)
        return events

    def merge(
        self, request: pb.RecommendRequest, max_history: int
    ) -> tuple[pb.RecommendRequest, int]:
        """The request with the user's stored items before its history, and their count.

        A request without ``user_id`` is returned as it is. The merged history
        is cut to its ``max_history`` most recent items (``Limits.max_history``),
        so only a request whose own history is over the cap fails the
        predictor's checks; stored items cut off are not counted.

        Raises:
            InvalidRequestError: The user id is too long or holds a separator.
            EventStoreError: The store failed.
        """
        if not request.user_id:
            return request, 0
        problem = _id_problem(request.user_id, required=True)
        if problem:
            raise InvalidRequestError([FieldViolation("user_id", problem)])
        stored = self.store.history(request.user_id, self._clock())
        if len(request.history) > max_history:
            return request, 0  # refused by the predictor's checks, history named
        stored = stored[max(0, len(stored) + len(request.history) - max_history) :]
        if not stored:
            return request, 0
        merged = pb.RecommendRequest()
        merged.CopyFrom(request)
        del merged.history[:]
        merged.history.extend(stored)
        merged.history.extend(request.history)
        return merged, len(stored)


def _id_problem(value: str, required: bool) -> str | None:
    if not value:
        return "must not be empty" if required else None
    if len(value) > MAX_ID_LENGTH:
        return f"at most {MAX_ID_LENGTH} characters, received {len(value)}"
    if _SEPARATOR in value:
        return "must not contain the control character U+001F"
    return None


def merge_batch(
    history: UserHistory, request: pb.RecommendBatchRequest, limits: Limits
) -> tuple[pb.RecommendBatchRequest, list[int]]:
    """:meth:`UserHistory.merge` for each request of a ``RecommendBatch`` call.

    Returns the merged batch and each request's count of stored items. A
    batch over ``max_batch_requests`` is returned as it is (the batch checks
    refuse it).

    Raises:
        InvalidRequestError: Any invalid ``user_id`` (fields ``requests[i].user_id``).
    """
    if len(request.requests) > limits.max_batch_requests:
        return request, []
    merged = pb.RecommendBatchRequest()
    counts = []
    violations: list[FieldViolation] = []
    for i, one in enumerate(request.requests):
        try:
            message, count = history.merge(one, limits.max_history)
        except InvalidRequestError as err:
            violations.extend(err.prefixed(f"requests[{i}].").violations)
            message, count = one, 0
        merged.requests.append(message)
        counts.append(count)
    if violations:
        raise InvalidRequestError(violations)
    return merged, counts
