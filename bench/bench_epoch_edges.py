"""Where an epoch's seconds go besides its steady train steps.

Runs ``bench/bench_games.py`` (same arguments) with the epoch timer replaced
by one that also records the end of every ``model.fit`` call into
TensorFlow (``steps_per_execution`` steps each). For each epoch it prints the
first call (which includes the epoch's iterator start), the median of the
other calls, and the tail from the last call to the end of the epoch.

Usage::

    .venv/bin/python bench/bench_epoch_edges.py --loss bce --epochs 5 --eval-every 100
"""

from __future__ import annotations

import runpy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import sasrec.training.epoch_timer as epoch_timer


class EdgeTimer(epoch_timer.EpochTimer):
    """:class:`sasrec.training.epoch_timer.EpochTimer` that also prints the epoch's edges."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_begin(epoch, logs)
        self._calls: list[float] = []

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self._calls.append(time.perf_counter())

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        ends = self._calls
        steady = [b - a for a, b in zip(ends, ends[1:])] or [0.0]
        print(
            f"epoch {epoch + 1}: {self.seconds[-1]:.3f} s, {len(ends)} calls, "
            f"first call {ends[0] - self._start:.3f} s, other calls median "
            f"{statistics.median(steady):.3f} s (slowest {max(steady):.3f} s), "
            f"tail {time.perf_counter() - ends[-1]:.3f} s",
            flush=True,
        )


if __name__ == "__main__":
    # run_training imports EpochTimer when it runs, so it picks this one up.
    epoch_timer.EpochTimer = EdgeTimer
    games = Path(__file__).with_name("bench_games.py")
    sys.argv = [str(games), *sys.argv[1:]]
    runpy.run_path(str(games), run_name="__main__")
