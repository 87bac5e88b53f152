"""Named reader settings for well-known interaction files.

- ``ml-100k``: ``u.data``, tab separated ``user item rating unix_seconds``,
  no header (a folder path reads its ``u.data``).
- ``ml-1m``: ``ratings.dat``, ``user::item::rating::unix_seconds``, no header.
- ``sasrec``: the SASRec paper's files (e.g. ``Video.txt``): ``user item``
  separated by one space, no timestamps, so line order is time order. They
  are the paper's data as filtered for it, so the preset applies no k-core of
  its own (:data:`PRESET_K_CORE`): on ``Video.txt`` every one of the paper's
  30,901 evaluable users stays (another 5-core left 24,303).
- ``amazon``: review JSON lines with ``reviewerID``, ``asin``,
  ``unixReviewTime`` (seconds) and ``overall`` (the rating).
- ``recbole``: ``*.inter`` atomic files, tab separated with a typed header
  (``user_id:token item_id:token rating:float timestamp:float``); rating and
  timestamp are used when present.

Example:
    >>> get_preset("ml-1m").sep
    '::'
"""

from __future__ import annotations

from sasrec.data.reader_options import ReaderOptions

PRESETS: dict[str, ReaderOptions] = {
    "ml-100k": ReaderOptions(
        format="csv",
        sep="\t",
        header=False,
        user=0,
        item=1,
        rating=2,
        timestamp=3,
        timestamp_unit="s",
        default_file="u.data",
    ),
    "ml-1m": ReaderOptions(
        format="csv",
        sep="::",
        header=False,
        user=0,
        item=1,
        rating=2,
        timestamp=3,
        timestamp_unit="s",
        default_file="ratings.dat",
    ),
    "sasrec": ReaderOptions(format="csv", sep=" ", header=False, user=0, item=1, timestamp=None),
    "amazon": ReaderOptions(
        format="json",
        user="reviewerID",
        item="asin",
        timestamp="unixReviewTime",
        rating="overall",
        timestamp_unit="s",
    ),
    "recbole": ReaderOptions(
        format="csv",
        sep="\t",
        header=True,
        user="user_id",
        item="item_id",
        rating="rating",
        timestamp="timestamp",
        timestamp_unit="auto",
        optional_columns=True,
        strip_type_suffix=True,
    ),
}


# k-core (min events per user, per item) of a run that does not set one.
DEFAULT_K_CORE = (5, 5)
# Presets whose files are already filtered as their source published them:
# another k-core would change the data set the published figures are on.
PRESET_K_CORE: dict[str, tuple[int, int]] = {"sasrec": (1, 1)}


def preset_k_core(name: str | None) -> tuple[int, int]:
    """``(min_user, min_item)`` a run with preset ``name`` uses unless it sets them.

    Example:
        >>> preset_k_core("sasrec"), preset_k_core("ml-100k"), preset_k_core(None)
        ((1, 1), (5, 5), (5, 5))
    """
    return PRESET_K_CORE.get(name or "", DEFAULT_K_CORE)


def preset_names() -> list[str]:
    """Names accepted by :func:`get_preset`."""
    return sorted(PRESETS)


def get_preset(name: str) -> ReaderOptions:
    """Reader options of a named preset.

    Raises:
        ValueError: For an unknown name (the message lists the valid ones).
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown preset {name!r}; valid presets: {', '.join(preset_names())}"
        ) from None
