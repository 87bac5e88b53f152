"""Sampled protocol of the SASRec paper: the target against 100 random negatives.

Use it only to compare with published numbers; sampled metrics can disagree
with full ranking on which model is better (Krichene & Rendle, KDD 2020).

Reference: ``evaluate()`` in SASRec.pytorch (``utils.py``). For up to 10,000
randomly chosen users it draws each of 100 negatives uniformly from 1..N,
redrawing while the draw is in the user's rated set (so negatives are drawn
*with replacement* and may repeat), then ranks the target among the 101 and
scores HR@10 and NDCG@10. The same algorithm here, vectorised per batch. The
differences, all deliberate:

- Randomness comes from one seeded ``np.random.Generator`` (users first, then
  negatives batch by batch), so results are reproducible; the streams differ
  from Python's ``random`` / ``np.random`` global state used there.
- The rejection set is ``user_items[u]`` plus the target. The reference omits
  the test item from its rated set, so it can rarely draw the target itself
  as a negative; here a negative never equals the target.
- Ties between a negative and the target follow ``ties`` (pessimistic by
  default) instead of ``argsort`` order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from sasrec.evaluation._protocol import (
    ScoreFn,
    call_score_fn,
    check_num_bootstrap,
    check_positive_int,
    check_targets,
    metric_entry,
    resolve_max_len,
)
from sasrec.evaluation._sequences import (
    Sequences,
    check_num_items,
    gather_rows,
    padded_batch,
    to_csr,
)
from sasrec.evaluation.metrics import (
    check_k,
    check_ties,
    hit_rate_at_k,
    ndcg_at_k,
    ranks_from_scores,
)


def _rejection_sample(
    known: np.ndarray, num_negatives: int, rng: np.random.Generator, first_user: int
) -> np.ndarray:
    """Uniform draws from 1..N per row, redrawn while ``known[row, draw]``."""
    num_items = known.shape[1] - 1
    full = known[:, 1:].all(axis=1)
    if full.any():
        row = int(np.flatnonzero(full)[0])
        raise ValueError(
            f"user {first_user + row} has interacted with all {num_items} items: "
            "no negative can be sampled"
        )
    rows = np.arange(known.shape[0])[:, None]
    draws = rng.integers(1, num_items + 1, size=(known.shape[0], num_negatives))
    bad_r, bad_c = np.nonzero(known[rows, draws])
    while bad_r.size:
        redraw = rng.integers(1, num_items + 1, size=bad_r.size)
        draws[bad_r, bad_c] = redraw
        still = known[bad_r, redraw]
        bad_r, bad_c = bad_r[still], bad_c[still]
    return draws.astype(np.int32)


def sample_negatives(
    user_items: Sequence[ArrayLike],
    num_items: int,
    num_negatives: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draws negatives per user uniformly with replacement from items not in ``user_items[u]``.

    Args:
        user_items: Per-user known item ids (1..N; 0 is ignored).
        num_items: N.
        num_negatives: Negatives per user.
        rng: Source of randomness; the same seed gives the same negatives.

    Returns:
        ``int32 (U, num_negatives)`` ids in 1..N, none in the user's set.

    Raises:
        ValueError: If a user knows every item.
    """
    num_items = check_num_items(num_items)
    num_negatives = check_positive_int(num_negatives, "num_negatives")
    offsets, items = to_csr(user_items, num_items, "user_items")
    rows = np.arange(offsets.size - 1)
    known = np.zeros((rows.size, num_items + 1), dtype=bool)
    row_pos, seen = gather_rows(offsets, items, rows)
    known[row_pos, seen] = True
    return _rejection_sample(known, num_negatives, rng, 0)


