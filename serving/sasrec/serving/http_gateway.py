"""The HTTP/JSON gateway: the service's methods over HTTP, beside gRPC, in one process.

Routes (bodies in the proto3 JSON mapping, ``google.protobuf.json_format``):

| route | method |
| --- | --- |
| ``POST /v1/recommend`` | ``Recommend`` (``RecommendRequest`` -> ``RecommendResponse``) |
| ``POST /v1/recommend:batch`` | ``RecommendBatch`` |
| ``POST /v1/events`` | ``RecordEvents`` |
| ``GET /v1/model`` | ``GetModelInfo`` |
| ``GET /healthz`` | 200 when a model serves, else 503 (no token needed) |

Each call runs the gRPC servicer's own method
(:class:`~sasrec.serving.servicer.RecommenderServicer`), so validation,
limits and error codes are the same; a failed call answers
``{"code", "message", "details"}`` (a ``google.rpc.Status`` in JSON) with the
HTTP status grpc-gateway gives its code. The bearer token, the
concurrent-call cap, TLS and the per-method metrics are the gRPC server's.
A ``Grpc-Timeout`` header (gRPC's format, e.g. ``500m``) sets a deadline.

aiohttp serves it: an asyncio server, so it runs on the gRPC server's own
event loop (no thread, no second loop), maintained, and small.
"""

from __future__ import annotations

import hmac
import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import status_pb2

from sasrec.serving.server_options import ServerOptions
from sasrec.serving.servicer import RecommenderServicer
from sasrec.serving.serving_metrics import ServingMetrics
from sasrec.serving.v1 import recommender_pb2 as pb

# gRPC's default largest message: the same cap on an HTTP body.
MAX_BODY_BYTES = 4 * 1024 * 1024

# The HTTP status of each gRPC code, as grpc-gateway maps them.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


class CallAbortedError(Exception):
    """A call ended with a gRPC status (what ``context.abort`` raises here)."""

    def __init__(self, code: grpc.StatusCode, message: str, details: bytes = b"") -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.details = details


class HttpCallContext:
    """What the servicer reads of a call's context, for an HTTP request.

    Example:
        >>> HttpCallContext(None).time_remaining() is None
        True
    """

    def __init__(self, deadline: float | None) -> None:
        self._deadline = deadline

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else self._deadline - time.monotonic()

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()):
        status_details = b""
        for key, value in trailing_metadata or ():
            if key == "grpc-status-details-bin":
                status_details = value
        raise CallAbortedError(code, details, status_details)


def parse_grpc_timeout(value: str) -> float:
    """Seconds of a ``Grpc-Timeout`` header value (``"500m"``, ``"2S"``).

    Raises:
        ValueError: Not 1-8 digits followed by one of ``HMSmun``.

    Example:
        >>> parse_grpc_timeout("250m")
        0.25
    """
    digits, unit = value[:-1], value[-1:]
    if not (digits.isdigit() and 1 <= len(digits) <= 8 and unit in _TIMEOUT_UNITS):
        raise ValueError(f"Grpc-Timeout must be 1-8 digits and one of H M S m u n, got {value!r}")
    return int(digits) * _TIMEOUT_UNITS[unit]


