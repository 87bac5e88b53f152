"""Private pieces shared by the full-ranking and sampled protocols."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from sasrec.evaluation.bootstrap import bootstrap_ci

ScoreFn = Callable[[np.ndarray], ArrayLike]
"""``score_fn(histories int32 (B, L) left-padded) -> float (B, N + 1)``; column 0 is ignored."""


# Working memory of one chunk of users in the full-ranking protocol.
EVAL_MEMORY_BYTES = 256 * 2**20
# Bytes alive per (user, item) cell while a chunk is ranked: the float32
# scores, the valid and competitor masks, the comparison with the target, and
# top-k's masked copy and partition (2 × float32) with its 4 bool masks: 19;
# tracemalloc measured a 23.4-byte peak per cell (popularity scorer, history
# excluded, one chunk of 60 users × 200,001 items), so 24.
BYTES_PER_SCORE = 24


def users_per_chunk(batch_size: int, num_items: int, memory_bytes: int) -> int:
    """Users scored at once: at most ``batch_size``, and as many as fit ``memory_bytes``.

    Example:
        >>> users_per_chunk(512, 444_596, 256 * 2**20)  # 268435456 // (444597 * 24)
        25
        >>> users_per_chunk(512, 1_000, 256 * 2**20), users_per_chunk(512, 10**9, 1)
        (512, 1)
    """
    return max(1, min(batch_size, memory_bytes // ((num_items + 1) * BYTES_PER_SCORE)))


def call_score_fn(score_fn: ScoreFn, histories: np.ndarray, num_items: int) -> np.ndarray:
    """Calls the scorer and checks the shape and dtype of what it returns."""
    scores = np.asarray(score_fn(histories))
    expected = (histories.shape[0], num_items + 1)
    if scores.shape != expected:
        raise ValueError(
            f"score_fn must return shape (B, num_items + 1) = {expected}, received {scores.shape}"
        )
    if not np.issubdtype(scores.dtype, np.floating):
        raise ValueError(f"score_fn must return floating-point scores, received {scores.dtype}")
    return scores


def check_no_nan(scores: np.ndarray, valid: np.ndarray, first_user: int) -> None:
    """Raises if a competing candidate got a NaN score (it would silently never rank)."""
    bad = np.isnan(scores) & valid
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"score_fn returned NaN for item {int(col)} of user {first_user + int(row)}"
        )


def check_targets(targets: ArrayLike, num_users: int, num_items: int) -> np.ndarray:
    targets = np.asarray(targets)
    if targets.shape != (num_users,):
        raise ValueError(
            f"targets must have shape ({num_users},) (one per history), received {targets.shape}"
        )
    if targets.size and not np.issubdtype(targets.dtype, np.integer):
        raise ValueError(f"targets must be integer item ids, received dtype {targets.dtype}")
    bad = np.flatnonzero((targets < 1) | (targets > num_items))
    if bad.size:
        raise ValueError(
            f"targets[{int(bad[0])}] = {int(targets[bad[0]])} is not an item id in 1..{num_items}"
        )
    return targets.astype(np.int64)


def check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, received {name}={value!r}")
    return int(value)


def resolve_max_len(max_len: int | None, offsets: np.ndarray) -> int:
    if max_len is None:
        longest = int(np.diff(offsets).max()) if offsets.size > 1 else 1
        return max(1, longest)
    return check_positive_int(max_len, "max_len")


def metric_entry(values: np.ndarray, num_bootstrap: int, seed: int | None) -> dict:
    """``{"value": mean, "ci95": [low, high] | None}`` for a per-user metric."""
    ci = (
        list(bootstrap_ci(values, num_samples=num_bootstrap, alpha=0.05, seed=seed))
        if num_bootstrap > 0
        else None
    )
    return {"value": float(values.mean()), "ci95": ci}


def check_num_bootstrap(num_bootstrap: int) -> int:
    if isinstance(num_bootstrap, bool) or not isinstance(num_bootstrap, int) or num_bootstrap < 0:
        raise ValueError(f"num_bootstrap must be an integer >= 0, received {num_bootstrap!r}")
    return num_bootstrap
