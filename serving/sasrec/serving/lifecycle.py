"""Runs one server process until a signal asks it to stop, then drains it.

Used by ``sasrec serve`` and by each worker process of ``--workers N``.

Example:
    >>> from sasrec.serving.lifecycle import serve_until_signalled  # doctest: +SKIP
    >>> serve_until_signalled(Path("models"), ServerOptions(port=50051))  # doctest: +SKIP
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any


def serve_until_signalled(
    model: Path,
    options: Any,
    signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT),
) -> int:
    """Runs one server until one of ``signals`` arrives, then stops it gracefully.

    Raises:
        ValueError: The model could not be loaded (the message says why).
    """
    from sasrec.serving.server import RecommenderServer

    server = RecommenderServer(model, options)
    stop_requested = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop_requested.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    try:
        server.start(wait_ready=False)
        print(f"sasrec serve: listening on port {server.port}", file=sys.stderr, flush=True)
        while not stop_requested.wait(0.5):
            if server.wait(0):
                break
            if server.load_error is not None:
                server.stop(grace=0)
                raise ValueError(f"--model {model}: {server.load_error}")
        server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
