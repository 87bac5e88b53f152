"""The training ``tf.data.Dataset`` streamed from shard files (``sasrec train --prepared``).

The in-memory dataset (:mod:`sasrec.data.dataset`) plans a whole epoch from
every window; this one never holds more than its buffers:

1. the files, shuffled every epoch, are read ``cycle_length`` at a time,
   a slice of users from each in turn; a slice becomes its users' training
   windows by the in-memory rule (:func:`~sasrec.data.windows.training_windows`);
2. a shuffle buffer of ``shuffle_buffer`` windows (one NumPy array,
   :class:`ShuffledWindows`) mixes them;
3. every ``chunk_batches * batch_size`` windows form a chunk that
   :func:`~sasrec.data.dataset.epoch_batches` plans exactly as it plans an
   in-memory chunk: sorted by length, cut into batches, batch order
   shuffled, each batch trimmed to a bucket width, negatives drawn by the
   same rule, the epoch's one short batch padded with all-padding rows.

Memory: one slice per open file, the shuffle buffer (400 bytes a window of
width 50), the chunk being filled and the chunk being planned, whatever
the log's size. The windows stay in NumPy until their chunk is planned and
reach ``tf.data`` a planned batch at a time (as ``tf.data`` elements one
by one, ``unbatch``, ``shuffle``, ``batch``, the same input ran at 0.6x
the batches per second; a whole chunk packed into one element held it
twice more, packed and as tensors). An epoch trains on
every window exactly once, as in memory; what differs is which windows
share a batch and the batch order (a window meets the windows of nearby
files, not of the whole log). The k-th
chunk draws from ``numpy.random.default_rng([seed, k])`` and epoch e's file
order and shuffle from ``default_rng([seed, e, 1])``: the same seed gives
the same batches.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from sasrec.data.batch_packing import batch_keys
from sasrec.data.dataset import CHUNK_BATCHES, epoch_batches
from sasrec.data.errors import DataError

if TYPE_CHECKING:
    import tensorflow as tf

# Windows in the shuffle buffer: 100,000 windows of width 50 are one 40 MB
# int32 array (as tf.data elements they had taken about 90 MB).
SHUFFLE_BUFFER = 100_000
# Files read at once; each holds one slice of its users' windows.
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
    negatives_per_batch: bool = False,
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
        bucket_multiple, negatives_per_sequence, exclude_seen,
        negatives_per_batch: as in
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
    epochs = itertools.count()
    chunks = itertools.count()

    def plan_chunk(inputs: np.ndarray, positives: np.ndarray) -> Iterator[dict[str, np.ndarray]]:
        rng = np.random.default_rng([seed, next(chunks)])
        return epoch_batches(
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
            negatives_per_batch=negatives_per_batch,
        )

    def epoch_batches_streamed() -> Iterator[tuple[np.ndarray, ...]]:
        # The windows never become tf.data elements one by one (1.6x the
        # batches per second); each planned batch goes to tf.data as it is
        # made, so a chunk exists once (its windows), not also packed and
        # as tensors.
        shuffled = ShuffledWindows(
            files, file_windows, max_len, shuffle_buffer, cycle_length, [seed, next(epochs), 1]
        )
        for inputs, positives in shuffled.chunks(chunk_batches * batch_size):
            for batch in plan_chunk(inputs, positives):
                yield tuple(batch[key] for key in keys)
            del inputs, positives

    if negatives_per_batch:
        negatives_shape: tuple[int | None, ...] = (1, 1, num_negatives)
    else:
        negatives_shape = (None, 1 if negatives_per_sequence else None, num_negatives)
    shapes = {"item_ids": (None, None), "positives": (None, None), "negatives": negatives_shape}
    signature = tuple(tf.TensorSpec(shapes[key], tf.int32) for key in keys)
    dataset = tf.data.Dataset.from_generator(epoch_batches_streamed, output_signature=signature)
    dataset = dataset.map(lambda *values: dict(zip(keys, values)))
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(-(-windows // batch_size)))
    options = tf.data.Options()
    # As in memory: the autotune thread made the next epoch wait for its exit.
    options.autotune.enabled = False
    return dataset.prefetch(prefetch).with_options(options)


class ShuffledWindows:
    """One epoch's training windows from shard files, mixed by a bounded shuffle buffer.

    The files, in a seeded random order, are read ``cycle_length`` at a time,
    a slice from each in turn; their windows fill a buffer of
    ``shuffle_buffer`` windows, and once it is full each arriving window
    sends a random one of the buffer out (``tf.data``'s shuffle, a slice at a
    time); at the end of the files the buffer empties in random order. The
    buffer is one ``int32 (shuffle_buffer, 2, L)`` array: 400 bytes a window
    of width 50.

    Example:
        >>> def read(name):
        ...     rows = np.arange(1, 7, dtype=np.int32).reshape(3, 2) * (10 if name == "b" else 1)
        ...     yield rows, rows + 1
        >>> windows = ShuffledWindows(["a", "b"], read, 2, shuffle_buffer=4, cycle_length=2,
        ...                           seed=[0])
        >>> chunks = list(windows.chunks(4))
        >>> [len(inputs) for inputs, _ in chunks]
        [4, 2]
        >>> sorted(np.concatenate([x for x, _ in chunks])[:, 0].tolist())
        [1, 3, 5, 10, 30, 50]
    """

    def __init__(
        self,
        files: list[str],
        file_windows: Callable[[str], Iterable[tuple[np.ndarray, np.ndarray]]],
        max_len: int,
        shuffle_buffer: int,
        cycle_length: int,
        seed: list[int],
    ) -> None:
        self.files = list(files)
        self.file_windows = file_windows
        self.max_len = int(max_len)
        self.shuffle_buffer = int(shuffle_buffer)
        self.cycle_length = max(1, int(cycle_length))
        self.rng = np.random.default_rng(seed)

    def slices(self) -> Iterator[np.ndarray]:
        """Every file's windows as ``(w, 2, L)`` slices, ``cycle_length`` files interleaved."""
        order = iter(self.rng.permutation(len(self.files)).tolist())
        cycle = [
            iter(self.file_windows(self.files[i]))
            for i in itertools.islice(order, self.cycle_length)
        ]
        while cycle:
            for slot, reader in enumerate(cycle):
                part = next(reader, None)
                while part is None:
                    following = next(order, None)
                    if following is None:
                        break
                    reader = cycle[slot] = iter(self.file_windows(self.files[following]))
                    part = next(reader, None)
                if part is None:
                    cycle[slot] = None
                    continue
                inputs, positives = part
                yield np.stack(
                    [inputs.astype(np.int32, copy=False), positives.astype(np.int32, copy=False)],
                    axis=1,
                )
            cycle = [reader for reader in cycle if reader is not None]

    def windows(self) -> Iterator[np.ndarray]:
        """The shuffled windows, ``(w, 2, L)`` a group at a time, every window once."""
        size, rng = self.shuffle_buffer, self.rng
        buffer = np.empty((size, 2, self.max_len), dtype=np.int32)
        held = 0
        for part in self.slices():
            room = min(size - held, len(part))
            buffer[held : held + room] = part[:room]
            held += room
            for lo in range(room, len(part), size):
                arriving = part[lo : lo + size]
                slots = rng.choice(size, size=len(arriving), replace=False)
                yield buffer[slots]
                buffer[slots] = arriving
        yield buffer[rng.permutation(held)]

    def chunks(self, rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(inputs, positives)`` of ``rows`` shuffled windows at a time (the last: the rest).

        Each chunk is a new array filled in place: the caller's previous one
        is not held here while the next fills.
        """
        chunk = np.empty((rows, 2, self.max_len), dtype=np.int32)
        filled = 0
        for group in self.windows():
            at = 0
            while at < len(group):
                take = min(rows - filled, len(group) - at)
                chunk[filled : filled + take] = group[at : at + take]
                filled, at = filled + take, at + take
                if filled == rows:
                    yield chunk[:, 0], chunk[:, 1]
                    chunk, filled = np.empty_like(chunk), 0
        if filled:
            yield chunk[:filled, 0], chunk[:filled, 1]


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
