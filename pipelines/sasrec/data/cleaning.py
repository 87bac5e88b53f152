"""Cleaning: small pure functions over canonical frames, and ``prepare`` that chains them.

Entry point for the orchestrator::

    clean, report = prepare(df, min_user=5, min_item=5, report=report)

``prepare(df, *, min_user=1, min_item=1, min_rating=None, event_types=None,
dedup=True, collapse_repeats=False, report=None) -> (DataFrame, DataReport)``
runs, in this order, each step counted in the report:

1. ``missing_ids``: drop rows without a user or item id;
2. ``min_rating``: keep ratings >= ``min_rating`` (optional);
3. ``event_types``: keep the listed event types (optional);
4. sort every user's events by time with a STABLE sort (ties keep file order);
5. ``duplicates``: drop exact duplicate events (same user, item, timestamp and,
   when present, event and rating), keeping the first. Without timestamps the
   row number is the time, so no two events are duplicates;
6. ``consecutive_repeats``: collapse a user's consecutive events on the same
   item into the first one (optional);
7. ``k_core``: iteratively drop users with fewer than ``min_user`` events and
   items with fewer than ``min_item`` events until both hold.

The result is sorted by user (order of first appearance in the input) then
time, with a fresh ``RangeIndex`` and no unused categories. An empty result
raises :class:`DataError`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from sasrec.data.columns import EVENT, ITEM, RATING, REQUIRED, TIMESTAMP, USER
from sasrec.data.data_report import DataReport
from sasrec.data.errors import DataError
from sasrec.data.id_columns import categorical_from_codes
from sasrec.data.ordering import id_codes, user_time_order


def canonicalize(df: pd.DataFrame) -> pd.DataFrame:
    """Checks the canonical columns and converts ids to ``category`` of ``str``.

    Accepts frames built by hand or by :func:`generate_synthetic_log`: ids of
    any type become strings (categories in order of first appearance, like the
    readers make them), timestamps must already be numeric.

    Raises:
        DataError: A required column is missing (the message lists the columns
            present) or the timestamp column is not numeric.
    """
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise DataError(
            f"missing column(s) {missing}; the frame has columns {list(map(str, df.columns))}",
            column=missing[0],
        )
    if not pd.api.types.is_numeric_dtype(df[TIMESTAMP]) or pd.api.types.is_bool_dtype(
        df[TIMESTAMP]
    ):
        raise DataError(
            f"timestamp must be numeric (unix seconds), received dtype {df[TIMESTAMP].dtype}; "
            "read files with load_interactions to parse dates",
            column=TIMESTAMP,
        )
    out = {}
    for name in (USER, ITEM, EVENT):
        if name in df.columns:
            out[name] = _as_str_category(df[name])
    if RATING in df.columns:
        out[RATING] = pd.to_numeric(df[RATING], errors="coerce").astype(np.float64)
    return df.assign(**out) if out else df


def _as_str_category(series: pd.Series) -> pd.Series:
    if isinstance(series.dtype, pd.CategoricalDtype):
        categories = series.cat.categories
        if (
            categories.dtype == "str"
            or categories.dtype == object
            and all(isinstance(c, str) for c in categories)
        ):
            return series
        return series.cat.rename_categories(categories.astype(str))
    values = series.astype("str").where(series.notna())
    # Categories in order of first appearance, like the readers produce.
    categories = pd.Index(values.dropna().unique(), dtype="str")
    return pd.Series(pd.Categorical(values, categories=categories), index=series.index)


def _take(df: pd.DataFrame, mask_or_index: np.ndarray) -> pd.DataFrame:
    return df.iloc[mask_or_index].reset_index(drop=True)


def drop_missing_ids(df: pd.DataFrame) -> pd.DataFrame:
    """Drops rows whose user or item id is missing or empty."""
    keep = np.ones(len(df), dtype=bool)
    for name in (USER, ITEM):
        codes, values = id_codes(df[name])
        empty = np.asarray(values == "", dtype=bool)
        keep &= codes >= 0
        if empty.any():
            keep &= ~empty[np.maximum(codes, 0)]
    return df if keep.all() else _take(df, keep)


def filter_min_rating(df: pd.DataFrame, min_rating: float) -> pd.DataFrame:
    """Keeps events whose rating is at least ``min_rating`` (missing ratings are dropped)."""
    if RATING not in df.columns:
        raise DataError(
            f"min_rating={min_rating} needs a rating column; the frame has columns "
            f"{list(map(str, df.columns))}",
            column=RATING,
        )
    keep = (df[RATING] >= min_rating).to_numpy(dtype=bool, na_value=False)
    return df if keep.all() else _take(df, keep)


def filter_event_types(df: pd.DataFrame, event_types: Iterable[str]) -> pd.DataFrame:
    """Keeps events whose ``event`` is one of ``event_types``."""
    if EVENT not in df.columns:
        raise DataError(
            f"event_types needs an event column; the frame has columns "
            f"{list(map(str, df.columns))}",
            column=EVENT,
        )
    wanted = {str(e) for e in event_types}
    keep = df[EVENT].astype("str").isin(wanted).to_numpy(dtype=bool, na_value=False)
    return df if keep.all() else _take(df, keep)


def sort_events(df: pd.DataFrame) -> pd.DataFrame:
    """Sorts by user, then time, STABLY: events at the same time keep their order.

    Users come in order of their codes (first appearance for frames from the
    readers). Returns ``df`` itself when it is already in that order.
    """
    users, _ = id_codes(df[USER])
    order = user_time_order(users, df[TIMESTAMP].to_numpy())
    return df if order is None else _take(df, order)


def drop_duplicate_events(df: pd.DataFrame) -> pd.DataFrame:
    """Drops exact duplicate events, keeping the first of each group.

    Duplicates share user, item and timestamp (and event and rating when those
    columns exist). Output order: sorted like :func:`sort_events`.
    """
    return _drop_duplicates_sorted(sort_events(df))


def _drop_duplicates_sorted(df: pd.DataFrame) -> pd.DataFrame:
    n = len(df)
    if n < 2:
        return df
    users, _ = id_codes(df[USER])
    ts = df[TIMESTAMP].to_numpy()
    # After the stable sort, duplicates sit inside runs of equal (user, time):
    # only those rows need the (slower) full-row comparison.
    tie = (users[1:] == users[:-1]) & (ts[1:] == ts[:-1])
    if not tie.any():
        return df
    in_run = np.zeros(n, dtype=bool)
    in_run[1:] |= tie
    in_run[:-1] |= tie
    candidates = np.flatnonzero(in_run)
    keys = {USER: users[candidates], TIMESTAMP: ts[candidates]}
    for name in (ITEM, EVENT):
        if name in df.columns:
            keys[name] = id_codes(df[name])[0][candidates]
    if RATING in df.columns:
        keys[RATING] = df[RATING].to_numpy()[candidates]
    duplicated = pd.DataFrame(keys).duplicated(keep="first").to_numpy()
    if not duplicated.any():
        return df
    keep = np.ones(n, dtype=bool)
    keep[candidates[duplicated]] = False
    return _take(df, keep)


def collapse_consecutive_repeats(df: pd.DataFrame) -> pd.DataFrame:
    """Keeps only the first of a user's consecutive events on the same item.

    ``a a b a`` becomes ``a b a``. Output order: sorted like :func:`sort_events`.
    """
    return _collapse_sorted(sort_events(df))


def _collapse_sorted(df: pd.DataFrame) -> pd.DataFrame:
    if len(df) < 2:
        return df
    users, _ = id_codes(df[USER])
    items, _ = id_codes(df[ITEM])
    repeat = np.zeros(len(df), dtype=bool)
    repeat[1:] = (users[1:] == users[:-1]) & (items[1:] == items[:-1])
    return df if not repeat.any() else _take(df, ~repeat)


def k_core_mask(
    users: np.ndarray, items: np.ndarray, min_user: int, min_item: int
) -> tuple[np.ndarray, int]:
    """Which events survive the iterative k-core filter, and how many passes it took.

    Args:
        users: Non-negative user codes, one per event.
        items: Non-negative item codes, one per event.
        min_user: Minimum events per remaining user.
        min_item: Minimum events per remaining item.

    Returns:
        ``(keep bool mask, passes)``; a pass drops every user and item below
        its threshold, and passes repeat until one drops nothing.

    Example:
        >>> keep, passes = k_core_mask(np.array([0, 0, 1]), np.array([0, 1, 0]), 2, 1)
        >>> keep.tolist(), passes
        ([True, True, False], 2)
    """
    # int32 rows below 2**31 events: each pass compresses half the bytes.
    index = np.arange(len(users), dtype=np.int32 if len(users) < 2**31 else np.int64)
    u, i = np.asarray(users), np.asarray(items)
    passes = 0
    while True:
        passes += 1
        # Gathering from one-byte tables keeps the per-event lookups in cache.
        user_ok = np.bincount(u) >= min_user
        item_ok = np.bincount(i) >= min_item
        ok = user_ok[u] & item_ok[i]
        if ok.all():
            break
        index, u, i = index[ok], u[ok], i[ok]
        if index.size == 0:
            break
    keep = np.zeros(len(users), dtype=bool)
    keep[index] = True
    return keep, passes


def k_core(df: pd.DataFrame, min_user: int, min_item: int) -> pd.DataFrame:
    """Iterative k-core: every remaining user and item has enough events. Keeps row order."""
    return _k_core(df, min_user, min_item)[0]


def _k_core(df: pd.DataFrame, min_user: int, min_item: int) -> tuple[pd.DataFrame, int]:
    if min_user <= 1 and min_item <= 1 or len(df) == 0:
        return df, 0
    users, _ = id_codes(df[USER])
    items, _ = id_codes(df[ITEM])
    keep, passes = k_core_mask(users, items, min_user, min_item)
    return (df if keep.all() else _take(df, keep)), passes


def remove_unused_categories(df: pd.DataFrame) -> pd.DataFrame:
    """Drops categories that no row uses any more (after filtering); keeps their order."""
    out = {}
    for name in (USER, ITEM, EVENT):
        if name in df.columns and isinstance(df[name].dtype, pd.CategoricalDtype):
            codes = df[name].cat.codes.to_numpy()
            categories = df[name].cat.categories
            used = np.bincount(codes[codes >= 0], minlength=len(categories)) > 0
            if used.all():
                continue
            # O(n) remap instead of pandas' sort-based version.
            remap = np.full(len(categories) + 1, -1, dtype=codes.dtype)
            remap[:-1][used] = np.arange(int(used.sum()), dtype=codes.dtype)
            out[name] = categorical_from_codes(remap[codes], categories[used])
    return df.assign(**out) if out else df


def prepare(
    df: pd.DataFrame,
    *,
    min_user: int = 1,
    min_item: int = 1,
    min_rating: float | None = None,
    event_types: Iterable[str] | None = None,
    dedup: bool = True,
    collapse_repeats: bool = False,
    report: DataReport | None = None,
) -> tuple[pd.DataFrame, DataReport]:
    """Cleans a canonical frame; see the module docstring for the steps.

    Args:
        df: Canonical frame (from :func:`load_interactions` or built by hand).
        min_user: k-core threshold for users (1 = no user filter).
        min_item: k-core threshold for items (1 = no item filter).
        min_rating: Keep events with ``rating >= min_rating``.
        event_types: Keep only these event types.
        dedup: Drop exact duplicate events.
        collapse_repeats: Collapse consecutive repeats of an item per user.
        report: The reader's report, copied and extended (``None``: new one).

    Returns:
        ``(clean_df, report)`` with one report step per cleaning step and the
        final statistics.

    Raises:
        DataError: Missing columns, or no events left (the message says which
            step removed the last ones).
    """
    if min_user < 1 or min_item < 1:
        raise ValueError(
            f"min_user and min_item must be >= 1, received min_user={min_user}, min_item={min_item}"
        )
    report = report.copy() if report is not None else DataReport()
    df = canonicalize(df)

    def step(name: str, frame: pd.DataFrame, before: int, **details: object) -> pd.DataFrame:
        report.add_step(name, before, len(frame), **details)
        if len(frame) == 0:
            where = f" (source {report.source.get('path')})" if report.source.get("path") else ""
            raise DataError(
                f"no events left after the {name!r} step{where}: it removed all {before:,} "
                f"remaining events"
            )
        return frame

    if len(df) == 0:
        read = report.read
        detail = (
            f": {read.get('rows', 0):,} rows read, {read.get('missing_ids', 0):,} without ids, "
            f"{read.get('bad_timestamps', 0):,} with unparseable or out-of-range timestamps"
            if read
            else ""
        )
        raise DataError(
            "the interaction log has no events" + detail, path=report.source.get("path")
        )
    df = step("missing_ids", drop_missing_ids(df), len(df))
    if min_rating is not None:
        df = step("min_rating", filter_min_rating(df, min_rating), len(df), min_rating=min_rating)
    if event_types is not None:
        types = sorted({str(e) for e in event_types})
        df = step("event_types", filter_event_types(df, types), len(df), event_types=types)
    df = sort_events(df)
    if dedup:
        df = step("duplicates", _drop_duplicates_sorted(df), len(df))
    if collapse_repeats:
        df = step("consecutive_repeats", _collapse_sorted(df), len(df))
    before = len(df)
    cored, passes = _k_core(df, min_user, min_item)
    df = step("k_core", cored, before, min_user=min_user, min_item=min_item, passes=passes)
    df = remove_unused_categories(df)
    if not isinstance(df.index, pd.RangeIndex) or df.index.start != 0:
        df = df.reset_index(drop=True)
    report.set_stats(df)
    return df, report
