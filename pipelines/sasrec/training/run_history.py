"""The history of a whole run, resumed or not: losses and seconds of every epoch.

Keras' ``History`` and :class:`~sasrec.training.epoch_timer.EpochTimer` see
only the epochs of the current process; after ``--resume`` they would miss
the epochs run before the interruption. :class:`RunHistory` keeps every
epoch's logs and seconds in the checkpoint (``OUT/.checkpoint/history.json``,
written atomically at each epoch end, before the backup of the same epoch)
and merges them on resume.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import keras

from sasrec.io import atomic_write_text
from sasrec.training.epoch_timer import EpochTimer

HISTORY_STATE_FILE = "history.json"


class RunHistory(keras.callbacks.Callback):
    """Per-epoch logs and seconds of the whole run, kept in ``state_dir``.

    Place it after the timer and the validation callback (it records their
    results) and before the backup (a resumed run must not lack an epoch
    it will skip).

    Args:
        timer: The run's epoch timer (the seconds of each epoch).
        state_dir: The checkpoint folder; None keeps the history in memory.
        started: ``time.time()`` when this process started the run.

    Example:
        >>> history = RunHistory(timer, checkpoint, started=time.time())  # doctest: +SKIP
        >>> model.fit(ds, callbacks=[timer, validation, history, backup])  # doctest: +SKIP
        >>> history.history()["loss"]  # doctest: +SKIP
        [7.1, 6.4, 6.0]
    """

    def __init__(self, timer: EpochTimer, state_dir: Path | None, started: float) -> None:
        super().__init__()
        self.timer = timer
        self.state_dir = Path(state_dir) if state_dir else None
        self.started = started
        self.epochs: list[dict[str, Any]] = []
        # Wall seconds of earlier attempts, up to the checkpoint this one resumed.
        self.prior_seconds = 0.0
        self.first_epoch: int | None = None
        self._load()

    @property
    def resumed_at_epoch(self) -> int:
        """Epochs the run had done when this process started training (0: a fresh run)."""
        return self.first_epoch if self.first_epoch is not None else len(self.epochs)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        # A run killed after recording epoch e but before its backup resumes
        # at epoch e again: forget what was recorded from there on.
        if any(record["epoch"] > epoch for record in self.epochs):
            self.epochs = [record for record in self.epochs if record["epoch"] <= epoch]
            self._restore_prior()
        if self.first_epoch is None:
            self.first_epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = time.time()
        self.epochs.append(
            {
                "epoch": epoch + 1,
                "logs": {k: float(v) for k, v in (logs or {}).items()},
                "seconds": self.timer.seconds[-1] if self.timer.seconds else None,
                "cpu_seconds": self.timer.cpu_seconds[-1] if self.timer.cpu_seconds else None,
                "run_seconds": self.prior_seconds + (now - self.started),
            }
        )
        self._save()

    def history(self) -> dict[str, list[float]]:
        """Keras' ``History.history`` of the whole run: each log's values, epoch by epoch."""
        merged: dict[str, list[float]] = {}
        for record in self.epochs:
            for key, value in record["logs"].items():
                merged.setdefault(key, []).append(value)
        return merged

    def epoch_seconds(self) -> list[float | None]:
        """Seconds of each epoch's training steps, epoch by epoch, over the whole run."""
        return [record["seconds"] for record in self.epochs]

    def epoch_cpu_seconds(self) -> list[float | None]:
        """CPU seconds of the process during each epoch's training steps, over the whole run."""
        return [record.get("cpu_seconds") for record in self.epochs]

    def run_seconds(self, now: float | None = None) -> float:
        """Wall seconds of the run so far, earlier attempts included."""
        return self.prior_seconds + ((now or time.time()) - self.started)

    def _state_file(self) -> Path | None:
        return self.state_dir / HISTORY_STATE_FILE if self.state_dir else None

    def _load(self) -> None:
        state_file = self._state_file()
        if state_file and state_file.exists():
            self.epochs = json.loads(state_file.read_text())["epochs"]
            self._restore_prior()

    def _restore_prior(self) -> None:
        self.prior_seconds = self.epochs[-1]["run_seconds"] if self.epochs else 0.0

    def _save(self) -> None:
        state_file = self._state_file()
        if state_file:
            atomic_write_text(state_file, json.dumps({"epochs": self.epochs}))
