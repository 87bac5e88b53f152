"""Logits of a position's positive against its sampled negatives, and the full softmax's loss.

The three layouts of sampled negatives the training batches carry, each
scored its cheapest way, plus the full softmax over the catalogue. Pure
functions of ``keras.ops`` tensors: :class:`sasrec.models.SASRec` owns the
loss and chooses among them (:meth:`SASRec.sequence_loss`), these compute.

Example:
    >>> import numpy as np
    >>> table = np.eye(4, dtype="float32")  # items 0..3, d=4
    >>> lookup = lambda ids: ops.take(table, ids, axis=0)
    >>> hidden = np.ones((1, 2, 4), "float32")
    >>> pos, neg = batch_negative_logits(lookup, hidden, np.array([[1, 2]]), np.array([[[2, 3]]]))
    >>> np.asarray(neg).tolist()  # item 2 is position 1's positive: masked there
    [[[1.0, 1.0], [-1000000000.0, 1.0]]]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keras import ops

# A masked negative's logit: adds nothing to BCE or softmax losses.
MASKED = -1e9


def per_position_logits(
    lookup: Callable[[Any], Any], hidden: Any, positives: Any, negatives: Any
) -> Any:
    """``(B, t, 1 + n)`` logits, column 0 the positive, for ``negatives (B, t, n)``.

    One gather for the positive and all negatives; multiply-and-sum, since a
    batched ``(1 + n, d) x (d, 1)`` matmul is slower.
    """
    candidates = ops.concatenate([positives[:, :, None], negatives], axis=-1)
    candidate_vectors = lookup(candidates)  # (B, t, 1+n, d)
    return ops.sum(candidate_vectors * hidden[:, :, None, :], axis=-1)


def sequence_negative_logits(
    lookup: Callable[[Any], Any], hidden: Any, positives: Any, negatives: Any
) -> tuple[Any, Any]:
    """Positive ``(B, t)`` and negative ``(B, t, n)`` logits, one set of n per sequence.

    ``negatives (B, 1, n)`` (gSASRec's sampling) serve every position of
    their sequence: one ``(B, n, d)`` gather and a ``(t, d) x (d, n)`` matmul
    per sequence instead of a ``(B, t, n, d)`` gather, which makes hundreds of
    negatives affordable. A negative equal to a position's positive is
    :data:`MASKED` there.
    """
    positive = ops.sum(lookup(positives) * hidden, axis=-1)
    negative_vectors = lookup(negatives[:, 0, :])  # (B, n, d)
    negative = ops.einsum("btd,bnd->btn", hidden, negative_vectors)
    collide = ops.equal(negatives, positives[:, :, None])
    return positive, ops.where(collide, MASKED, negative)


def batch_negative_logits(
    lookup: Callable[[Any], Any], hidden: Any, positives: Any, negatives: Any
) -> tuple[Any, Any]:
    """Positive ``(B, t)`` and negative ``(B, t, n)`` logits, one set of n for the batch.

    ``negatives (1, 1, n)``: one ``(n, d)`` gather and a ``(B t, d) x (d,
    n)`` matmul, the full softmax's shape on ``n`` sampled columns, so
    thousands of negatives cost about what hundreds per sequence do. A
    negative equal to a position's positive is :data:`MASKED` there.
    """
    positive = ops.sum(lookup(positives) * hidden, axis=-1)
    drawn = ops.reshape(negatives, (-1,))  # (n,)
    negative = ops.einsum("btd,nd->btn", hidden, lookup(drawn))
    collide = ops.equal(drawn[None, None, :], positives[:, :, None])
    return positive, ops.where(collide, MASKED, negative)


def full_softmax_loss(hidden: Any, positives: Any, valid: Any, table: Any) -> Any:
    """Summed cross-entropy of every valid position over items 1..N (``table (N + 1, d)``).

    The valid positions are gathered first: ``(V, d) @ (d, N)`` instead of
    ``(B, t, N)``. Memory is still V x N floats (about 110 MB for V = 1,150
    valid positions and N = 23,715), twice with the gradient.
    """
    hidden_dim = hidden.shape[-1]
    (rows,) = ops.nonzero(ops.reshape(valid, (-1,)))
    states = ops.take(ops.reshape(hidden, (-1, hidden_dim)), rows, axis=0)
    labels = ops.take(ops.reshape(positives, (-1,)), rows, axis=0) - 1
    # Rows 1..N only, so the padding column never takes probability mass.
    logits = ops.matmul(states, ops.transpose(ops.cast(table, "float32")[1:]))
    return ops.sum(ops.sparse_categorical_crossentropy(labels, logits, from_logits=True))
