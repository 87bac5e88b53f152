"""Hot reload: polls a versions root and swaps in each new highest version.

``sasrec train --out DIR`` publishes ``DIR/1``, ``DIR/2``, ... atomically; which
directories are versions, and their order, is :mod:`sasrec.artifact.versions`.
The watcher loads and warms a new highest version on its own thread, then
hands it over with ``on_loaded`` (the server swaps one reference, so calls in
flight finish on the old predictor). A version that
fails to load is logged, counted and remembered, never retried in a loop,
while the current one keeps serving.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sasrec.artifact import (
    MANIFEST_FILE,
    is_older_version,
    is_version_dir,
    list_versions,
    version_fingerprint,
)

logger = logging.getLogger("sasrec.serving")


class ModelWatcher:
    """Loads the newest loadable version of ``model_dir`` and follows new ones.

    Args:
        model_dir: A versions root, or a single version directory (then there
            is nothing to follow).
        load: Builds a ready (warmed-up) predictor from a version directory.
        on_loaded: Receives each newly loaded predictor (the swap).
        poll_seconds: Polling interval; 0 disables polling.
        on_reload: Called with True/False after each reload attempt (metrics).

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
        self.rejected: dict[tuple[str, int], str] = {}
        self.polls = 0  # completed polls (for tests and debugging)

    def load_initial(self) -> Any:
        """Loads the highest version that loads; broken ones are remembered and skipped.

        Raises:
            FileNotFoundError: ``model_dir`` holds no version at all.
            RuntimeError: every version failed to load (the errors are in the message).
        """
        versions = list_versions(self.model_dir)
        if not versions:
            raise FileNotFoundError(
                f"{self.model_dir}: no model version (a directory with {MANIFEST_FILE})"
            )
        errors = []
        for path in versions:
            predictor = self._try_load(path)
            if predictor is not None:
                return predictor
            errors.append(f"{path}: {self.rejected[version_fingerprint(path)]}")
        raise RuntimeError("no loadable model version: " + "; ".join(errors))

    def poll_once(self) -> bool:
        """Loads a new highest version if there is one; True when it swapped."""
        with self._lock:
            try:
                versions = list_versions(self.model_dir)
            except OSError as err:
                logger.warning("cannot list model versions in %s: %s", self.model_dir, err)
                return False
            if not versions or versions[0] == self.current:
                return False
            newest = versions[0]
            if self.current is not None and is_older_version(newest, self.current):
                return False
            if version_fingerprint(newest) in self.rejected:
                return False
            return self._try_load(newest) is not None

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

    def _try_load(self, path: Path) -> Any | None:
        logger.info("loading model version", extra={"fields": {"path": str(path)}})
        try:
            predictor = self._load(path)
        except Exception as err:
            self.rejected[version_fingerprint(path)] = f"{type(err).__name__}: {err}"
            logger.error(
                "rejected model version",
                extra={"fields": {"path": str(path), "error": f"{type(err).__name__}: {err}"}},
            )
            if self._on_reload is not None and self.current is not None:
                self._on_reload(False)
            return None
        previous = self.current
        self.current = path
        self._on_loaded(predictor)
        if self._on_reload is not None and previous is not None:
            self._on_reload(True)
        logger.info(
            "serving model version",
            extra={"fields": {"path": str(path), "previous": str(previous) if previous else None}},
        )
        return predictor
