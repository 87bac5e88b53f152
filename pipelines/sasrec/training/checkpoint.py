"""``OUT/.checkpoint``: the in-progress run that ``--resume`` continues.

It holds Keras' ``BackupAndRestore`` files (written atomically by
:class:`CheckpointBackup`), the early-stopping state of the validation
callback, the history of the epochs run so far (``history.json``, see
:mod:`~sasrec.training.run_history`) and ``run.json``, the settings the run
was started with. Every file in it is written through a temporary file and a
rename, so a run that dies (killed, disk full) leaves a checkpoint that
``--resume`` can continue.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import keras

from sasrec.config import SASRecConfig
from sasrec.io import atomic_copy_file, atomic_write_text
from sasrec.training.options import DataOptions, TrainOptions
from sasrec.training.storage import write_weights

CHECKPOINT_DIR = ".checkpoint"
RUN_FILE = "run.json"

# Settings a resumed run may change: they do not alter what the finished run computes.
_RESUMABLE_CHANGES = (
    "resume",
    "verbose",
    "epochs",
    "tensorboard",
    "steps_per_execution",
    # Where XLA compiles, not what is trained; older checkpoints lack it.
    "compile_ahead",
    # Only the final evaluation reads it; checkpoints from before it existed resume.
    "max_eval_users",
)


def open_checkpoint(
    out: Path, data: DataOptions, config: SASRecConfig, train: TrainOptions
) -> Path:
    """The checkpoint folder of this run: emptied for a fresh run, checked for ``--resume``.

    Raises:
        ValueError: ``--resume`` finds a checkpoint made with other settings
            (continuing it would mix two different runs).

    Example:
        >>> open_checkpoint(Path("runs/m"), DataOptions(), config, TrainOptions())  # doctest: +SKIP
        PosixPath('runs/m/.checkpoint')
    """
    checkpoint = out / CHECKPOINT_DIR
    identity = _run_identity(data, config, train)
    if checkpoint.exists() and not train.resume:
        shutil.rmtree(checkpoint)
    if train.resume and checkpoint.exists():
        saved = json.loads((checkpoint / RUN_FILE).read_text())
        if saved != identity:
            raise ValueError(
                f"--resume: the checkpoint in {checkpoint} was made with other settings; "
                "rerun without --resume to start over"
            )
    checkpoint.mkdir(parents=True, exist_ok=True)
    atomic_write_text(checkpoint / RUN_FILE, json.dumps(identity))
    return checkpoint


class CheckpointBackup(keras.callbacks.BackupAndRestore):
    """Keras' ``BackupAndRestore`` whose files are written atomically.

    Keras writes ``latest.weights.h5`` in place with HDF5: a kill mid-write
    corrupts it, and a full disk leaves HDF5 unable to close the file (the
    process then crashes at exit). Here the weights are built in memory and
    renamed into place (:func:`~sasrec.training.storage.write_weights`), the
    previous copy and the metadata likewise.
    """

    def _save_model(self) -> None:
        backup = Path(self.backup_dir)
        backup.mkdir(parents=True, exist_ok=True)
        weights, metadata = Path(self._weights_path), Path(self._training_metadata_path)
        if self.double_checkpoint:
            for current, previous in (
                (weights, self._prev_weights_path),
                (metadata, self._prev_training_metadata_path),
            ):
                if current.exists():
                    atomic_copy_file(current, Path(previous))
        write_weights(self.model, weights)
        atomic_write_text(
            metadata, json.dumps({"epoch": self._current_epoch, "batch": self._last_batch_seen})
        )


def _run_identity(data: DataOptions, config: SASRecConfig, train: TrainOptions) -> dict[str, Any]:
    """What must match for ``--resume`` to continue a checkpoint (as JSON would store it)."""
    train_fields = dataclasses.asdict(train)
    for name in _RESUMABLE_CHANGES:
        train_fields.pop(name)
    return json.loads(
        json.dumps(
            {"data": dataclasses.asdict(data), "model": config.to_dict(), "train": train_fields}
        )
    )
