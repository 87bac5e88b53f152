"""Atomic file and directory writes: a reader never sees half a file."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` sets it, racing threads)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish_mode(path: str | Path, directory: bool = False) -> None:
    """Gives a temporary file (0600) or directory (0700) the mode ``open``/``mkdir`` would.

    ``mkstemp`` and ``mkdtemp`` create private entries; once renamed into
    place they are model files that a server running as another user must
    read, so they get the usual ``0666``/``0777`` less the umask.
    """
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


@contextlib.contextmanager
def errors_name(path: Path) -> Iterator[None]:
    """Re-raises an ``OSError`` without a file name (a failed ``write``) naming ``path``.

    ``write`` on a full disk raises ``[Errno 28] No space left on device``
    with no file name; the user needs to know which file.
    """
    try:
        yield
    except OSError as err:
        if err.filename is None and err.errno is not None:
            raise OSError(err.errno, err.strerror or os.strerror(err.errno), str(path)) from err
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file and a rename."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_through_temporary(path, lambda fh: fh.write(data))


def atomic_write_with(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Runs ``write`` on a binary file that appears as ``path`` only once complete.

    For writers that stream (a Parquet writer fed chunk by chunk): a failure
    or an interrupt leaves no ``path`` and no temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_through_temporary(path, write)


def atomic_copy_file(source: Path, target: Path) -> None:
    """Copies ``source`` to ``target`` through a temporary file and a rename."""

    def copy(dst: BinaryIO) -> None:
        with open(source, "rb") as src:
            shutil.copyfileobj(src, dst, 1024 * 1024)

    _write_through_temporary(Path(target), copy)


def _write_through_temporary(target: Path, write: Callable[[BinaryIO], object]) -> None:
    """Runs ``write`` on a temporary file beside ``target``, syncs it, renames it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with errors_name(target), os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        _publish_mode(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def staging_directory(parent: Path, prefix: str = ".tmp-") -> Iterator[Path]:
    """A temporary directory inside ``parent`` that is removed unless renamed.

    Build a directory's content inside it, then ``os.rename`` it into place:
    the rename is atomic on one file system, so readers see all or nothing.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    _publish_mode(tmp, directory=True)
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
