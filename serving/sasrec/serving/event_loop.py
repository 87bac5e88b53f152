"""The process's one asyncio event loop for gRPC aio, on its own thread.

gRPC's asyncio server wants a single loop per process; the server's
handlers, its HTTP gateway and its start and stop all run on this one,
which a daemon thread named ``sasrec-grpc-loop`` runs forever.

Example:
    >>> async def answer() -> int:
    ...     return 42
    >>> run_on_loop(answer())  # doctest: +SKIP
    42
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

_loop_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def shared_loop() -> asyncio.AbstractEventLoop:
    """The process's one gRPC asyncio loop (gRPC aio wants a single loop per process).

    uvloop when it is installed (a dependency on Linux and macOS): the loop's
    own work per call is a good part of a call's CPU, and uvloop measured
    5-10% less server CPU per call than asyncio's loop on an echo server.
    ``SASREC_EVENT_LOOP=asyncio`` picks the standard loop.
    """
    global _loop
    with _loop_lock:
        if _loop is None:
            loop = new_loop(os.environ.get("SASREC_EVENT_LOOP", "auto"))
            thread = threading.Thread(target=loop.run_forever, name="sasrec-grpc-loop", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A new loop of ``kind``: ``auto`` (uvloop if installed), ``asyncio`` or ``uvloop``."""
    if kind not in ("auto", "asyncio", "uvloop"):
        raise ValueError(f"SASREC_EVENT_LOOP must be auto, asyncio or uvloop, received {kind!r}")
    if kind != "asyncio":
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def event_loop_kind() -> str:
    """``"uvloop"`` or ``"asyncio"``: the loop the gRPC server runs on."""
    return "uvloop" if type(shared_loop()).__module__.startswith("uvloop") else "asyncio"


def run_on_loop(coro: Any, timeout: float | None = None) -> Any:
    """Runs ``coro`` on the shared loop from another thread and returns its result."""
    return asyncio.run_coroutine_threadsafe(coro, shared_loop()).result(timeout)
