"""``sasrec serve --workers N``: N server processes sharing one port.

Python gRPC runs every handler on one event-loop thread under the GIL (about
0.5 ms of CPU per call on the project machine), so one process tops out near
one core however many cores the machine has. Each worker here is a complete
server (health, reflection, metrics, hot reload, micro-batching with one
scoring thread) bound to the same port with ``SO_REUSEPORT``: the kernel
spreads incoming *connections* over the workers, so load is balanced when
clients open several connections (many client processes, or a client with
one channel per worker; a single HTTP/2 connection stays on one worker).

The parent only supervises: it forwards SIGTERM/SIGINT to the workers (each
drains and stops gracefully), and if one worker dies unexpectedly it stops
the others and exits non-zero, so the process manager restarts the whole
unit instead of serving at reduced capacity unnoticed. Workers whose parent
is killed outright (SIGKILL) notice within half a second and stop.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sasrec.serving.server_options import ServerOptions

logger = logging.getLogger("sasrec.serving")


def free_port(host: str) -> int:
    """A currently free TCP port on ``host`` (for ``--port 0`` with workers)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host.strip("[]") or "", 0))
        return int(sock.getsockname()[1])


class WorkerPool:
    """Supervises ``workers`` server processes on one port.

    Each worker gets ``options`` with ``reuse_port=True``, one scoring thread
    (``intra_op_threads=1``, ``blas_threads=1``: the cores are shared between
    the processes) and, when metrics are on, its own metrics port
    ``metrics_port + index``.

    Args:
        model_dir: Versions root or one version directory.
        options: The server options; ``port`` 0 picks one free port for all.
        workers: Number of processes (>= 1).

    Example:
        >>> pool = WorkerPool("models", ServerOptions(port=50051), workers=2)  # doctest: +SKIP
        >>> exit_code = pool.run()  # until SIGTERM  # doctest: +SKIP
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        options: ServerOptions,
        workers: int,
        log_level: str = "INFO",
    ) -> None:
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, received workers={workers!r}")
        self.model_dir = Path(model_dir)
        port = options.port or free_port(options.host)
        self.options = options.replace(
            port=port, reuse_port=True, intra_op_threads=1, blas_threads=1
        )
        self.workers = workers
        self.log_level = log_level
        self._processes: list[Any] = []
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        return self.options.port

    def worker_options(self, index: int) -> ServerOptions:
        """The options of worker ``index`` (its own metrics port)."""
        metrics = self.options.metrics_port
        return self.options.replace(metrics_port=metrics + index if metrics else 0)

    def start(self) -> None:
        """Starts the worker processes (they load the model in parallel)."""
        context = multiprocessing.get_context("spawn")
        for index in range(self.workers):
            process = context.Process(
                target=_worker_main,
                args=(str(self.model_dir), self.worker_options(index), self.log_level, os.getpid()),
                name=f"sasrec-serve-worker-{index}",
            )
            process.start()
            self._processes.append(process)
        logger.info(
            "worker pool started",
            extra={"fields": {"workers": self.workers, "port": self.port}},
        )

    def stop(self) -> None:
        """Asks every worker to stop gracefully (SIGTERM)."""
        self._stopping.set()
        for process in self._processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    def wait(self) -> int:
        """Waits until every worker has exited; returns the exit code of the pool.

        0 when all workers stopped cleanly after :meth:`stop`; 1 if any worker
        exited on its own (the others are stopped then) or with an error.
        """
        failed = False
        while any(p.is_alive() for p in self._processes):
            for process in self._processes:
                process.join(0.2)
                if not process.is_alive() and not self._stopping.is_set():
                    logger.error(
                        "worker exited unexpectedly; stopping the pool",
                        extra={"fields": {"worker": process.name, "exitcode": process.exitcode}},
                    )
                    failed = True
                    self.stop()
        codes = [p.exitcode for p in self._processes]
        return 1 if failed or any(code != 0 for code in codes) else 0

    def run(self) -> int:
        """Starts, forwards SIGTERM/SIGINT to the workers, waits; the exit code."""
        previous = {
            sig: signal.signal(sig, lambda *_: self.stop())
            for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.start()
            return self.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _worker_main(model_dir: str, options: ServerOptions, log_level: str, parent: int) -> None:
    from sasrec.serving.json_log_formatter import configure_json_logging
    from sasrec.serving.lifecycle import serve_until_signalled

    configure_json_logging(log_level)
    # A terminal's Ctrl-C reaches the whole process group: the parent forwards
    # SIGTERM anyway, so workers ignore SIGINT and stop exactly once.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # If the supervisor is killed outright (SIGKILL), nothing forwards a stop:
    # a worker re-parented away from it stops by itself instead of lingering,
    # also while it is still importing or loading the model (which can take
    # a minute on a loaded machine), hence a thread started first.
    threading.Thread(
        target=_stop_when_orphaned, args=(parent,), name="sasrec-supervisor-watch", daemon=True
    ).start()
    raise SystemExit(serve_until_signalled(Path(model_dir), options, signals=(signal.SIGTERM,)))


def _stop_when_orphaned(parent: int, interval: float = 0.5) -> None:
    while os.getppid() == parent:
        time.sleep(interval)
    print("sasrec serve: supervisor gone; stopping", file=sys.stderr, flush=True)
    # Before serve_until_signalled installs its handler this ends the process
    # at once (nothing to drain yet); after, it is the graceful stop.
    os.kill(os.getpid(), signal.SIGTERM)
