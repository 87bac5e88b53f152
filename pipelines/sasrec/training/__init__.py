"""The training job: options -> prepared data -> ``model.fit`` -> final evaluation -> version.

One module per job::

    options.py             DataOptions, TrainOptions (the command line's defaults)
    preparation.py         prepare_data -> Prepared (clean log, vocabulary, split)
    run.py                 run_training: the orchestrator, top to bottom
    loss_choice.py         choose_loss: gbce when the full softmax passes its memory budget
    distribution.py        --strategy: tf.distribute strategies, TF_CONFIG, workers' shards
    checkpoint.py          OUT/.checkpoint and what --resume must match
    run_lock.py            OUT/.train.lock: one live run per OUT
    run_history.py         the whole run's losses and seconds, across --resume
    storage.py             up-front space check, atomic weight files, write faults
    version_files.py       the JSON files a published version holds
    validation_callback.py validation during fit, early stopping
    epoch_timer.py         seconds per epoch
    memory_release.py      MemoryRelease: freed memory returned between phases
    final_evaluation.py    evaluate_split, summarize
    report.py              format_evaluation, sasrec_verdict

Example:
    >>> from sasrec.training import DataOptions, TrainOptions, run_training
    >>> run_training("runs/m", DataOptions(), {}, TrainOptions(epochs=2))  # doctest: +SKIP

Names load lazily, so ``import sasrec.training`` (by the command line) does
not import TensorFlow.
"""

from __future__ import annotations

from sasrec.lazy_exports import lazy_exports

_EXPORTS = {
    "DataOptions": "options",
    "TrainOptions": "options",
    "Prepared": "preparation",
    "prepare_data": "preparation",
    "load_clean_log": "preparation",
    "run_training": "run",
    "mean_positions_per_batch": "run",
    "evaluate_split": "final_evaluation",
    "summarize": "final_evaluation",
    "format_evaluation": "report",
    "sasrec_verdict": "report",
}

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
