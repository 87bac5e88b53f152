"""Full-ranking validation during ``model.fit`` with early stopping and resumable state."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from sasrec.engines.scorer import Scorer
from sasrec.evaluation import evaluate_full_ranking
from sasrec.io import atomic_write_text
from sasrec.training.final_evaluation import TRAINING_EVAL_MEMORY_BYTES
from sasrec.training.storage import write_weights


class ValidationCallback(keras.callbacks.Callback):
    """Validates every ``every`` epochs, stops early, restores the best weights.

    The monitored value is full-ranking NDCG@10 on the validation targets (the
    user's history is excluded from the candidates, as in the final report).
    It is written into the epoch ``logs`` as ``val_ndcg@10`` and ``val_hr@10``
    so the progress bar, TensorBoard and the history all show it.

    With ``state_dir`` set, the best score, its epoch, the patience counter
    and the best weights are saved after every validation, so a run resumed
    from a ``keras.callbacks.BackupAndRestore`` checkpoint keeps its early
    stopping state and restores the true best weights at the end.

    Args:
        histories: Validation histories (list of 1-D id arrays).
        targets: Validation target per history.
        num_items: N.
        max_len: Model max length.
        every: Validate every this many epochs (and at the last epoch).
        patience: Validations without improvement before stopping.
        state_dir: Where to keep resumable state (optional).
        verbose: Print one line per validation.

    Example:
        >>> cb = ValidationCallback(hist, targets, num_items=100, max_len=50)  # doctest: +SKIP
        >>> model.fit(ds, epochs=50, callbacks=[cb])  # doctest: +SKIP
    """

    def __init__(
        self,
        histories: Sequence[np.ndarray],
        targets: np.ndarray,
        num_items: int,
        max_len: int,
        every: int = 1,
        patience: int = 5,
        state_dir: str | Path | None = None,
        verbose: bool = True,
    ) -> None:
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be >= 1, received every={every}")
        if patience < 1:
            raise ValueError(f"patience must be >= 1, received patience={patience}")
        self.histories = histories
        self.targets = np.asarray(targets)
        self.num_items = num_items
        self.max_len = max_len
        self.every = every
        self.patience = patience
        self.state_dir = Path(state_dir) if state_dir else None
        self.verbose = verbose
        self.best = -np.inf
        self.best_epoch = -1
        self.wait = 0
        self.best_weights: list[np.ndarray] | None = None
        self.records: list[dict[str, Any]] = []
        self._scorer: Scorer | None = None

    def _state_file(self) -> Path | None:
        return self.state_dir / "validation_state.json" if self.state_dir else None

    def _weights_file(self) -> Path | None:
        return self.state_dir / "best.weights.h5" if self.state_dir else None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._scorer = Scorer(self.model)
        state_file = self._state_file()
        if state_file and state_file.exists():
            state = json.loads(state_file.read_text())
            self.best, self.best_epoch = state["best"], state["best_epoch"]
            self.wait, self.records = state["wait"], state["records"]
            weights = self._weights_file()
            if weights and weights.exists():
                # Load into a clone so the current (resumed) weights stay in place.
                clone = keras.models.clone_model(self.model)
                clone.build((None, self.max_len))
                clone.load_weights(weights)
                self.best_weights = clone.get_weights()

    def evaluate(self) -> dict[str, Any]:
        """Full-ranking validation metrics of the current weights."""
        assert self._scorer is not None
        return evaluate_full_ranking(
            self._scorer,
            self.histories,
            self.targets,
            self.num_items,
            exclude_history=True,
            max_len=self.max_len,
            batch_size=256,
            num_bootstrap=0,
            coverage=False,
            memory_bytes=TRAINING_EVAL_MEMORY_BYTES,
        )

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        # A run killed after validating epoch e but before its backup was written
        # resumes at epoch e again: forget what was recorded from there on.
        stale = [r for r in self.records if r["epoch"] > epoch]
        if stale:
            self.records = [r for r in self.records if r["epoch"] <= epoch]
            last = self.records[-1] if self.records else None
            self.best = last["best"] if last else -np.inf
            self.best_epoch = last["best_epoch"] if last else -1
            self.wait = last["wait"] if last else 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        last = self.params.get("epochs", epoch + 1) - 1
        if (epoch + 1) % self.every != 0 and epoch != last:
            return
        start = time.perf_counter()
        report = self.evaluate()
        ndcg, hr = report["ndcg@10"]["value"], report["hr@10"]["value"]
        if logs is not None:
            logs["val_ndcg@10"], logs["val_hr@10"] = ndcg, hr
        improved = ndcg > self.best
        if improved:
            self.best, self.best_epoch, self.wait = ndcg, epoch, 0
            self.best_weights = self.model.get_weights()
            if self._weights_file():
                self.state_dir.mkdir(parents=True, exist_ok=True)
                # Built in memory, written then renamed: a kill or a full disk
                # mid-write must not corrupt the best weights (nor crash HDF5).
                write_weights(self.model, self._weights_file())
        else:
            self.wait += 1
        self.records.append(
            {
                "epoch": epoch + 1,
                "val_ndcg@10": ndcg,
                "val_hr@10": hr,
                "best": self.best,
                "best_epoch": self.best_epoch,
                "wait": self.wait,
            }
        )
        if self._state_file():
            self.state_dir.mkdir(parents=True, exist_ok=True)
            state = {
                "best": self.best,
                "best_epoch": self.best_epoch,
                "wait": self.wait,
                "records": self.records,
            }
            atomic_write_text(self._state_file(), json.dumps(state))
        if self.verbose:
            mark = " *" if improved else ""
            print(
                f"epoch {epoch + 1}: val NDCG@10 {ndcg:.4f}  HR@10 {hr:.4f}"
                f"  ({time.perf_counter() - start:.1f}s){mark}",
                flush=True,
            )
        if self.wait >= self.patience:
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)
