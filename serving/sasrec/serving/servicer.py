"""The thin gRPC servicer: protobuf <-> domain objects, domain errors -> status codes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from sasrec.serving.convert import (
    model_info_to_proto,
    recommendation_to_proto,
    request_from_proto,
)
from sasrec.serving.errors import (
    DeadlineExceededError,
    FieldViolation,
    InvalidRequestError,
    ModelUnavailableError,
    OverloadedError,
    VersionNotFoundError,
)
from sasrec.serving.event_store import EventStoreError
from sasrec.serving.micro_batcher import MicroBatcher
from sasrec.serving.user_history import NoEventStoreError, UserHistory, merge_batch
from sasrec.serving.v1 import recommender_pb2 as pb
from sasrec.serving.v1 import recommender_pb2_grpc as pb_grpc
from sasrec.serving.version_router import VersionRouter

logger = logging.getLogger("sasrec.serving")

T = TypeVar("T")


class RecommenderServicer(pb_grpc.RecommenderServicer):
    """Implements ``sasrec.v1.Recommender`` on a ``grpc.aio`` server.

    Each call is translated to a :class:`RecommendationRequest`, validated and
    encoded by the current predictor, then handed to the :class:`MicroBatcher`;
    the handler awaits the future. The one exception is a quiet server: a
    single request, no other call inside and the batcher idle is scored on
    the event loop directly, saving two thread hand-offs. "No other call" is
    checked after yielding to the loop once, so calls that arrived meanwhile
    have started and count: under load, scoring calls one by one on the loop
    would stop them from batching.

    Args:
        current_predictor: Returns the predictor serving now (None before the
            first model is loaded). Read once per call, so a hot reload never
            changes the model under a call.
        batcher: The shared micro-batcher.
        user_history: The server's store of users' events (None: the server
            keeps none; ``RecordEvents`` is FAILED_PRECONDITION and
            ``user_id`` is only logged). Writes run on a worker thread, and
            reads too unless the store's ``fast_reads`` says they take well
            under a millisecond (SQLite), then they run on the loop.

    Example:
        >>> servicer = RecommenderServicer(lambda: predictor, batcher)  # doctest: +SKIP
        >>> pb_grpc.add_RecommenderServicer_to_server(servicer, server)  # doctest: +SKIP
    """

    def __init__(
        self,
        current_predictor: Callable[[], Any],
        batcher: MicroBatcher,
        user_history: UserHistory | None = None,
        router: VersionRouter | None = None,
    ) -> None:
        self._current = current_predictor
        self._router = router
        self._batcher = batcher
        self._history = user_history
        self._in_flight = 0  # Recommend/RecommendBatch calls inside the server

    async def Recommend(  # noqa: N802 - gRPC method name
        self, request: pb.RecommendRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecommendResponse:
        self._in_flight += 1
        try:
            predictor, label = self._route(request)
            stored = 0
            if self._history is not None and request.user_id:
                request, stored = await self._read_store(
                    self._history.merge, request, predictor.limits.max_history
                )
            prepared = predictor.prepare(request_from_proto(request))
            rec = await self._answer(predictor, [prepared], context, inline=True)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            await _abort(context, err)
        finally:
            self._in_flight -= 1
        if logger.isEnabledFor(logging.DEBUG):
            _log_call("Recommend", request, rec[0])
        response = recommendation_to_proto(rec[0])
        response.stored_history_length = stored
        response.version_label = label
        return response

    async def RecommendBatch(  # noqa: N802 - gRPC method name
        self, request: pb.RecommendBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecommendBatchResponse:
        self._in_flight += 1
        try:
            # One version answers a batch: the first request's pin routes it.
            first = request.requests[0] if request.requests else pb.RecommendRequest()
            predictor, label = self._route(first)
            stored: list[int] = []
            if self._history is not None and any(r.user_id for r in request.requests):
                request, stored = await self._read_store(
                    merge_batch, self._history, request, predictor.limits
                )
            prepared = prepare_batch(predictor, request)
            recs = await self._answer(predictor, prepared, context)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            await _abort(context, err)
        finally:
            self._in_flight -= 1
        response = batch_response(recs, stored)
        for answer in response.responses:
            answer.version_label = label
        return response

    async def RecordEvents(  # noqa: N802 - gRPC method name
        self, request: pb.RecordEventsRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecordEventsResponse:
        try:
            if self._history is None:
                raise NoEventStoreError(NO_EVENT_STORE)
            recorded = await asyncio.to_thread(self._history.record, request)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            await _abort(context, err)
        return pb.RecordEventsResponse(recorded=recorded)

    async def GetModelInfo(  # noqa: N802 - gRPC method name
        self, request: pb.GetModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInfo:
        try:
            info = self._predictor().info()
        except Exception as err:
            await _abort(context, err)
        return model_info_to_proto(info)

    async def _read_store(self, read: Callable[..., T], *args: Any) -> T:
        """Runs a store read on the loop when it is fast (SQLite), else on a thread."""
        if self._history.store.fast_reads:
            return read(*args)
        return await asyncio.to_thread(read, *args)

    def _route(self, request: pb.RecommendRequest) -> tuple[Any, str]:
        """The version that answers ``request`` and its label (no router: the current one)."""
        if self._router is None:
            return self._predictor(), ""
        predictor, label = self._router.route(request)
        if predictor is None:
            raise ModelUnavailableError("no model loaded yet; retry when health is SERVING")
        return predictor, label

    def _predictor(self) -> Any:
        predictor = self._current()
        if predictor is None:
            raise ModelUnavailableError("no model loaded yet; retry when health is SERVING")
        return predictor

    async def _answer(
        self,
        predictor: Any,
        prepared: list[Any],
        context: grpc.aio.ServicerContext,
        inline: bool = False,
    ) -> list[Any]:
        remaining = context.time_remaining()
        deadline = None
        if remaining is not None:
            if remaining <= 0:
                raise DeadlineExceededError("deadline passed before the request was queued")
            deadline = time.monotonic() + remaining
        if inline and len(prepared) == 1 and prepared[0].needs_model and self._in_flight == 1:
            await asyncio.sleep(0)  # let calls that arrived meanwhile start
            if self._in_flight == 1:
                answer = self._batcher.run_inline(predictor, prepared[0])
                if answer is not None:
                    return [answer]
        results: list[Any] = [None] * len(prepared)
        waits: list[tuple[int, Any]] = []
        loop = asyncio.get_running_loop()
        for i, p in enumerate(prepared):
            if p.needs_model:
                waits.append((i, self._batcher.submit_async(predictor, p, deadline, loop)))
            else:
                # Popularity answers and empty allow lists need no model call.
                results[i] = predictor.predict([p])[0]
        if len(waits) == 1:
            i, future = waits[0]
            results[i] = await future
        elif waits:
            answers = await asyncio.gather(*(f for _, f in waits))
            for (i, _), answer in zip(waits, answers):
                results[i] = answer
        return results


def prepare_batch(predictor: Any, request: pb.RecommendBatchRequest) -> list[Any]:
    """Validates and prepares every request of a ``RecommendBatch`` call.

    Raises:
        InvalidRequestError: Over the batch cap, or any request invalid (each
            violation's field is prefixed with ``requests[i].``).
    """
    cap = predictor.limits.max_batch_requests
    if len(request.requests) > cap:
        received = len(request.requests)
        raise InvalidRequestError(
            [FieldViolation("requests", f"at most {cap} requests, received {received}")]
        )
    prepared = []
    violations: list[FieldViolation] = []
    for i, msg in enumerate(request.requests):
        try:
            prepared.append(predictor.prepare(request_from_proto(msg)))
        except InvalidRequestError as err:
            violations.extend(err.prefixed(f"requests[{i}].").violations)
    if violations:
        raise InvalidRequestError(violations)
    return prepared


NO_EVENT_STORE = "this server keeps no events: start it with --event-store"


def batch_response(recs: list[Any], stored: list[int]) -> pb.RecommendBatchResponse:
    """The ``RecommendBatch`` answer; ``stored`` (may be empty) counts each one's stored items."""
    response = pb.RecommendBatchResponse(responses=[recommendation_to_proto(r) for r in recs])
    for message, count in zip(response.responses, stored):
        message.stored_history_length = count
    return response


def error_status(err: Exception) -> tuple[grpc.StatusCode, str, bytes]:
    """The status of a failed call: code, message and ``grpc-status-details-bin``.

    The details (a serialized ``google.rpc.Status``) are empty except for
    :class:`InvalidRequestError`, which carries a ``google.rpc.BadRequest``
    naming each invalid field. An unexpected error is logged and answered
    ``INTERNAL`` with its type only.
    """
    if isinstance(err, InvalidRequestError):
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in err.violations
                ]
            )
        )
        status = status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT, message=str(err), details=[detail]
        )
        return grpc.StatusCode.INVALID_ARGUMENT, str(err), status.SerializeToString()
    for kind, code in _ERROR_CODES:
        if isinstance(err, kind):
            return code, str(err), b""
    logger.error("internal error", exc_info=err)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(err).__name__}", b""


_ERROR_CODES = (
    (ModelUnavailableError, grpc.StatusCode.UNAVAILABLE),
    (DeadlineExceededError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (OverloadedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (VersionNotFoundError, grpc.StatusCode.NOT_FOUND),
    (NoEventStoreError, grpc.StatusCode.FAILED_PRECONDITION),
    (EventStoreError, grpc.StatusCode.UNAVAILABLE),
)


async def _abort(context: grpc.aio.ServicerContext, err: Exception) -> None:
    code, message, details = error_status(err)
    trailing = (("grpc-status-details-bin", details),) if details else ()
    await context.abort(code, message, trailing)


def _log_call(method: str, request: pb.RecommendRequest, rec: Any) -> None:
    logger.debug(
        "call",
        extra={
            "fields": {
                "method": method,
                "user_id": request.user_id[:128],
                "history_len": len(request.history),
                "k": request.k,
                "returned": len(rec.items),
                "unknown": len(rec.unknown_items),
                "fallback": rec.fallback,
                "model_version": rec.model_version,
            }
        },
    )
