"""Per-epoch training time, for the speed benchmark and the training history."""

from __future__ import annotations

import time

import keras


class EpochTimer(keras.callbacks.Callback):
    """Records the wall and CPU seconds of each epoch's training steps.

    CPU seconds are the process's (every thread: the steps, the next
    epoch's plan, compiles ahead): on a machine shared with other jobs they
    compare runs far better than wall seconds, which include waiting for a
    core.

    Place it first in the callback list: Keras runs ``on_epoch_end`` hooks in
    order, so validation callbacks after it are not counted.

    Example:
        >>> timer = EpochTimer()
        >>> model.fit(ds, epochs=3, callbacks=[timer, validation])  # doctest: +SKIP
        >>> timer.seconds  # doctest: +SKIP
        [3.1, 2.4, 2.4]
    """

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []
        self._start = 0.0
        self._cpu_start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()
        self._cpu_start = time.process_time()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(round(time.perf_counter() - self._start, 3))
        self.cpu_seconds.append(round(time.process_time() - self._cpu_start, 3))
