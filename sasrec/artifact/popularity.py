"""``popularity.json``: item counts behind the serving fallback ranking.

``sasrec train`` writes ``{"counts": [c_0, c_1, ..., c_N]}`` (training
interactions per model index, ``c_0`` for padding). Readers also accept the
list without ``c_0``, the bare list, and an object of raw item id -> count.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# Raw item id -> count, or counts by model index; None: no file (index order).
Popularity = dict[str, float] | list[float] | None


def popularity_document(counts: Sequence[float] | np.ndarray) -> dict[str, list[float]]:
    """The ``popularity.json`` document for counts indexed by model index.

    Pass it to ``save_model_dir(..., extra_json={POPULARITY_FILE: ...})``.

    Example:
        >>> popularity_document(np.array([0, 3, 1]))
        {'counts': [0, 3, 1]}
    """
    return {"counts": np.asarray(counts).tolist()}


def read_popularity(path: Path) -> Popularity:
    """Reads ``popularity.json``; a missing file gives None (index order).

    Accepted shapes, optionally under a ``"counts"`` key (as ``sasrec train``
    writes): a list of counts indexed by model index (``[c_0, ..., c_N]``,
    ``c_0`` for padding, or ``[c_1, ..., c_N]``), or an object mapping raw item
    ids to counts. Anything else raises ``ValueError`` naming the file.

    Example:
        >>> read_popularity(Path("models/3/popularity.json"))  # doctest: +SKIP
        [0.0, 12.0, 3.0, ...]
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if isinstance(data, dict) and isinstance(data.get("counts"), dict | list):
        data = data["counts"]
    if isinstance(data, list):
        for i, count in enumerate(data):
            if isinstance(count, bool) or not isinstance(count, int | float):
                raise ValueError(f"{path}: counts[{i}] must be a number, received {count!r}")
        return [float(c) for c in data]
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a list of counts or an object of item id -> count")
    out: dict[str, float] = {}
    for raw, count in data.items():
        if isinstance(count, bool) or not isinstance(count, int | float):
            raise ValueError(f"{path}: count of item {raw!r} must be a number, received {count!r}")
        out[str(raw)] = float(count)
    return out


def counts_by_index(
    popularity: Popularity, item_index: Mapping[str, int], num_items: int, source: Any = None
) -> np.ndarray:
    """Counts as float32 ``(N + 1,)`` indexed by model index, ``[0] = 0``.

    Args:
        popularity: What :func:`read_popularity` returns.
        item_index: Raw item id -> model index (1..N); unknown ids are ignored.
        num_items: N.
        source: Where the counts came from, for the error message.

    Example:
        >>> counts_by_index({"b": 4}, {"a": 1, "b": 2}, 2).tolist()
        [0.0, 0.0, 4.0]
        >>> counts_by_index([5, 1], {"a": 1, "b": 2}, 2).tolist()
        [0.0, 5.0, 1.0]

    Raises:
        ValueError: a list whose length is neither N nor N + 1.
    """
    counts = np.zeros((num_items + 1,), dtype=np.float32)
    if isinstance(popularity, list):
        if len(popularity) not in (num_items, num_items + 1):
            raise ValueError(
                f"{source}: expected {num_items + 1} counts (index 0..{num_items}), "
                f"received {len(popularity)}"
            )
        counts[num_items + 1 - len(popularity) :] = popularity
        counts[0] = 0.0
    elif popularity:
        for raw, count in popularity.items():
            index = item_index.get(str(raw))
            if index:
                counts[index] = float(count)
    return counts
