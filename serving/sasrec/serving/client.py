"""Python client of the ``sasrec.v1.Recommender`` service, returning plain dataclasses."""

from __future__ import annotations

import datetime as dt
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from sasrec.serving.convert import (
    model_info_from_proto,
    recommendation_from_proto,
    request_to_proto,
)
from sasrec.serving.domain import DEFAULT_K, ModelInfo, Recommendation, RecommendationRequest
from sasrec.serving.errors import FieldViolation
from sasrec.serving.v1 import recommender_pb2 as pb
from sasrec.serving.v1 import recommender_pb2_grpc as pb_grpc

T = TypeVar("T")

TOKEN_ENV = "SASREC_AUTH_TOKEN"


class RecommenderError(Exception):
    """A call that failed with a gRPC status.

    Attributes:
        code: The ``grpc.StatusCode``.
        message: The server's message.
        field_violations: ``google.rpc.BadRequest`` details (INVALID_ARGUMENT).
    """

    def __init__(
        self, code: grpc.StatusCode, message: str, field_violations: Sequence[FieldViolation] = ()
    ) -> None:
        self.code = code
        self.message = message
        self.field_violations = tuple(field_violations)
        super().__init__(f"{code.name}: {message}")


class RecommenderClient:
    """Talks to a recommendation server; every method returns domain dataclasses.

    Calls get a deadline (``timeout``) and are retried with exponential backoff
    (with jitter) only when the server is ``UNAVAILABLE`` (not started yet,
    restarting, model not loaded); every other failure raises
    :class:`RecommenderError` at once.

    Args:
        address: ``host:port``.
        timeout: Deadline of each attempt, in seconds.
        retries: Extra attempts on UNAVAILABLE.
        backoff_seconds: First backoff; doubles up to ``max_backoff_seconds``.
        max_backoff_seconds: Backoff cap.
        token: Bearer token (default: env ``SASREC_AUTH_TOKEN`` if set).
        root_certificates: PEM CA file or bytes: use TLS and trust this CA.
        tls: Use TLS with the system's roots (implied by ``root_certificates``).
        server_name: Override the TLS host name checked (e.g. ``localhost``).
        options: Extra gRPC channel options, e.g.
            ``[("grpc.use_local_subchannel_pool", 1)]`` for a connection of
            its own (``sasrec serve --workers`` balances connections).

    Example:
        >>> with RecommenderClient("localhost:50051") as client:  # doctest: +SKIP
        ...     rec = client.recommend(["sku-1", "sku-2"], k=5)
        ...     print(rec.item_ids, rec.model_version)
    """

    def __init__(
        self,
        address: str,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        backoff_seconds: float = 0.05,
        max_backoff_seconds: float = 2.0,
        token: str | None = None,
        root_certificates: str | os.PathLike | bytes | None = None,
        tls: bool = False,
        server_name: str | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, received {timeout}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, received {retries}")
        self.address = address
        self.timeout = timeout
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        options = list(options)
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        if root_certificates is not None or tls:
            roots = root_certificates
            if roots is not None and not isinstance(roots, bytes):
                roots = Path(roots).read_bytes()
            credentials = grpc.ssl_channel_credentials(root_certificates=roots)
            self._channel = grpc.secure_channel(address, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._stub = pb_grpc.RecommenderStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def recommend(
        self,
        history: Iterable[str],
        k: int = DEFAULT_K,
        *,
        include_history: bool = False,
        allowed_items: Iterable[str] = (),
        excluded_items: Iterable[str] = (),
        user_id: str = "",
        explain: bool = False,
        timeout: float | None = None,
    ) -> Recommendation:
        """Top-``k`` next items for ``history`` (oldest first)."""
        request = pb.RecommendRequest(
            history=list(history),
            k=k,
            include_history=include_history,
            allowed_items=list(allowed_items),
            excluded_items=list(excluded_items),
            user_id=user_id,
            explain=explain,
        )
        response = self._call(self._stub.Recommend, request, timeout)
        return recommendation_from_proto(response)

    def recommend_batch(
        self, requests: Sequence[RecommendationRequest], timeout: float | None = None
    ) -> list[Recommendation]:
        """Many requests in one call; answers in request order."""
        message = pb.RecommendBatchRequest(requests=[request_to_proto(r) for r in requests])
        response = self._call(self._stub.RecommendBatch, message, timeout)
        return [recommendation_from_proto(r) for r in response.responses]

    def record_events(
        self, events: Iterable[pb.Event | tuple], timeout: float | None = None
    ) -> int:
        """Stores users' events on the server (``RecordEvents``); returns how many it kept.

        Each event is a ``pb.Event`` or a tuple ``(user_id, item_id[, time[,
        event_type]])``, ``time`` in unix seconds or a timezone-aware
        ``datetime`` (None or absent: when the server receives it). A retry
        is harmless: the server stores an event once. ``recommend(...,
        user_id=...)`` then reads the user's stored events.
        """
        message = pb.RecordEventsRequest(events=[_event(e) for e in events])
        return self._call(self._stub.RecordEvents, message, timeout).recorded

    def model_info(self, timeout: float | None = None) -> ModelInfo:
        """Version, sizes and training metrics of the serving model."""
        return model_info_from_proto(
            self._call(self._stub.GetModelInfo, pb.GetModelInfoRequest(), timeout)
        )

    def health(self, service: str = "", timeout: float | None = None) -> str:
        """The health status name: ``"SERVING"``, ``"NOT_SERVING"``, ... (no retries)."""
        response = self._call(
            self._health.Check, health_pb2.HealthCheckRequest(service=service), timeout, retry=False
        )
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def wait_until_serving(self, timeout: float = 30.0, interval: float = 0.05) -> None:
        """Polls health until SERVING; raises ``TimeoutError`` after ``timeout`` seconds."""
        end = time.monotonic() + timeout
        last = "unreachable"
        while time.monotonic() < end:
            try:
                last = self.health(timeout=min(1.0, self.timeout))
                if last == "SERVING":
                    return
            except RecommenderError as err:
                last = err.code.name
            time.sleep(interval)
        raise TimeoutError(f"{self.address} not SERVING after {timeout} s (last: {last})")

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> RecommenderClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self,
        method: Callable[..., T],
        request: Any,
        timeout: float | None,
        retry: bool = True,
    ) -> T:
        attempts = 1 + (self.retries if retry else 0)
        delay = self.backoff_seconds
        for attempt in range(attempts):
            try:
                return method(
                    request,
                    timeout=timeout or self.timeout,
                    metadata=self._metadata,
                )
            except grpc.RpcError as err:
                code = err.code()
                if code == grpc.StatusCode.UNAVAILABLE and attempt + 1 < attempts:
                    time.sleep(delay * (0.5 + random.random() / 2))
                    delay = min(delay * 2, self.max_backoff_seconds)
                    continue
                raise _to_error(err) from err
        raise AssertionError("unreachable")  # pragma: no cover


def _event(event: pb.Event | tuple) -> pb.Event:
    if isinstance(event, pb.Event):
        return event
    user_id, item_id, *rest = event
    message = pb.Event(user_id=user_id, item_id=item_id)
    at = rest[0] if rest else None
    if isinstance(at, dt.datetime):
        message.time.FromDatetime(at)
    elif at is not None:
        message.time.FromNanoseconds(round(at * 1e9))
    if len(rest) > 1:
        message.event_type = rest[1]
    return message


def _to_error(err: grpc.RpcError) -> RecommenderError:
    violations: list[FieldViolation] = []
    status = rpc_status.from_call(err) if hasattr(err, "trailing_metadata") else None
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                violations.extend(
                    FieldViolation(v.field, v.description) for v in bad.field_violations
                )
    return RecommenderError(err.code(), err.details() or "", violations)
