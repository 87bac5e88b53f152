"""What a training run is asked to do: :class:`DataOptions` and :class:`TrainOptions`.

Only dataclasses live here, so the command line can read the defaults and
the field documentation (its flags and help text come from these fields)
without importing pandas or TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sasrec.data.dataset import CHUNK_BATCHES
from sasrec.data.presets import preset_k_core
from sasrec.data.streaming_dataset import SHUFFLE_BUFFER
from sasrec.training.distribution import check_strategy

DATA_SYNTHETIC = "synthetic"
SPLITS = ("leave_one_out", "temporal")
LOSS_NORMALIZATIONS = ("epoch", "batch")
# What a training negative may not be (besides the positive): see TrainOptions.negatives.
NEGATIVE_EXCLUSIONS = ("window", "history", "uniform")
TRAINED_WINDOWS = ("all", "newest")


@dataclass(frozen=True)
class DataOptions:
    """Where the interactions come from and how they are cleaned and split.

    Args:
        path: A log file (or a preset's folder); not set: the embedded
            synthetic shop log.
        preset: Reader preset (``ml-100k``, ``ml-1m``, ``sasrec``, ``amazon``, ``recbole``).
        reader: Extra :class:`~sasrec.data.reader_options.ReaderOptions` fields.
        min_user: k-core: drop users with fewer events than this (repeated
            with ``min_item`` until both hold). Not given: 5, or 1 with the
            ``sasrec`` preset, whose files are the paper's already filtered
            data (``sasrec.data.presets.PRESET_K_CORE``).
        min_item: k-core: drop items with fewer events than this. Not given:
            as ``min_user``.
        min_rating: Keep events with ``rating >= min_rating``.
        event_types: Keep only these event types.
        collapse_repeats: Collapse a user's consecutive events on the same
            item into the first one.
        split: ``"leave_one_out"`` (each user's last event is the test
            target, the one before it the validation target) or
            ``"temporal"`` (targets after the cutoffs).
        test_cutoff: Temporal split: test targets are after this unix time.
        valid_cutoff: Temporal split: training events are at or before this time.
        synthetic_users: Size of the synthetic log (users).
        synthetic_items: Size of the synthetic log (items).
        synthetic_seed: Seed of the synthetic log.
        prepared: A PREPARED folder (``sasrec data prepare --out``) to train
            on instead of a log: its vocabulary, split and report are used
            as they are, and the other data fields are not read.

    Example:
        >>> DataOptions(path="events.csv", reader={"sep": ";"}, min_user=3).min_item
        5
    """

    path: str | None = None
    preset: str | None = None
    reader: dict[str, Any] = field(default_factory=dict)
    min_user: int | None = None
    min_item: int | None = None
    min_rating: float | None = None
    event_types: tuple[str, ...] | None = None
    collapse_repeats: bool = False
    split: str = "leave_one_out"
    test_cutoff: float | None = None
    valid_cutoff: float | None = None
    synthetic_users: int = 4000
    synthetic_items: int = 1000
    synthetic_seed: int = 0
    prepared: str | None = None

    def __post_init__(self) -> None:
        # Resolved here, once: everything downstream reads plain ints.
        core = preset_k_core(self.preset)
        if self.min_user is None:
            object.__setattr__(self, "min_user", core[0])
        if self.min_item is None:
            object.__setattr__(self, "min_item", core[1])
        if self.split not in SPLITS:
            raise ValueError(
                f"split must be 'leave_one_out' or 'temporal', received split={self.split!r}"
            )
        if self.path is None and self.preset is not None:
            raise ValueError(f"preset={self.preset!r} needs a data path")
        if self.prepared is not None and self.path is not None:
            raise ValueError("--prepared and --data are alternatives: give one of them")


@dataclass(frozen=True)
class TrainOptions:
    """How the model is fitted (the model's own hyper-parameters are in SASRecConfig).

    Args:
        epochs: Maximum epochs.
        batch_size: Training windows per batch.
        learning_rate: Adam learning rate.
        beta_2: Adam beta_2 (the paper uses 0.98).
        adam_epsilon: Adam epsilon (Keras' default 1e-7; TensorFlow 1's
            Adam, which the SASRec reference used, had 1e-8).
        seed: Seeds Python, NumPy, TensorFlow and the data pipeline.
        eval_seed: Seeds the final evaluation's own randomness (which users
            when they are sampled, the sampled protocol's users and
            negatives, the bootstrap), apart from ``seed``: runs with
            different training seeds and one ``eval_seed`` are ranked on the
            same users against the same negatives, so their spread is the
            training's alone.
        eval_every: Validate every this many epochs.
        patience: Validations without improvement before early stopping.
        max_valid_users: Validate on at most this many users (seeded sample).
        resume: Continue the interrupted run found in ``OUT/.checkpoint``.
        tensorboard: Write TensorBoard logs.
        verbose: Keras progress bar (1), one line per epoch (2) or silent (0).
        sampled_eval: Also report the paper's sampled protocol.
        bootstrap: Bootstrap samples for the 95% confidence intervals.
        max_eval_users: Final evaluation on at most this many test users (a
            seeded sample; the 95% CIs, a bootstrap over the evaluated users,
            widen as 1/sqrt(users): about ±0.005 on NDCG@10 with 10,000
            users when the per-user values spread by 0.25). 0: automatic,
            every user unless users × (items + 1) passes 10^10 scores per
            protocol (minutes per scorer on 2 cores), then as many users as
            fit.
        negatives: Which items a training negative may not be, besides
            its positive: ``"window"``, the items of its own window;
            ``"history"``, every item of its user's training sequence (the
            SASRec reference's sampler; the same as ``"window"`` for users
            of at most ``max_len + 1`` training items; in memory only, not
            with ``--prepared``); ``"uniform"``, none.
        trained_windows: ``"all"``: every target trains once per epoch, in
            windows of ``max_len`` anchored at the newest event, so a long
            user's older windows train too. ``"newest"``: only each user's
            newest window (its last ``max_len`` targets), as the SASRec
            reference trains (on Games the older windows are 6.2% of the
            positions).
        bucket_multiple: Batch widths are multiples of this; None: the
            geometric widths 1, 2, 3, 4, 6, 8, 12, ... (fewer padded positions,
            but about twice as many shapes for XLA to compile in the first
            epoch: a win for long runs, 8 suits runs of a few epochs).
        chunk_batches: Each epoch sorts its shuffled windows by length within
            chunks of this many batches before cutting batches: larger chunks
            give batches of more similar lengths (less padding), smaller ones
            more varied batch company. 256 sorts a Games epoch (244 batches)
            whole: 10% faster epochs than 32 at equal quality (sampled
            NDCG@10 0.386 against 0.381 after 8 epochs on Games).
        shuffle_buffer: Training from a PREPARED folder (``--prepared``)
            streams its shard files; this many windows are shuffled at a
            time (100,000 windows of width 50 took about 90 MB), and the
            length-sorting chunks of ``chunk_batches`` batches are cut from
            that stream. Training from a log shuffles all windows at once.
        steps_per_execution: Train steps per call into TensorFlow (Keras'
            ``steps_per_execution``): the Python of Keras' loop and of the
            function call runs once per this many steps. Same updates in
            the same order; per-batch callbacks see every n-th batch.
        loss_normalization: ``"epoch"``: every valid position of an epoch
            weighs the same (the model's ``loss_denominator`` is set to the
            mean valid positions per batch, unless the model config sets
            one). ``"batch"``: the mean over each batch's own positions,
            which under length bucketing gives a position of a batch of short
            histories several times the weight of one in a batch of long
            ones (on Games, paper settings: sampled NDCG@10 0.527 against
            0.538 with ``"epoch"``, full-ranking 0.030 against 0.033).
        sparse_item_updates: Lazy-Adam updates of the item table
            (``FusedAdam(lazy_item_table=True)``): only the rows a step
            touched (the batch's input, positive and negative ids) move,
            weights and moments; the other rows keep their momentum instead
            of drifting with it. Meant for large catalogues, where a batch
            touches a few thousand of a million rows. On rows touched every
            step it equals Adam, but rarely seen items train differently,
            so it is off by default. The update is one masked pass over the
            table, which XLA:CPU fuses (50 updates of a 200k x 64 table:
            0.11-0.20 s against 1.0-1.3 s for the dense Adam update); a
            row gather/scatter variant measured slower (2.2 s there, and
            above the dense pass from about 1,500 touched rows on Games).
            With ``--loss softmax`` every row gets a gradient each step, so
            it changes nothing there; it is for the sampled losses.
        compile_ahead: With XLA, compile the train step's batch widths on a
            background thread while the steps of widths not compiled yet run
            as a plain TensorFlow graph (``sasrec.models.CompileAhead``), the
            widths with most positions in the epoch first. Without it every
            new width stops training for its compile (4-6 s of CPU each, 12
            widths by default). Same updates up to float rounding: which
            steps run under XLA depends on when the compiles end, so two
            runs of one seed agree to float rounding, not bit for bit
            (``--no-compile-ahead`` for bit-identical reruns).
        strategy: ``"none"`` (one device), ``"mirrored"``
            (``tf.distribute.MirroredStrategy`` over the local GPUs, or the
            CPU devices) or ``"multi-worker"``
            (``MultiWorkerMirroredStrategy``, workers from ``TF_CONFIG``);
            see docs/training.md. ``batch_size`` is then per replica: a step
            trains on ``batch_size x replicas`` windows, and equals a
            one-device step with that batch size (same batches, losses and
            updates up to float rounding). Only the chief (worker 0)
            publishes the version. Steps run one per call under a strategy
            (``steps_per_execution`` is ignored), and without XLA on
            logical CPU devices.
        init_from: Warm start from this model version (or the newest under
            this model root): its items keep their indices and rows, new
            items get new rows, its architecture and (unless given) its loss
            are kept; see ``sasrec.training.warm_start``. Model flags left
            at their defaults do not override the base model's settings.

    Example:
        >>> TrainOptions(epochs=30, patience=3).batch_size
        128
    """

    epochs: int = 200
    batch_size: int = 128
    learning_rate: float = 1e-3
    beta_2: float = 0.98
    adam_epsilon: float = 1e-7
    seed: int = 42
    eval_seed: int = 0
    eval_every: int = 1
    patience: int = 5
    max_valid_users: int = 10_000
    resume: bool = False
    tensorboard: bool = True
    verbose: int = 1
    sampled_eval: bool = True
    bootstrap: int = 1000
    max_eval_users: int = 0
    negatives: str = "window"
    trained_windows: str = "all"
    bucket_multiple: int | None = None
    chunk_batches: int = CHUNK_BATCHES
    shuffle_buffer: int = SHUFFLE_BUFFER
    steps_per_execution: int = 16
    loss_normalization: str = "epoch"
    sparse_item_updates: bool = False
    compile_ahead: bool = True
    strategy: str = "none"
    init_from: str | None = None

    def inter_op_threads(self) -> int | None:
        """TensorFlow's inter-op threads for this run (``configure_threads``; None: its default).

        Compiling ahead runs a train function on a second inter-op thread:
        with one, the training thread's steps waited for each compile
        (20-60 s). Every caller that configures the threads before the run
        (the CLI does, before its first op) must ask this, or the run's own
        call comes too late to change them.

        Example:
            >>> [TrainOptions(compile_ahead=c).inter_op_threads() for c in (True, False)]
            [2, None]
        """
        return 2 if self.compile_ahead and self.strategy == "none" else None

    def __post_init__(self) -> None:
        for name in (
            "epochs",
            "batch_size",
            "eval_every",
            "patience",
            "max_valid_users",
            "chunk_batches",
            "shuffle_buffer",
            "steps_per_execution",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, received {name}={value!r}")
        if not isinstance(self.eval_seed, int) or self.eval_seed < 0:
            raise ValueError(
                f"eval_seed must be an int >= 0, received eval_seed={self.eval_seed!r}"
            )
        if not isinstance(self.max_eval_users, int) or self.max_eval_users < 0:
            raise ValueError(
                f"max_eval_users must be an int >= 0 (0: automatic), received "
                f"max_eval_users={self.max_eval_users!r}"
            )
        if self.bucket_multiple is not None and (
            not isinstance(self.bucket_multiple, int) or self.bucket_multiple < 1
        ):
            raise ValueError(
                f"bucket_multiple must be None or an int >= 1, received "
                f"bucket_multiple={self.bucket_multiple!r}"
            )
        if not 0 < self.learning_rate < 1:
            raise ValueError(
                f"learning_rate must be in (0, 1), received learning_rate={self.learning_rate}"
            )
        if not 0 < self.adam_epsilon < 1:
            raise ValueError(
                f"adam_epsilon must be in (0, 1), received adam_epsilon={self.adam_epsilon}"
            )
        check_strategy(self.strategy)
        for name, allowed in (
            ("negatives", NEGATIVE_EXCLUSIONS),
            ("trained_windows", TRAINED_WINDOWS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {allowed}, received {name}={getattr(self, name)!r}"
                )
        if self.loss_normalization not in LOSS_NORMALIZATIONS:
            raise ValueError(
                f"loss_normalization must be one of {LOSS_NORMALIZATIONS}, received "
                f"loss_normalization={self.loss_normalization!r}"
            )
