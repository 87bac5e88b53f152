"""`sasrec train`: the training job, one orchestrator that reads top to bottom.

config -> interactions -> vocabulary -> sequences -> dataset -> fit -> evaluate -> save

Each step is a call into a small function or module; this file wires them
together and decides where files go:

    OUT/1, OUT/2, ...      published versions (``sasrec.artifact``), renamed into place
    OUT/.checkpoint/       the in-progress run: backup, early-stopping state, history so far
    OUT/.train.lock        held by the running job (``run_lock``): one run per OUT
    OUT/tensorboard/       TensorBoard logs, one sub-folder per run
    OUT/.worker-<i>-*/     a non-chief worker's scratch (``--strategy multi-worker``),
                           removed when it ends: only the chief writes the above

The loss belongs to the model (``SASRec`` computes it from the batch), so
training is ``model.fit`` on the prepared dataset.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from sasrec.artifact import publish_version, save_model_dir
from sasrec.config import SASRecConfig
from sasrec.data.dataset import bucket_widths, epoch_widths, make_training_dataset
from sasrec.data.item_sets import ItemSets
from sasrec.data.streaming_dataset import shard_read_errors
from sasrec.data.user_sequences import UserSequences
from sasrec.data.windows import training_windows, window_owners
from sasrec.models import SASRec
from sasrec.models.compile_ahead import CompileAhead, in_place_widths
from sasrec.optimizers import FusedAdam
from sasrec.runtime import configure_threads, keep_freed_memory, release_freed_memory
from sasrec.training.checkpoint import CHECKPOINT_DIR, CheckpointBackup, open_checkpoint
from sasrec.training.distribution import (
    Distribution,
    shard_dataset,
    start_distribution,
    vector_logs,
    worker_scratch,
)
from sasrec.training.epoch_timer import EpochTimer
from sasrec.training.final_evaluation import evaluate_split
from sasrec.training.loss_choice import choose_loss
from sasrec.training.memory_release import MemoryRelease
from sasrec.training.options import DataOptions, TrainOptions
from sasrec.training.preparation import Prepared, prepare_data, validation_sample
from sasrec.training.report import format_evaluation
from sasrec.training.run_history import RunHistory
from sasrec.training.run_lock import RunLock
from sasrec.training.storage import (
    check_free_space,
    estimate_run_bytes,
    output_faults,
    prepare_output,
)
from sasrec.training.validation_callback import ValidationCallback
from sasrec.training.version_files import version_files
from sasrec.training.warm_start import base_version, copy_base_weights, warm_config


def run_training(
    out: str | Path,
    data: DataOptions,
    model_overrides: dict[str, Any],
    train: TrainOptions,
) -> Path | None:
    """Runs the whole job and returns the published version directory.

    Under ``--strategy multi-worker`` every worker runs this; only the chief
    (worker 0) holds the lock of ``out``, writes the checkpoint, evaluates
    and publishes; another worker trains in a scratch folder under ``out``
    (its checkpoint copies go there and are removed, as ``tf.distribute``
    asks of non-chief workers), reads ``out``'s checkpoint on ``--resume``
    and returns None.

    Args:
        out: Model root; versions are published as ``OUT/1``, ``OUT/2``, ...
        data: Where the log comes from and how it is cleaned and split.
        model_overrides: :class:`SASRecConfig` fields other than ``num_items``.
        train: How the model is fitted and evaluated.

    Raises:
        OutputError: ``out`` is in use by another live run
            (:class:`~sasrec.training.run_lock.OutputLockedError`), read-only,
            not writable, or too small for the run (checked before training);
            or a write failed later for lack of space. Every file under
            ``out`` is then complete: the checkpoint can be resumed and no
            partial version or temporary file is left.
        ValueError: bad data or options;
            :class:`~sasrec.training.loss_choice.SoftmaxTooLargeError` when
            ``model_overrides["loss"] == "softmax"`` on a catalogue whose
            logits pass the memory budget (without a ``"loss"`` the job picks
            gBCE there instead);
            :class:`~sasrec.training.distribution.TFConfigError` for
            ``strategy="multi-worker"`` without a valid ``TF_CONFIG``.

    Example:
        >>> run_training("runs/m", DataOptions(), {"hidden_dim": 32}, TrainOptions(epochs=2))
        ... # doctest: +SKIP
        PosixPath('runs/m/1')
    """
    out = prepare_output(_output_root(out))
    # Thread pools first, then the strategy: both must exist before TensorFlow
    # runs an op (a bad TF_CONFIG fails here, before any data is read).
    configure_threads(inter_op=train.inter_op_threads())
    distribution = start_distribution(train.strategy)
    if not distribution.is_chief:
        scratch = worker_scratch(out, distribution.worker_index, train.resume)
        with output_faults(out), scratch as own:
            _run_locked(own, data, model_overrides, train, distribution)
        return None
    # The lock before anything else under OUT: a second run must not touch
    # the checkpoint of a live one. Refused writes anywhere become OutputError.
    with output_faults(out), RunLock(out):
        return _run_locked(out, data, model_overrides, train, distribution)


def _run_locked(
    out: Path,
    data: DataOptions,
    model_overrides: dict[str, Any],
    train: TrainOptions,
    distribution: Distribution,
) -> Path | None:
    _seed_process(train.seed)
    started = time.time()
    if data.prepared is not None and train.negatives == "history":
        # A streamed window does not carry its user's other items.
        raise ValueError(
            "--negatives history needs the users' whole sequences in memory: train from "
            "--data, or use --negatives window with --prepared"
        )

    base = _base_model(train)
    prepared = prepare_data(data, base.vocabulary if base else None)
    _show_data(prepared, train)
    if base is not None:
        # The base model's loss unless the command gives one.
        model_overrides = {**_loss_settings(base.config), **model_overrides}
    # Before any tensor: the full softmax past its memory budget becomes gBCE
    # (or, asked for explicitly, SoftmaxTooLargeError).
    model_overrides, loss_note = choose_loss(
        model_overrides, prepared.vocabulary.num_items, train.batch_size
    )
    if loss_note:
        print(loss_note, flush=True)
    if base is None:
        config = SASRecConfig(num_items=prepared.vocabulary.num_items, **model_overrides)
    else:
        config, rest = warm_config(base.config, model_overrides, prepared.vocabulary.num_items)
        config = config.replace(**rest)
    if _batch_negatives(config) and distribution.strategy is not None:
        # One set of negatives per global batch cannot be cut into replica slices.
        raise ValueError(
            f"--negative-sharing batch trains on one device, received --strategy "
            f"{train.strategy}: use --negative-sharing sequence with a strategy"
        )
    # The epoch plan cuts global batches; each replica trains on its slice.
    global_batch = distribution.global_batch(train.batch_size)
    # Planning epoch 1's widths costs a pass over the windows: only when compiling ahead.
    plan_widths = train.compile_ahead and distribution.strategy is None
    width_order: list[int] = []
    if prepared.stream is None:
        newest_only = train.trained_windows == "newest"
        inputs, positives = training_windows(prepared.split.train, config.max_len, newest_only)
        windows = len(inputs)
        per_batch = mean_positions_per_batch(positives, global_batch)
        if plan_widths:
            width_order = _width_order(positives, train, global_batch)
        training_input = _training_dataset(
            inputs, positives, config, train, global_batch, prepared.split.train
        )
        del inputs, positives  # the dataset holds them
    else:
        windows, positions = prepared.stream.epoch_size(
            config.max_len, train.trained_windows == "newest"
        )
        per_batch = positions / max(-(-windows // global_batch), 1)
        if plan_widths:
            # Epoch 1's widths are not planned ahead when streaming: every width, widest first.
            widths = bucket_widths(config.max_len, train.bucket_multiple)[::-1]
            width_order = [int(w) for w in widths]
        training_input = _streaming_dataset(prepared.stream, windows, config, train, global_batch)
    config = _with_loss_denominator(config, per_batch, train)
    dataset = shard_dataset(training_input, distribution)
    if distribution.strategy is not None:
        _say(train, f"{distribution.describe()}; global batch {global_batch:,}")

    with distribution.scope():
        model = _compiled_model(config, train, distribution)
    if base is not None:
        model.build()
        rows = copy_base_weights(model, base.model, base.config.num_items)
        _say(
            train,
            f"warm start from {base.path}: {rows:,} item rows kept, "
            f"{config.num_items - rows:,} new",
        )
    _check_free_space(out, model, prepared, train)
    checkpoint = open_checkpoint(out, data, config, train)
    validation = _validation(prepared, config, train, checkpoint)
    timer = EpochTimer()
    run_history = RunHistory(timer, checkpoint, started=started)
    callbacks = _callbacks(out, checkpoint, timer, validation, run_history, train)
    ahead = _compile_ahead(model, dataset, width_order, config, global_batch)
    if ahead is not None:
        # The compile under way at the end of fit finishes during the final
        # evaluation (up to one compile, 4-60 s) and is awaited before returning.
        callbacks.insert(0, ahead.callback(wait_at_end=False))
    # What reading and sampling the data freed, before the steps and compiles allocate.
    release_freed_memory()
    # The dataset shuffles and buckets by itself; Keras must not try to.
    try:
        with distribution.worker_faults(), shard_read_errors():
            model.fit(
                dataset,
                epochs=train.epochs,
                callbacks=callbacks,
                verbose=train.verbose,
                shuffle=False,
            )
    except BaseException:
        if ahead is not None:
            ahead.stop()
        raise
    try:
        return _after_fit(
            out,
            model,
            prepared,
            windows,
            data,
            config,
            train,
            distribution,
            validation,
            run_history,
            checkpoint,
            ahead,
        )
    finally:
        if ahead is not None:
            ahead.stop()


def _after_fit(
    out: Path,
    model: SASRec,
    prepared: Prepared,
    windows: int,
    data: DataOptions,
    config: SASRecConfig,
    train: TrainOptions,
    distribution: Distribution,
    validation: ValidationCallback,
    run_history: RunHistory,
    checkpoint: Path,
    ahead: CompileAhead | None,
) -> Path | None:
    """Final evaluation and publishing, while a compile of ``ahead`` may still finish."""
    fit_seconds = run_history.run_seconds()
    if ahead is not None:
        _say(
            train,
            f"XLA widths compiled on a thread: {ahead.compiled} "
            f"({len(ahead.compiled)} of {len(ahead.widths)}) in {sum(ahead.seconds):.1f} s",
        )
    if not distribution.is_chief:
        # The chief evaluates and publishes the same weights.
        return None

    evaluation = evaluate_split(
        model,
        prepared,
        config.num_items,
        config.max_len,
        which="test",
        sampled=train.sampled_eval,
        bootstrap=train.bootstrap,
        seed=train.eval_seed,
        max_users=train.max_eval_users,
        progress=(lambda line: print(line, flush=True)) if train.verbose else None,
    )
    _say(train, format_evaluation(evaluation))
    # The evaluation's freed memory, before publishing allocates its own.
    release_freed_memory()

    files = version_files(
        prepared,
        evaluation,
        validation,
        run_history,
        windows,
        data,
        config,
        train,
        seconds=run_history.run_seconds(),
        fit_seconds=fit_seconds,
        xla_all_ready_epoch=None if ahead is None else ahead.all_ready_epoch,
    )

    def build_version(staging: Path) -> None:
        save_model_dir(staging, model, prepared.vocabulary, extra_json=files)
        _write_ann_index(staging, model, files, train)

    version_dir = publish_version(out, build_version)
    shutil.rmtree(checkpoint, ignore_errors=True)
    _say(train, f"saved {version_dir}")
    return version_dir


def _base_model(train: TrainOptions) -> Any:
    """The ``--init-from`` model artifact, or None."""
    if train.init_from is None:
        return None
    from sasrec.artifact import load_model_dir

    return load_model_dir(base_version(train.init_from))


def _loss_settings(config: SASRecConfig) -> dict[str, Any]:
    return {
        "loss": config.loss,
        "num_negatives": config.num_negatives,
        "negative_sharing": config.negative_sharing,
        "gbce_t": config.gbce_t,
    }


def mean_positions_per_batch(positives: np.ndarray, batch_size: int) -> float:
    """Valid (``!= 0``) positions of ``positives`` per batch of an epoch, on average.

    Example:
        >>> mean_positions_per_batch(np.array([[0, 5], [6, 7], [0, 0]]), batch_size=2)
        1.5
    """
    batches = -(-len(positives) // batch_size)
    return float(np.count_nonzero(positives)) / max(batches, 1)


def _output_root(out: str | Path) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; it must be a directory (or not exist yet)")
    return out


def _check_free_space(out: Path, model: SASRec, prepared: Prepared, train: TrainOptions) -> None:
    """Refuses, before training, a run whose checkpoint and version would not fit."""
    needed = estimate_run_bytes(
        model,
        num_items=prepared.vocabulary.num_items,
        vocabulary_bytes=len(prepared.vocabulary.to_json().encode()),
        epochs=train.epochs,
        tensorboard=train.tensorboard,
    )
    checkpoint = out / CHECKPOINT_DIR
    if checkpoint.is_dir():
        # Its files are replaced (resume) or removed (a fresh run): their bytes count as free.
        needed -= sum(f.stat().st_size for f in checkpoint.rglob("*") if f.is_file())
    check_free_space(out, needed)


def _seed_process(seed: int) -> None:
    """Allocator and every random generator, before TensorFlow does work."""
    keep_freed_memory()
    keras.utils.set_random_seed(seed)


def _write_ann_index(staging: Path, model: Any, files: dict[str, Any], train: TrainOptions) -> None:
    """The version's ANN index, built before it is published, at the size serving uses one.

    The server's ``--retrieval auto`` switches to index candidates from
    ``ANN_MIN_ITEMS`` items on; building the index here (seconds) keeps that
    work off a replica's start. Without Faiss the server builds it on load.
    """
    import importlib.util

    from sasrec.artifact import POPULARITY_FILE
    from sasrec.engines.retrieval import ANN_MIN_ITEMS, write_ann_index

    num_items = int(model.encoder.num_items)
    if num_items < ANN_MIN_ITEMS:
        return
    if importlib.util.find_spec("faiss") is None:
        _say(train, "ANN index not built: Faiss is not installed (pip install 'sasrec[ann]')")
        return
    start = time.perf_counter()
    counts = np.asarray(files[POPULARITY_FILE]["counts"], dtype=np.float32)
    index = write_ann_index(staging, model, counts)
    _say(
        train,
        f"ANN index: {index.nlist} lists, nprobe {index.nprobe}, "
        f"recall@10 {index.recall:.4f} on sampled histories, "
        f"{time.perf_counter() - start:.1f} s",
    )


def _say(train: TrainOptions, text: str) -> None:
    if train.verbose:
        print(text, flush=True)


def _show_data(prepared: Prepared, train: TrainOptions) -> None:
    report = prepared.report
    _say(train, report.to_text() if hasattr(report, "to_text") else "")
    _say(train, f"split: {json.dumps(prepared.split_summary())}")


def _with_loss_denominator(
    config: SASRecConfig, per_batch: float, train: TrainOptions
) -> SASRecConfig:
    """Under ``loss_normalization="epoch"`` every position of an epoch weighs the same.

    ``per_batch``: the epoch's valid positions per global batch. The
    denominator is per global batch: each replica divides its share of the
    summed losses by it and the replicas' gradients are summed, which is the
    one-device gradient of the global batch.
    """
    if train.loss_normalization == "epoch" and config.loss_denominator is None:
        return config.replace(loss_denominator=per_batch)
    return config


def _batch_negatives(config: SASRecConfig) -> bool:
    """The sampled loss's batches carry one set of negatives each (``(1, 1, n)``)."""
    return config.loss != "softmax" and config.negative_sharing == "batch"


