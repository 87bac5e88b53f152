"""The data side of a run: read or generate the log, clean it, encode it, split it.

interactions -> cleaning -> vocabulary -> sequences -> split

A PREPARED folder (``--prepared``) is opened for streaming instead: its
metadata in memory, its sequences read one shard file at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sasrec.training.options import DATA_SYNTHETIC, DataOptions


@dataclass
class Prepared:
    """The data side of a run: cleaned log's vocabulary, its split and the data report.

    From a PREPARED folder ``split`` is None and ``stream`` (a
    :class:`~sasrec.data.prepared_stream.PreparedStream`) reads the
    sequences file by file.

    Example:
        >>> prepared = prepare_data(DataOptions(synthetic_users=200))  # doctest: +SKIP
        >>> prepared.split_summary()["kind"]  # doctest: +SKIP
        'leave_one_out'
    """

    vocabulary: Any
    split: Any
    report: Any
    stream: Any = None

    def split_summary(self) -> dict[str, Any]:
        """How the split was made and its counts (``Split.summary()``)."""
        return dict(self.stream.split_summary) if self.split is None else self.split.summary()

    def train_item_counts(self) -> np.ndarray:
        """``int64 (N + 1,)`` occurrences of each item in the training sequences."""
        if self.split is None:
            return self.stream.train_item_counts()
        return np.bincount(self.split.train.items, minlength=self.vocabulary.num_items + 1)

    def num_cases(self, which: str) -> int:
        """Validation (``"valid"``) or test (``"test"``) users."""
        if self.split is None:
            return self.stream.num_cases(which)
        return len(self.split.valid if which == "valid" else self.split.test)

    def cases(self, which: str, ranks: np.ndarray) -> Any:
        """The ``ranks``-th validation or test cases as an ``EvalSet`` (ranks ascending)."""
        if self.split is None:
            return self.stream.cases(which, ranks)
        from sasrec.data.eval_set import EvalSet
        from sasrec.data.user_sequences import UserSequences

        cases = self.split.valid if which == "valid" else self.split.test
        ranks = np.asarray(ranks, dtype=np.int64)
        whole = cases.histories
        starts = whole.offsets[ranks]
        lengths = whole.offsets[ranks + 1] - starts
        offsets = np.zeros(ranks.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # Only the chosen users' events are gathered (never a pass over all events).
        at = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        histories = UserSequences(
            whole.user_ids[ranks], offsets, whole.items[at], whole.timestamps[at]
        )
        return EvalSet(histories, cases.targets[ranks], cases.target_timestamps[ranks])

    def baselines(self, num_items: int, histories: list[np.ndarray]) -> dict[str, Any]:
        """The popularity and first-order Markov baselines fitted on the training sequences.

        From a PREPARED folder the Markov chain keeps only the rows of the
        ``histories``' last items (the ones it will score): its memory
        follows the evaluated users, not the log.
        """
        from sasrec.evaluation import MarkovRecommender, PopularityRecommender

        if self.split is None:
            last = np.unique([h[-1] for h in histories if h.size]).astype(np.int64)
            return {
                "popularity": PopularityRecommender(num_items).fit_parts(self.stream.train_parts()),
                "markov": MarkovRecommender(num_items).fit_parts(self.stream.train_parts(), last),
            }
        train = self.split.train
        return {
            "popularity": PopularityRecommender(num_items).fit(
                offsets=train.offsets, items=train.items
            ),
            "markov": MarkovRecommender(num_items).fit(offsets=train.offsets, items=train.items),
        }


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
    opened for streaming instead: ``split`` None, ``stream`` set (a warm
    start's vocabulary cannot extend it: refused).

    Raises:
        ValueError: The cleaned log leaves no validation or no test user.
        DataError: A PREPARED folder, or one of its shard files, is missing or unreadable.
    """
    if data.prepared is not None:
        if base_vocabulary is not None:
            raise ValueError(
                "--init-from with --prepared: a PREPARED folder has its own vocabulary; "
                "warm starts read the log (--data)"
            )
        from sasrec.data.prepared_stream import PreparedStream

        stream = PreparedStream.open(data.prepared)
        prepared = Prepared(stream.vocabulary, None, stream.report, stream)
    else:
        df, report = load_clean_log(data)
        vocabulary, split = split_log(df, data, base_vocabulary)
        prepared = Prepared(vocabulary=vocabulary, split=split, report=report)
    valid, test = prepared.num_cases("valid"), prepared.num_cases("test")
    if valid == 0 or test == 0:
        where = data.prepared or data.path or DATA_SYNTHETIC
        raise ValueError(
            f"{where}: too small to split: {valid} validation and "
            f"{test} test users after cleaning (leave-one-out needs users with "
            f">= 3 events; the temporal split needs events after the cutoffs)"
        )
    return prepared


def sample_ranks(count: int, limit: int, seed: int) -> np.ndarray:
    """``arange(count)``, or past ``limit`` a seeded sample of ``limit`` of them, ascending.

    Example:
        >>> sample_ranks(5, 10, seed=0).tolist(), sample_ranks(5, 2, seed=0).size
        ([0, 1, 2, 3, 4], 2)
    """
    ranks = np.arange(count)
    if count > limit:
        ranks = np.sort(np.random.default_rng(seed).choice(ranks, size=limit, replace=False))
    return ranks


def validation_sample(
    prepared: Prepared, limit: int, seed: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """At most ``limit`` validation cases, a seeded sample in user order: (histories, targets).

    Full-ranking validation after every epoch costs a forward pass per user;
    a fixed sample keeps it affordable on large logs and comparable across
    epochs. From a PREPARED folder only the sampled users' sequences are read.
    """
    cases = prepared.cases("valid", sample_ranks(prepared.num_cases("valid"), limit, seed))
    return [cases.history(u) for u in range(len(cases))], cases.targets
