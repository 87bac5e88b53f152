"""The grpcio front end's method handlers: raw bodies in, parsed by ``request_parsing``.

Every method is registered with raw request bodies so a malformed one is
answered ``INVALID_ARGUMENT`` by our code, not ``UNKNOWN`` by grpcio's.

Example:
    >>> handler = health_handler(health.aio.HealthServicer())  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2

from sasrec.serving.request_parsing import (
    REQUEST_TYPES,
    SERVICE_NAME,
    MalformedRequestError,
    parse_request,
)
from sasrec.serving.servicer import RecommenderServicer


def recommender_handler(servicer: RecommenderServicer) -> grpc.GenericRpcHandler:
    """``sasrec.v1.Recommender`` with raw request bodies, parsed by each handler."""
    # Registered as stream-unary although the contract is unary: grpcio never
    # calls a unary handler for a call that half-closes without a message,
    # and leaves the call open, holding a --max-concurrent slot until the
    # client gives up. Reading the one message ourselves lets such a call be
    # refused at once. The wire format of the two kinds is the same.
    handlers = {
        name: grpc.stream_unary_rpc_method_handler(
            _parsing(getattr(servicer, name), request_type),
            request_deserializer=None,
            response_serializer=_serialize,
        )
        for name, request_type in REQUEST_TYPES.items()
    }
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _parsing(
    behavior: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]],
    request_type: type[Message],
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    """Reads and parses the one body, runs ``behavior``, refuses an answer ready too late.

    The servicer checks the deadline before a request is queued and the
    batcher when it takes it; a request scored on the event loop (a quiet
    server) is not queued, so its answer is checked here: one ready after the
    deadline is DEADLINE_EXCEEDED, as gRPC tells the client anyway, and as
    the native front end answers it.
    """

    async def handle(_requests: Any, context: grpc.aio.ServicerContext) -> Any:
        body = await context.read()
        if body is grpc.aio.EOF:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "the call carried no request message"
            )
        request = await parse_or_abort(request_type, body, context)
        response = await behavior(request, context)
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before the answer was ready"
            )
        return response

    return handle


async def parse_or_abort(
    request_type: type[Message], body: bytes, context: grpc.aio.ServicerContext
) -> Any:
    try:
        return parse_request(request_type, body)
    except MalformedRequestError as err:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))


def health_handler(servicer: Any) -> grpc.GenericRpcHandler:
    """``grpc.health.v1.Health`` of ``servicer`` with raw request bodies."""
    request_type = health_pb2.HealthCheckRequest

    async def check(body: bytes, context: grpc.aio.ServicerContext) -> Any:
        return await servicer.Check(await parse_or_abort(request_type, body, context), context)

    async def watch(body: bytes, context: grpc.aio.ServicerContext) -> None:
        await servicer.Watch(await parse_or_abort(request_type, body, context), context)

    handlers = {
        "Check": grpc.unary_unary_rpc_method_handler(check, response_serializer=_serialize),
        "Watch": grpc.unary_stream_rpc_method_handler(watch, response_serializer=_serialize),
    }
    return grpc.method_handlers_generic_handler(health.SERVICE_NAME, handlers)


def reflection_handler(service_names: tuple[str, ...]) -> grpc.GenericRpcHandler:
    """Server reflection (``grpc.reflection.v1alpha``) with raw request bodies."""
    servicer = reflection.aio.ReflectionServicer(service_names)
    request_type = reflection_pb2.ServerReflectionRequest

    async def info(bodies: Any, context: grpc.aio.ServicerContext) -> Any:
        async def requests() -> Any:
            async for body in bodies:
                yield await parse_or_abort(request_type, body, context)

        async for response in servicer.ServerReflectionInfo(requests(), context):
            yield response

    handler = grpc.stream_stream_rpc_method_handler(info, response_serializer=_serialize)
    return grpc.method_handlers_generic_handler(
        reflection.SERVICE_NAME, {"ServerReflectionInfo": handler}
    )
