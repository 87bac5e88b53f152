"""A PREPARED folder read one shard file at a time: what streaming training needs.

``sasrec train --prepared`` never holds the whole log. An epoch's size comes
from the manifest (users per training length), training windows from one
file at a time, the baselines' counts from one file at a time, and
evaluation reads the per-user split columns (one integer each) to choose its
users and then only the chosen users' sequences::

    stream = PreparedStream.open("prep/")
    windows, positions = stream.epoch_size(max_len=50)
    for inputs, positives in stream.file_windows(stream.files[0], max_len=50): ...
    cases = stream.cases("test", np.array([0, 5, 9]))   # the 1st, 6th and 10th test users
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sasrec.data import prepared_layout as layout
from sasrec.data.data_report import DataReport
from sasrec.data.errors import DataError
from sasrec.data.eval_set import EvalSet
from sasrec.data.prepared import read_manifest, shard_files, train_length_counts
from sasrec.data.user_sequences import UserSequences
from sasrec.data.windows import training_windows, window_counts
from sasrec.vocabulary import VocabularyText

_CASE_COLUMNS = {"valid": layout.VALID_LENGTH, "test": layout.TEST_LENGTH}
# Users whose windows are made at once: about 4 MB of windows at width 50.
USERS_PER_READ = 8192


def _train_prefixes(table: pa.Table) -> UserSequences:
    """The training prefixes of a table's users (``items``, ``train_length``), in row order."""
    column = table.column(layout.ITEMS).combine_chunks()
    items = column.flatten().to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(column) + 1, dtype=np.int64)
    np.cumsum(column.value_lengths().to_numpy(zero_copy_only=False), out=offsets[1:])
    train = table.column(layout.TRAIN_LENGTH).to_numpy().astype(np.int64)
    users = np.flatnonzero(train > 0)
    whole = UserSequences(np.full(len(column), "", dtype=object), offsets, items)
    return whole.prefixes(users, train[users])


def read_shard(file: str | os.PathLike, columns: list[str]) -> pa.Table:
    """``columns`` of one shard file; a :class:`DataError` naming the file if it cannot be read."""
    try:
        return pq.read_table(file, columns=columns, partitioning=None)
    except (OSError, pa.ArrowException) as err:
        raise DataError(f"unreadable PREPARED shard ({err})", path=file) from err


def read_rows(
    file: str | os.PathLike, columns: list[str], rows: np.ndarray, batch_rows: int = USERS_PER_READ
) -> pa.Table:
    """``columns`` of the rows ``rows`` (in that order) of one shard file, read in batches.

    Only a batch of ``batch_rows`` rows is decoded at a time: reading a
    whole file of 75,000 users to keep a few of them held about 200 MiB of
    the training process (the decoded columns, kept by the allocators).

    Raises:
        DataError: naming the file if it cannot be read.
    """
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    wanted = rows[order]
    parts, start = [], 0
    try:
        for batch in pq.ParquetFile(file).iter_batches(batch_size=batch_rows, columns=columns):
            lo, hi = np.searchsorted(wanted, [start, start + batch.num_rows])
            if hi > lo:
                parts.append(batch.take(pa.array(wanted[lo:hi] - start)))
            start += batch.num_rows
    except (OSError, pa.ArrowException) as err:
        raise DataError(f"unreadable PREPARED shard ({err})", path=file) from err
    if len(wanted) and (not parts or wanted[-1] >= start):
        raise DataError(f"PREPARED shard has {start} rows, row {int(wanted[-1])} asked", path=file)
    table = pa.Table.from_batches(parts)
    # Back from ascending rows to the order asked.
    return table.take(pa.array(np.argsort(order, kind="stable")))


def check_shards(files: list[Path]) -> None:
    """Every shard file exists, has a Parquet footer and the format's columns (footers only).

    Raises:
        DataError: naming the first bad file.
    """
    for file in files:
        if not file.is_file():
            raise DataError("PREPARED shard listed in manifest.json is missing", path=file)
        try:
            names = set(pq.ParquetFile(file).schema_arrow.names)
        except (OSError, pa.ArrowException) as err:
            raise DataError(f"unreadable PREPARED shard ({err})", path=file) from err
        missing = [c for c in layout.COLUMNS if c not in names]
        if missing:
            raise DataError(f"PREPARED shard lacks the columns {missing}", path=file)


