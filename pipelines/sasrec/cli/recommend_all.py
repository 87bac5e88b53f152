"""`sasrec recommend-all`: the top k items for every user of a log, into one Parquet file.

Each user's history is the last ``max_len`` events of the cleaned log (the
same reader, cleaning and ordering flags as ``sasrec train``), and the answer
is the server's: the same :class:`~sasrec.serving.predictor.Predictor`, so the
same history exclusion, allow/deny rules and popularity fallback for users
whose items the model does not know. Users are scored in chunks and written
as they come (one Parquet row group per chunk), so memory holds one chunk of
answers, not the whole output; the file appears under its name only when
complete.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sasrec.training.options import DataOptions

# Output columns, one row per (user, rank): the long format a cache loader or
# a DataFrame join wants (RecTools' recommend() answers the same shape).
COLUMNS = ("user_id", "rank", "item_id", "score", "fallback")


@dataclass(frozen=True)
class RecommendAllSummary:
    """What a run wrote.

    Example:
        >>> RecommendAllSummary(users=2, rows=20, seconds=0.5, path=Path("r.parquet")).users_per_s
        4.0
    """

    users: int
    rows: int
    seconds: float
    path: Path

    @property
    def users_per_s(self) -> float:
        return self.users / self.seconds if self.seconds > 0 else float("inf")


def user_histories(data: DataOptions, max_len: int) -> tuple[np.ndarray, list[list[str]]]:
    """Every user of the cleaned log and their last ``max_len`` raw item ids, oldest first.

    Users come in order of first appearance; within a user, events are in time
    order with ties in file order (as training orders them). With
    ``data.prepared`` the users and their whole cleaned sequences come from
    that PREPARED folder (either engine's) instead of the log.
    """
    if data.prepared is not None:
        from sasrec.data.prepared import read_prepared

        folder = read_prepared(data.prepared)
        vocabulary, sequences = folder.vocabulary, folder.sequences
    else:
        from sasrec.data.encoding import build_vocabulary, encode_sequences
        from sasrec.training.preparation import load_clean_log

        df, _ = load_clean_log(data)
        vocabulary = build_vocabulary(df)
        sequences = encode_sequences(df, vocabulary)
    names = np.asarray(vocabulary.item_ids, dtype=object)
    offsets, items = sequences.offsets, sequences.items
    histories = [
        names[items[max(start, end - max_len) : end] - 1].tolist()
        for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist())
    ]
    return sequences.user_ids, histories


def recommend_all(
    model: str | os.PathLike,
    data: DataOptions,
    out: str | os.PathLike,
    k: int = 20,
    include_history: bool = False,
    chunk_users: int = 4096,
    progress: Callable[[str], None] | None = None,
) -> RecommendAllSummary:
    """Scores every user of ``data`` with the model version ``model``; writes ``out``.

    Args:
        model: A model version directory (``OUT/<n>``).
        data: The log and its cleaning, as for ``sasrec train``.
        out: The Parquet file to write (replaced atomically).
        k: Items per user.
        include_history: Allow items of the user's history (default: excluded,
            as the server does).
        chunk_users: Users scored and written per step (bounds memory).
        progress: Called with a one-line status after each chunk.

    Raises:
        ValueError: ``k`` or ``chunk_users`` below 1, or a bad log (the
            readers' messages name the file and line).
    """
    if k < 1:
        raise ValueError(f"--k must be >= 1, received {k}")
    if chunk_users < 1:
        raise ValueError(f"chunk_users must be >= 1, received {chunk_users}")
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sasrec.io import atomic_write_with
    from sasrec.serving.domain import Limits, RecommendationRequest
    from sasrec.serving.predictor import Predictor

    start = time.perf_counter()
    predictor = Predictor.load(
        model, limits=Limits(max_k=max(k, Limits().max_k)), max_batch_size=256
    )
    users, histories = user_histories(data, predictor.max_len)
    out = Path(out)
    schema = pa.schema(
        [
            ("user_id", pa.string()),
            ("rank", pa.int16()),
            ("item_id", pa.string()),
            ("score", pa.float32()),
            ("fallback", pa.bool_()),
        ]
    )
    rows = 0

    def write(fh: Any) -> None:
        nonlocal rows
        with pq.ParquetWriter(fh, schema) as writer:
            for first in range(0, len(histories), chunk_users):
                chunk = range(first, min(first + chunk_users, len(histories)))
                answers = predictor.recommend(
                    [
                        RecommendationRequest(
                            history=tuple(histories[u]), k=k, include_history=include_history
                        )
                        for u in chunk
                    ]
                )
                writer.write_table(_answers_table(users[chunk.start : chunk.stop], answers, schema))
                rows += sum(len(a.items) for a in answers)
                if progress is not None:
                    elapsed = time.perf_counter() - start
                    progress(
                        f"recommend-all: {chunk.stop:,}/{len(histories):,} users "
                        f"({100 * chunk.stop / len(histories):.0f}%), "
                        f"{chunk.stop / elapsed:,.0f} users/s"
                    )

    atomic_write_with(out, write)
    return RecommendAllSummary(len(histories), rows, time.perf_counter() - start, out)


def _answers_table(users: np.ndarray, answers: list[Any], schema: Any) -> Any:
    """One chunk's answers in the long format (a row per user and rank)."""
    import pyarrow as pa

    counts = [len(a.items) for a in answers]
    return pa.table(
        {
            "user_id": pa.array(np.repeat(users, counts).tolist(), pa.string()),
            "rank": pa.array([r for n in counts for r in range(1, n + 1)], pa.int16()),
            "item_id": pa.array([i.item_id for a in answers for i in a.items], pa.string()),
            "score": pa.array([i.score for a in answers for i in a.items], pa.float32()),
            "fallback": pa.array(np.repeat([a.fallback for a in answers], counts), pa.bool_()),
        },
        schema=schema,
    )
