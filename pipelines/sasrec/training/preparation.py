"""The data side of a run: read or generate the log, clean it, encode it, split it.

interactions -> cleaning -> vocabulary -> sequences -> split
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sasrec.training.options import DATA_SYNTHETIC, DataOptions


@dataclass
class Prepared:
    """The data side of a run: cleaned log's vocabulary, its split and the data report.

    Example:
        >>> prepared = prepare_data(DataOptions(synthetic_users=200))  # doctest: +SKIP
        >>> prepared.split.summary()["kind"]  # doctest: +SKIP
        'leave_one_out'
    """

    vocabulary: Any
    split: Any
    report: Any


def load_clean_log(data: DataOptions) -> tuple[Any, Any]:
    """Reads (or generates) the log and cleans it: ``(frame, DataReport)``.

    ``sasrec data stats`` stops here; :func:`prepare_data` goes on to the split.
    """
    from sasrec.data.cleaning import prepare
    from sasrec.data.readers import load_interactions

    if data.path is None:
        from sasrec.data.data_report import DataReport
        from sasrec.data.synthetic import generate_synthetic_log

        df = generate_synthetic_log(
            num_users=data.synthetic_users,
            num_items=data.synthetic_items,
            seed=data.synthetic_seed,
        )
        report = DataReport(source={"path": None, "preset": DATA_SYNTHETIC, "format": "generated"})
    else:
        df, report = load_interactions(data.path, data.preset, **data.reader)
    return prepare(
        df,
        min_user=data.min_user,
        min_item=data.min_item,
        min_rating=data.min_rating,
        event_types=data.event_types,
        collapse_repeats=data.collapse_repeats,
        report=report,
    )


def split_log(df: Any, data: DataOptions, base_vocabulary: Any = None) -> tuple[Any, Any]:
    """Encodes a clean log and splits it: ``(Vocabulary, Split)``.

    With ``base_vocabulary`` (a warm start), its items keep their indices and
    the log's other items are appended.
    """
    vocabulary, _, split = encode_and_split(df, data, base_vocabulary)
    return vocabulary, split


def encode_and_split(
    df: Any, data: DataOptions, base_vocabulary: Any = None
) -> tuple[Any, Any, Any]:
    """:func:`split_log` that also returns the whole sequences: ``(Vocabulary, seqs, Split)``."""
    from sasrec.data.encoding import build_vocabulary, encode_sequences
    from sasrec.data.splitting import leave_one_out, temporal_split

    vocabulary = build_vocabulary(df)
    if base_vocabulary is not None:
        from sasrec.training.warm_start import extended_vocabulary

        vocabulary = extended_vocabulary(base_vocabulary, vocabulary)
    sequences = encode_sequences(df, vocabulary)
    if data.split == "leave_one_out":
        return vocabulary, sequences, leave_one_out(sequences)
    split = temporal_split(sequences, test_cutoff=data.test_cutoff, valid_cutoff=data.valid_cutoff)
    return vocabulary, sequences, split


def prepare_data(data: DataOptions, base_vocabulary: Any = None) -> Prepared:
    """interactions -> cleaning -> vocabulary -> sequences -> split.

    ``base_vocabulary``: see :func:`split_log`.

    With ``data.prepared`` the folder written by ``sasrec data prepare`` is
    read instead (a warm start's vocabulary cannot extend it: refused).

    Raises:
        ValueError: The cleaned log leaves no validation or no test user.
    """
    if data.prepared is not None:
        if base_vocabulary is not None:
            raise ValueError(
                "--init-from with --prepared: a PREPARED folder has its own vocabulary; "
                "warm starts read the log (--data)"
            )
        from sasrec.data.prepared import read_prepared

        folder = read_prepared(data.prepared)
        vocabulary, split, report = folder.vocabulary, folder.split, folder.report
    else:
        df, report = load_clean_log(data)
        vocabulary, split = split_log(df, data, base_vocabulary)
    if len(split.valid) == 0 or len(split.test) == 0:
        where = data.prepared or data.path or DATA_SYNTHETIC
        raise ValueError(
            f"{where}: too small to split: {len(split.valid)} validation and "
            f"{len(split.test)} test users after cleaning (leave-one-out needs users with "
            f">= 3 events; the temporal split needs events after the cutoffs)"
        )
    return Prepared(vocabulary=vocabulary, split=split, report=report)


def validation_sample(split: Any, limit: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """At most ``limit`` validation cases, a seeded sample in user order: (histories, targets).

    Full-ranking validation after every epoch costs a forward pass per user;
    a fixed sample keeps it affordable on large logs and comparable across epochs.
    """
    users = np.arange(len(split.valid))
    if users.size > limit:
        users = np.sort(np.random.default_rng(seed).choice(users, size=limit, replace=False))
    return [split.valid.history(int(u)) for u in users], split.valid.targets[users]
