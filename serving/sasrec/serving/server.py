"""Server assembly: gRPC (asyncio) + health + reflection + batcher + hot reload + metrics.

Threads: one asyncio event loop thread runs every gRPC handler (they only
validate, enqueue and await), one micro-batching thread runs the model (NumPy
BLAS capped at ``blas_threads``; TensorFlow ``intra_op = cores, inter_op = 1``),
one watcher thread polls for new versions, and the load thread warms up new
versions. With ``frontend="native"`` the C++ front end
(:class:`~sasrec.serving.native_frontend.NativeFrontend`) replaces the event
loop, the handlers and the batching thread.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2
from grpc_reflection.v1alpha import reflection

from sasrec.artifact import is_version_dir, list_versions
from sasrec.engines.registry import NUMPY_ENGINES
from sasrec.serving.auth_interceptor import BearerTokenInterceptor
from sasrec.serving.errors import ModelUnavailableError
from sasrec.serving.event_loop import run_on_loop
from sasrec.serving.event_store import open_event_store
from sasrec.serving.grpc_handlers import health_handler, recommender_handler, reflection_handler
from sasrec.serving.metrics_interceptor import MetricsInterceptor
from sasrec.serving.micro_batcher import MicroBatcher
from sasrec.serving.model_watcher import ModelWatcher
from sasrec.serving.request_parsing import SERVICE_NAME
from sasrec.serving.server_options import ServerOptions
from sasrec.serving.servicer import RecommenderServicer
from sasrec.serving.serving_metrics import ServingMetrics
from sasrec.serving.user_history import UserHistory
from sasrec.serving.version_router import STABLE, VersionRouter, parse_version_labels

logger = logging.getLogger("sasrec.serving")

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# A method nobody serves: on stop, a call to it on the server's private port
# tells when every call that reached the server before has reached Python.
_PROBE_METHOD = "/sasrec.internal.Drain/Probe"


class RecommenderServer:
    """A running ``sasrec.v1.Recommender`` gRPC server (in-process, background threads).

    Health (``grpc.health.v1``, service ``""`` and ``sasrec.v1.Recommender``)
    is NOT_SERVING until a model version is loaded and warmed up, SERVING
    after, NOT_SERVING again from the start of :meth:`stop`.

    Args:
        model_dir: A versions root (``DIR/1``, ``DIR/2``, ...; followed for
            hot reload) or one version directory.
        options: Server settings.

    Example:
        >>> server = RecommenderServer("models", ServerOptions(port=0)).start()  # doctest: +SKIP
        >>> server.port  # doctest: +SKIP
        40123
        >>> server.stop(grace=5)  # doctest: +SKIP
    """

    def __init__(self, model_dir: str | os.PathLike, options: ServerOptions | None = None) -> None:
        self.model_dir = Path(model_dir)
        self.options = options or ServerOptions()
        self.metrics = ServingMetrics()
        self.port: int = 0
        self.metrics_port: int = 0
        self.http_port: int = 0  # the HTTP/JSON gateway's (options.http_port; 0: off)
        self._user_history: UserHistory | None = None
        self._http: Any = None  # HttpGateway with options.http_port set
        self._predictor: Any = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self._stopping = False
        self._load_error: BaseException | None = None
        self._server: grpc.aio.Server | None = None
        self._health: Any = None
        self._native: Any = None  # NativeFrontend with ``frontend="native"``
        self._probe_address: str | None = None  # the private port of the drain probe
        opts = self.options
        self._router = VersionRouter(
            opts.keep_versions,
            opts.canary_percent,
            parse_version_labels(opts.version_labels),
            on_change=self.metrics.set_versions,
            on_pick=self.metrics.observe_version_request,
        )
        self._watcher = ModelWatcher(
            self.model_dir,
            load=self._load_version,
            on_loaded=self._swap,
            poll_seconds=opts.poll_seconds,
            on_reload=self.metrics.observe_reload,
        )
        self._batcher = MicroBatcher(
            max_batch_size=opts.max_batch_size,
            max_wait_seconds=opts.max_wait_ms / 1000.0,
            busy_wait_seconds=opts.busy_wait_ms / 1000.0,
            max_queue=opts.max_queue,
            on_batch=self.metrics.observe_batch,
            on_skipped=self.metrics.observe_skipped,
            before_batch=opts.batch_hook,
        )

    # ------------------------------------------------------------------ state

    @property
    def bound_address(self) -> str:
        """``host:port`` the gRPC port is bound to (``0.0.0.0:50051``: all interfaces)."""
        return f"{self.options.host}:{self.port}"

    @property
    def address(self) -> str:
        """``host:port`` a client on this machine can dial."""
        host = self.options.host
        if host in ("[::]", "0.0.0.0", "", "::"):
            host = "127.0.0.1"
        return f"{host}:{self.port}"

    @property
    def predictor(self) -> Any:
        """The predictor serving now (None before the first load)."""
        return self._predictor

    @property
    def model_version(self) -> str | None:
        predictor = self._predictor
        return None if predictor is None else predictor.version

    @property
    def queued_requests(self) -> int:
        """Requests waiting for the batching thread."""
        if self._native is not None:
            return self._native.queued
        return self._batcher.queue_size

    @property
    def ready(self) -> bool:
        """True once the first model serves."""
        return self._ready.is_set() and self._load_error is None

    @property
    def load_error(self) -> BaseException | None:
        """Why the first load failed (None while loading or once serving)."""
        return self._load_error if self._ready.is_set() else None

    # ------------------------------------------------------------------ lifecycle

    def start(self, wait_ready: bool = True, timeout: float | None = None) -> RecommenderServer:
        """Binds the port, then loads the model on a background thread.

        Args:
            wait_ready: Block until the model serves (re-raising a load error).
            timeout: Longest wait for readiness, in seconds.
        """
        from sasrec.runtime import configure_threads, limit_blas_threads

        opts = self.options
        # Before any TF work: the batching thread gets the cores, TF no inter-op pool.
        configure_threads(opts.intra_op_threads or None, 1)
        if opts.engine in NUMPY_ENGINES:
            limit_blas_threads(opts.blas_threads)
            if opts.retrieval != "exact" and importlib.util.find_spec("faiss") is not None:
                from sasrec.engines.ann_index import limit_faiss_threads

                # The index searches on the batching thread: as many OpenMP
                # threads as BLAS ones, not one per core.
                limit_faiss_threads(opts.blas_threads)
        if opts.metrics_port:
            metrics_host = opts.metrics_host or opts.host
            self.metrics_port = self.metrics.serve_http(opts.metrics_port, _bare(metrics_host))
            logger.info(
                "metrics listening",
                extra={"fields": {"address": f"{metrics_host}:{self.metrics_port}"}},
            )
        try:
            if opts.event_store:
                store = open_event_store(
                    opts.event_store, opts.stored_events, opts.event_ttl_seconds
                )
                self._user_history = UserHistory(store, opts.max_events_per_call)
            if opts.frontend == "native":
                from sasrec.serving.native_frontend import NativeFrontend

                self._native = NativeFrontend(
                    opts, lambda: self._predictor, self.metrics, self._user_history, self._router
                )
                self.port = self._native.start()
            else:
                self._batcher.start()
                self.port = run_on_loop(self._start_grpc())
            if opts.http_port is not None:
                self._batcher.start()  # idempotent; the native front end does not start it
                self.http_port = run_on_loop(self._start_http())
        except BaseException:
            if self._native is not None:
                self._native.stop(0)
            self._batcher.stop()
            self.metrics.stop_http()
            self._close_event_store()
            raise
        logger.info(
            "gRPC server listening",
            extra={"fields": {"address": self.bound_address, "model_dir": str(self.model_dir)}},
        )
        threading.Thread(target=self._load_initial, name="sasrec-model-load", daemon=True).start()
        if wait_ready:
            try:
                self.wait_ready(timeout)
            except BaseException:
                self.stop(grace=0)
                raise
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Waits until the first model serves; raises if loading failed."""
        if not self._ready.wait(timeout):
            raise TimeoutError(f"model not ready after {timeout} s")
        if self._load_error is not None:
            raise self._load_error

    def stop(self, grace: float | None = None) -> None:
        """Graceful stop: NOT_SERVING, drain, finish calls in flight (up to grace), close.

        Args:
            grace: Seconds calls in flight may take (default ``grace_seconds``).
        """
        with self._stop_lock:
            if self._stopping:
                already = True
            else:
                already = False
                self._stopping = True
        if already:
            self._stopped.wait()
            return
        grace = self.options.grace_seconds if grace is None else grace
        logger.info("stopping", extra={"fields": {"grace_seconds": grace}})
        try:
            if self._native is not None:
                self._native.stop(grace, self.options.drain_seconds)
            elif self._server is not None:
                run_on_loop(self._stop_grpc(grace))
            if self._http is not None:
                run_on_loop(self._http.stop())
        finally:
            self._watcher.stop(timeout=grace + 5)
            self._batcher.stop(timeout=grace + 5)
            self.metrics.stop_http()
            self._close_event_store()
            self._stopped.set()
            logger.info("stopped")

    def wait(self, timeout: float | None = None) -> bool:
        """Blocks until :meth:`stop` finished; True if it did within ``timeout``."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> RecommenderServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals

    async def _start_grpc(self) -> int:
        opts = self.options
        interceptors: list[grpc.aio.ServerInterceptor] = [MetricsInterceptor(self.metrics)]
        if opts.auth_token:
            # Auth first: an unauthenticated call costs nothing else.
            interceptors.insert(0, BearerTokenInterceptor(opts.auth_token))
        server = grpc.aio.server(
            interceptors=interceptors,
            maximum_concurrent_rpcs=opts.max_concurrent,
            options=[("grpc.so_reuseport", int(opts.reuse_port))],
        )
        # A generic handler that takes the raw body: parsing in the handler turns a
        # malformed body into INVALID_ARGUMENT (a failing deserializer in grpcio
        # is an UNKNOWN with an error traceback). It also puts the calls in the
        # queue of the drain probe (see _catch_up).
        servicer = RecommenderServicer(
            lambda: self._predictor, self._batcher, self._user_history, self._router
        )
        server.add_generic_rpc_handlers((recommender_handler(servicer),))
        self._health = health.aio.HealthServicer()
        for service in ("", SERVICE_NAME):
            await self._health.set(service, _NOT_SERVING)
        # Health and reflection take raw bodies too: the same answer to a malformed one.
        server.add_generic_rpc_handlers(
            (
                health_handler(self._health),
                reflection_handler((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)),
            )
        )
        address = f"{opts.host}:{opts.port}"
        if opts.tls_cert is not None and opts.tls_key is not None:
            credentials = grpc.ssl_server_credentials(
                [(Path(opts.tls_key).read_bytes(), Path(opts.tls_cert).read_bytes())]
            )
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
        if not port:
            raise OSError(f"cannot bind gRPC port {address}")
        self._probe_address = _add_probe_port(server)
        await server.start()
        self._server = server
        return port

    async def _start_http(self) -> int:
        from sasrec.serving.http_gateway import HttpGateway

        servicer = RecommenderServicer(
            lambda: self._predictor, self._batcher, self._user_history, self._router
        )
        gateway = HttpGateway(
            servicer, self.options, self.metrics, lambda: self.ready and not self._stopping
        )
        port = await gateway.start(_bare(self.options.host))
        self._http = gateway
        logger.info(
            "HTTP gateway listening",
            extra={"fields": {"address": f"{self.options.host}:{port}"}},
        )
        return port

    def _close_event_store(self) -> None:
        if self._user_history is not None:
            self._user_history.store.close()
            self._user_history = None

    async def _stop_grpc(self, grace: float) -> None:
        await self._health.enter_graceful_shutdown()
        if self.options.drain_seconds:
            await asyncio.sleep(self.options.drain_seconds)
        loop = asyncio.get_running_loop()
        end = loop.time() + grace
        await self._catch_up(grace)
        stopping = asyncio.ensure_future(self._server.stop(max(0.0, end - loop.time())))
        await asyncio.sleep(0)  # the stop has begun: the port takes no new calls
        logger.info("refusing new calls", extra={"fields": {"address": self.bound_address}})
        await stopping

    async def _catch_up(self, timeout: float) -> None:
        """Waits until every call that reached the server so far has reached Python.

        gRPC's core queues the calls it received until the event loop asks
        for the next one, and a server stop cancels whatever is still queued
        there: under load that is calls sent well before the stop (they would
        end CANCELLED at once, grace or not). The queue is first in, first
        out, so once a call made now, to a method nobody serves, has come back
        (UNIMPLEMENTED), every call ahead of it is being handled and the stop
        lets it finish within the grace period. The probe goes through a
        private abstract socket, so neither TLS nor the token is in its way.
        """
        if self._probe_address is None or timeout <= 0:
            return
        try:
            async with grpc.aio.insecure_channel(self._probe_address) as channel:
                await channel.unary_unary(_PROBE_METHOD)(b"", timeout=timeout)
        except grpc.aio.AioRpcError as err:
            if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                logger.warning("drain probe failed", extra={"fields": {"code": err.code().name}})

    async def _set_health(self, status: Any) -> None:
        for service in ("", SERVICE_NAME):
            await self._health.set(service, status)

    def _load_version(self, path: Path) -> Any:
        from sasrec.serving.predictor import Predictor

        if self.options.load_hook is not None:
            self.options.load_hook(path)
        if self._stopping:
            raise ModelUnavailableError("server is stopping")
        start = time.perf_counter()
        predictor = Predictor.load(
            path,
            limits=self.options.limits,
            max_batch_size=self.options.max_batch_size,
            engine=self.options.engine,
            retrieval=self.options.retrieval,
        )
        predictor.warm_up()
        logger.info(
            "model loaded and warmed up",
            extra={
                "fields": {
                    "path": str(path),
                    "version": predictor.version,
                    "num_items": predictor.num_items,
                    "seconds": round(time.perf_counter() - start, 3),
                }
            },
        )
        return predictor

    def _swap(self, predictor: Any) -> None:
        self._router.add(predictor)
        # The version GetModelInfo and the native front end answer with:
        # one reference assignment, atomic for readers.
        self._predictor = self._router.labelled(STABLE)
        self.metrics.set_model(self._router.latest().version)

    def _load_older_versions(self) -> None:
        """With ``--keep-versions N``: the next N - 1 loadable versions below the newest."""
        if self.options.keep_versions < 2 or is_version_dir(self.model_dir):
            return
        wanted = set(self._router.labels.values())
        newest = self._router.versions[-1]
        older = [p for p in list_versions(self.model_dir) if p.name != newest]
        for path in older:
            if self._stopping:
                return
            loaded = self._router.versions
            if len(loaded) >= self.options.keep_versions and not wanted - set(loaded):
                return
            try:
                self._swap(self._load_version(path))
            except Exception as err:  # a broken old version must not stop the server
                logger.error(
                    "older version not loaded",
                    extra={"fields": {"path": str(path), "error": str(err)}},
                )

    def _load_initial(self) -> None:
        try:
            self._watcher.load_initial()
            self._load_older_versions()
            if self._stopping:
                return
            if self._native is not None:
                self._native.set_serving(True)
            else:
                run_on_loop(self._set_health(_SERVING))
            self._watcher.start()
            logger.info(
                "serving", extra={"fields": {"version": self.model_version, "port": self.port}}
            )
        except BaseException as err:
            self._load_error = err
            logger.error("model load failed", extra={"fields": {"error": str(err)}})
        finally:
            self._ready.set()


def _bare(host: str) -> str:
    """``[::]`` -> ``::`` (HTTP servers take IPv6 literals without brackets)."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _add_probe_port(server: grpc.aio.Server) -> str | None:
    """Binds a private abstract socket for the drain probe (None where there is none)."""
    address = f"unix-abstract:sasrec-drain-{os.getpid()}-{secrets.token_hex(8)}"
    try:
        return address if server.add_insecure_port(address) else None
    except RuntimeError:  # no abstract sockets (not Linux): stop without the probe
        return None


def start_server(
    model_dir: str | os.PathLike,
    port: int = 0,
    *,
    wait_ready: bool = True,
    timeout: float | None = None,
    **options: Any,
) -> RecommenderServer:
    """Starts a server in this process (background threads) and returns it.

    Args:
        model_dir: Versions root or one version directory.
        port: gRPC port; 0 picks a free one (read it from ``.port``).
        wait_ready: Block until the model serves.
        timeout: Longest wait for readiness.
        **options: Any :class:`ServerOptions` field; ``host`` defaults to
            ``127.0.0.1`` here (in-process use is local).

    Returns:
        The running :class:`RecommenderServer`; call ``.stop(grace)`` to end it.

    Example:
        >>> server = start_server("models", port=0)  # doctest: +SKIP
        >>> client = RecommenderClient(server.address)  # doctest: +SKIP
    """
    options.setdefault("host", "127.0.0.1")
    server = RecommenderServer(model_dir, ServerOptions(port=port, **options))
    return server.start(wait_ready=wait_ready, timeout=timeout)