def _training_dataset(
    inputs: np.ndarray,
    positives: np.ndarray,
    config: SASRecConfig,
    train: TrainOptions,
    global_batch: int,
    sequences: UserSequences,
) -> Any:
    history: dict[str, Any] = {}
    if train.negatives == "history" and config.loss != "softmax":
        # Each user's training items as sorted keys, and the user of every window.
        history = {
            "history": ItemSets.from_csr(sequences.offsets, sequences.items, config.num_items),
            "owners": window_owners(
                sequences.lengths, config.max_len, train.trained_windows == "newest"
            ),
        }
    return make_training_dataset(
        inputs,
        positives,
        num_items=config.num_items,
        batch_size=global_batch,
        num_negatives=0 if config.loss == "softmax" else config.num_negatives,
        seed=train.seed,
        # Hundreds of negatives per position would cost a (B, t, n, d) gather;
        # one set per sequence (gSASRec) costs (B, n, d).
        negatives_per_sequence=config.num_negatives > 1,
        negatives_per_batch=_batch_negatives(config),
        exclude_seen=train.negatives == "window",
        bucket_multiple=train.bucket_multiple,
        chunk_batches=train.chunk_batches,
        **history,
    )


def _streaming_dataset(
    stream: Any, windows: int, config: SASRecConfig, train: TrainOptions, global_batch: int
) -> Any:
    """The training batches streamed from a PREPARED folder's shard files.

    Under ``--strategy multi-worker`` every worker streams every file with
    the same seed and keeps its replicas' slices of each global batch
    (:func:`shard_dataset`), so all workers run the same steps.
    """
    from sasrec.data.streaming_dataset import make_streaming_dataset

    newest_only = train.trained_windows == "newest"
    return make_streaming_dataset(
        [str(f) for f in stream.files],
        lambda file: stream.file_windows(file, config.max_len, newest_only=newest_only),
        windows,
        max_len=config.max_len,
        num_items=config.num_items,
        batch_size=global_batch,
        num_negatives=0 if config.loss == "softmax" else config.num_negatives,
        seed=train.seed,
        shuffle_buffer=train.shuffle_buffer,
        chunk_batches=train.chunk_batches,
        bucket_multiple=train.bucket_multiple,
        negatives_per_sequence=config.num_negatives > 1,
        negatives_per_batch=_batch_negatives(config),
        exclude_seen=train.negatives == "window",
    )


