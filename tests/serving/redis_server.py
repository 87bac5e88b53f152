"""A real Redis server for the tests: the Debian package's ``redis-server``, durable.

``make test`` installs it (``make redis``); a test that needs it skips with
the reason only where it is absent and ``SASREC_REQUIRE_REDIS`` is unset.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server") or (
    "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
)


def require_redis() -> str:
    """The redis-server binary; skips (or fails under ``SASREC_REQUIRE_REDIS=1``) without it."""
    if REDIS_SERVER is None:
        if os.environ.get("SASREC_REQUIRE_REDIS") == "1":
            pytest.fail("redis-server not found and SASREC_REQUIRE_REDIS=1 (run make redis)")
        pytest.skip("redis-server not installed (make redis: apt-get install redis-server)")
    return REDIS_SERVER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One redis-server process on a loopback port, its data in ``directory``.

    Started with an append-only file fsynced at every write, as production
    must run it (docs/serving.md). :meth:`kill` is ``kill -9``;
    :meth:`start` again on the same directory replays the file.

    Example:
        >>> with RedisServer(tmp_path) as redis:  # doctest: +SKIP
        ...     store = RedisEventStore(redis.url)
    """

    def __init__(self, directory: Path, port: int | None = None, durable: bool = True) -> None:
        self.binary = require_redis()
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.durable = durable
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        fsync = ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else []
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                str(self.directory),
                "--protected-mode",
                "yes",
                *fsync,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        end = time.monotonic() + 20
        while time.monotonic() < end:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        """``kill -9``: no shutdown, no final save."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
