"""Prometheus metrics of one server (each server has its own registry)."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from sasrec.artifact.versions import version_number

logger = logging.getLogger("sasrec.serving")

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServingMetrics:
    """The server's Prometheus metrics, exposed over HTTP by :meth:`serve_http`.

    Metrics (all prefixed ``sasrec_``): ``grpc_requests_total{method,code}``,
    ``grpc_request_seconds{method}`` (histogram), ``batch_size`` (histogram of
    micro-batch sizes), ``skipped_requests_total{reason}`` (dropped unscored
    because the deadline passed or the caller cancelled while queued),
    ``model_version`` (gauge, the active version number, -1 if not numeric),
    ``model_loaded`` (0/1) and ``reloads_total{result}``.

    Example:
        >>> metrics = ServingMetrics()
        >>> metrics.observe_call("Recommend", "OK", 0.002)
        >>> b"sasrec_grpc_requests_total" in metrics.exposition()
        True
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.calls = Counter(
            "sasrec_grpc_requests",
            "gRPC calls by method and status code",
            ["method", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "sasrec_grpc_request_seconds",
            "gRPC call latency inside the server",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "sasrec_batch_size", "Requests scored per model call", buckets=BATCH_BUCKETS, registry=r
        )
        self.skipped = Counter(
            "sasrec_skipped_requests",
            "Requests dropped unscored: deadline passed or caller cancelled while queued",
            ["reason"],
            registry=r,
        )
        for reason in ("deadline", "cancelled"):
            self.skipped.labels(reason=reason)
        self.model_version = Gauge(
            "sasrec_model_version", "Active model version (-1 if not numeric)", registry=r
        )
        self.model_loaded = Gauge("sasrec_model_loaded", "1 once a model serves", registry=r)
        self.reloads = Counter(
            "sasrec_reloads", "Hot reload attempts by result", ["result"], registry=r
        )
        for result in ("success", "failure"):
            self.reloads.labels(result=result)
        # Several versions at once (--keep-versions): A/B traffic per version.
        self.version_loaded = Gauge(
            "sasrec_version_loaded", "1 per model version loaded now", ["version"], registry=r
        )
        self.version_requests = Counter(
            "sasrec_version_requests",
            "Model answers by version and the label it had",
            ["version", "label"],
            registry=r,
        )
        self._calls_by_key: dict[tuple[str, str], Any] = {}
        self._latency_by_method: dict[str, Any] = {}
        self._server: Any = None

    def observe_call(self, method: str, code: str, seconds: float) -> None:
        """Counts one finished call and records its latency."""
        key = (method, code)
        counter = self._calls_by_key.get(key)
        if counter is None:
            counter = self._calls_by_key[key] = self.calls.labels(method=method, code=code)
        counter.inc()
        histogram = self._latency_by_method.get(method)
        if histogram is None:
            histogram = self._latency_by_method[method] = self.latency.labels(method=method)
        histogram.observe(seconds)

    def observe_calls(self, method: str, code: str, seconds: list[float]) -> None:
        """Counts finished calls of one method and code, with their latencies."""
        if not seconds:
            return
        key = (method, code)
        counter = self._calls_by_key.get(key)
        if counter is None:
            counter = self._calls_by_key[key] = self.calls.labels(method=method, code=code)
        counter.inc(len(seconds))
        histogram = self._latency_by_method.get(method)
        if histogram is None:
            histogram = self._latency_by_method[method] = self.latency.labels(method=method)
        for value in seconds:
            histogram.observe(value)

    def observe_batch(self, size: int) -> None:
        self.batch_size.observe(size)

    def observe_skipped(self, reason: str, count: int) -> None:
        self.skipped.labels(reason=reason).inc(count)

    def set_versions(self, versions: tuple[str, ...]) -> None:
        """The versions loaded now: one ``sasrec_version_loaded`` series each."""
        self.version_loaded.clear()
        for version in versions:
            self.version_loaded.labels(version=version).set(1)

    def observe_version_request(self, version: str, label: str, count: int = 1) -> None:
        self.version_requests.labels(version=version, label=label).inc(count)

    def set_model(self, version: str) -> None:
        number = version_number(version)
        self.model_version.set(-1 if number is None else number)
        self.model_loaded.set(1)

    def observe_reload(self, ok: bool) -> None:
        self.reloads.labels(result="success" if ok else "failure").inc()

    def exposition(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)

    def serve_http(self, port: int, host: str = "127.0.0.1") -> int:
        """Starts the ``/metrics`` HTTP endpoint on ``host`` (a daemon thread); returns its port."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        return int(server.server_address[1])

    def stop_http(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
