"""Freed memory handed back to the system between training phases."""

from __future__ import annotations

import keras

from sasrec.runtime import release_freed_memory


class MemoryRelease(keras.callbacks.Callback):
    """Returns the heap's free pages at each epoch's end and at the end of ``fit``.

    Training keeps freed memory mapped for the next step
    (:func:`sasrec.runtime.keep_freed_memory`); validation and the final
    evaluation then allocated on top of what the steps and compiles had
    freed. Place it before the validation callback.

    Example:
        >>> release = MemoryRelease()
        >>> model.fit(ds, epochs=3, callbacks=[timer, release, validation])  # doctest: +SKIP
        >>> release.calls  # doctest: +SKIP
        4
    """

    def __init__(self) -> None:
        super().__init__()
        # Times memory was handed back (a no-op where the allocator is not glibc's).
        self.calls = 0

    def _release(self) -> None:
        release_freed_memory()
        self.calls += 1

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._release()

    def on_train_end(self, logs: dict | None = None) -> None:
        self._release()
