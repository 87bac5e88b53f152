"""The training ``tf.data.Dataset`` (batch contract in docs/architecture.md).

Every epoch is planned in numpy, then fed as ready batches:

1. shuffle the windows, cut the permutation into chunks of
   ``chunk_batches * batch_size`` and sort each chunk by sequence length
   (stable), so a batch holds windows of similar length (bucketing). The
   default chunk of 256 batches sorts all of a data set like Games (244
   batches) at once: 90% of the trained positions are real items, against
   81% with chunks of 32 batches, and an epoch is about 10% faster at the
   same quality. Ties keep the shuffled order, so which windows share a
   batch still changes every epoch;
2. cut chunks into batches and shuffle the batch order;
3. trim each batch to the smallest bucket width that holds its longest row:
   with left padding that drops all-padding leading columns, and compiled
   (XLA) train steps see one shape per bucket width. The default widths are
   2, 3, 4, 6, 8, 12, 16, 24, 32, 48, ... (powers of two and 1.5 times them)
   up to ``L``: on the SASRec paper's Games data 90% of the trained positions
   are real items, against 58% with multiples of 8 (``bucket_multiple=8``);
4. sample negatives for the whole batch at once, uniform over ``1..N`` minus
   the positive at that position (draw from ``N - 1`` values and shift those
   ``>= positive`` up by one: exact, no rejection loop). With
   ``exclude_seen`` a negative is also never an item of its own window, with
   ``history`` never an item of its user's training sequence (the SASRec
   reference's sampler); colliding draws are redrawn, vectorised. With
   ``negatives_per_batch`` the batch gets one set of distinct items instead
   (:func:`~sasrec.data.negatives.sample_batch_negatives`), which the model
   masks where a negative is a position's positive.

The k-th iteration over the dataset yields epoch k, drawn from
``numpy.random.default_rng([seed, k])``: the same seed gives the same batches.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from sasrec.data.batch_packing import (
    batch_keys,
    batch_unpacker,
    pack_batches,
    packed_batches,
    packed_types,
)
from sasrec.data.item_sets import ItemSets
from sasrec.data.negatives import sample_batch_negatives, sample_negatives
from sasrec.padding import PAD_ID

if TYPE_CHECKING:
    import tensorflow as tf


# Batches per length-sorting chunk (step 1 of the module docstring).
CHUNK_BATCHES = 256


def plan_epoch(
    lengths: np.ndarray,
    batch_size: int,
    rng: np.random.Generator | None,
    chunk_batches: int = CHUNK_BATCHES,
    drop_remainder: bool = False,
) -> list[np.ndarray]:
    """Row indices of every batch of one epoch, length-bucketed.

    Args:
        lengths: Real (non-padding) length of every window.
        batch_size: Rows per batch (the last batch may be smaller).
        rng: ``None`` keeps the input order (no shuffling, no sorting).
        chunk_batches: Batches per sorting chunk: larger gives tighter buckets,
            smaller gives more randomness.
        drop_remainder: Drop a last batch smaller than ``batch_size``.

    Example:
        >>> [b.tolist() for b in plan_epoch(np.array([3, 1, 2, 1]), 2, None)]
        [[0, 1], [2, 3]]
    """
    n = len(lengths)
    if rng is None:
        order = np.arange(n)
    else:
        order = rng.permutation(n)
        chunk = max(1, chunk_batches) * batch_size
        for lo in range(0, n, chunk):
            part = order[lo : lo + chunk]
            order[lo : lo + chunk] = part[np.argsort(lengths[part], kind="stable")]
    batches = [order[lo : lo + batch_size] for lo in range(0, n, batch_size)]
    if drop_remainder and batches and batches[-1].size < batch_size:
        batches.pop()
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def batch_width(max_length: int, multiple: int, max_len: int) -> int:
    """Longest row rounded up to ``multiple``, capped at ``max_len`` (and >= 1).

    Example:
        >>> batch_width(9, 8, 50), batch_width(49, 8, 50), batch_width(0, 8, 50)
        (16, 50, 8)
    """
    width = -(-max(int(max_length), 1) // multiple) * multiple
    return min(width, max_len)


def bucket_widths(max_len: int, multiple: int | None = None) -> np.ndarray:
    """The batch widths a training epoch uses, ascending, the last is ``max_len``.

    Args:
        max_len: L, the longest window.
        multiple: Multiples of this; None: 1, 2, 3, 4, 6, 8, 12, ... (powers of
            two and 1.5 times them), about 2 log2(L) shapes to compile.

    Example:
        >>> bucket_widths(50).tolist()
        [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 50]
        >>> bucket_widths(20, multiple=8).tolist()
        [8, 16, 20]
    """
    if multiple is not None:
        widths = {batch_width(n, multiple, max_len) for n in range(1, max_len + 1)}
    else:
        widths = {max_len}
        power = 1
        while power < max_len:
            widths.update(w for w in (power, power + power // 2) if w < max_len)
            power *= 2
    return np.array(sorted(widths), dtype=np.int64)


def epoch_batches(
    inputs: np.ndarray,
    positives: np.ndarray,
    num_items: int,
    batch_size: int,
    num_negatives: int,
    rng: np.random.Generator,
    shuffle: bool = True,
    bucket_multiple: int | None = None,
    chunk_batches: int = CHUNK_BATCHES,
    drop_remainder: bool = False,
    lengths: np.ndarray | None = None,
    negatives_per_sequence: bool = False,
    exclude_seen: bool = False,
    pad_remainder: bool = False,
    history: ItemSets | None = None,
    owners: np.ndarray | None = None,
    negatives_per_batch: bool = False,
) -> Iterator[dict[str, np.ndarray]]:
    """The batches of one epoch as dicts of numpy arrays (see the module docstring).

    With ``pad_remainder`` the one batch smaller than ``batch_size`` gets
    all-padding rows (ids, positives and negatives 0) up to ``batch_size``:
    they carry no loss, and every batch then has one of the bucket shapes.
    With ``history`` (each user's items) and ``owners`` (the user of each
    window) a negative is never an item of the window's user, instead of
    the window (``exclude_seen``). With ``negatives_per_batch`` each batch
    has one set ``(1, 1, n)`` of distinct items (the exclusions do not apply:
    the set serves every user of the batch).
    """
    max_len = inputs.shape[1]
    if lengths is None:
        lengths = (positives != PAD_ID).sum(axis=1)
    plan = plan_epoch(lengths, batch_size, rng if shuffle else None, chunk_batches, drop_remainder)
    widths = bucket_widths(max_len, bucket_multiple)
    for rows in plan:
        width = _bucket_of(widths, lengths[rows])
        batch_inputs = inputs[rows, max_len - width :]
        batch_positives = positives[rows, max_len - width :]
        batch = {"item_ids": batch_inputs, "positives": batch_positives}
        excluded: dict[str, Any] = {}
        if history is not None:
            excluded = {"exclude_sets": history, "owners": owners[rows]}
        elif exclude_seen:
            seen = np.concatenate([batch_inputs, batch_positives[:, -1:]], axis=1)
            excluded = {"exclude": seen}
        if num_negatives > 0 and negatives_per_batch:
            batch["negatives"] = sample_batch_negatives(num_items, num_negatives, rng)
        elif num_negatives > 0 and negatives_per_sequence:
            # One set per sequence, uniform over 1..N (minus the window's or
            # the user's items); the model masks a negative equal to a
            # position's positive.
            if not excluded:
                batch["negatives"] = rng.integers(
                    1, num_items + 1, size=(len(rows), 1, num_negatives), dtype=np.int32
                )
            else:
                last = batch_positives[:, -1:]  # an excluded item anyway
                batch["negatives"] = sample_negatives(
                    last, num_items, num_negatives, rng, **excluded
                )
        elif num_negatives > 0:
            batch["negatives"] = sample_negatives(
                batch_positives, num_items, num_negatives, rng, **excluded
            )
        if pad_remainder and len(rows) < batch_size:
            batch = {
                key: value
                if key == "negatives" and negatives_per_batch
                # The batch's one set of negatives has no rows to pad.
                else _pad_rows(value, batch_size)
                for key, value in batch.items()
            }
        yield batch


def _bucket_of(widths: np.ndarray, row_lengths: np.ndarray) -> int:
    """The smallest of ``widths`` that holds the longest of ``row_lengths`` (at least 1)."""
    longest = max(1, int(row_lengths.max()))
    return int(widths[min(np.searchsorted(widths, longest), widths.size - 1)])


def epoch_widths(
    positives: np.ndarray,
    batch_size: int,
    seed: int,
    epoch: int = 0,
    bucket_multiple: int | None = None,
    chunk_batches: int = CHUNK_BATCHES,
    drop_remainder: bool = False,
) -> np.ndarray:
    """The width of every batch of epoch ``epoch`` of :func:`make_training_dataset`, in order.

    The same plan as the dataset's (same seed, same epoch), without its
    negatives: which shapes a compiled train step meets, and how often.

    Example:
        >>> y = np.array([[0, 0, 1], [0, 2, 3], [4, 5, 6]])
        >>> epoch_widths(y, batch_size=2, seed=0).tolist()
        [3, 2]
    """
    lengths = (np.asarray(positives) != PAD_ID).sum(axis=1)
    rng = np.random.default_rng([seed, epoch])
    plan = plan_epoch(lengths, batch_size, rng, chunk_batches, drop_remainder)
    widths = bucket_widths(np.asarray(positives).shape[1], bucket_multiple)
    return np.array([_bucket_of(widths, lengths[rows]) for rows in plan], dtype=np.int64)


def _pad_rows(values: np.ndarray, rows: int) -> np.ndarray:
    padded = np.full((rows, *values.shape[1:]), PAD_ID, dtype=values.dtype)
    padded[: len(values)] = values
    return padded


def make_training_dataset(
    inputs: np.ndarray,
    positives: np.ndarray,
    num_items: int,
    batch_size: int,
    num_negatives: int,
    seed: int,
    shuffle: bool = True,
    bucket_multiple: int | None = None,
    chunk_batches: int = CHUNK_BATCHES,
    drop_remainder: bool = False,
    prefetch: int = 4,
    negatives_per_sequence: bool = False,
    exclude_seen: bool = False,
    look_ahead: bool = True,
    pad_remainder: bool = True,
    history: ItemSets | None = None,
    owners: np.ndarray | None = None,
    negatives_per_batch: bool = False,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of training batches (one iteration = one epoch).

    Args:
        inputs: ``int32 (W, L)`` left-padded windows (:func:`training_windows`).
        positives: ``int32 (W, L)`` next items, 0 where padding.
        num_items: N; negatives are drawn from ``1..N``.
        batch_size: Windows per batch.
        num_negatives: Negatives per position (0: no ``negatives`` key, for a
            softmax loss).
        seed: Makes every epoch reproducible.
        shuffle: Shuffle and length-bucket (``False``: input order, still trimmed).
        bucket_multiple: Batch widths are multiples of this (capped at ``L``);
            None: the geometric widths of :func:`bucket_widths`.
        chunk_batches: Batches per length-sorting chunk.
        drop_remainder: Drop the last short batch.
        prefetch: Batches prepared ahead.
        negatives_per_sequence: Draw one set of n negatives per sequence,
            ``negatives`` of shape ``(B, 1, n)`` shared by its positions
            (gSASRec); cheap enough for hundreds of negatives.
        exclude_seen: Never draw an item of the window itself as a negative
            (the SASRec reference draws outside the user's training items;
            the window is those items unless the user is longer than ``L``).
        look_ahead: Plan epoch k + 1 on a background thread while epoch k
            trains (the plan of Games takes about 0.4 s, which the train
            step would otherwise wait for at every epoch start). Epoch k is
            the same either way.
        pad_remainder: Fill the one short batch with all-padding rows (no
            loss) to ``batch_size`` rows. A short batch's (rows, width) shape
            is otherwise new to XLA whenever its width changes: a 1.5-2.5 s
            compile in the middle of an epoch.
        history: Each user's training items (:class:`ItemSets`): a negative
            is never one of its window's user's items (the SASRec
            reference's ``random_neq(1, N + 1, set(user_train[u]))``),
            which for users longer than ``L`` excludes more than
            ``exclude_seen``. Needs ``owners``.
        owners: ``int (W,)`` the user (set index in ``history``) of each window.
        negatives_per_batch: One set of ``num_negatives`` distinct items per
            batch, ``negatives`` of shape ``(1, 1, n)`` (needs ``n <
            num_items``); ``exclude_seen`` and ``history`` do not apply.

    Returns:
        ``tf.data.Dataset`` of dicts ``{"item_ids": int32 (B, t), "positives":
        int32 (B, t), "negatives": int32 (B, t, n)}`` with known cardinality.

    Example:
        >>> import numpy as np
        >>> x = np.array([[0, 1, 2], [0, 0, 3]], np.int32)
        >>> y = np.array([[0, 2, 4], [0, 0, 5]], np.int32)
        >>> ds = make_training_dataset(x, y, num_items=5, batch_size=2, num_negatives=1,
        ...                            seed=0, bucket_multiple=2)
        >>> next(iter(ds))["item_ids"].shape
        TensorShape([2, 2])
    """
    import tensorflow as tf

    inputs = np.ascontiguousarray(inputs, dtype=np.int32)
    positives = np.ascontiguousarray(positives, dtype=np.int32)
    if inputs.ndim != 2 or inputs.shape != positives.shape:
        raise ValueError(
            f"inputs and positives must be 2-D with the same shape, received {inputs.shape} "
            f"and {positives.shape}"
        )
    if batch_size < 1 or num_negatives < 0 or (bucket_multiple is not None and bucket_multiple < 1):
        raise ValueError(
            f"need batch_size >= 1, num_negatives >= 0, bucket_multiple >= 1; received "
            f"batch_size={batch_size}, num_negatives={num_negatives}, "
            f"bucket_multiple={bucket_multiple}"
        )
    if len(inputs) == 0:
        raise ValueError("no training windows: every sequence has fewer than 2 events")
    if num_negatives > 0 and num_items < 2:
        raise ValueError(f"negative sampling needs num_items >= 2, received {num_items}")
    if int(positives.max()) > num_items or int(inputs.max()) > num_items:
        raise ValueError(f"item indices exceed num_items={num_items}")
    if negatives_per_batch and num_negatives >= num_items:
        raise ValueError(
            f"negatives_per_batch draws {num_negatives} distinct items: needs num_negatives < "
            f"num_items={num_items}"
        )
    if history is not None and (owners is None or len(owners) != len(inputs)):
        raise ValueError("history needs owners, the user of every window")
    lengths = (positives != PAD_ID).sum(axis=1)
    batches = len(inputs) // batch_size if drop_remainder else -(-len(inputs) // batch_size)
    epochs = itertools.count()
    keys = batch_keys(num_negatives)

    ahead: dict[int, tuple[threading.Thread, list]] = {}

    def epoch_arrays() -> tuple[np.ndarray, ...]:
        # The whole epoch in one Python call: per-batch Python work inside
        # tf.data (from_generator) held the GIL and took the cores from the
        # train step, costing about 8 ms per step on 2 cores.
        k = next(epochs)
        pending = ahead.pop(k, None)
        if pending is not None:
            pending[0].join()
        # An empty box: no look-ahead ran, or it failed; plan here (and raise here).
        arrays = pending[1][0] if pending is not None and pending[1] else plan(k)
        if look_ahead:
            box: list = []
            thread = threading.Thread(
                target=lambda: box.append(plan(k + 1)), name="sasrec-next-epoch", daemon=True
            )
            thread.start()
            ahead[k + 1] = (thread, box)
        return arrays

    def plan(k: int) -> tuple[np.ndarray, ...]:
        rng = np.random.default_rng([seed, k])
        planned = list(
            epoch_batches(
                inputs,
                positives,
                num_items,
                batch_size,
                num_negatives,
                rng,
                shuffle=shuffle,
                bucket_multiple=bucket_multiple,
                chunk_batches=chunk_batches,
                drop_remainder=drop_remainder,
                lengths=lengths,
                negatives_per_sequence=negatives_per_sequence,
                exclude_seen=exclude_seen,
                pad_remainder=pad_remainder,
                history=history,
                owners=owners,
                negatives_per_batch=negatives_per_batch,
            )
        )
        return pack_batches(planned, keys)

    def epoch(_: Any) -> tf.data.Dataset:
        values = tf.numpy_function(epoch_arrays, [], packed_types(keys), stateful=True)
        return packed_batches(values)

    unpack = batch_unpacker(num_negatives, negatives_per_sequence, negatives_per_batch)
    dataset = tf.data.Dataset.from_tensors(0).flat_map(epoch).map(unpack)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    options = tf.data.Options()
    # Nothing here is tunable (the prefetch depth is fixed), and the autotune
    # thread of an epoch's iterator made the next epoch wait for its exit:
    # 16-41 s at the start of epoch 2 in about half of the Games runs, with
    # the main thread blocked in the old iterator's destructor (seen in gdb).
    options.autotune.enabled = False
    return dataset.prefetch(prefetch).with_options(options)
