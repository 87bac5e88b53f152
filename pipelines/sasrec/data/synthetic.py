"""A synthetic shop log with real sequential structure: the embedded default data.

The catalogue has categories; each category has devices and accessories,
every accessory belongs to one device, and some accessories are consumables.
Item popularity is Zipf-like. Users have two favourite categories and shop in
sessions (minutes apart inside a session, days between sessions). What the
user is after moves along a chain:

- after a device: one of its accessories, or the neighbouring device (a
  comparison), most of the time; after a comparison, often back to the
  accessories of the first device;
- after an accessory: a sibling accessory of the same device, or the device;
- otherwise back to a popular item of one of the user's favourite
  categories (interest that persists over sessions);
- sessions sometimes start by re-buying a consumable bought before.

Between those steps users click banner items (a few items promoted on every
page) that do not change what they are after, so the item *before* a banner
view predicts the item after it.

Which baseline captures what: popularity captures the Zipf head only; a
first-order Markov chain captures the chain when the last item is on it, but
after a banner view it predicts from the banner; SASRec's attention can look
past the banner to the item before it, to the first device of a comparison
and to the user's favourite categories. The demo's full-ranking NDCG@10 shows
the gap (docs/benchmarks.md, "Demo on the synthetic log").

Example:
    >>> log = generate_synthetic_log(num_users=50, num_items=200, seed=1)
    >>> list(log.columns)
    ['user_id', 'item_id', 'timestamp', 'event', 'category']
    >>> log["item_id"].iloc[0].startswith("sku-"), log["user_id"].iloc[0].startswith("user-")
    (True, True)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_START = 1_704_067_200  # 2024-01-01T00:00:00Z
_DAY = 86_400


def _pick(cdf: np.ndarray, u: float) -> int:
    """Index drawn from a normalised CDF with the uniform number ``u``."""
    return min(int(np.searchsorted(cdf, u, side="right")), cdf.size - 1)


def _weighted_cdf(weights: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(weights, dtype=np.float64)
    return cdf / cdf[-1]


class _Catalogue:
    """Items, categories, devices/accessories and each item's successors."""

    def __init__(self, num_items: int, num_categories: int, rng: np.random.Generator) -> None:
        self.num_items = num_items
        ranks = rng.permutation(num_items) + 1
        self.popularity = 1.0 / ranks**0.9
        shares = np.ones(num_categories) / num_categories
        sizes = 4 + rng.multinomial(num_items - 4 * num_categories, shares)
        self.category = np.repeat(np.arange(num_categories), sizes)
        rng.shuffle(self.category)
        self.members = [np.flatnonzero(self.category == c) for c in range(num_categories)]
        self.member_cdf = [_weighted_cdf(self.popularity[m]) for m in self.members]
        self.category_cdf = _weighted_cdf(
            np.array([self.popularity[m].sum() for m in self.members])
        )
        self.is_device = np.zeros(num_items, dtype=bool)
        self.parent = np.full(num_items, -1, dtype=np.int64)
        self.consumable = np.zeros(num_items, dtype=bool)
        self.devices: list[np.ndarray] = []
        self.device_cdf: list[np.ndarray] = []
        successors = np.zeros((num_items, 4), dtype=np.int64)
        for members in self.members:
            members = members[np.argsort(-self.popularity[members], kind="stable")]
            n_dev = max(1, len(members) // 5)
            devices = rng.permutation(members[: n_dev * 2])[:n_dev]
            accessories = np.setdiff1d(members, devices)
            self.is_device[devices] = True
            self.devices.append(devices)
            self.device_cdf.append(_weighted_cdf(self.popularity[devices]))
            owner = devices[rng.integers(0, n_dev, size=accessories.size)]
            self.parent[accessories] = owner
            self.consumable[accessories[rng.random(accessories.size) < 0.15]] = True
            for i, device in enumerate(devices):
                kids = accessories[owner == device]
                kids = kids[np.argsort(-self.popularity[kids], kind="stable")]
                neighbour = devices[(i + 1) % n_dev]
                picks = list(kids[:3]) + [neighbour]
                while len(picks) < 4:
                    picks.append(neighbour)
                successors[device] = picks[:4]
                ring = np.concatenate([kids, kids[:3]]) if kids.size else kids
                for j, kid in enumerate(kids):
                    siblings = [ring[j + 1], ring[j + 2]] if kids.size > 2 else [device, device]
                    successors[kid] = [siblings[0], device, siblings[1], neighbour]
        self.successors = successors
        # Items on the shop's banners (1 in 40): clicked from any page, whatever the
        # user is after.
        self.promoted = rng.choice(num_items, size=max(2, num_items // 40), replace=False)
        self.successor_cdf = _weighted_cdf(np.array([0.45, 0.25, 0.18, 0.12]))

    def popular_in(self, category: int, u: float) -> int:
        return int(self.members[category][_pick(self.member_cdf[category], u)])

    def device_in(self, category: int, u: float) -> int:
        return int(self.devices[category][_pick(self.device_cdf[category], u)])

    def random_category(self, u: float) -> int:
        return _pick(self.category_cdf, u)


def generate_synthetic_log(
    num_users: int = 4000,
    num_items: int = 1000,
    seed: int = 0,
    *,
    num_categories: int | None = None,
    mean_sessions: float = 4.0,
    mean_session_length: float = 4.5,
    days: int = 365,
    banner_views: float = 0.4,
) -> pd.DataFrame:
    """Generates a shop interaction log (deterministic for a seed).

    Args:
        num_users: Users (ids ``user-00000``...).
        num_items: Items (ids ``sku-000000``...); at least 8.
        seed: Random seed: the same arguments give the same log.
        num_categories: Product categories (default ``num_items // 50``, >= 2).
        mean_sessions: Mean sessions per user (at least one each).
        mean_session_length: Mean events per session (at least one each).
        days: Time span of the log, starting 2024-01-01 UTC.
        banner_views: Share of a session's steps, its last one excepted, that are
            views of a banner item (in ``[0, 1)``).

    Returns:
        Frame sorted by time with ``user_id``, ``item_id`` (``str``),
        ``timestamp`` (``int64`` unix seconds), ``event`` (``view``, ``cart``,
        ``purchase``) and ``category``. The defaults give about 75,000 events.
    """
    if num_users < 1 or num_items < 8:
        raise ValueError(
            f"need num_users >= 1 and num_items >= 8, received num_users={num_users}, "
            f"num_items={num_items}"
        )
    if mean_sessions < 1 or mean_session_length < 1 or days < 1:
        raise ValueError("mean_sessions, mean_session_length and days must be >= 1")
    if not 0.0 <= banner_views < 1.0:
        raise ValueError(f"banner_views must be in [0, 1), received {banner_views}")
    n_cat = num_categories or max(2, num_items // 50)
    n_cat = max(1, min(n_cat, num_items // 4))
    rng = np.random.default_rng(seed)
    cat = _Catalogue(num_items, n_cat, rng)

    users: list[int] = []
    items: list[int] = []
    times: list[int] = []
    events: list[int] = []  # 0 view, 1 cart, 2 purchase
    for user in range(num_users):
        favourites = [cat.random_category(u) for u in rng.random(2)]
        sessions = 1 + rng.poisson(mean_sessions - 1)
        t = _START + int(rng.random() * days * 0.7 * _DAY)
        bought: list[int] = []
        for _ in range(sessions):
            length = 1 + rng.poisson(mean_session_length - 1)
            start = rng.random(5)
            steps = rng.random((length, 7))
            if bought and start[0] < 0.25:
                current = bought[int(start[1] * len(bought))]  # re-buy a consumable
            else:
                in_favourite = start[1] < 0.85
                category = favourites[int(start[2] * 2)] if in_favourite else None
                if category is None:
                    category = cat.random_category(start[2])
                if start[3] < 0.6:
                    current = cat.device_in(category, start[4])
                else:
                    current = cat.popular_in(category, start[4])
            anchor = -1  # the device a comparison started from
            for step, (a, b, c, d, e, f, g) in enumerate(steps):
                item = current
                if step:
                    if a < banner_views and step < length - 1:
                        # A banner click that does not change what the user is after:
                        # the item before it, not the banner, predicts the item after it.
                        item = int(cat.promoted[int(b * cat.promoted.size)])
                    else:
                        a = (a - banner_views) / (1.0 - banner_views)
                        if anchor >= 0 and cat.is_device[current] and f < 0.6:
                            # Back from the comparison to the first device's accessories.
                            pick = _pick(cat.successor_cdf[:3] / cat.successor_cdf[2], e)
                            current, anchor = int(cat.successors[anchor, pick]), -1
                        elif a < 0.78:
                            nxt = int(cat.successors[current, _pick(cat.successor_cdf, b)])
                            compared = cat.is_device[current] and cat.is_device[nxt]
                            anchor = current if compared else -1
                            current = nxt
                        else:
                            # Interest that persists: back to a favourite category.
                            current = cat.popular_in(favourites[int(g * 2)], b)
                            anchor = -1
                        item = current
                    t += 20 + int(-60.0 * np.log1p(-d))
                last = step == length - 1
                kind = 2 if last and c < 0.5 else (1 if c > 0.85 else 0)
                users.append(user)
                items.append(item)
                times.append(t)
                events.append(kind)
                if kind == 2 and cat.consumable[item]:
                    bought.append(item)
            t += int(rng.exponential(10.0) * _DAY) + 3600

    order = np.argsort(np.asarray(times, dtype=np.int64), kind="stable")
    user_arr = np.asarray(users, dtype=np.int64)[order]
    item_arr = np.asarray(items, dtype=np.int64)[order]
    uid_width = max(5, len(str(num_users - 1)))
    iid_width = max(6, len(str(num_items - 1)))
    user_names = np.array([f"user-{i:0{uid_width}d}" for i in range(num_users)], dtype=object)
    item_names = np.array([f"sku-{i:0{iid_width}d}" for i in range(num_items)], dtype=object)
    cat_names = np.array([f"cat-{c:02d}" for c in range(n_cat)], dtype=object)
    event_names = np.array(["view", "cart", "purchase"], dtype=object)
    return pd.DataFrame(
        {
            "user_id": pd.array(user_names[user_arr], dtype="str"),
            "item_id": pd.array(item_names[item_arr], dtype="str"),
            "timestamp": np.asarray(times, dtype=np.int64)[order],
            "event": pd.array(event_names[np.asarray(events)[order]], dtype="str"),
            "category": pd.array(cat_names[cat.category[item_arr]], dtype="str"),
        }
    )
