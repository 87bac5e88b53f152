"""Per-user item sequences in a compact CSR layout (offsets + items)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


class UserSequences:
    """Every user's item indices in time order, stored as CSR arrays.

    User ``u``'s events are ``items[offsets[u]:offsets[u + 1]]``, oldest first,
    with their ``timestamps`` alongside. Items are vocabulary indices 1..N.

    Args:
        user_ids: Raw user ids, one per user (``str``).
        offsets: ``int64 (U + 1,)``, non-decreasing, ``offsets[0] == 0``.
        items: ``int32 (E,)`` item indices.
        timestamps: ``float64 (E,)`` unix seconds (or row numbers); defaults to
            the event position, which keeps the order.

    Example:
        >>> seqs = UserSequences(["u1", "u2"], [0, 2, 3], [5, 7, 5])
        >>> seqs[0].tolist(), seqs.lengths.tolist(), len(seqs)
        ([5, 7], [2, 1], 2)
    """

    def __init__(
        self,
        user_ids: Sequence[str] | np.ndarray,
        offsets: Sequence[int] | np.ndarray,
        items: Sequence[int] | np.ndarray,
        timestamps: Sequence[float] | np.ndarray | None = None,
    ) -> None:
        self.user_ids = np.asarray(user_ids, dtype=object)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.items = np.asarray(items, dtype=np.int32)
        if timestamps is None:
            timestamps = np.arange(self.items.size, dtype=np.float64)
        self.timestamps = np.asarray(timestamps, dtype=np.float64)
        if self.offsets.ndim != 1 or self.offsets.size != self.user_ids.size + 1:
            raise ValueError(
                f"offsets must have len(user_ids) + 1 = {self.user_ids.size + 1} entries, "
                f"received shape {self.offsets.shape}"
            )
        if self.offsets[0] != 0 or self.offsets[-1] != self.items.size:
            raise ValueError(
                f"offsets must start at 0 and end at len(items) = {self.items.size}, "
                f"received {self.offsets[0]}..{self.offsets[-1]}"
            )
        if np.any(np.diff(self.offsets) < 0):
            raise ValueError("offsets must be non-decreasing")
        if self.timestamps.shape != self.items.shape:
            raise ValueError(
                f"timestamps must match items {self.items.shape}, received {self.timestamps.shape}"
            )

    def __len__(self) -> int:
        return int(self.user_ids.size)

    def __getitem__(self, user: int) -> np.ndarray:
        return self.items[self.offsets[user] : self.offsets[user + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        for u in range(len(self)):
            yield self[u]

    @property
    def lengths(self) -> np.ndarray:
        """``int64 (U,)`` events per user."""
        return np.diff(self.offsets)

    @property
    def num_events(self) -> int:
        return int(self.items.size)

    def user_of_event(self) -> np.ndarray:
        """``int64 (E,)`` the user position of every event."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.lengths)

    def position_in_user(self) -> np.ndarray:
        """``int64 (E,)`` 0-based position of every event in its user's sequence."""
        return np.arange(self.num_events, dtype=np.int64) - np.repeat(
            self.offsets[:-1], self.lengths
        )

    def to_lists(self) -> list[list[int]]:
        """Plain lists (for tests and small data)."""
        return [s.tolist() for s in self]

    def prefixes(self, users: np.ndarray, lengths: np.ndarray) -> UserSequences:
        """The first ``lengths[k]`` events of each user ``users[k]`` (users ascending).

        Example:
            >>> seqs = UserSequences(["a", "b"], [0, 3, 5], [1, 2, 3, 4, 5])
            >>> seqs.prefixes(np.array([0, 1]), np.array([2, 0])).to_lists()
            [[1, 2], []]
        """
        users = np.asarray(users, dtype=np.int64)
        lengths = np.asarray(lengths, dtype=np.int64)
        if users.shape != lengths.shape or np.any(np.diff(users) <= 0):
            raise ValueError("users must be strictly ascending, with one length each")
        if np.any(lengths > self.lengths[users]) or np.any(lengths < 0):
            raise ValueError("prefix lengths must be between 0 and the sequence lengths")
        offsets = np.zeros(users.size + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # Event j of the prefixes is event j - offsets[k] of user users[k].
        gather = np.repeat(self.offsets[users] - offsets[:-1], lengths)
        gather += np.arange(offsets[-1], dtype=np.int64)
        return UserSequences(
            self.user_ids[users], offsets, self.items[gather], self.timestamps[gather]
        )

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, UserSequences)
            and np.array_equal(self.user_ids, other.user_ids)
            and np.array_equal(self.offsets, other.offsets)
            and np.array_equal(self.items, other.items)
            and np.array_equal(self.timestamps, other.timestamps)
        )

    def __repr__(self) -> str:
        return f"UserSequences(users={len(self)}, events={self.num_events})"
