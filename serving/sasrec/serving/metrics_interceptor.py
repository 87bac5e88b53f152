"""Counts gRPC calls by method and status code and times them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from sasrec.serving.serving_metrics import ServingMetrics


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Records every unary call in :class:`ServingMetrics` (streaming calls pass through).

    Calls refused by gRPC itself before reaching Python (``maximum_concurrent_rpcs``
    overload) are not seen here; the client sees ``RESOURCE_EXHAUSTED``.

    Args:
        metrics: Where to record.

    Example:
        >>> interceptor = MetricsInterceptor(ServingMetrics())
        >>> server = grpc.aio.server(interceptors=[interceptor])  # doctest: +SKIP
    """

    def __init__(self, metrics: ServingMetrics) -> None:
        self._metrics = metrics
        self._wrapped: dict[str, tuple[Any, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        # Calls that answer once are timed: the Recommender's methods (read as
        # stream-unary, see server.py) and health Check; streams are not.
        if handler is None or handler.response_streaming:
            return handler
        if handler.request_streaming:
            behavior, make = handler.stream_unary, grpc.stream_unary_rpc_method_handler
        else:
            behavior, make = handler.unary_unary, grpc.unary_unary_rpc_method_handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        # Handlers are rebuilt per call by gRPC; cache our wrapper per method.
        if cached is not None and cached[0] is behavior:
            return cached[1]
        wrapped = make(
            self._wrap(method.rsplit("/", 1)[-1], behavior),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._wrapped[method] = (behavior, wrapped)
        return wrapped

    def _wrap(self, name: str, behavior: Any) -> Any:
        observe = self._metrics.observe_call

        async def timed(request: Any, context: grpc.aio.ServicerContext) -> Any:
            start = time.perf_counter()
            code = "OK"
            try:
                result = behavior(request, context)
                if asyncio.iscoroutine(result):
                    result = await result
                return result
            except asyncio.CancelledError:
                remaining = context.time_remaining()
                code = (
                    "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
                )
                raise
            except BaseException:
                status = context.code()
                code = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
                raise
            finally:
                observe(name, code, time.perf_counter() - start)

        return timed
