"""Vocabulary building and encoding of a clean frame into per-user sequences.

``build_vocabulary(df) -> ItemVocabulary`` orders items by their raw id
(lexicographic ``str`` order), so the same set of items always gives the same
vocabulary whatever the row order. ``encode_sequences(df, vocab) ->
UserSequences`` maps every event to its index, vectorised over categories.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sasrec.data.columns import ITEM, TIMESTAMP, USER
from sasrec.data.errors import DataError
from sasrec.data.ordering import id_codes, user_time_order
from sasrec.data.user_sequences import UserSequences
from sasrec.vocabulary import ItemVocabulary


def build_vocabulary(df: pd.DataFrame) -> ItemVocabulary:
    """The item vocabulary of a frame: raw ids sorted as strings get 1..N.

    Example:
        >>> build_vocabulary(pd.DataFrame({"item_id": ["b", "a", "b", "c"]})).item_ids
        ['a', 'b', 'c']
    """
    codes, values = id_codes(df[ITEM])
    # A count per code, not np.unique: O(n) instead of hashing every event.
    present = codes[codes >= 0]
    used = np.flatnonzero(np.bincount(present, minlength=len(values))) if present.size else []
    raw = [v for v in _sorted_strings(_as_str_list(values), used) if v != ""]
    if not raw:
        raise DataError("cannot build a vocabulary: the frame has no items", column=ITEM)
    return ItemVocabulary(raw)


def encode_sequences(
    df: pd.DataFrame, vocabulary: ItemVocabulary, unknown: str = "error"
) -> UserSequences:
    """Encodes a canonical frame into per-user sequences in time order.

    Args:
        df: Canonical frame; it need not be sorted (a stable (user, time) sort
            is applied, a no-op on :func:`prepare` output).
        vocabulary: Maps raw item ids to 1..N.
        unknown: ``"error"`` raises on items missing from the vocabulary,
            ``"drop"`` skips their events.

    Returns:
        :class:`UserSequences` with users in order of their codes (first
        appearance for frames from the readers); users without events are left out.
    """
    if unknown not in ("error", "drop"):
        raise ValueError(f"unknown must be 'error' or 'drop', received {unknown!r}")
    users, user_values = id_codes(df[USER])
    items, item_values = id_codes(df[ITEM])
    ts = df[TIMESTAMP].to_numpy()
    index_of_code, missing = vocabulary.encode(_as_str_list(item_values))
    index = np.where(items >= 0, index_of_code[np.maximum(items, 0)], 0).astype(np.int32)
    valid = (index > 0) & (users >= 0)
    if not valid.all():
        if unknown == "error":
            shown = missing[:5] or ["<missing id>"]
            raise DataError(
                f"{int((~valid).sum()):,} event(s) have items outside the vocabulary, e.g. {shown}",
                column=ITEM,
            )
        users, index, ts = users[valid], index[valid], ts[valid]
    order = user_time_order(users, ts)
    if order is not None:
        users, index, ts = users[order], index[order], ts[order]
    counts = (
        np.bincount(users, minlength=len(user_values))
        if users.size
        else np.zeros(len(user_values), dtype=np.int64)
    )
    present = np.flatnonzero(counts)
    offsets = np.zeros(present.size + 1, dtype=np.int64)
    np.cumsum(counts[present], out=offsets[1:])
    raw_users = np.asarray(user_values, dtype=object)[present]
    user_ids = np.asarray([str(v) for v in raw_users], dtype=object)
    return UserSequences(user_ids, offsets, index, np.asarray(ts, dtype=np.float64))


def _as_str_list(values: pd.Index) -> list[str]:
    """The id values as Python ``str`` (``tolist`` is C-speed; iterating a str Index is not)."""
    return [v if type(v) is str else str(v) for v in values.tolist()]


def _sorted_strings(values: list[str], used: np.ndarray) -> list[str]:
    """``sorted(set(values[used]))``, sorted by Arrow: UTF-8 byte order is code point order.

    Example:
        >>> _sorted_strings(["b", "é", "a", "z"], np.array([0, 1, 3]))
        ['b', 'z', 'é']
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    chosen = pa.array(values, pa.string()).take(pa.array(np.asarray(used, dtype=np.int64)))
    return pc.unique(chosen).sort().to_pylist()
