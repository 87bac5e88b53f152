"""Canonical column names shared by every pipeline function.

A canonical interaction frame has one row per event and the columns:

- ``user_id``: opaque user id, ``category`` dtype with ``str`` categories;
- ``item_id``: opaque item id, same dtype;
- ``timestamp``: ``float64`` unix seconds (fractions keep millisecond input
  exact), or the row number when the source has no time (file order is time
  order);
- ``event`` (optional): event type, ``category`` dtype;
- ``rating`` (optional): ``float64`` rating or weight.

Functions also accept plain ``str``/``object`` id columns and any numeric
timestamp dtype (the synthetic generator returns ``int64`` seconds).
"""

from __future__ import annotations

USER = "user_id"
ITEM = "item_id"
TIMESTAMP = "timestamp"
EVENT = "event"
RATING = "rating"

REQUIRED = (USER, ITEM, TIMESTAMP)
OPTIONAL = (EVENT, RATING)
