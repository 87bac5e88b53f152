"""A train / validation / test split of per-user sequences."""

from __future__ import annotations

from typing import Any

from sasrec.data.eval_set import EvalSet
from sasrec.data.user_sequences import UserSequences


class Split:
    """Training sequences plus validation and test cases.

    Args:
        train: Sequences the model is trained on (every event is a target in
            :func:`~sasrec.data.windows.training_windows`).
        valid: Validation cases (history, target) for model selection.
        test: Test cases (history, target).
        info: How the split was made (kind, cutoffs, user counts).

    Example:
        >>> from sasrec.data.splitting import leave_one_out
        >>> split = leave_one_out(UserSequences(["u"], [0, 4], [1, 2, 3, 4]))
        >>> split.train.to_lists(), split.valid.history(0).tolist(), int(split.valid.targets[0])
        ([[1, 2]], [1, 2], 3)
        >>> split.test.history(0).tolist(), int(split.test.targets[0])
        ([1, 2, 3], 4)
    """

    def __init__(
        self, train: UserSequences, valid: EvalSet, test: EvalSet, info: dict[str, Any]
    ) -> None:
        self.train = train
        self.valid = valid
        self.test = test
        self.info = dict(info)

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable counts and settings."""
        return {
            **self.info,
            "train_users": len(self.train),
            "train_events": self.train.num_events,
            "valid_users": len(self.valid),
            "test_users": len(self.test),
        }

    def __repr__(self) -> str:
        return (
            f"Split({self.info.get('kind')}: train={self.train!r}, valid={self.valid!r}, "
            f"test={self.test!r})"
        )
