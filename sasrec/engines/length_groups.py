"""Grouping a batch of histories by length, so short rows skip long rows' padding.

An encoder call costs about rows x widest-row positions (attention grows with
the square of the width), so one long history makes a whole batch pay for
its width. Both engines encode short and long rows in separate calls when
that saves more than a second call costs.
"""

from __future__ import annotations

from collections.abc import Sequence

# A second encoder call costs about as much as this many extra history
# positions (rows x columns) of encoder work; split only when it saves more.
SPLIT_MIN_SAVED_POSITIONS = 256


def split_by_length(lengths: Sequence[int], max_len: int) -> list[list[int]]:
    """Row indices in one group, or two groups (short rows, long rows).

    Example:
        >>> split_by_length([3, 50, 2, 4] + [5] * 60, 50)[0][:4]
        [0, 2, 3, 4]
        >>> split_by_length([3, 4, 5], 50)
        [[0, 1, 2]]
    """
    widths = [max(1, min(n, max_len)) for n in lengths]
    widest = max(widths)
    order = sorted(range(len(widths)), key=widths.__getitem__)
    best_saved, best_cut = 0, 0
    for cut in range(1, len(order)):
        if widths[order[cut]] == widths[order[cut - 1]]:
            continue
        saved = cut * (widest - widths[order[cut - 1]])
        if saved > best_saved:
            best_saved, best_cut = saved, cut
    if best_saved < SPLIT_MIN_SAVED_POSITIONS:
        return [list(range(len(widths)))]
    return [sorted(order[:best_cut]), sorted(order[best_cut:])]