def _compiled_model(
    config: SASRecConfig, train: TrainOptions, distribution: Distribution | None = None
) -> SASRec:
    distribution = distribution or Distribution("none")
    model = SASRec(**config.to_dict())
    model.compile(
        # Adam's arithmetic, with the ~35 small variables updated in one pass
        # instead of ~100 tiny kernels per step: Games epochs 3.8 -> 3.1 s,
        # the same sampled NDCG@10 to the 4th digit.
        optimizer=FusedAdam(
            learning_rate=train.learning_rate,
            beta_2=train.beta_2,
            epsilon=train.adam_epsilon,
            lazy_item_table=train.sparse_item_updates,
        ),
        # XLA fuses the many small ops of a SASRec step (measured 1.7x faster on
        # CPU); the full softmax has a data-dependent shape and cannot use it.
        jit_compile=distribution.jit_compile(config.loss != "softmax"),
        # A 128-sequence step of short histories takes a few ms; Keras' loop
        # and the function call cost about 1.5 ms of it (measured on Games:
        # 4.2 -> 3.6 s per epoch with 8 steps per call, identical losses).
        steps_per_execution=distribution.steps_per_execution(train.steps_per_execution),
    )
    vector_logs(model, distribution)
    return model


def _compile_ahead(
    model: SASRec,
    dataset: Any,
    width_order: list[int],
    config: SASRecConfig,
    global_batch: int,
) -> CompileAhead | None:
    """The XLA widths compiled on a thread in ``width_order`` (or None).

    A large model's widths compile in place before the first step instead
    (:func:`~sasrec.models.compile_ahead.in_place_widths`): no zero copies of
    its weights and moments, no plain-graph steps beside the compiles.

    Only for one-device XLA runs (``width_order`` is empty otherwise): the
    plain train function of a strategy is left as Keras builds it.
    """
    if not (width_order and model.jit_compile):
        return None
    return CompileAhead(
        model,
        dataset.element_spec,
        global_batch,
        width_order,
        config.max_len,
        in_place=in_place_widths(model, width_order),
    )


