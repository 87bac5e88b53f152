"""The PREPARED format: a cleaned, encoded and split log as a folder of Parquet shards.

The one owner of the format (names in :mod:`sasrec.data.prepared_layout`).
Both engines of ``sasrec data prepare`` write it and ``sasrec train
--prepared`` reads it::

    table = sequence_table(sequences, split)              # pandas engine
    write_prepared("prep/", table, vocabulary, report, split.summary(),
                   options={"min_user": 5}, engine="pandas")
    data = read_prepared("prep/")                         # -> PreparedData
    data.split.train, data.vocabulary, data.report

A folder is built in a sibling ``.tmp-prepared-*`` folder and renamed into
place, with ``manifest.json`` written last, so a reader never sees half a
folder and a failed run leaves nothing under the target name.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
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
from sasrec.data.split import Split
from sasrec.data.user_sequences import UserSequences
from sasrec.io import atomic_write_text, staging_directory
from sasrec.vocabulary import ItemVocabulary

# Manifest key: users per training length (see length_histogram).
TRAIN_LENGTHS = "train_lengths"
_SUMMARY_COUNTS = ("train_users", "train_events", "valid_users", "test_users")

SCHEMA = pa.schema(
    [
        (layout.USER_INDEX, pa.int64()),
        (layout.USER_ID, pa.string()),
        (layout.ITEMS, pa.list_(pa.int32())),
        (layout.TIMESTAMPS, pa.list_(pa.float64())),
        (layout.TRAIN_LENGTH, pa.int32()),
        (layout.VALID_LENGTH, pa.int32()),
        (layout.TEST_LENGTH, pa.int32()),
    ]
)


@dataclass
class PreparedData:
    """A PREPARED folder read back: what ``sasrec train`` needs.

    Example:
        >>> data = read_prepared("prep/")  # doctest: +SKIP
        >>> data.split.summary()["kind"], data.manifest["engine"]  # doctest: +SKIP
        ('leave_one_out', 'spark')
    """

    vocabulary: ItemVocabulary
    split: Split
    report: DataReport
    sequences: UserSequences
    manifest: dict[str, Any]


def _positions(users: UserSequences, all_ids: Any) -> np.ndarray:
    """Where each of ``users`` sits in ``all_ids`` (a ``pd.Index``, hashed once for all parts)."""
    if len(users) == len(all_ids) and np.array_equal(users.user_ids, all_ids.to_numpy()):
        return np.arange(len(users))  # every user, in order (leave-one-out's training part)
    return all_ids.get_indexer(users.user_ids)


def sequence_table(sequences: UserSequences, split: Split) -> pa.Table:
    """One row per user of ``sequences``: the whole sequence and the split's prefix lengths.

    Example:
        >>> from sasrec.data.splitting import leave_one_out
        >>> seqs = UserSequences(["a", "b"], [0, 4, 5], [1, 2, 3, 4, 5])
        >>> t = sequence_table(seqs, leave_one_out(seqs))
        >>> t.column("train_length").to_pylist(), t.column("test_length").to_pylist()
        ([2, 1], [3, -1])
    """
    import pandas as pd

    n = len(sequences)
    train = np.zeros(n, dtype=np.int32)
    valid = np.full(n, -1, dtype=np.int32)
    test = np.full(n, -1, dtype=np.int32)
    all_ids = pd.Index(sequences.user_ids, dtype=object, copy=False)
    train[_positions(split.train, all_ids)] = split.train.lengths
    valid[_positions(split.valid.histories, all_ids)] = split.valid.histories.lengths
    test[_positions(split.test.histories, all_ids)] = split.test.histories.lengths
    offsets = pa.array(sequences.offsets.astype(np.int32))
    return pa.Table.from_arrays(
        [
            pa.array(np.arange(n, dtype=np.int64)),
            pa.array(sequences.user_ids, type=pa.string()),
            pa.ListArray.from_arrays(offsets, pa.array(sequences.items, type=pa.int32())),
            pa.ListArray.from_arrays(offsets, pa.array(sequences.timestamps, type=pa.float64())),
            pa.array(train),
            pa.array(valid),
            pa.array(test),
        ],
        schema=SCHEMA,
    )


def _columns(table: pa.Table) -> dict[str, np.ndarray]:
    """One table's columns as NumPy arrays (lists flattened, with their lengths)."""
    out: dict[str, np.ndarray] = {}
    for name in (layout.ITEMS, layout.TIMESTAMPS):
        column = table.column(name).combine_chunks()
        out[name] = column.flatten().to_numpy(zero_copy_only=False)
        out["lengths"] = column.value_lengths().to_numpy(zero_copy_only=False).astype(np.int64)
    out[layout.USER_ID] = np.asarray(table.column(layout.USER_ID).to_pylist(), dtype=object)
    for name in (layout.USER_INDEX, layout.TRAIN_LENGTH, layout.VALID_LENGTH, layout.TEST_LENGTH):
        out[name] = table.column(name).to_numpy().astype(np.int64)
    return out


