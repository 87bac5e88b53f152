"""Bearer-token authentication for the gRPC server."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

# Health checks must work for load balancers and orchestrators without secrets;
# everything else, server reflection included, needs the token. The native
# front end (serving/native/frontend.cc) applies the same rule.
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/",)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls without ``authorization: Bearer <token>`` metadata.

    Missing or wrong tokens get ``UNAUTHENTICATED``; health checks are open,
    reflection is not. A call must carry exactly one ``authorization`` header:
    two are refused whatever they hold (a proxy that checks or adds one header
    and a server that reads another must never disagree on who is calling).
    Tokens are compared in constant time.

    Args:
        token: The expected token (non-empty).

    Example:
        >>> interceptor = BearerTokenInterceptor("s3cret")
        >>> server = grpc.aio.server(interceptors=[interceptor])  # doctest: +SKIP
    """

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("token must be a non-empty string")
        self._expected = f"Bearer {token}".encode()
        self._denied: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if method.startswith(OPEN_METHOD_PREFIXES) or self._authorized(
            handler_call_details.invocation_metadata
        ):
            return await continuation(handler_call_details)
        denied = self._denied.get(method)
        if denied is None:
            handler = await continuation(handler_call_details)
            if handler is None:
                return None  # unknown method: let gRPC answer UNIMPLEMENTED
            denied = self._denied[method] = _deny_like(handler)
        return denied

    def _authorized(self, metadata: Any) -> bool:
        given = [value for key, value in metadata or () if key == "authorization"]
        if len(given) != 1:
            return False
        value = given[0].encode() if isinstance(given[0], str) else given[0]
        return hmac.compare_digest(value, self._expected)


def _deny_like(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same streaming kind that fails with UNAUTHENTICATED.

    It never parses the request: an unauthenticated body is not looked at.
    """

    async def deny(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(
            grpc.StatusCode.UNAUTHENTICATED, "missing or invalid 'authorization: Bearer' token"
        )

    kwargs = {
        "request_deserializer": None,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny, **kwargs)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny, **kwargs)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny, **kwargs)
    return grpc.unary_unary_rpc_method_handler(deny, **kwargs)