class HttpGateway:
    """Serves the Recommender's methods as HTTP/JSON on the running event loop.

    Args:
        servicer: The gRPC servicer whose methods answer.
        options: Host, ``http_port``, token, ``max_concurrent``, TLS, ``reuse_port``.
        metrics: Calls are counted as the gRPC ones are (method, code, seconds).
        is_serving: True when a model serves (``/healthz``).

    Example:
        >>> gateway = HttpGateway(servicer, options, metrics, lambda: True)  # doctest: +SKIP
        >>> port = await gateway.start("127.0.0.1")  # doctest: +SKIP
        >>> await gateway.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        servicer: RecommenderServicer,
        options: ServerOptions,
        metrics: ServingMetrics,
        is_serving: Callable[[], bool],
    ) -> None:
        self._servicer = servicer
        self._options = options
        self._metrics = metrics
        self._is_serving = is_serving
        token = options.auth_token
        self._expected = f"Bearer {token}".encode() if token else None
        self._in_flight = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str) -> int:
        """Binds ``host:options.http_port`` (IPv6 without brackets); returns the port."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_post("/v1/recommend", self._route("Recommend", pb.RecommendRequest))
        app.router.add_post(
            "/v1/recommend:batch", self._route("RecommendBatch", pb.RecommendBatchRequest)
        )
        app.router.add_post("/v1/events", self._route("RecordEvents", pb.RecordEventsRequest))
        app.router.add_get("/v1/model", self._route("GetModelInfo", pb.GetModelInfoRequest))
        app.router.add_get("/healthz", self._health)
        # On stop, requests in flight get the gRPC server's grace period.
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=self._options.grace_seconds,
        )
        await runner.setup()
        opts = self._options
        site = web.TCPSite(
            runner,
            host=host,
            port=opts.http_port or 0,
            ssl_context=_ssl_context(opts),
            reuse_port=opts.reuse_port or None,
        )
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]  # the bound port when 0 was asked
        return self.port

    async def stop(self) -> None:
        """Stops accepting; requests in flight get up to ``grace_seconds`` to finish."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _health(self, request: web.Request) -> web.Response:
        serving = self._is_serving()
        status = "SERVING" if serving else "NOT_SERVING"
        return web.json_response({"status": status}, status=200 if serving else 503)

    def _route(self, method: str, request_type: type[Message]) -> Any:
        behavior = getattr(self._servicer, method)

        async def handle(request: web.Request) -> web.Response:
            started = time.perf_counter()
            try:
                body = await self._call(request, behavior, request_type)
                code = grpc.StatusCode.OK
                response = web.Response(body=body, content_type="application/json")
            except CallAbortedError as err:
                code = err.code
                response = _error_response(err)
            self._metrics.observe_call(method, code.name, time.perf_counter() - started)
            return response

        return handle

    async def _call(self, request: web.Request, behavior: Any, request_type: type[Message]) -> str:
        if self._expected is not None and not self._authorized(request):
            raise CallAbortedError(
                grpc.StatusCode.UNAUTHENTICATED, "missing or invalid 'Authorization: Bearer' token"
            )
        if self._in_flight >= self._options.max_concurrent:
            raise CallAbortedError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"more than {self._options.max_concurrent} concurrent calls",
            )
        self._in_flight += 1
        try:
            deadline = None
            timeout = request.headers.get("Grpc-Timeout")
            if timeout is not None:
                try:
                    deadline = time.monotonic() + parse_grpc_timeout(timeout)
                except ValueError as err:
                    raise CallAbortedError(grpc.StatusCode.INVALID_ARGUMENT, str(err)) from None
            message = await _parse_body(request, request_type)
            answer = await behavior(message, HttpCallContext(deadline))
            return json_format.MessageToJson(answer, indent=None)
        finally:
            self._in_flight -= 1

    def _authorized(self, request: web.Request) -> bool:
        given = request.headers.getall("Authorization", [])
        return len(given) == 1 and hmac.compare_digest(given[0].encode(), self._expected)


async def _parse_body(request: web.Request, request_type: type[Message]) -> Message:
    message = request_type()
    if request.method == "GET":
        return message
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise CallAbortedError(
            grpc.StatusCode.RESOURCE_EXHAUSTED, f"request body over {MAX_BODY_BYTES} bytes"
        ) from None
    name = request_type.DESCRIPTOR.full_name
    try:
        json_format.Parse(raw.decode("utf-8") if raw else "{}", message)
    except (json_format.ParseError, UnicodeDecodeError) as err:
        reason = str(err)[:200]
        raise CallAbortedError(
            grpc.StatusCode.INVALID_ARGUMENT, f"body is not a valid {name} in JSON ({reason})"
        ) from None
    return message


def _error_response(err: CallAbortedError) -> web.Response:
    """``google.rpc.Status`` in JSON, with grpc-gateway's HTTP status of the code."""
    status = status_pb2.Status(code=err.code.value[0], message=err.message)
    if err.details:
        status.ParseFromString(err.details)
    body = json_format.MessageToDict(status)
    body.setdefault("details", [])
    headers = {"WWW-Authenticate": "Bearer"} if err.code == grpc.StatusCode.UNAUTHENTICATED else {}
    return web.Response(
        text=json.dumps(body),
        status=HTTP_STATUS.get(err.code, 500),
        content_type="application/json",
        headers=headers,
    )


def _ssl_context(options: ServerOptions) -> ssl.SSLContext | None:
    if options.tls_cert is None or options.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(Path(options.tls_cert), Path(options.tls_key))
    return context
