"""``OUT/.checkpoint``: the in-progress run that ``--resume`` continues.

It holds Keras' ``BackupAndRestore`` files, the early-stopping state of the
validation callback and ``run.json``, the settings the run was started with.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from sasrec.config import SASRecConfig
from sasrec.training.options import DataOptions, TrainOptions

CHECKPOINT_DIR = ".checkpoint"
RUN_FILE = "run.json"

# Settings a resumed run may change: they do not alter what the finished run computes.
_RESUMABLE_CHANGES = ("resume", "verbose", "epochs", "tensorboard", "steps_per_execution")


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
    (checkpoint / RUN_FILE).write_text(json.dumps(identity))
    return checkpoint


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