def evaluate_sampled(
    score_fn: ScoreFn,
    histories: Sequences,
    targets: ArrayLike,
    user_items: Sequence[ArrayLike],
    num_items: int,
    *,
    num_negatives: int = 100,
    max_users: int = 10_000,
    k: int = 10,
    batch_size: int = 512,
    max_len: int | None = None,
    ties: str = "pessimistic",
    num_bootstrap: int = 1000,
    seed: int | None = 0,
    return_ranks: bool = False,
) -> dict:
    """HR@k and NDCG@k of the target ranked among ``num_negatives`` sampled negatives.

    Users: all of them if there are at most ``max_users``, else ``max_users``
    drawn without replacement with the seeded generator (then processed in
    index order). As in the reference, users with an empty history are
    skipped after that draw (``num_skipped``), so fewer than ``max_users``
    may be evaluated. See the module docstring for the exact correspondence
    with SASRec.pytorch.

    The negatives depend only on ``seed``, ``batch_size``, the users and
    ``user_items``, never on the scores: two models evaluated with the same
    arguments face the same negatives (a paired comparison). Changing
    ``batch_size`` changes how the random stream is split, hence the draws.

    Args:
        score_fn: ``score_fn(int32 (B, max_len)) -> float (B, N + 1)``.
        histories: Per-user histories (list of 1-D arrays or left-padded array).
            For the paper's test split this is train + the validation item.
        targets: ``(U,)`` held-out item per user, in 1..N.
        user_items: Per-user set of every known item (negatives avoid them);
            the target is always added.
        num_items: N.
        num_negatives: 100 in the paper.
        max_users: 10,000 in the paper.
        k: Cut-off (10 in the paper).
        batch_size: Users per ``score_fn`` call.
        max_len: Width of the scorer input; default the longest history.
        ties: ``"pessimistic"`` or ``"optimistic"``.
        num_bootstrap: Bootstrap resamples for ``ci95``; 0 skips them.
        seed: Seeds user selection, negatives and the bootstrap.
        return_ranks: Also return ``"ranks"`` and ``"users"`` arrays.

    Returns:
        ``{"protocol": "sampled", "k", "num_negatives", "max_users", "seed",
        "ties", "num_items", "num_users", "num_skipped",
        "ndcg@k": {"value", "ci95"}, "hr@k": {"value", "ci95"}}``.
    """
    num_items = check_num_items(num_items)
    k = check_k(k)
    ties = check_ties(ties)
    num_negatives = check_positive_int(num_negatives, "num_negatives")
    max_users = check_positive_int(max_users, "max_users")
    batch_size = check_positive_int(batch_size, "batch_size")
    num_bootstrap = check_num_bootstrap(num_bootstrap)
    offsets, items = to_csr(histories, num_items, "histories")
    num_users = offsets.size - 1
    targets = check_targets(targets, num_users, num_items)
    if len(user_items) != num_users:
        raise ValueError(
            f"user_items must have one entry per history ({num_users}), received {len(user_items)}"
        )
    known_offsets, known_items = to_csr(user_items, num_items, "user_items")
    max_len = resolve_max_len(max_len, offsets)

    rng = np.random.default_rng(seed)
    if num_users > max_users:
        chosen = np.sort(rng.choice(num_users, size=max_users, replace=False))
    else:
        chosen = np.arange(num_users)
    users = chosen[np.diff(offsets)[chosen] > 0]
    if users.size == 0:
        raise ValueError("no user to evaluate: every selected history is empty")

    ranks = np.empty(users.size, dtype=np.int64)
    for start in range(0, users.size, batch_size):
        rows = users[start : start + batch_size]
        batch_targets = targets[rows]
        arange = np.arange(rows.size)
        scores = call_score_fn(score_fn, padded_batch(offsets, items, rows, max_len), num_items)

        known = np.zeros((rows.size, num_items + 1), dtype=bool)
        row_pos, seen = gather_rows(known_offsets, known_items, rows)
        known[row_pos, seen] = True
        known[arange, batch_targets] = True
        negatives = _rejection_sample(known, num_negatives, rng, int(rows[0]))

        negative_scores = np.take_along_axis(scores, negatives, axis=1)
        if np.isnan(negative_scores).any():
            row = int(np.flatnonzero(np.isnan(negative_scores).any(axis=1))[0])
            raise ValueError(f"score_fn returned NaN for a negative of user {int(rows[row])}")
        ranks[start : start + rows.size] = ranks_from_scores(
            scores[arange, batch_targets], negative_scores, None, ties
        )

    report: dict = {
        "protocol": "sampled",
        "k": k,
        "num_negatives": num_negatives,
        "max_users": max_users,
        "seed": seed,
        "ties": ties,
        "num_items": num_items,
        "num_users": int(users.size),
        "num_skipped": int(chosen.size - users.size),
        f"ndcg@{k}": metric_entry(ndcg_at_k(ranks, k), num_bootstrap, seed),
        f"hr@{k}": metric_entry(hit_rate_at_k(ranks, k), num_bootstrap, seed),
    }
    if return_ranks:
        report["ranks"] = ranks
        report["users"] = users
    return report
