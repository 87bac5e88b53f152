"""The training ``tf.data.Dataset`` streamed from shard files (``sasrec train --prepared``).

The in-memory dataset (:mod:`sasrec.data.dataset`) plans a whole epoch from
every window; this one never holds more than its buffers:

1. the files, shuffled every epoch, are read ``cycle_length`` at a time and
   interleaved; a file becomes its users' training windows by the in-memory
   rule (:func:`~sasrec.data.windows.training_windows`);
2. a shuffle buffer of ``shuffle_buffer`` windows mixes them;
3. every ``chunk_batches * batch_size`` windows form a chunk that
   :func:`~sasrec.data.dataset.epoch_batches` plans exactly as it plans an
   in-memory chunk: sorted by length, cut into batches, batch order
   shuffled, each batch trimmed to a bucket width, negatives drawn by the
   same rule, the epoch's one short batch padded with all-padding rows.

Memory: two files' windows, the shuffle buffer and one chunk, whatever the
log's size. An epoch trains on every window exactly once, as in memory; what
differs is which windows share a batch and the batch order (a window meets
the windows of nearby files, not of the whole log). The k-th chunk draws
from ``numpy.random.default_rng([seed, k])`` and the file and window
shuffles from ``seed``: the same seed gives the same batches.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from sasrec.data.batch_packing import (
    batch_keys,
    batch_unpacker,
    pack_batches,
    packed_batches,
    packed_types,
)
from sasrec.data.dataset import CHUNK_BATCHES, epoch_batches
from sasrec.data.errors import DataError

if TYPE_CHECKING:
    import tensorflow as tf

# Windows in the shuffle buffer: 100,000 windows of width 50 took about 90 MB
# (measured: 400 bytes of ids and as much tf.data overhead per window).
SHUFFLE_BUFFER = 100_000
# Files read at once; each holds a file's windows (rows_per_file users).
CYCLE_LENGTH = 2


def make_streaming_dataset(
    files: list[str],
    file_windows: Callable[[str], Iterable[tuple[np.ndarray, np.ndarray]]],
    windows: int,
    *,
    max_len: int,
    num_items: int,
    batch_size: int,
    num_negatives: int,
    seed: int,
    shuffle_buffer: int = SHUFFLE_BUFFER,
    chunk_batches: int = CHUNK_BATCHES,
    bucket_multiple: int | None = None,
    negatives_per_sequence: bool = False,
    exclude_seen: bool = False,
    cycle_length: int = CYCLE_LENGTH,
    prefetch: int = 4,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of batches streamed from ``files`` (one iteration = one epoch).

    Args:
        files: The shard files.
        file_windows: A file's ``(inputs, positives)`` windows, both ``int32
            (w, max_len)``, yielded in slices (a slice at a time is held).
        windows: The epoch's windows over all files (the dataset's
            cardinality is ``ceil(windows / batch_size)``).
        max_len: L, the window width.
        num_items, batch_size, num_negatives, seed, chunk_batches,
        bucket_multiple, negatives_per_sequence, exclude_seen: as in
            :func:`~sasrec.data.dataset.make_training_dataset`.
        shuffle_buffer: Windows in the shuffle buffer (>= 1).
        cycle_length: Files read and interleaved at once.
        prefetch: Batches prepared ahead.

    Returns:
        The batch contract of docs/architecture.md, every batch
        ``batch_size`` rows wide and one of the bucket widths.

    Example:
        >>> ds = make_streaming_dataset(["a", "b"], read, 1000, max_len=50, num_items=500,
        ...                             batch_size=128, num_negatives=1, seed=0)  # doctest: +SKIP
    """
    import tensorflow as tf

    if shuffle_buffer < 1 or batch_size < 1 or chunk_batches < 1:
        raise ValueError(
            f"need shuffle_buffer, batch_size and chunk_batches >= 1, received "
            f"{shuffle_buffer}, {batch_size} and {chunk_batches}"
        )
    if windows < 1 or not files:
        raise ValueError("no training windows: every sequence has fewer than 2 events")
    keys = batch_keys(num_negatives)
    chunks = itertools.count()

    def read(path: bytes) -> Iterable[tuple[np.ndarray, np.ndarray]]:
        for inputs, positives in file_windows(path.decode()):
            yield inputs.astype(np.int32, copy=False), positives.astype(np.int32, copy=False)

    window_slice = tf.TensorSpec((None, max_len), tf.int32)

    def file_dataset(path: tf.Tensor) -> tf.data.Dataset:
        # Python once per slice of a file's users, not per window.
        slices = tf.data.Dataset.from_generator(
            read, output_signature=(window_slice, window_slice), args=(path,)
        )
        return slices.unbatch()

    def plan_chunk(inputs: np.ndarray, positives: np.ndarray) -> tuple[np.ndarray, ...]:
        rng = np.random.default_rng([seed, next(chunks)])
        planned = epoch_batches(
            inputs,
            positives,
            num_items,
            batch_size,
            num_negatives,
            rng,
            bucket_multiple=bucket_multiple,
            chunk_batches=chunk_batches,
            negatives_per_sequence=negatives_per_sequence,
            exclude_seen=exclude_seen,
            pad_remainder=True,
        )
        return pack_batches(list(planned), keys)

    def chunk_batches_of(inputs: tf.Tensor, positives: tf.Tensor) -> tf.data.Dataset:
        values = tf.numpy_function(
            plan_chunk, [inputs, positives], packed_types(keys), stateful=True
        )
        return packed_batches(values)

    dataset = tf.data.Dataset.from_tensor_slices([str(f) for f in files])
    dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.interleave(file_dataset, cycle_length=min(cycle_length, len(files)))
    dataset = dataset.shuffle(shuffle_buffer, seed=seed + 1, reshuffle_each_iteration=True)
    dataset = dataset.batch(chunk_batches * batch_size)
    dataset = dataset.flat_map(chunk_batches_of)
    dataset = dataset.map(batch_unpacker(num_negatives, negatives_per_sequence))
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(-(-windows // batch_size)))
    options = tf.data.Options()
    # As in memory: the autotune thread made the next epoch wait for its exit.
    options.autotune.enabled = False
    return dataset.prefetch(prefetch).with_options(options)


@contextlib.contextmanager
def shard_read_errors() -> Iterator[None]:
    """A shard file that fails while an epoch streams it: :class:`DataError` naming the file.

    ``tf.data`` wraps an exception of the reading Python code in a
    ``tf.errors.OpError``; the file's error was a ``DataError`` (bad input,
    exit code 2), so it becomes one again, with the message that names the file.
    """
    import tensorflow as tf

    try:
        yield
    except tf.errors.OpError as err:
        found = re.search(r"DataError: (.*unreadable PREPARED shard.*)", err.message)
        if found is None:
            raise
        raise DataError(found.group(1)) from None
