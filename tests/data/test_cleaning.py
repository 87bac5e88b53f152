"""Cleaning steps on tiny hand-made logs with hand-computed results."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sasrec.data.cleaning import (
    canonicalize,
    collapse_consecutive_repeats,
    drop_duplicate_events,
    drop_missing_ids,
    filter_event_types,
    filter_min_rating,
    k_core,
    k_core_mask,
    prepare,
    sort_events,
)
from sasrec.data.data_report import DataReport
from sasrec.data.errors import DataError
from sasrec.data.ordering import time_ticks, user_time_order


def frame(rows: list[tuple], **extra: list) -> pd.DataFrame:
    users, items, times = zip(*rows) if rows else ([], [], [])
    return canonicalize(
        pd.DataFrame({"user_id": users, "item_id": items, "timestamp": times, **extra})
    )


def triples(df: pd.DataFrame) -> list[tuple]:
    return list(zip(df["user_id"], df["item_id"], df["timestamp"]))


def test_sort_is_stable_ties_keep_file_order():
    df = frame([("b", "x", 5), ("a", "p", 9), ("b", "y", 5), ("a", "q", 1), ("b", "z", 4)])
    out = sort_events(df)
    # Users in order of first appearance (b, a); equal times keep file order (x before y).
    assert triples(out) == [
        ("b", "z", 4), ("b", "x", 5), ("b", "y", 5), ("a", "q", 1), ("a", "p", 9),
    ]  # fmt: skip
    assert sort_events(out) is out  # already sorted: no copy


@pytest.mark.parametrize(
    "kind",
    ["int", "float_seconds", "float_ms", "float_fraction", "time_sorted", "wide_span", "huge_span"],
)
def test_user_time_order_equals_lexsort(kind):
    rng = np.random.default_rng(3)
    users = rng.integers(0, 50, 5000)
    ts = {
        "int": rng.integers(0, 40, 5000),
        "float_seconds": rng.integers(0, 40, 5000).astype(float),
        "float_ms": rng.integers(1_700_000_000_000, 1_700_000_000_040, 5000) / 1000.0,
        "float_fraction": rng.random(5000).round(9) * 3,
        "time_sorted": np.sort(rng.integers(0, 40, 5000)),
        "wide_span": rng.choice([0, 2**50], 5000),  # too wide to pack rows: stable argsort
        "huge_span": rng.choice([0, 2**61], 5000),  # too wide for one key: lexsort
    }[kind]
    order = user_time_order(users, ts)
    assert np.array_equal(order, np.lexsort((ts, users)))


def test_time_ticks_are_exact_or_refused():
    assert time_ticks(np.array([1.0, 2.0])).tolist() == [1, 2]
    assert time_ticks(np.array([1.5, 2.25])).tolist() == [1500, 2250]
    assert time_ticks(np.array([0.1234567])) is None


def test_drop_duplicates_keeps_first_and_needs_all_fields_equal():
    df = frame(
        [("u", "a", 1), ("u", "a", 1), ("u", "b", 1), ("u", "a", 2), ("v", "a", 1), ("u", "a", 1)]
    )
    assert triples(drop_duplicate_events(df)) == [
        ("u", "a", 1), ("u", "b", 1), ("u", "a", 2), ("v", "a", 1),
    ]  # fmt: skip


def test_drop_duplicates_compares_event_and_rating_too():
    df = frame([("u", "a", 1)] * 3, event=["view", "buy", "view"], rating=[1.0, 1.0, 2.0])
    out = drop_duplicate_events(df)
    assert out["event"].tolist() == ["view", "buy", "view"]
    df = frame([("u", "a", 1)] * 3, event=["view", "view", "view"], rating=[1.0, 1.0, 2.0])
    assert drop_duplicate_events(df)["rating"].tolist() == [1.0, 2.0]


def test_collapse_consecutive_repeats():
    df = frame([("u", "a", 1), ("u", "a", 2), ("u", "b", 3), ("u", "a", 4), ("v", "a", 5)])
    assert triples(collapse_consecutive_repeats(df)) == [
        ("u", "a", 1), ("u", "b", 3), ("u", "a", 4), ("v", "a", 5),
    ]  # fmt: skip


def test_k_core_cascades_until_stable():
    # min 2 per user and item. Pass 1 drops user w (1 event) and item z (1 event);
    # v is left with 1 event -> pass 2 drops it; item y is left with u's event only
    # -> pass 3 drops it; pass 4 finds u: x x and t: x x stable.
    rows = [
        ("u", "x", 1), ("u", "x", 2), ("u", "y", 3),
        ("v", "y", 4), ("v", "z", 5),
        ("w", "x", 6),
        ("t", "x", 7), ("t", "x", 8),
    ]  # fmt: skip
    df = frame(rows)
    out = k_core(df, 2, 2)
    assert triples(out) == [("u", "x", 1), ("u", "x", 2), ("t", "x", 7), ("t", "x", 8)]
    users = df["user_id"].cat.codes.to_numpy()
    items = df["item_id"].cat.codes.to_numpy()
    keep, passes = k_core_mask(users, items, 2, 2)
    assert keep.tolist() == [True, True, False, False, False, False, True, True]
    assert passes == 4


def test_k_core_result_satisfies_both_thresholds_on_random_data():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 300, 4000)
    items = (rng.zipf(1.5, 4000) - 1) % 500
    keep, _ = k_core_mask(users, items, 5, 3)
    assert keep.any()
    assert np.bincount(users[keep])[np.unique(users[keep])].min() >= 5
    assert np.bincount(items[keep])[np.unique(items[keep])].min() >= 3
    # Maximality: every dropped event involves a user or item that cannot be kept.
    keep_again, _ = k_core_mask(users[keep], items[keep], 5, 3)
    assert keep_again.all()


def test_filters_on_rating_and_event_type():
    df = frame([("u", "a", 1), ("u", "b", 2), ("u", "c", 3)], rating=[5, 2, None])
    assert filter_min_rating(df, 3)["item_id"].tolist() == ["a"]
    df = frame([("u", "a", 1), ("u", "b", 2)], event=["view", "buy"])
    assert filter_event_types(df, ["buy"])["item_id"].tolist() == ["b"]
    with pytest.raises(DataError, match="needs a rating column"):
        filter_min_rating(frame([("u", "a", 1)]), 3)


def test_drop_missing_ids():
    df = frame([("u", "a", 1), (None, "b", 2), ("u", "", 3), ("v", "c", 4)])
    assert triples(drop_missing_ids(df)) == [("u", "a", 1), ("v", "c", 4)]


def test_prepare_hand_example():
    rows = [
        ("u", "a", 3), ("u", "a", 3), ("u", "b", 1), ("u", "b", 2), ("u", "c", 4),
        ("v", "a", 1), ("v", "c", 2), ("v", "b", 3),
        ("w", "c", 9),
        (None, "a", 1),
    ]  # fmt: skip
    df = frame(rows, rating=[5, 5, 5, 5, 1, 5, 5, 5, 5, 5])
    clean, report = prepare(df, min_user=2, min_item=2, min_rating=2, collapse_repeats=True)
    # missing id -1; rating 1 (u,c,4) -1; duplicate (u,a,3) -1; u sorted b1 b2 a3 -> collapse -1;
    # k-core(2,2): w (1 event) goes, then c has only v's -> goes; v keeps a, b; u keeps b, a.
    assert [(s["name"], s["removed"]) for s in report.steps] == [
        ("missing_ids", 1),
        ("min_rating", 1),
        ("duplicates", 1),
        ("consecutive_repeats", 1),
        ("k_core", 2),
    ]
    assert triples(clean) == [("u", "b", 1), ("u", "a", 3), ("v", "a", 1), ("v", "b", 3)]
    assert report.stats["users"] == 2 and report.stats["items"] == 2
    assert report.stats["events"] == 4 and report.stats["density"] == 1.0
    assert list(clean["item_id"].cat.categories) == ["a", "b"]  # unused "c" removed
    assert report.steps[-1]["passes"] == 3


def test_prepare_raises_when_nothing_is_left():
    df = frame([("u", "a", 1), ("v", "b", 2)])
    with pytest.raises(DataError, match="no events left after the 'k_core' step"):
        prepare(df, min_user=2)


def test_prepare_leaves_the_input_report_untouched():
    report = DataReport(source={"path": "x"})
    _, new = prepare(frame([("u", "a", 1)]), report=report)
    assert report.steps == [] and len(new.steps) == 3


def test_canonicalize_errors_list_the_columns():
    expected = r"missing column\(s\) \['timestamp'\].*'user_id', 'item_id'"
    with pytest.raises(DataError, match=expected):
        canonicalize(pd.DataFrame({"user_id": ["u"], "item_id": ["a"]}))
    with pytest.raises(DataError, match="timestamp must be numeric"):
        canonicalize(pd.DataFrame({"user_id": ["u"], "item_id": ["a"], "timestamp": ["x"]}))


def test_report_text_json_and_atomic_save(tmp_path):
    df = frame([("u", "a", 1), ("u", "b", 2), ("v", "a", 3)])
    _, report = prepare(df)
    text = report.to_text()
    assert "2 users, 2 items, 3 events" in text and "step duplicates: removed 0" in text
    path = tmp_path / "stats" / "data_stats.json"
    report.save(path)
    data = json.loads(path.read_text())
    assert data["stats"]["sequence_length"]["max"] == 2.0
    assert DataReport.from_dict(data).to_dict() == report.to_dict()
    assert [p.name for p in path.parent.iterdir()] == ["data_stats.json"]  # no temp file left


def test_log_whose_rows_were_all_dropped_by_the_reader(tmp_path):
    from sasrec.data.readers import load_interactions

    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\nu1,i1,never\n,i2,5\n")
    df, report = load_interactions(path)
    with pytest.raises(DataError, match="no events: 2 rows read, 1 without ids, 1 with unparse"):
        prepare(df, report=report)