@dataclass
class PreparedStream:
    """A PREPARED folder opened for streaming: metadata in memory, sequences on disk.

    Example:
        >>> stream = PreparedStream.open("prep/")  # doctest: +SKIP
        >>> stream.epoch_size(max_len=50)  # doctest: +SKIP
        (1203, 58810)
    """

    path: Path
    manifest: dict[str, Any]
    files: list[Path]
    # Its text: training needs the count, publishing the file (ids parsed on a lookup).
    vocabulary: VocabularyText
    report: DataReport
    split_summary: dict[str, Any]

    @classmethod
    def open(cls, path: str | os.PathLike) -> PreparedStream:
        """Reads the folder's metadata and checks its shard files' footers.

        Raises:
            DataError: not a PREPARED folder, or a shard file missing or unreadable.
        """
        path = Path(path)
        manifest = read_manifest(path)
        files = shard_files(path)
        check_shards(files)
        return cls(
            path=path,
            manifest=manifest,
            files=files,
            vocabulary=VocabularyText.load(path / layout.VOCABULARY),
            report=DataReport.from_dict(
                json.loads((path / layout.DATA_STATS).read_text(encoding="utf-8"))
            ),
            split_summary=json.loads((path / layout.SPLIT).read_text(encoding="utf-8")),
        )

    def epoch_size(self, max_len: int, newest_only: bool = False) -> tuple[int, int]:
        """``(windows, positions)`` of one training epoch at window length ``max_len``.

        The same counts as :func:`~sasrec.data.windows.training_windows` on
        the whole training split (``newest_only`` as there), from the
        manifest's length histogram.
        """
        counts = train_length_counts(self.path)
        lengths = np.arange(counts.size, dtype=np.int64)
        windows = int((counts * window_counts(lengths, max_len, newest_only)).sum())
        targets = np.maximum(lengths - 1, 0)
        if newest_only:
            targets = np.minimum(targets, max_len)
        positions = int((counts * targets).sum())
        return windows, positions

    def train_sequences(self, file: str | os.PathLike) -> UserSequences:
        """The training prefixes of one file's users, in file order (users without one left out)."""
        return _train_prefixes(read_shard(file, [layout.ITEMS, layout.TRAIN_LENGTH]))

    def file_windows(
        self,
        file: str | os.PathLike,
        max_len: int,
        users: int = USERS_PER_READ,
        newest_only: bool = False,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(inputs, positives)`` training windows of one file's users, ``users`` at a time.

        The in-memory rule (:func:`~sasrec.data.windows.training_windows`,
        ``newest_only`` as there); reading a slice of users at a time bounds
        the arrays a file makes.
        """
        try:
            batches = pq.ParquetFile(file).iter_batches(
                batch_size=users, columns=[layout.ITEMS, layout.TRAIN_LENGTH]
            )
            for batch in batches:
                sequences = _train_prefixes(pa.Table.from_batches([batch]))
                yield training_windows(sequences, max_len, newest_only)
        except (OSError, pa.ArrowException) as err:
            raise DataError(f"unreadable PREPARED shard ({err})", path=file) from err

    def train_parts(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(offsets, items)`` of each file's training sequences, one file at a time."""
        for file in self.files:
            sequences = self.train_sequences(file)
            yield sequences.offsets, sequences.items

    def train_item_counts(self) -> np.ndarray:
        """``int64 (N + 1,)`` occurrences of each item in the training sequences."""
        counts = np.zeros(self.vocabulary.num_items + 1, dtype=np.int64)
        for _, items in self.train_parts():
            counts += np.bincount(items, minlength=counts.size)
        return counts

    def num_cases(self, which: str) -> int:
        """Validation (``"valid"``) or test (``"test"``) users of the split."""
        return int(self.split_summary[f"{which}_users"])

    def cases(self, which: str, ranks: np.ndarray) -> EvalSet:
        """The ``ranks``-th (ascending) validation or test cases, as the in-memory split has them.

        The k-th case is the k-th user with a ``which`` case in ``user_index``
        order. Reads one integer per user of every file, then only the files
        holding chosen users, for their rows.
        """
        column = _CASE_COLUMNS[which]
        indices, files, rows = [], [], []
        for number, file in enumerate(self.files):
            table = read_shard(file, [layout.USER_INDEX, column])
            prefix = table.column(column).to_numpy()
            present = np.flatnonzero(prefix >= 0)
            indices.append(table.column(layout.USER_INDEX).to_numpy()[present])
            files.append(np.full(present.size, number, dtype=np.int32))
            rows.append(present)
        order = np.argsort(np.concatenate(indices), kind="stable")[np.asarray(ranks, np.int64)]
        files_of, rows_of = np.concatenate(files)[order], np.concatenate(rows)[order]
        del indices, files, rows
        histories: list[np.ndarray] = [np.zeros(0, np.int32)] * order.size
        stamps: list[np.ndarray] = [np.zeros(0)] * order.size
        user_ids = np.empty(order.size, dtype=object)
        targets = np.zeros(order.size, dtype=np.int32)
        target_times = np.zeros(order.size, dtype=np.float64)
        wanted = [layout.USER_ID, layout.ITEMS, layout.TIMESTAMPS, column]
        for number in np.unique(files_of):
            at = np.flatnonzero(files_of == number)
            table = read_rows(self.files[number], wanted, rows_of[at])
            items = table.column(layout.ITEMS).to_pylist()
            times = table.column(layout.TIMESTAMPS).to_pylist()
            prefix = table.column(column).to_pylist()
            for k, position in enumerate(at):
                n = prefix[k]
                histories[position] = np.asarray(items[k][:n], dtype=np.int32)
                stamps[position] = np.asarray(times[k][:n], dtype=np.float64)
                targets[position] = items[k][n]
                target_times[position] = times[k][n]
            user_ids[at] = table.column(layout.USER_ID).to_pylist()
        offsets = np.zeros(order.size + 1, dtype=np.int64)
        np.cumsum([h.size for h in histories], out=offsets[1:])
        sequences = UserSequences(
            user_ids,
            offsets,
            np.concatenate(histories) if histories else np.zeros(0, np.int32),
            np.concatenate(stamps) if stamps else np.zeros(0),
        )
        return EvalSet(sequences, targets, target_times)
