"""Full-ranking protocol: rank each user's target against every item of the catalogue."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from sasrec.evaluation._protocol import (
    EVAL_MEMORY_BYTES,
    ScoreFn,
    call_score_fn,
    check_no_nan,
    check_num_bootstrap,
    check_positive_int,
    check_targets,
    metric_entry,
    resolve_max_len,
    users_per_chunk,
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
    reciprocal_rank,
    top_k_mask,
)


def evaluate_full_ranking(
    score_fn: ScoreFn,
    histories: Sequences,
    targets: ArrayLike,
    num_items: int,
    *,
    exclude_history: bool,
    k: int = 10,
    batch_size: int = 512,
    max_len: int | None = None,
    ties: str = "pessimistic",
    num_bootstrap: int = 1000,
    seed: int | None = 0,
    return_ranks: bool = False,
    coverage: bool = True,
    memory_bytes: int = EVAL_MEMORY_BYTES,
) -> dict:
    """Ranks every user's target among all N items and summarises the ranks.

    Protocol, per user with a non-empty history:

    - The scorer sees the last ``max_len`` history items, left-padded.
    - Competitors are items 1..N except the target; column 0 (padding) never
      competes and is never recommended, whatever its score.
    - ``exclude_history=True`` removes every item of the user's *whole* given
      history (not only the ``max_len`` the scorer saw) from the competitors and
      from the top-k lists, *except the target itself*: a repeat-consumption
      target stays rankable. This equals setting those scores to ``-inf``.
    - rank = number of competitors scoring above the target; ties count as
      above with ``ties="pessimistic"`` (see :mod:`sasrec.evaluation.metrics`).
    - coverage@k = fraction of the N items in at least one user's top-k list
      (ties at the k-th score broken towards the lower item id).

    Users whose history is empty are skipped and counted in ``num_skipped``.
    Confidence intervals are percentile bootstraps over users. Coverage is a
    set statistic, not a mean over users, and a bootstrap resample holds only
    ~63% distinct users, which biases resampled coverage downwards; so its
    ``ci95`` is ``None`` rather than a misleading interval.

    Args:
        score_fn: ``score_fn(int32 (B, max_len)) -> float (B, N + 1)``.
        histories: Per-user histories, oldest first: a list of 1-D id arrays or
            a left-padded ``(U, L)`` array (0 = padding).
        targets: ``(U,)`` held-out next item per user, in 1..N.
        num_items: N.
        exclude_history: See above; required so every report states its choice.
        k: Cut-off of NDCG, HR and coverage.
        batch_size: Most users per ``score_fn`` call.
        memory_bytes: Working memory of one call's ranking (scores, masks,
            top-k): users are scored in chunks of
            ``max(1, memory_bytes // ((N + 1) * 24))`` when that is fewer than
            ``batch_size``, so memory stays bounded on any catalogue and time
            grows linearly with users × items. The results do not depend on
            the chunking.
        max_len: Width of the scorer input; default the longest history.
        ties: ``"pessimistic"`` or ``"optimistic"``.
        num_bootstrap: Bootstrap resamples for ``ci95``; 0 skips the intervals.
        seed: Bootstrap seed.
        coverage: Compute coverage@k (the costliest part; validation during
            training turns it off and the key is then absent).
        return_ranks: Also return ``"ranks"`` (int64 per evaluated user) and
            ``"users"`` (their positions in ``histories``), e.g. for paired tests.

    Returns:
        A JSON-ready dict (unless ``return_ranks``)::

            {"protocol": "full_ranking", "k": 10, "exclude_history": True,
             "ties": "pessimistic", "num_items": N, "num_users": U_evaluated,
             "num_skipped": U_empty,
             "ndcg@10": {"value": float, "ci95": [low, high]},
             "hr@10": {...}, "mrr": {...},
             "coverage@10": {"value": float, "ci95": None}}
    """
    num_items = check_num_items(num_items)
    k = check_k(k)
    ties = check_ties(ties)
    batch_size = users_per_chunk(
        check_positive_int(batch_size, "batch_size"),
        num_items,
        check_positive_int(memory_bytes, "memory_bytes"),
    )
    num_bootstrap = check_num_bootstrap(num_bootstrap)
    offsets, items = to_csr(histories, num_items, "histories")
    num_users = offsets.size - 1
    targets = check_targets(targets, num_users, num_items)
    max_len = resolve_max_len(max_len, offsets)

    users = np.flatnonzero(np.diff(offsets) > 0)
    if users.size == 0:
        raise ValueError(f"no user to evaluate: all {num_users} histories are empty")
    ranks = np.empty(users.size, dtype=np.int64)
    covered = np.zeros(num_items + 1, dtype=bool)
    for start in range(0, users.size, batch_size):
        rows = users[start : start + batch_size]
        batch_targets = targets[rows]
        arange = np.arange(rows.size)
        scores = call_score_fn(score_fn, padded_batch(offsets, items, rows, max_len), num_items)

        valid = np.ones(scores.shape, dtype=bool)
        valid[:, 0] = False
        if exclude_history:
            row_pos, seen = gather_rows(offsets, items, rows)
            valid[row_pos, seen] = False
            valid[arange, batch_targets] = True
        check_no_nan(scores, valid, int(rows[0]))

        competitors = valid.copy()
        competitors[arange, batch_targets] = False
        ranks[start : start + rows.size] = ranks_from_scores(
            scores[arange, batch_targets], scores, competitors, ties
        )
        if coverage:
            covered |= top_k_mask(scores, k, valid).any(axis=0)

    report: dict = {
        "protocol": "full_ranking",
        "k": k,
        "exclude_history": bool(exclude_history),
        "ties": ties,
        "num_items": num_items,
        "num_users": int(users.size),
        "num_skipped": int(num_users - users.size),
        f"ndcg@{k}": metric_entry(ndcg_at_k(ranks, k), num_bootstrap, seed),
        f"hr@{k}": metric_entry(hit_rate_at_k(ranks, k), num_bootstrap, seed),
        "mrr": metric_entry(reciprocal_rank(ranks), num_bootstrap, seed),
    }
    if coverage:
        report[f"coverage@{k}"] = {"value": float(covered[1:].sum() / num_items), "ci95": None}
    if return_ranks:
        report["ranks"] = ranks
        report["users"] = users
    return report
