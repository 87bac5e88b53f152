"""Negative sampling for the sampled losses: uniform over the items, never the positive.

Draws come from ``N - 1`` values, shifted up by one at and past the
positive (exact, no rejection loop); items a row must also avoid (its own
window, or its user's whole training sequence, as the SASRec reference's
sampler) are redrawn, vectorised over the batch. A batch-shared set
(:func:`sample_batch_negatives`) is n distinct items for every position of
a batch; the model masks a position's own positive in it.
"""

from __future__ import annotations

import numpy as np

from sasrec.data.item_sets import ItemSets

_MAX_REDRAWS = 64


def sample_negatives(
    positives: np.ndarray,
    num_items: int,
    num_negatives: int,
    rng: np.random.Generator,
    exclude: np.ndarray | None = None,
    exclude_sets: ItemSets | None = None,
    owners: np.ndarray | None = None,
) -> np.ndarray:
    """Uniform negatives over ``1..num_items``, never equal to the positive.

    Args:
        positives: ``int (B, t)`` positive item per position (0 = padding).
        num_items: N, the number of real items (needs ``N >= 2``).
        num_negatives: n per position.
        rng: Random generator.
        exclude: Optional ``int (B, w)`` items each row must not draw either
            (0 entries are ignored), e.g. the row's own window.
        exclude_sets: Instead of ``exclude``: row ``b`` must not draw an item
            of set ``owners[b]`` (e.g. its user's whole training sequence).
        owners: ``int (B,)`` the set of each row, with ``exclude_sets``.

    Draws that hit an excluded item are redrawn up to 64 times; a row that
    has seen nearly the whole catalogue may keep a rare excluded item then.

    Returns:
        ``int32 (B, t, n)``; where the positive is 0 the values are arbitrary
        items (the loss ignores those positions).

    Example:
        >>> neg = sample_negatives(np.array([[1, 2]]), 2, 3, np.random.default_rng(0))
        >>> neg.tolist()
        [[[2, 2, 2], [1, 1, 1]]]
    """
    if num_items < 2:
        raise ValueError(f"negative sampling needs num_items >= 2, received {num_items}")
    pos = np.asarray(positives)[..., None]
    draw = rng.integers(1, num_items, size=(*pos.shape[:-1], num_negatives), dtype=np.int32)
    draw += draw >= pos
    if exclude is not None:
        exclude_sets = ItemSets.from_rows(exclude, num_items)
        owners = np.arange(len(draw), dtype=np.int64)
    if exclude_sets is None:
        return draw
    if owners is None or len(owners) != len(draw):
        raise ValueError("exclude_sets needs owners, one set index per row of positives")
    row_sets = np.asarray(owners, dtype=np.int64).reshape((-1,) + (1,) * (draw.ndim - 1))
    for _ in range(_MAX_REDRAWS):
        # Sorted keys + searchsorted: membership for every draw without a Python loop.
        hit = exclude_sets.contains(row_sets, draw)
        if not hit.any():
            break
        redraw = rng.integers(1, num_items, size=int(hit.sum()), dtype=np.int32)
        redraw += redraw >= np.broadcast_to(pos, draw.shape)[hit]
        draw[hit] = redraw
    return draw


def sample_batch_negatives(
    num_items: int, num_negatives: int, rng: np.random.Generator
) -> np.ndarray:
    """One set of ``num_negatives`` distinct items of ``1..num_items`` for a whole batch.

    Uniform without replacement, so no item counts twice in a sampled
    softmax's denominator; the positives are not excluded (one set serves
    every position: the model masks a negative equal to a position's
    positive).

    Returns:
        ``int32 (1, 1, n)``, the batch contract's shape for batch-shared negatives.

    Example:
        >>> drawn = sample_batch_negatives(5, 4, np.random.default_rng(0))
        >>> drawn.shape, sorted(set(drawn.ravel().tolist())) == sorted(drawn.ravel().tolist())
        ((1, 1, 4), True)
    """
    if not 0 < num_negatives < num_items:
        raise ValueError(
            f"batch-shared negatives are distinct items other than the positive: need "
            f"0 < num_negatives < num_items, received num_negatives={num_negatives}, "
            f"num_items={num_items}"
        )
    drawn = rng.choice(num_items, size=num_negatives, replace=False) + 1
    return drawn.astype(np.int32).reshape(1, 1, num_negatives)
