"""Settings of a :class:`~sasrec.serving.server.RecommenderServer`."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sasrec.engines.registry import DEFAULT_ENGINE, ENGINES, NUMPY_ENGINES
from sasrec.engines.retrieval import DEFAULT_RETRIEVAL, RETRIEVALS
from sasrec.serving.domain import Limits
from sasrec.serving.event_store import (
    DEFAULT_CAPACITY,
    DEFAULT_MAX_EVENTS_PER_CALL,
    DEFAULT_TTL_SECONDS,
)

TOKEN_ENV = "SASREC_AUTH_TOKEN"


def resolve_auth_token(flag: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The bearer token of ``sasrec serve``: ``--auth-token``, else ``$SASREC_AUTH_TOKEN``.

    An empty value never means "no authentication": an empty ``--auth-token``
    while the environment holds a token would silently turn authentication
    off, so it is an error, as is an empty environment variable. Omit both to
    serve without a token.

    Args:
        flag: The ``--auth-token`` value (None: not given).
        environ: Where to look for ``SASREC_AUTH_TOKEN``.

    Returns:
        The token, or None when neither is given.

    Raises:
        ValueError: An empty token.

    Example:
        >>> resolve_auth_token(None, {"SASREC_AUTH_TOKEN": "s3cret"})
        's3cret'
        >>> resolve_auth_token(None, {}) is None
        True
    """
    env = environ.get(TOKEN_ENV)
    if flag is not None:
        if not flag:
            if env:
                raise ValueError(
                    f"--auth-token is empty while {TOKEN_ENV} is set: an empty flag would turn "
                    f"authentication off; unset {TOKEN_ENV} to serve without a token"
                )
            raise ValueError("--auth-token must not be empty (omit it to serve without a token)")
        return flag
    if env is not None and not env:
        raise ValueError(f"{TOKEN_ENV} is set but empty (unset it to serve without a token)")
    return env