def _width_order(positives: np.ndarray, train: TrainOptions, global_batch: int) -> list[int]:
    """Epoch 1's widths, most trained positions first: where XLA saves the most time."""
    widths = epoch_widths(
        positives,
        global_batch,
        train.seed,
        bucket_multiple=train.bucket_multiple,
        chunk_batches=train.chunk_batches,
    )
    found, counts = np.unique(widths, return_counts=True)
    return [int(w) for w in found[np.argsort(-(found * counts), kind="stable")]]


def _validation(
    prepared: Prepared, config: SASRecConfig, train: TrainOptions, checkpoint: Path
) -> ValidationCallback:
    histories, targets = validation_sample(prepared, train.max_valid_users, train.seed)
    return ValidationCallback(
        histories,
        targets,
        num_items=config.num_items,
        max_len=config.max_len,
        every=train.eval_every,
        patience=train.patience,
        state_dir=checkpoint,
        verbose=bool(train.verbose),
    )


def _callbacks(
    out: Path,
    checkpoint: Path,
    timer: EpochTimer,
    validation: ValidationCallback,
    run_history: RunHistory,
    train: TrainOptions,
) -> list[keras.callbacks.Callback]:
    # The timer first, so it does not count validation; the steps' freed memory
    # returned before validation allocates. Validation and the
    # history before the backup: their state is saved before the backup of the
    # same epoch, so a resumed run never lacks an epoch it will skip.
    callbacks: list[keras.callbacks.Callback] = [
        timer,
        MemoryRelease(),
        validation,
        run_history,
        CheckpointBackup(str(checkpoint / "backup"), double_checkpoint=True),
    ]
    if train.tensorboard:
        run_name = time.strftime("%Y%m%d-%H%M%S")
        callbacks.append(keras.callbacks.TensorBoard(str(out / "tensorboard" / run_name)))
    return callbacks
