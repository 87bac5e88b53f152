"""``sasrec.v1.Recommender`` behind the native (C++) gRPC front end.

gRPC's C++ server (``serving/native/frontend.cc``, built by ``make native``)
accepts calls, checks the bearer token and the concurrent-call limit, and
serves health. Calls reach Python as raw request bytes, a
queue-full at a time: one thread here takes whatever arrived while the last
batch was being scored, answers all of it with one model call, and hands
back each call's response bytes or error status. Python's per-call gRPC work
(about 0.45 ms of CPU on our machine, more than scoring a request in a batch)
is gone; the request/response translation, validation, status mapping and
the model are the same code as the Python server's.

Plain ``Recommend`` calls (known history ids and ``k`` only) take a shorter
path: once this thread installs the serving version's vocabulary in the C++
side (:meth:`NativeFrontend._install_fast_table`), C++ parses such a call
and hands over its item indices; this thread scores them in one engine call
and gives back the top-k arrays, from which C++ builds each response. What
such a call gets is what the Python path would answer (a test compares them
field by field).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from sasrec.serving.convert import model_info_to_proto, recommendation_to_proto, request_from_proto
from sasrec.serving.domain import DEFAULT_K, RecommendationRequest
from sasrec.serving.errors import DeadlineExceededError, ModelUnavailableError
from sasrec.serving.prepared_request import PreparedRequest
from sasrec.serving.request_parsing import MalformedRequestError, parse_request
from sasrec.serving.server_options import ServerOptions
from sasrec.serving.servicer import (
    NO_EVENT_STORE,
    batch_response,
    error_status,
    prepare_batch,
)
from sasrec.serving.serving_metrics import ServingMetrics
from sasrec.serving.user_history import NoEventStoreError, UserHistory, merge_batch
from sasrec.serving.v1 import recommender_pb2 as pb

logger = logging.getLogger("sasrec.serving")

# Method indexes of frontend.cc: the service's methods in proto order, then reflection.
_RECOMMEND, _RECOMMEND_BATCH, _MODEL_INFO, _RECORD_EVENTS, _REFLECTION = 0, 1, 2, 3, 4
_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}
_OK = grpc.StatusCode.OK.value[0]
_LATE = "deadline passed before the answer was ready"
_NO_IDS = np.zeros((0,), dtype=np.int32)
# What a fast-path row's PreparedRequest carries as its request: only
# include_history and explain (False) are read from it when scoring.
_FAST_REQUESTS = (RecommendationRequest(), RecommendationRequest(include_history=True))


def load_extension() -> Any:
    """Imports the built extension (``make native``); raises ImportError if absent.

    TensorFlow loads its libraries with ``RTLD_GLOBAL``, and they export
    their own copies of protobuf's C++ symbols: an extension linked against
    the system's gRPC and protobuf would bind to those and crash. Loading it
    with ``RTLD_DEEPBIND`` makes it (and the libraries it brings) resolve
    their symbols in their own dependencies first, whatever was imported
    before.
    """
    import importlib
    import os
    import sys

    flags = sys.getdlopenflags()
    sys.setdlopenflags(os.RTLD_NOW | getattr(os, "RTLD_DEEPBIND", 0))
    try:
        return importlib.import_module("sasrec.serving._native_frontend")
    finally:
        sys.setdlopenflags(flags)


def native_frontend_available() -> bool:
    """True if the native front end is built (``make native``)."""
    try:
        load_extension()
    except ImportError:
        return False
    return True


@dataclass(slots=True)
class _Job:
    call_id: int
    method: str
    started: float
    prepared: list[Any]
    batch: bool
    deadline: float | None  # time.perf_counter() value, None: no deadline
    stored: list[int]  # items read from the event store, per request
    predictor: Any = None  # the version that answers (--keep-versions)
    label: str = ""  # its label, for RecommendResponse.version_label


@dataclass(slots=True)
class _FastCall:
    """A plain Recommend that C++ parsed and encoded (see the module docstring)."""

    call_id: int
    started: float
    deadline: float | None
    prepared: PreparedRequest


class NativeFrontend:
    """Serves ``sasrec.v1.Recommender`` through the C++ front end.

    Health is NOT_SERVING until :meth:`set_serving`; :meth:`stop` turns it
    NOT_SERVING, lets calls in flight finish (up to ``grace``) and cancels
    the rest. Errors get the Python server's codes and messages
    (:func:`~sasrec.serving.servicer.error_status`), and every call is
    counted in ``metrics`` by method and code.

    Args:
        options: Server settings (address, limits, TLS, token, batch size).
        current_predictor: Returns the predictor serving now (None before
            the first load). Read once per batch: a hot reload never changes
            the model under a call.
        metrics: Where calls and batch sizes are recorded.
        user_history: The server's store of users' events (None: none). Its
            calls block this front end's one Python thread (a Recommend by
            user_id reads the store, a RecordEvents waits for its fsync).
        router: The :class:`~sasrec.serving.version_router.VersionRouter`
            that picks each Recommend's version (None: ``current_predictor``).

    Example:
        >>> front = NativeFrontend(options, lambda: predictor, metrics)  # doctest: +SKIP
        >>> port = front.start(); front.set_serving(True)  # doctest: +SKIP
        >>> front.stop(grace=5)  # doctest: +SKIP
    """

    def __init__(
        self,
        options: ServerOptions,
        current_predictor: Callable[[], Any],
        metrics: ServingMetrics,
        user_history: UserHistory | None = None,
        router: Any = None,
    ) -> None:
        Frontend = load_extension().Frontend  # noqa: N806 - a class

        tls = options.tls_cert is not None and options.tls_key is not None
        self._frontend = Frontend(
            f"{options.host}:{options.port}",
            options.max_concurrent,
            auth_token=options.auth_token or "",
            tls_key=Path(options.tls_key).read_text() if tls else "",
            tls_cert=Path(options.tls_cert).read_text() if tls else "",
            reuse_port=options.reuse_port,
        )
        self._options = options
        self._address = f"{options.host}:{options.port}"
        self._current = current_predictor
        self._metrics = metrics
        self._history = user_history
        self._router = router
        self._thread: threading.Thread | None = None
        self._reflection: Any = None  # the Python server's reflection code, made on first use
        # The predictor whose vocabulary C++ encodes plain Recommends with,
        # and that table's generation (a call encoded with another one takes
        # the Python path).
        self._fast_predictor: Any = None
        self._fast_generation = 0
        self._fast_active = -1  # the generation C++ encodes with now (-1: none)

    def start(self) -> int:
        """Binds the port (health NOT_SERVING) and starts answering; returns the port."""
        port = self._frontend.start()
        self._address = f"{self._options.host}:{port}"
        self._thread = threading.Thread(target=self._serve, name="sasrec-native", daemon=True)
        self._thread.start()
        return port

    def set_serving(self, serving: bool) -> None:
        self._frontend.set_serving(serving)

    def stop(self, grace: float, drain: float = 0.0) -> None:
        """NOT_SERVING, then after ``drain`` seconds no new calls; waits for the rest."""
        self._frontend.set_serving(False)
        if drain:
            time.sleep(drain)
        logger.info("refusing new calls", extra={"fields": {"address": self._address}})
        self._frontend.shutdown(grace)
        if self._thread is not None:
            self._thread.join(timeout=grace + 5)

    @property
    def in_flight(self) -> int:
        """Calls accepted and not yet answered."""
        return self._frontend.in_flight

    @property
    def queued(self) -> int:
        """Calls waiting for this thread (not yet taken into a batch)."""
        return self._frontend.queued

    def _serve(self) -> None:
        max_items = self._options.max_batch_size
        while True:
            items = self._frontend.next_batch(max_items, 0.5)
            if items is None:
                return
            if items:
                try:
                    self._answer(items)
                except Exception:  # never let one batch end the serving thread
                    logger.exception("native front end: batch failed")

    def _install_fast_table(self, predictor: Any) -> None:
        """Gives C++ the vocabulary of ``predictor`` (or none: no fast path).

        The fast path answers as the Python path would only when every plain
        Recommend goes to this predictor: one version loaded. Each call makes
        a new generation, so a call encoded with an older table is parsed
        again by Python.
        """
        self._fast_predictor = predictor
        self._fast_generation += 1
        self._fast_active = -1
        router = self._router
        one_version = router is None or (router.keep_versions == 1 and router.latest() is predictor)
        if predictor is None or not self._options.native_fast_path or not one_version:
            self._frontend.clear_fast_table()
            return
        label = "" if router is None else router.label_of(predictor)
        limits = predictor.limits
        self._frontend.set_fast_table(
            self._fast_generation,
            [str(i) for i in predictor.vocabulary.item_ids],
            predictor.version,
            label,
            predictor.max_len,
            limits.max_k,
            limits.max_history,
            DEFAULT_K,
        )
        self._fast_active = self._fast_generation

    def _answer(self, items: list[tuple]) -> None:
        now = time.perf_counter()
        predictor = self._current()
        if predictor is not self._fast_predictor:
            self._install_fast_table(predictor)
        jobs: list[_Job] = []
        fast: list[_FastCall] = []
        generation = self._fast_active
        records: list[tuple[int, str, float, pb.RecordEventsRequest]] = []
        expired = 0
        for call_id, method, payload, remaining, age, rejected, encoded_with, ids in items:
            if method == _REFLECTION:
                self._reflect(call_id, payload)
                continue
            name = _METHOD_NAMES[method]
            started = now - age
            deadline = None if remaining is None else now + remaining
            if rejected >= 0:
                self._metrics.observe_call(name, _CODE_NAMES.get(rejected, "UNKNOWN"), age)
                continue
            try:
                if remaining is not None and remaining <= 0:
                    expired += 1
                    raise DeadlineExceededError("deadline passed before the request was scored")
                if predictor is None:
                    raise ModelUnavailableError("no model loaded yet; retry when health is SERVING")
                if method == _MODEL_INFO:
                    parse_request(pb.GetModelInfoRequest, payload)
                    body = model_info_to_proto(predictor.info()).SerializeToString()
                    self._finish_ok(call_id, name, started, body)
                elif method == _RECORD_EVENTS:
                    request = parse_request(pb.RecordEventsRequest, payload)
                    if self._history is None:
                        raise NoEventStoreError(NO_EVENT_STORE)
                    records.append((call_id, name, started, request))
                elif method == _RECOMMEND and ids is not None and encoded_with == generation:
                    record = np.frombuffer(ids, dtype=np.int32)
                    prepared = PreparedRequest(
                        request=_FAST_REQUESTS[int(record[1])],
                        k=int(record[0]),
                        history_ids=record[2:],
                        deny_ids=_NO_IDS,
                        allow_ids=None,
                        unknown_items=(),
                        fallback=False,
                        nothing_allowed=False,
                    )
                    fast.append(_FastCall(call_id, started, deadline, prepared))
                elif method == _RECOMMEND:
                    request = parse_request(pb.RecommendRequest, payload)
                    chosen, label = self._route(request, predictor)
                    stored = 0
                    if self._history is not None and request.user_id:
                        max_history = chosen.limits.max_history
                        request, stored = self._history.merge(request, max_history)
                    prepared = [chosen.prepare(request_from_proto(request))]
                    job = _Job(call_id, name, started, prepared, False, deadline, [stored])
                    job.predictor, job.label = chosen, label
                    jobs.append(job)
                else:
                    request = parse_request(pb.RecommendBatchRequest, payload)
                    first = request.requests[0] if request.requests else pb.RecommendRequest()
                    chosen, label = self._route(first, predictor)
                    counts: list[int] = []
                    if self._history is not None and any(r.user_id for r in request.requests):
                        request, counts = merge_batch(self._history, request, chosen.limits)
                    prepared = prepare_batch(chosen, request)
                    job = _Job(call_id, name, started, prepared, True, deadline, counts)
                    job.predictor, job.label = chosen, label
                    jobs.append(job)
            except MalformedRequestError as err:
                self._finish_status(call_id, name, started, grpc.StatusCode.INVALID_ARGUMENT, err)
            except Exception as err:
                self._finish_error(call_id, name, started, err)
        if expired:
            self._metrics.observe_skipped("deadline", expired)
        if records:
            self._record(records)
        if not jobs and not fast:
            return
        try:
            hook = self._options.batch_hook
            if hook is not None and (
                fast or any(p.needs_model for job in jobs for p in job.prepared)
            ):
                hook(len(fast) + sum(len(job.prepared) for job in jobs))
        except Exception as err:
            for job in jobs:
                self._finish_error(job.call_id, job.method, job.started, err)
            for call in fast:
                self._finish_error(call.call_id, "Recommend", call.started, err)
            return
        # The same rule as the Python front end's batcher: a deadline that passed
        # before scoring starts means no scoring.
        jobs = self._unexpired(jobs)
        if fast:
            self._score_fast(predictor, self._unexpired(fast))
        if not jobs:
            return
        # One model call per version in the batch (one unless --keep-versions).
        by_version: dict[int, list[_Job]] = {}
        for job in jobs:
            by_version.setdefault(id(job.predictor), []).append(job)
        for group in by_version.values():
            self._score(group)

    def _score(self, jobs: list[_Job]) -> None:
        """Scores the jobs of one version in one call and answers each."""
        rows = [p for job in jobs for p in job.prepared]
        try:
            answers = jobs[0].predictor.predict(rows)
        except Exception as err:
            for job in jobs:
                self._finish_error(job.call_id, job.method, job.started, err)
            return
        self._metrics.observe_batch(sum(1 for p in rows if p.needs_model))
        at = 0
        done = time.perf_counter()
        for job in jobs:
            recs = answers[at : at + len(job.prepared)]
            at += len(job.prepared)
            if job.deadline is not None and job.deadline <= done:
                # gRPC drops a late answer anyway; book it as what the client sees.
                code = grpc.StatusCode.DEADLINE_EXCEEDED
                self._finish_status(job.call_id, job.method, job.started, code, _LATE)
                continue
            if job.batch:
                message = batch_response(recs, job.stored)
                for answer in message.responses:
                    answer.version_label = job.label
            else:
                message = recommendation_to_proto(recs[0])
                message.stored_history_length = job.stored[0]
                message.version_label = job.label
            self._finish_ok(job.call_id, job.method, job.started, message.SerializeToString())

    def _score_fast(self, predictor: Any, calls: list[_FastCall]) -> None:
        """Scores the batch's fast-path calls in one engine call; C++ builds the answers."""
        if not calls:
            return
        started = [call.started for call in calls]
        try:
            top = predictor.top_k([call.prepared for call in calls])
        except Exception as err:
            for call in calls:
                self._finish_error(call.call_id, "Recommend", call.started, err)
            return
        self._metrics.observe_batch(len(calls))
        done = time.perf_counter()
        on_time = [i for i, c in enumerate(calls) if c.deadline is None or c.deadline > done]
        if len(on_time) < len(calls):
            code = grpc.StatusCode.DEADLINE_EXCEEDED
            for call in calls:
                if call.deadline is not None and call.deadline <= done:
                    self._finish_status(call.call_id, "Recommend", call.started, code, _LATE)
            calls = [calls[i] for i in on_time]
            top_ids, top_scores = top.ids[on_time], top.scores[on_time]
            started = [started[i] for i in on_time]
        else:
            top_ids, top_scores = top.ids, top.scores
        if not calls:
            return
        self._frontend.finish_fast(
            self._fast_active,
            [call.call_id for call in calls],
            top_ids,
            top_scores,
            [call.prepared.k for call in calls],
        )
        finished = time.perf_counter()
        self._metrics.observe_calls("Recommend", "OK", [finished - s for s in started])
        if self._router is not None:
            label = self._router.label_of(predictor)
            self._metrics.observe_version_request(predictor.version, label, len(calls))

    def _route(self, request: pb.RecommendRequest, current: Any) -> tuple[Any, str]:
        """The version for ``request`` (the router's pick) and its label."""
        if self._router is None:
            return current, ""
        chosen, label = self._router.route(request)
        return (current, "") if chosen is None else (chosen, label)

    def _record(self, records: list[tuple[int, str, float, pb.RecordEventsRequest]]) -> None:
        """Answers the batch's RecordEvents calls with one store write (one fsync)."""
        answers = self._history.record_many([request for *_, request in records])
        for (call_id, name, started, _), answer in zip(records, answers):
            if isinstance(answer, Exception):
                self._finish_error(call_id, name, started, answer)
            else:
                body = pb.RecordEventsResponse(recorded=answer).SerializeToString()
                self._finish_ok(call_id, name, started, body)

    def _reflect(self, call_id: int, payload: bytes) -> None:
        """Answers one server reflection request (the C++ side checked the token)."""
        from grpc_reflection.v1alpha import reflection, reflection_pb2

        from sasrec.serving.request_parsing import SERVICE_NAME

        if self._reflection is None:
            names = (SERVICE_NAME, "grpc.health.v1.Health", reflection.SERVICE_NAME)
            self._reflection = reflection.ReflectionServicer(names)
        try:
            request = parse_request(reflection_pb2.ServerReflectionRequest, payload)
            answer = next(iter(self._reflection.ServerReflectionInfo([request], None)))
        except MalformedRequestError as err:
            code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
            self._frontend.finish(call_id, code, str(err), b"", b"")
        except Exception as err:  # one bad request must not cost the batch its answers
            code, message, _details = error_status(err)
            self._frontend.finish(call_id, code.value[0], message, b"", b"")
        else:
            self._frontend.finish(call_id, _OK, "", answer.SerializeToString(), b"")

    def _unexpired(self, jobs: list[Any]) -> list[Any]:
        """The jobs (or fast calls) whose deadline has not passed; the rest: DEADLINE_EXCEEDED."""
        now = time.perf_counter()
        live = [job for job in jobs if job.deadline is None or job.deadline > now]
        if len(live) < len(jobs):
            code = grpc.StatusCode.DEADLINE_EXCEEDED
            message = "deadline passed before the request was scored"
            for job in jobs:
                if job.deadline is not None and job.deadline <= now:
                    method = getattr(job, "method", "Recommend")
                    self._finish_status(job.call_id, method, job.started, code, message)
            self._metrics.observe_skipped("deadline", len(jobs) - len(live))
        return live

    def _finish_status(
        self, call_id: int, method: str, started: float, code: grpc.StatusCode, message: Any
    ) -> None:
        self._frontend.finish(call_id, code.value[0], str(message), b"", b"")
        self._metrics.observe_call(method, code.name, time.perf_counter() - started)

    def _finish_ok(self, call_id: int, method: str, started: float, body: bytes) -> None:
        self._frontend.finish(call_id, _OK, "", body, b"")
        self._metrics.observe_call(method, "OK", time.perf_counter() - started)

    def _finish_error(self, call_id: int, method: str, started: float, err: Exception) -> None:
        code, message, details = error_status(err)
        self._frontend.finish(call_id, code.value[0], message, b"", details)
        self._metrics.observe_call(method, code.name, time.perf_counter() - started)


_METHOD_NAMES = ("Recommend", "RecommendBatch", "GetModelInfo", "RecordEvents")
