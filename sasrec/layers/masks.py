"""Attention masks: the one place where padding, causality and windows meet.

Conventions (see ``docs/architecture.md``):

* ``padding_mask``: bool ``(B, T)``, True where the column holds a real item.
* attention masks: bool ``(B, 1, T, T)`` indexed ``[batch, head, query, key]``,
  True where the query may attend to the key; the head axis has size 1 and
  broadcasts over heads.
"""

from __future__ import annotations

from typing import Any

from keras import ops


def causal_mask(seq_len: Any, window: int | None = None) -> Any:
    """Bool ``(T, T)`` mask: query ``t`` sees keys ``t - window + 1 .. t``.

    Args:
        seq_len: ``T``, a Python int or a scalar integer tensor (dynamic width).
        window: If set, only the last ``window`` positions (including ``t``)
            are visible; ``None`` means the whole prefix ``0 .. t``.

    Returns:
        Bool tensor of shape ``(T, T)`` indexed ``[query, key]``.

    Example:
        >>> ops.convert_to_numpy(causal_mask(3, window=2)).astype(int).tolist()
        [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    """
    if window is not None and window < 1:
        raise ValueError(f"window must be None or >= 1, received window={window!r}")
    query = ops.expand_dims(ops.arange(seq_len, dtype="int32"), 1)
    key = ops.expand_dims(ops.arange(seq_len, dtype="int32"), 0)
    mask = ops.less_equal(key, query)
    if window is not None:
        mask = ops.logical_and(mask, ops.greater(key, query - window))
    return mask


def merge_masks(padding_mask: Any | None, seq_len: Any, window: int | None = None) -> Any:
    """Merges causal, key-padding and optional window masks.

    Args:
        padding_mask: Bool ``(B, T)``, True for real items, or ``None`` when
            there is no padding.
        seq_len: ``T`` (Python int or scalar tensor).
        window: Optional local attention window (see :func:`causal_mask`).

    Returns:
        Bool ``(B, 1, T, T)`` (``(1, 1, T, T)`` when ``padding_mask`` is None):
        True where query ``t`` may attend to key ``s``, i.e. ``s <= t``,
        ``s > t - window`` and key ``s`` is a real item. A query whose row is
        all False (e.g. a padding position of a left-padded sequence) must get
        zero attention weights; :class:`CausalSelfAttention` ensures that.

    Example:
        >>> pad = ops.convert_to_tensor([[False, True, True]])
        >>> ops.convert_to_numpy(merge_masks(pad, 3))[0, 0].astype(int).tolist()
        [[0, 0, 0], [0, 1, 0], [0, 1, 1]]
    """
    mask = causal_mask(seq_len, window)[None, None, :, :]
    if padding_mask is None:
        return mask
    keys = ops.cast(padding_mask, "bool")[:, None, None, :]
    return ops.logical_and(mask, keys)
