"""Named reader settings for well-known interaction files.

- ``ml-100k``: ``u.data``, tab separated ``user item rating unix_seconds``,
  no header (a folder path reads its ``u.data``).
- ``ml-1m``: ``ratings.dat``, ``user::item::rating::unix_seconds``, no header.
- ``sasrec``: the SASRec paper's files (e.g. ``Video.txt``): ``user item``
  separated by one space, no timestamps, so line order is time order.
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
