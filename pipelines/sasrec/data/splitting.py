"""Leave-one-out and global temporal splits of :class:`UserSequences`.

Leave-one-out (the SASRec paper's protocol), for a user with events
``s_1..s_n`` (``n >= 3``): train on ``s_1..s_{n-2}``; validation predicts
``s_{n-1}`` from ``s_1..s_{n-2}``; test predicts ``s_n`` from ``s_1..s_{n-1}``.
Users with fewer than 3 events only train (on all their events).

Global temporal split at two cutoffs ``valid_cutoff <= test_cutoff`` (unix
seconds; by default the time quantiles leaving ``test_fraction`` and
``valid_fraction`` of all events after them):

- train: every event at or before ``valid_cutoff``, so no training event is
  later than any validation or test target (no leakage from the future);
- validation: for each user with history at or before ``valid_cutoff`` and an
  event in ``(valid_cutoff, test_cutoff]``: predict the user's FIRST event
  after ``valid_cutoff`` from all their events up to ``valid_cutoff``;
- test: for each user with history at or before ``test_cutoff`` and an event
  after it: predict the user's first event after ``test_cutoff`` from all their
  events up to ``test_cutoff`` (validation-period events are history, as they
  would be at serving time, but never training targets).

Users with no event before a cutoff are cold-start for that part and counted
in ``Split.info``.
"""

from __future__ import annotations

import numpy as np

from sasrec.data.eval_set import EvalSet
from sasrec.data.split import Split
from sasrec.data.user_sequences import UserSequences


def _cases(seqs: UserSequences, users: np.ndarray, history_lengths: np.ndarray) -> EvalSet:
    histories = seqs.prefixes(users, history_lengths)
    target_at = seqs.offsets[users] + history_lengths
    return EvalSet(histories, seqs.items[target_at], seqs.timestamps[target_at])


def leave_one_out(seqs: UserSequences) -> Split:
    """The SASRec leave-one-out split (see the module docstring).

    Example:
        >>> seqs = UserSequences(["a", "b"], [0, 4, 6], [1, 2, 3, 4, 5, 6])
        >>> split = leave_one_out(seqs)
        >>> split.train.to_lists(), split.test.targets.tolist(), split.valid.targets.tolist()
        ([[1, 2], [5, 6]], [4], [3])
    """
    lengths = seqs.lengths
    evaluated = np.flatnonzero(lengths >= 3)
    train_lengths = np.where(lengths >= 3, lengths - 2, lengths)
    train = seqs.prefixes(np.arange(len(seqs)), train_lengths)
    valid = _cases(seqs, evaluated, lengths[evaluated] - 2)
    test = _cases(seqs, evaluated, lengths[evaluated] - 1)
    info = {"kind": "leave_one_out", "train_only_users": int(len(seqs) - evaluated.size)}
    return Split(train, valid, test, info)


def quantile_cutoffs(
    seqs: UserSequences, valid_fraction: float = 0.1, test_fraction: float = 0.1
) -> tuple[float, float]:
    """``(valid_cutoff, test_cutoff)`` leaving the given fractions of events after them."""
    if valid_fraction < 0 or test_fraction <= 0 or valid_fraction + test_fraction >= 1:
        raise ValueError(
            "need 0 <= valid_fraction, 0 < test_fraction and valid_fraction + test_fraction < 1, "
            f"received valid_fraction={valid_fraction}, test_fraction={test_fraction}"
        )
    if seqs.num_events == 0:
        raise ValueError("cannot choose cutoffs for sequences without events")
    ts = seqs.timestamps
    test_cutoff = float(np.quantile(ts, 1.0 - test_fraction, method="lower"))
    valid_cutoff = float(np.quantile(ts, 1.0 - test_fraction - valid_fraction, method="lower"))
    return valid_cutoff, test_cutoff


def resolve_cutoffs(
    valid_cutoff: float | None, test_cutoff: float | None, auto_valid: float, auto_test: float
) -> tuple[float, float]:
    """The given cutoffs, the automatic ones where not given; checks their order.

    Example:
        >>> resolve_cutoffs(None, 30.0, 25.0, 40.0)
        (25.0, 30.0)
    """
    test_cutoff = auto_test if test_cutoff is None else test_cutoff
    valid_cutoff = min(auto_valid, test_cutoff) if valid_cutoff is None else valid_cutoff
    if valid_cutoff > test_cutoff:
        raise ValueError(
            f"valid_cutoff must be <= test_cutoff, received valid_cutoff={valid_cutoff}, "
            f"test_cutoff={test_cutoff}"
        )
    return valid_cutoff, test_cutoff


def temporal_split(
    seqs: UserSequences,
    *,
    test_cutoff: float | None = None,
    valid_cutoff: float | None = None,
    test_fraction: float = 0.1,
    valid_fraction: float = 0.1,
) -> Split:
    """Global temporal split (see the module docstring).

    Args:
        seqs: Time-ordered sequences.
        test_cutoff: Test targets are events strictly after this time.
        valid_cutoff: Training events are at or before this time; validation
            targets are in ``(valid_cutoff, test_cutoff]``.
        test_fraction: Share of events after ``test_cutoff`` when it is ``None``.
        valid_fraction: Share of events in the validation window when
            ``valid_cutoff`` is ``None``.

    Example:
        >>> seqs = UserSequences(["a"], [0, 4], [1, 2, 3, 4], [10.0, 20.0, 30.0, 40.0])
        >>> split = temporal_split(seqs, valid_cutoff=20.0, test_cutoff=30.0)
        >>> split.train.to_lists(), split.valid.targets.tolist(), split.test.targets.tolist()
        ([[1, 2]], [3], [4])
        >>> split.test.history(0).tolist()
        [1, 2, 3]
    """
    if test_cutoff is None or valid_cutoff is None:
        auto_valid, auto_test = quantile_cutoffs(seqs, valid_fraction, test_fraction)
    else:
        auto_valid = auto_test = 0.0
    valid_cutoff, test_cutoff = resolve_cutoffs(valid_cutoff, test_cutoff, auto_valid, auto_test)
    users = seqs.user_of_event()
    # Events are time-sorted per user, so "at or before a cutoff" is a prefix.
    upto_valid = np.bincount(users, weights=seqs.timestamps <= valid_cutoff, minlength=len(seqs))
    upto_test = np.bincount(users, weights=seqs.timestamps <= test_cutoff, minlength=len(seqs))
    upto_valid = upto_valid.astype(np.int64)
    upto_test = upto_test.astype(np.int64)
    lengths = seqs.lengths

    trained = np.flatnonzero(upto_valid > 0)
    train = seqs.prefixes(trained, upto_valid[trained])
    valid_users = np.flatnonzero((upto_valid > 0) & (upto_test > upto_valid))
    valid = _cases(seqs, valid_users, upto_valid[valid_users])
    test_users = np.flatnonzero((upto_test > 0) & (lengths > upto_test))
    test = _cases(seqs, test_users, upto_test[test_users])
    info = {
        "kind": "temporal",
        "valid_cutoff": float(valid_cutoff),
        "test_cutoff": float(test_cutoff),
        "cold_valid_users": int(((upto_valid == 0) & (upto_test > 0)).sum()),
        "cold_test_users": int(((upto_test == 0) & (lengths > 0)).sum()),
    }
    return Split(train, valid, test, info)
