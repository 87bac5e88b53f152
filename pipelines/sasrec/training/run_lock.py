"""``OUT/.train.lock``: one training run at a time owns ``OUT`` and its checkpoint.

A second ``sasrec train`` on the same ``--out`` would empty the first run's
``.checkpoint`` under it. The lock is an ``fcntl.flock`` on ``OUT/.train.lock``,
which holds the owner's pid and host: the kernel releases it when the owner
exits, however it exits (even ``kill -9``), so a lock left behind by a dead
run is simply taken over (with a notice naming the run that left it).

Example:
    >>> with RunLock(Path("runs/m")):  # doctest: +SKIP
    ...     train()
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

LOCK_FILE = ".train.lock"


class OutputError(Exception):
    """``--out`` cannot take this run: locked by another run, read-only, full.

    Attributes:
        path: The file or directory concerned.
        errno: The OS error number behind it, if any.
    """

    def __init__(self, message: str, path: str | os.PathLike, error_number: int | None = None):
        super().__init__(message)
        self.path = Path(path)
        self.errno = error_number


class OutputLockedError(OutputError):
    """Another live run holds ``OUT/.train.lock``."""


class RunLock:
    """The exclusive lock of one training run on ``out`` (a context manager).

    Raises (on enter):
        OutputLockedError: another process holds the lock; the message names
            its pid, its host and ``out``.
        OSError: the lock file cannot be created (read-only or full file system).
    """

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.path = self.out / LOCK_FILE
        self._fd: int | None = None
        self.previous_owner: dict[str, Any] | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                owner = _read_owner(fd)
                os.close(fd)
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                message = _locked_message(self.out, self.path, owner)
                raise OutputLockedError(message, self.path) from None
            # The previous owner may have removed the file between our open and
            # our flock: then we hold a lock on a file nobody else will open.
            if _same_file(fd, self.path):
                break
            os.close(fd)
        self._fd = fd
        owner = _read_owner(fd)
        if owner and owner.get("pid") != os.getpid():
            self.previous_owner = owner
            print(
                f"notice: {self.path}: taking over the lock of run pid {owner.get('pid')} "
                f"on {owner.get('host')}, which has ended",
                file=sys.stderr,
                flush=True,
            )
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)

    def release(self) -> None:
        if self._fd is None:
            return
        # Unlink before unlocking: whoever opens the path next gets a new file.
        with contextlib.suppress(OSError):
            if _same_file(self._fd, self.path):
                os.unlink(self.path)
        os.close(self._fd)
        self._fd = None


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


def _read_owner(fd: int) -> dict[str, Any] | None:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", errors="replace")
        owner = json.loads(text)
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def _locked_message(out: Path, path: Path, owner: dict[str, Any] | None) -> str:
    who = (
        f"pid {owner.get('pid')} on {owner.get('host')}"
        if owner
        else "another process (starting up)"
    )
    return (
        f"--out {out} is in use by another training run ({who}; lock {path}); "
        "wait for it to finish or use another --out"
    )