@dataclass(frozen=True)
class ServerOptions:
    """Every knob of the server; ``sasrec serve`` flags map one to one.

    Args:
        host: Interface the gRPC port and the metrics endpoint bind: loopback
            (``"127.0.0.1"``) by default, a deliberate choice; ``"0.0.0.0"`` or
            ``"[::]"`` for all interfaces (e.g. in a container).
        port: gRPC port; 0 picks a free one (see ``RecommenderServer.port``).
        max_batch_size: Most requests scored in one model call.
        max_wait_ms: How long a batch waits for more requests after its first
            (0: only what is already queued; batches still grow under load).
        busy_wait_ms: With ``max_wait_ms`` 0, how long a batch may wait for
            more requests when the previous batch held more than one (the
            server is busy), until it is as large as the previous one; a lone
            caller never waits (0: off).
        max_concurrent: Concurrent calls accepted; more get RESOURCE_EXHAUSTED.
        max_queue: Requests waiting for the model beyond this get
            RESOURCE_EXHAUSTED (0: bounded by ``max_concurrent`` only).
        grace_seconds: On stop, how long calls in flight may take to finish.
        drain_seconds: On stop, how long health reports NOT_SERVING while new
            calls are still accepted (lets load balancers move away first).
        poll_seconds: Hot-reload polling interval of a versions root (0: off).
        metrics_port: Prometheus ``/metrics`` HTTP port (0: off).
        metrics_host: Interface of the metrics endpoint (None: ``host``).
        tls_cert: PEM certificate chain file (with ``tls_key``: TLS on).
        tls_key: PEM private key file.
        auth_token: If set, calls need ``authorization: Bearer <token>``
            (health checks excepted; see :func:`resolve_auth_token`).
        intra_op_threads: TensorFlow threads per op (0: all usable cores).
        engine: Scoring engine: ``"auto"`` (default: ``"compiled"`` when its
            kernel is built, else ``"numpy"``), ``"compiled"`` (fastest),
            ``"numpy"`` or ``"tensorflow"`` (see :mod:`sasrec.engines.registry`).
        retrieval: ``"auto"``, ``"exact"`` or ``"ann"``: the full scan or
            index candidates rescored exactly (:mod:`sasrec.engines.retrieval`;
            ``auto`` is ``ann`` from 250,000 items on, except with the
            tensorflow engine).
        keep_versions: Model versions served at once: the highest ones
            (:mod:`sasrec.serving.version_router`).
        canary_percent: Share of unpinned requests the ``canary`` version
            answers (0..100); the rest go to ``stable``.
        version_labels: ``LABEL=VERSION`` pins (``stable=3``) instead of the
            default labels (``canary`` newest, ``stable`` the one before).
        blas_threads: NumPy BLAS threads of the numpy engines (one scoring
            thread: 1 leaves the other cores to gRPC).
        reuse_port: Bind with ``SO_REUSEPORT`` so several server processes
            share the port (``sasrec serve --workers``); off by default so a
            second server on a busy port fails instead of silently sharing it.
        frontend: ``"python"`` (grpcio's asyncio server, the default) or
            ``"native"``: gRPC's C++ server hands calls to Python a batch at a
            time (``make native`` builds it; see
            :mod:`sasrec.serving.native_frontend`). Same contract, health,
            reflection, limits, TLS, token and metrics; ``max_wait_ms``,
            ``busy_wait_ms`` and ``max_queue`` apply to the Python one only.
        native_fast_path: With the native front end, parse and answer plain
            ``Recommend`` calls in C++ around one engine call per batch (the
            default); False sends every call through the Python path (tests
            compare the two).
        limits: Request caps.
        event_store: Where users' events are kept (``RecordEvents``, and
            ``Recommend`` by ``user_id``): ``sqlite:PATH`` (embedded) or
            ``redis://HOST:PORT[/DB]`` (shared by replicas); None keeps none
            (see :func:`~sasrec.serving.event_store.open_event_store`).
        event_ttl_seconds: Events older than this are dropped (default 30 days).
        stored_events: Most recent events kept per user (default 50, the
            default ``max_len``: a model never reads more than its own).
        max_events_per_call: Most events in one ``RecordEvents`` call.
        http_port: Port of the HTTP/JSON gateway (``/v1/recommend``,
            ``/v1/events``, ``/v1/model``, ``/healthz``) on ``host``; 0 picks
            a free one; None: off. Same token, limits, metrics and TLS.
        load_hook: Called with each version directory before it is loaded
            (tests use it to slow loading down).
        batch_hook: Called on the batching thread before each batch (tests).

    Example:
        >>> ServerOptions(port=0, max_batch_size=16).replace(port=50051).port
        50051
    """

    host: str = "127.0.0.1"
    port: int = 50051
    max_batch_size: int = 32
    max_wait_ms: float = 0.0
    busy_wait_ms: float = 2.0
    max_concurrent: int = 256
    max_queue: int = 0
    grace_seconds: float = 10.0
    drain_seconds: float = 0.0
    poll_seconds: float = 10.0
    metrics_port: int = 0
    metrics_host: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    auth_token: str | None = None
    intra_op_threads: int = 0
    engine: str = DEFAULT_ENGINE
    retrieval: str = DEFAULT_RETRIEVAL
    keep_versions: int = 1
    canary_percent: float = 0.0
    version_labels: tuple[str, ...] = ()
    blas_threads: int = 1
    reuse_port: bool = False
    frontend: str = "python"
    native_fast_path: bool = True
    limits: Limits = field(default_factory=Limits)
    event_store: str | None = None
    event_ttl_seconds: float = DEFAULT_TTL_SECONDS
    stored_events: int = DEFAULT_CAPACITY
    max_events_per_call: int = DEFAULT_MAX_EVENTS_PER_CALL
    http_port: int | None = None
    load_hook: Callable[[Path], Any] | None = None
    batch_hook: Callable[[int], Any] | None = None

    def __post_init__(self) -> None:
        checks = (
            ("port", self.port, 0 <= self.port <= 65535, "must be in 0..65535"),
            ("max_batch_size", self.max_batch_size, self.max_batch_size >= 1, "must be >= 1"),
            ("max_wait_ms", self.max_wait_ms, self.max_wait_ms >= 0, "must be >= 0"),
            ("busy_wait_ms", self.busy_wait_ms, self.busy_wait_ms >= 0, "must be >= 0"),
            ("max_concurrent", self.max_concurrent, self.max_concurrent >= 1, "must be >= 1"),
            ("max_queue", self.max_queue, self.max_queue >= 0, "must be >= 0"),
            ("grace_seconds", self.grace_seconds, self.grace_seconds >= 0, "must be >= 0"),
            ("drain_seconds", self.drain_seconds, self.drain_seconds >= 0, "must be >= 0"),
            ("poll_seconds", self.poll_seconds, self.poll_seconds >= 0, "must be >= 0"),
            (
                "metrics_port",
                self.metrics_port,
                0 <= self.metrics_port <= 65535,
                "must be in 0..65535",
            ),
            ("intra_op_threads", self.intra_op_threads, self.intra_op_threads >= 0, "must be >= 0"),
            (
                "engine",
                self.engine,
                self.engine in ENGINES,
                "must be " + " or ".join(ENGINES),
            ),
            (
                "retrieval",
                self.retrieval,
                self.retrieval in RETRIEVALS
                and not (self.retrieval == "ann" and self.engine not in NUMPY_ENGINES),
                "must be " + " or ".join(RETRIEVALS) + " ('ann' not with the tensorflow engine)",
            ),
            ("keep_versions", self.keep_versions, self.keep_versions >= 1, "must be >= 1"),
            (
                "canary_percent",
                self.canary_percent,
                0 <= self.canary_percent <= 100,
                "must be in 0..100",
            ),
            ("blas_threads", self.blas_threads, self.blas_threads >= 1, "must be >= 1"),
            (
                "event_ttl_seconds",
                self.event_ttl_seconds,
                self.event_ttl_seconds > 0,
                "must be > 0",
            ),
            ("stored_events", self.stored_events, self.stored_events >= 1, "must be >= 1"),
            (
                "max_events_per_call",
                self.max_events_per_call,
                self.max_events_per_call >= 1,
                "must be >= 1",
            ),
            (
                "http_port",
                self.http_port,
                self.http_port is None or 0 <= self.http_port <= 65535,
                "must be in 0..65535 (None: off)",
            ),
            (
                "frontend",
                self.frontend,
                self.frontend in ("python", "native"),
                "must be python or native",
            ),
        )
        for name, value, ok, rule in checks:
            if not ok:
                raise ValueError(f"{name} {rule}, received {name}={value!r}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.auth_token is not None and not self.auth_token:
            raise ValueError("auth_token must not be empty (omit it to disable auth)")

    def replace(self, **changes: Any) -> ServerOptions:
        return dataclasses.replace(self, **changes)