def split_from_table(table: pa.Table, info: dict[str, Any]) -> tuple[UserSequences, Split]:
    """Rebuilds the sequences and the :class:`Split` from a sequence table (any row order)."""
    return _split_from_columns([_columns(table)], info)


def _split_from_columns(
    parts: list[dict[str, np.ndarray]], info: dict[str, Any]
) -> tuple[UserSequences, Split]:
    """Joins per-file columns (emptying ``parts``), orders users by ``user_index``, splits."""

    def joined(name: str) -> np.ndarray:
        return np.concatenate([p[name] for p in parts]) if parts else np.zeros(0, np.int64)

    lengths = joined("lengths")
    order = np.argsort(joined(layout.USER_INDEX), kind="stable")
    starts = np.zeros(lengths.size, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    lengths = lengths[order]
    offsets = np.zeros(lengths.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    # Event k of the sorted layout comes from starts[user] + its position in the user.
    gather = np.repeat(starts[order] - offsets[:-1], lengths) + np.arange(offsets[-1])
    items = joined(layout.ITEMS)[gather] if parts else np.zeros(0, np.int32)
    timestamps = joined(layout.TIMESTAMPS)[gather] if parts else np.zeros(0)
    del gather
    user_ids = joined(layout.USER_ID)[order] if parts else np.zeros(0, dtype=object)
    train_len, valid_len, test_len = (
        joined(name)[order]
        for name in (layout.TRAIN_LENGTH, layout.VALID_LENGTH, layout.TEST_LENGTH)
    )
    parts.clear()  # the per-file copies go before the split's prefixes are made
    sequences = UserSequences(user_ids, offsets, items, timestamps)
    trained = np.flatnonzero(train_len > 0)

    def cases(prefix: np.ndarray) -> EvalSet:
        users = np.flatnonzero(prefix >= 0)
        at = offsets[users] + prefix[users]
        histories = sequences.prefixes(users, prefix[users])
        return EvalSet(histories, sequences.items[at], sequences.timestamps[at])

    split = Split(
        sequences.prefixes(trained, train_len[trained]),
        cases(valid_len),
        cases(test_len),
        {k: v for k, v in info.items() if k not in _SUMMARY_COUNTS},
    )
    return sequences, split


def _write_shards(table: pa.Table, folder: Path, shards: int, rows_per_file: int) -> None:
    shard = layout.shard_of(table.column(layout.USER_ID).to_pylist(), shards)

    def write(k: int) -> None:
        rows = table.take(pa.array(np.flatnonzero(shard == k)))
        target = folder / f"{layout.SHARD}={k}"
        target.mkdir(parents=True)
        for number, start in enumerate(range(0, rows.num_rows, rows_per_file)):
            pq.write_table(rows.slice(start, rows_per_file), target / layout.part_name(number))

    folder.mkdir(parents=True)
    # Arrow encodes and compresses without the GIL: two shards at a time use
    # both cores; each file's bytes are the same whichever thread writes it.
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(write, np.unique(shard).tolist()))


def check_shard_settings(shards: int, rows_per_file: int) -> None:
    """Both must be positive (checked before any work)."""
    if shards < 1 or rows_per_file < 1:
        raise ValueError(
            f"--shards and --rows-per-file must be >= 1, received {shards} and {rows_per_file}"
        )


def publish_prepared(
    out: str | os.PathLike,
    write_sequences: Callable[[Path], None],
    *,
    write_vocabulary: Callable[[Path], int],
    report: DataReport,
    split_summary: dict[str, Any],
    options: dict[str, Any],
    engine: str,
    shards: int,
    rows_per_file: int,
) -> Path:
    """Builds a PREPARED folder in a staging folder and renames it to ``out``.

    Args:
        out: The folder to create; it must not exist.
        write_sequences: Writes the shards under the folder it is given
            (``staging/sequences``, which does not exist yet).
        write_vocabulary: Writes the vocabulary file at the path it is
            given and returns the number of items (``ItemVocabulary.save``
            in memory, ``ItemVocabulary.write_ids`` streaming).
        report, split_summary: The run's results.
        options: The data options that made it (recorded in the manifest).
        engine: ``"pandas"`` or ``"spark"``.
        shards, rows_per_file: The sharding, recorded in the manifest.

    Raises:
        ValueError: ``out`` exists already.
    """
    out = Path(out)
    if out.exists():
        raise ValueError(f"--out {out}: exists already; a PREPARED folder is never overwritten")
    with staging_directory(out.parent, prefix=layout.STAGING_PREFIX + out.name + "-") as tmp:
        write_sequences(tmp / layout.SEQUENCES)
        num_items = write_vocabulary(tmp / layout.VOCABULARY)
        report.save(tmp / layout.DATA_STATS)
        atomic_write_text(tmp / layout.SPLIT, json.dumps(split_summary, indent=2) + "\n")
        files = sorted(
            p.relative_to(tmp).as_posix() for p in (tmp / layout.SEQUENCES).rglob("*.parquet")
        )
        manifest = {
            "format": layout.FORMAT,
            "engine": engine,
            "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "options": options,
            "num_users": int(report.stats.get("users", 0)),
            "num_items": int(num_items),
            "num_events": int(report.stats.get("events", 0)),
            "shards": shards,
            "rows_per_file": rows_per_file,
            "files": files,
            # Streaming training knows each epoch's windows and positions from this.
            TRAIN_LENGTHS: length_histogram([tmp / f for f in files]),
        }
        atomic_write_text(tmp / layout.MANIFEST, json.dumps(manifest, indent=2) + "\n")
        os.rename(tmp, out)
    return out


def write_prepared(
    out: str | os.PathLike,
    table: pa.Table,
    vocabulary: ItemVocabulary,
    report: DataReport,
    split_summary: dict[str, Any],
    *,
    options: dict[str, Any],
    engine: str = "pandas",
    shards: int = layout.DEFAULT_SHARDS,
    rows_per_file: int = layout.DEFAULT_ROWS_PER_FILE,
) -> Path:
    """Writes an in-memory sequence table as a PREPARED folder (see :func:`publish_prepared`)."""
    check_shard_settings(shards, rows_per_file)

    def write_vocabulary(path: Path) -> int:
        vocabulary.save(path)
        return vocabulary.num_items

    return publish_prepared(
        out,
        lambda folder: _write_shards(table, folder, shards, rows_per_file),
        write_vocabulary=write_vocabulary,
        report=report,
        split_summary=split_summary,
        options=options,
        engine=engine,
        shards=shards,
        rows_per_file=rows_per_file,
    )


def length_histogram(files: list[Path]) -> dict[str, list[int]]:
    """Users per training length over ``files``, from their ``train_length`` column only.

    ``{"length": [...], "users": [...]}``, lengths ascending, users > 0 each.
    """
    counts = np.zeros(1, dtype=np.int64)
    for file in files:
        lengths = _file_column(file, layout.TRAIN_LENGTH)
        found = np.bincount(np.maximum(lengths, 0))
        if found.size > counts.size:
            counts = np.pad(counts, (0, found.size - counts.size))
        counts[: found.size] += found
    present = np.flatnonzero(counts)
    return {"length": present.tolist(), "users": counts[present].tolist()}


def train_length_counts(path: str | os.PathLike) -> np.ndarray:
    """``int64`` users per training length (index = length) of a PREPARED folder.

    From the manifest; a folder written before the manifest held it is read
    for its ``train_length`` column alone (one integer per user).
    """
    manifest = read_manifest(path)
    histogram = manifest.get(TRAIN_LENGTHS) or length_histogram(shard_files(path))
    lengths = np.asarray(histogram["length"], dtype=np.int64)
    counts = np.zeros(int(lengths.max(initial=0)) + 1, dtype=np.int64)
    counts[lengths] = histogram["users"]
    return counts


def _file_column(file: Path, name: str) -> np.ndarray:
    """One integer column of a shard file as ``int64``; a clear error naming a bad file."""
    try:
        table = pq.read_table(file, columns=[name], partitioning=None)
    except (OSError, pa.ArrowException) as err:
        raise DataError(f"unreadable PREPARED shard ({err})", path=file) from err
    return table.column(name).to_numpy().astype(np.int64)


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a PREPARED folder; a clear error when it is not one."""
    path = Path(path)
    manifest_path = path / layout.MANIFEST
    if not manifest_path.is_file():
        raise DataError(
            f"not a PREPARED folder (no {layout.MANIFEST}; make one with sasrec data prepare)",
            path=path,
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"unreadable manifest ({err})", path=manifest_path) from err
    if not isinstance(manifest, dict) or manifest.get("format") != layout.FORMAT:
        raise DataError(f"not a {layout.FORMAT} manifest", path=manifest_path)
    return manifest


def shard_files(path: str | os.PathLike) -> list[Path]:
    """The Parquet files of a PREPARED folder, as its manifest lists them."""
    path = Path(path)
    return [path / name for name in read_manifest(path)["files"]]


def iter_shard_tables(path: str | os.PathLike, columns: list[str]) -> Iterator[pa.Table]:
    """Each shard file's ``columns``, one file at a time (bounded memory)."""
    for file in shard_files(path):
        yield pq.read_table(file, columns=columns, partitioning=None)


def read_prepared(path: str | os.PathLike) -> PreparedData:
    """Reads a PREPARED folder back into memory (vocabulary, split, report).

    Raises:
        DataError: ``path`` is not a PREPARED folder.
    """
    path = Path(path)
    manifest = read_manifest(path)
    # One file at a time into NumPy: Arrow's copy of a file is freed before the next.
    parts = [_columns(t.cast(SCHEMA)) for t in iter_shard_tables(path, list(layout.COLUMNS))]
    info = json.loads((path / layout.SPLIT).read_text(encoding="utf-8"))
    sequences, split = _split_from_columns(parts, info)
    del parts
    report = DataReport.from_dict(json.loads((path / layout.DATA_STATS).read_text("utf-8")))
    vocabulary = ItemVocabulary.load(path / layout.VOCABULARY)
    return PreparedData(vocabulary, split, report, sequences, manifest)
