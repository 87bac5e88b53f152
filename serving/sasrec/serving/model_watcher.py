"""Hot reload: polls a versions root and swaps in each new highest version.

``sasrec train --out DIR`` publishes ``DIR/1``, ``DIR/2``, ... atomically; which
entries are versions, and their order, is :mod:`sasrec.artifact.versions`
(ASCII digits without a leading zero, a directory or a symlink to one holding
``manifest.json``). Every other entry is ignored and logged once, never
every poll; no entry can make a poll fail.

The watcher loads and warms a new highest version on its own thread, then
hands it over with ``on_loaded`` (the server swaps one reference, so calls in
flight finish on the old predictor). A version that fails to load is logged
once, counted and remembered by its fingerprint (names, sizes and mtimes of
its files, and where it resolves to), while the current one keeps serving.
It is not retried while it stays the same; once its files change and then
stay unchanged for one poll (an external copy finished), it is tried again.
Staging directories (``.tmp-*``) are ignored and never removed here (the root
may be read-only for the server); the publisher removes stale ones.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sasrec.artifact import (
    MANIFEST_FILE,
    VersionScan,
    is_older_version,
    is_version_dir,
    scan_versions,
    version_fingerprint,
)

logger = logging.getLogger("sasrec.serving")

_IGNORED_LOG_LEVEL = {"hidden": logging.DEBUG, "incomplete": logging.INFO}


@dataclass(frozen=True)
class Rejection:
    """A version that failed to load: its fingerprint then, and the error."""

    fingerprint: tuple[str, int]
    error: str


class ModelWatcher:
    """Loads the newest loadable version of ``model_dir`` and follows new ones.

    Args:
        model_dir: A versions root, or a single version directory (then there
            is nothing to follow).
        load: Builds a ready (warmed-up) predictor from a version directory.
        on_loaded: Receives each newly loaded predictor (the swap).
        poll_seconds: Polling interval; 0 disables polling.
        on_reload: Called with True/False after each reload attempt (metrics).

    Attributes:
        current: The version directory serving now (None before the first load).
        rejected: Versions that failed to load, by path (dropped once loaded or gone).
        polls: Completed polls of the polling thread.

    Example:
        >>> watcher = ModelWatcher("models", load=load_and_warm, on_loaded=swap)  # doctest: +SKIP
        >>> watcher.load_initial()  # doctest: +SKIP
        >>> watcher.start()  # doctest: +SKIP
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        load: Callable[[Path], Any],
        on_loaded: Callable[[Any], None],
        poll_seconds: float = 10.0,
        on_reload: Callable[[bool], None] | None = None,
    ) -> None:
        if poll_seconds < 0:
            raise ValueError(f"poll_seconds must be >= 0, received {poll_seconds}")
        self.model_dir = Path(model_dir)
        self.poll_seconds = poll_seconds
        self._load = load
        self._on_loaded = on_loaded
        self._on_reload = on_reload
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.current: Path | None = None
        self.rejected: dict[str, Rejection] = {}
        self.polls = 0
        self._changed: dict[str, tuple[str, int]] = {}  # rejected, changed since: last seen
        self._reported: dict[str, str] = {}  # ignored entry -> reason already logged
        self._list_error: str | None = None

    def load_initial(self) -> Any:
        """Loads the highest version that loads; broken ones are remembered and skipped.

        Raises:
            FileNotFoundError: ``model_dir`` holds no version at all.
            RuntimeError: every version failed to load (the errors are in the message).
        """
        with self._lock:
            scan = scan_versions(self.model_dir)
            self._report_ignored(scan)
            if not scan.versions:
                raise FileNotFoundError(
                    f"{self.model_dir}: no model version (a directory named 1, 2, ... "
                    f"holding {MANIFEST_FILE})"
                )
            errors = []
            for path in scan.versions:
                predictor = self._try_load(path)
                if predictor is not None:
                    return predictor
                errors.append(f"{path}: {self.rejected[str(path)].error}")
            raise RuntimeError("no loadable model version: " + "; ".join(errors))

    def poll_once(self) -> bool:
        """Loads the highest version above the current one that loads; True when it swapped.

        Versions remembered as rejected are skipped until their files change
        and settle (see the module docs).
        """
        with self._lock:
            try:
                scan = scan_versions(self.model_dir)
            except OSError as err:
                error = f"{type(err).__name__}: {err}"
                if error != self._list_error:
                    logger.warning(
                        "cannot list model versions in %s: %s",
                        self.model_dir,
                        error,
                        extra={"fields": {"path": str(self.model_dir), "error": error}},
                    )
                self._list_error = error
                return False
            self._list_error = None
            self._report_ignored(scan)
            present = {str(path) for path in scan.versions}
            self.rejected = {k: v for k, v in self.rejected.items() if k in present}
            self._changed = {k: v for k, v in self._changed.items() if k in self.rejected}
            for path in scan.versions:
                current = self.current
                if current is not None and (path == current or is_older_version(path, current)):
                    break
                if self._due(path) and self._try_load(path) is not None:
                    return True
            return False

    def start(self) -> ModelWatcher:
        """Starts polling on a daemon thread (no-op for a single version or poll 0)."""
        polls = self.poll_seconds and not is_version_dir(self.model_dir)
        if polls and self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(
                target=self._run, name="sasrec-model-watcher", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stops polling (a load in progress finishes first)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll_once()
            except Exception:  # the watcher must outlive any surprise
                logger.exception("model watcher poll failed")
            self.polls += 1

    def _due(self, path: Path) -> bool:
        """Whether to try ``path``: never rejected, or changed and then stable for a poll."""
        key = str(path)
        rejection = self.rejected.get(key)
        if rejection is None:
            return True
        fingerprint = version_fingerprint(path)
        if fingerprint == rejection.fingerprint:
            self._changed.pop(key, None)
            return False
        if self._changed.get(key) == fingerprint:
            return True
        if key not in self._changed:
            logger.info(
                "model version changed since it was rejected; retrying once it stops changing",
                extra={"fields": {"path": key}},
            )
        self._changed[key] = fingerprint
        return False

    def _report_ignored(self, scan: VersionScan) -> None:
        """Logs each entry that is not a version once (again only if its reason changes)."""
        reported = {}
        for entry in scan.ignored:
            reported[entry.name] = entry.reason
            if self._reported.get(entry.name) == entry.reason:
                continue
            logger.log(
                _IGNORED_LOG_LEVEL.get(entry.kind, logging.WARNING),
                "ignoring %r in the model root: %s",
                entry.name,
                entry.reason,
                extra={
                    "fields": {
                        "root": str(self.model_dir),
                        "entry": entry.name,
                        "reason": entry.reason,
                    }
                },
            )
        self._reported = reported

    def _try_load(self, path: Path) -> Any | None:
        key = str(path)
        fingerprint = version_fingerprint(path)  # before loading: a change during it retries
        target = os.path.realpath(path)
        logger.info(
            "loading model version %s", path, extra={"fields": {"path": key, "target": target}}
        )
        try:
            predictor = self._load(path)
        except Exception as err:
            error = f"{type(err).__name__}: {err}"
            self.rejected[key] = Rejection(fingerprint, error)
            self._changed.pop(key, None)
            logger.error(
                "rejected model version %s: %s",
                path,
                error,
                extra={"fields": {"path": key, "target": target, "error": error}},
            )
            if self._on_reload is not None and self.current is not None:
                self._on_reload(False)
            return None
        self.rejected.pop(key, None)
        self._changed.pop(key, None)
        previous = self.current
        self.current = path
        self._on_loaded(predictor)
        if self._on_reload is not None and previous is not None:
            self._on_reload(True)
        logger.info(
            "serving model version %s",
            path,
            extra={
                "fields": {
                    "path": key,
                    "target": target,
                    "previous": str(previous) if previous else None,
                }
            },
        )
        return predictor
