"""Python client of the ``sasrec.v1.Recommender`` service, returning plain dataclasses."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import socket
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

    Several replicas: give a list of ``host:port`` addresses or one
    ``dns:///name:port`` target (every address the name resolves to, e.g. a
    Kubernetes headless Service). The channel then balances calls over the
    replicas (``round_robin``; Kubernetes' own Service balances connections,
    not calls) and retries a call that fails ``UNAVAILABLE`` (a draining or
    stopped replica) on another replica at once (the gRPC service config's
    ``retryPolicy``), before this client's own backoff retries. With several
    replicas the channel also checks their health (gRPC client-side health
    checking) and sends no call to a replica that is NOT_SERVING, so a
    draining replica gets no new calls; each connection then holds one
    health ``Watch`` stream, which counts against the server's
    ``--max-concurrent`` on the Python front end. :meth:`health` asks on a
    channel of its own, so it can read NOT_SERVING.

    Args:
        address: ``host:port``, a list of them, or a gRPC target such as
            ``dns:///recommender.shop.svc.cluster.local:50051``.
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
        load_balancing: ``"round_robin"`` (default) or ``"pick_first"``.
        health_check: gRPC client-side health checking with ``round_robin``
            (default: on when ``address`` names several replicas: a list or a
            ``dns:`` target).

    Example:
        >>> with RecommenderClient("localhost:50051") as client:  # doctest: +SKIP
        ...     rec = client.recommend(["sku-1", "sku-2"], k=5)
        ...     print(rec.item_ids, rec.model_version)
    """

    def __init__(
        self,
        address: str | Sequence[str],
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
        load_balancing: str = "round_robin",
        health_check: bool | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, received {timeout}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, received {retries}")
        self.address = channel_target(address)
        address = self.address
        self.timeout = timeout
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        if health_check is None:
            health_check = self.address.startswith(("dns:", "ipv4:", "ipv6:"))
        user_options = list(options)
        options = [*service_config_options(load_balancing, retries, health_check), *user_options]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        credentials = None
        if root_certificates is not None or tls:
            roots = root_certificates
            if roots is not None and not isinstance(roots, bytes):
                roots = Path(roots).read_bytes()
            credentials = grpc.ssl_channel_credentials(root_certificates=roots)

        def channel(opts: list[tuple[str, Any]]) -> grpc.Channel:
            if credentials is None:
                return grpc.insecure_channel(address, options=opts)
            return grpc.secure_channel(address, credentials, options=opts)

        self._channel = channel(options)
        self._stub = pb_grpc.RecommenderStub(self._channel)
        # A health-checked channel sends nothing to a NOT_SERVING replica, the
        # health RPC included: health() asks on a plain channel.
        self._health_channel = self._channel
        if health_check:
            overrides = [o for o in options if o[0] == "grpc.ssl_target_name_override"]
            self._health_channel = channel([*user_options, *overrides])
        self._health = health_pb2_grpc.HealthStub(self._health_channel)

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
        model_version: str = "",
        version_label: str = "",
    ) -> Recommendation:
        """Top-``k`` next items for ``history`` (oldest first).

        ``model_version`` or ``version_label`` (``"stable"``, ``"canary"``)
        pins the version that answers (a server with ``--keep-versions``).
        """
        request = pb.RecommendRequest(
            history=list(history),
            k=k,
            include_history=include_history,
            allowed_items=list(allowed_items),
            excluded_items=list(excluded_items),
            user_id=user_id,
            explain=explain,
            model_version=model_version,
            version_label=version_label,
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
        if self._health_channel is not self._channel:
            self._health_channel.close()

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


def channel_target(address: str | Sequence[str]) -> str:
    """One gRPC target for one address, several ``host:port`` addresses, or a target.

    Host names of a list are resolved now (``ipv4:``/``ipv6:`` targets take
    addresses); a single string is passed through (``dns:///name:port``
    resolves every address of the name, and again when connections fail).

    Example:
        >>> channel_target(["127.0.0.1:5001", "127.0.0.1:5002"])
        'ipv4:127.0.0.1:5001,127.0.0.1:5002'
        >>> channel_target("dns:///recommender:50051")
        'dns:///recommender:50051'
    """
    if isinstance(address, str):
        return address
    addresses = list(address)
    if not addresses:
        raise ValueError("address: give at least one host:port")
    if len(addresses) == 1:
        return addresses[0]
    v4, v6 = [], []
    for entry in addresses:
        host, sep, port = entry.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"address {entry!r} is not host:port")
        host = host.strip("[]")
        for family, *_, sockaddr in socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM):
            if family == socket.AF_INET:
                v4.append(f"{sockaddr[0]}:{port}")
            elif family == socket.AF_INET6:
                v6.append(f"[{sockaddr[0]}]:{port}")
    v4, v6 = list(dict.fromkeys(v4)), list(dict.fromkeys(v6))
    if v4:  # a channel target holds one family; IPv4 wins when a name has both
        return "ipv4:" + ",".join(v4)
    return "ipv6:" + ",".join(v6)


def service_config_options(
    load_balancing: str, retries: int, health_check: bool = False
) -> list[tuple[str, Any]]:
    """Channel options: the load-balancing policy, health checks and retries on UNAVAILABLE.

    With ``health_check`` (the client's default for several replicas) the
    channel sends no call, not even a health check, to a replica that reports
    NOT_SERVING; a client of one server leaves it off, so it can watch that
    server start.

    Example:
        >>> dict(service_config_options("round_robin", 3))["grpc.enable_retries"]
        1
    """
    if load_balancing not in ("round_robin", "pick_first"):
        raise ValueError(
            f"load_balancing must be round_robin or pick_first, received {load_balancing!r}"
        )
    config: dict[str, Any] = {"loadBalancingConfig": [{load_balancing: {}}]}
    if health_check and load_balancing == "round_robin":
        # Replicas whose health is NOT_SERVING (draining) get no new calls.
        config["healthCheckConfig"] = {"serviceName": ""}
    if retries:
        config["methodConfig"] = [
            {
                "name": [{"service": "sasrec.v1.Recommender"}],
                "retryPolicy": {
                    # gRPC caps maxAttempts at 5.
                    "maxAttempts": min(5, 1 + retries),
                    "initialBackoff": "0.01s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    return [("grpc.service_config", json.dumps(config)), ("grpc.enable_retries", 1)]


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
