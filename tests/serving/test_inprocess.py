"""The serving code path without gRPC: Predictor, Recommender, MicroBatcher, watcher, codegen.

Expected answers are computed independently from the raw model
(``SASRec.score_last`` + numpy exclusions) or by hand (popularity order).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from sasrec.artifact import list_versions, save_model_dir
from sasrec.engines import length_groups
from sasrec.engines.length_groups import split_by_length
from sasrec.models import SASRec
from sasrec.padding import pad_left
from sasrec.serving.domain import Limits, RecommendationRequest
from sasrec.serving.errors import DeadlineExceededError, InvalidRequestError
from sasrec.serving.micro_batcher import MicroBatcher
from sasrec.serving.predictor import Predictor, batch_buckets
from sasrec.serving.recommender import Recommender
from sasrec.vocabulary import ItemVocabulary

NUM_ITEMS = 40
MAX_LEN = 6
ITEMS = [f"sku-{i:02d}" for i in range(1, NUM_ITEMS + 1)]
POPULARITY = {"sku-05": 10, "sku-07": 20, "sku-09": 10}


def save_version(path: Path, seed: int, popularity: dict | None = None) -> SASRec:
    """A tiny untrained SASRec with fixed seeds, saved as a model directory."""
    keras.utils.set_random_seed(seed)
    model = SASRec(
        num_items=NUM_ITEMS, max_len=MAX_LEN, hidden_dim=16, num_blocks=1, num_heads=2, dropout=0.0
    )
    extra = {"metrics.json": {"full": {"ndcg@10": 0.25, "hr@10": 0.5}, "note": "text"}}
    if popularity is not None:
        extra["popularity.json"] = popularity
    save_model_dir(path, model, ItemVocabulary(ITEMS), extra_json=extra)
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("serving-inprocess")
    model = save_version(root / "versions" / "1", seed=1, popularity=POPULARITY)
    plain = root / "plain"
    save_version(plain, seed=1)
    return {"root": root / "versions", "model": model, "plain": plain}


@pytest.fixture(scope="module")
def rec(models: dict) -> Recommender:
    return Recommender.load(models["root"], max_batch_size=8)


def encode(history: list[str]) -> list[int]:
    return [ITEMS.index(h) + 1 for h in history if h in ITEMS]


def raw_top_k(model: SASRec, history: list[str], k: int, exclude: set[int]) -> tuple[list, list]:
    """Top-k straight from ``score_last``, exclusions applied in numpy."""
    ids = pad_left([encode(history)], MAX_LEN)
    scores = np.asarray(model.score_last(ids))[0].copy()
    scores[0] = -np.inf
    for i in exclude:
        scores[i] = -np.inf
    order = [int(i) for i in np.argsort(-scores, kind="stable") if np.isfinite(scores[i])][:k]
    return [ITEMS[i - 1] for i in order], [float(scores[i]) for i in order]


HISTORIES = [
    ["sku-01", "sku-02", "sku-03"],
    ["sku-10"],
    ["sku-04", "sku-04", "sku-30", "sku-31", "sku-32", "sku-33", "sku-40"],
    ["sku-22", "sku-13"],
]


@pytest.mark.parametrize("history", HISTORIES)
def test_recommend_equals_raw_model_top_k(rec: Recommender, models: dict, history: list) -> None:
    out = rec.recommend(history, k=7)
    window = encode(history)[-MAX_LEN:]
    want_ids, want_scores = raw_top_k(models["model"], history, 7, set(encode(history)))
    assert out.item_ids == want_ids
    np.testing.assert_allclose([i.score for i in out.items], want_scores, rtol=1e-5, atol=1e-6)
    assert out.model_version == "1" and not out.fallback and out.unknown_items == ()
    assert not set(out.item_ids) & set(history)
    assert len(window) <= MAX_LEN


def test_unknown_items_are_reported_and_ignored(rec: Recommender) -> None:
    out = rec.recommend(["sku-01", "nope", "sku-02", "nope", "??"], k=5)
    assert out.unknown_items == ("nope", "??")
    assert out.item_ids == rec.recommend(["sku-01", "sku-02"], k=5).item_ids
    assert not out.fallback


def test_popularity_fallback_when_no_history_item_is_known(rec: Recommender) -> None:
    out = rec.recommend(["unknown-a", "unknown-b"], k=5)
    assert out.fallback and out.unknown_items == ("unknown-a", "unknown-b")
    # Counts 20, 10, 10, then the rest by index order (ties by index).
    assert out.item_ids == ["sku-07", "sku-05", "sku-09", "sku-01", "sku-02"]
    assert [i.score for i in out.items] == [20.0, 10.0, 10.0, 0.0, 0.0]
    empty = rec.recommend([], k=3, excluded_items=["sku-07", "sku-01"])
    assert empty.fallback and empty.item_ids == ["sku-05", "sku-09", "sku-02"]
    allowed = rec.recommend([], k=3, allowed_items=["sku-30", "sku-09", "sku-07", "zzz"])
    assert allowed.item_ids == ["sku-07", "sku-09", "sku-30"]


def test_fallback_without_popularity_file_is_index_order(models: dict) -> None:
    plain = Recommender.load(models["plain"], max_batch_size=2)
    out = plain.recommend(["nobody-knows"], k=4)
    assert out.fallback
    assert out.item_ids == ["sku-01", "sku-02", "sku-03", "sku-04"]
    assert all(i.score == 0.0 for i in out.items)


def test_allow_and_deny_lists(rec: Recommender, models: dict) -> None:
    history = ["sku-01", "sku-02"]
    allow = ["sku-01", "sku-03", "sku-04", "sku-05", "sku-09", "not-an-item"]
    out = rec.recommend(history, k=10, allowed_items=allow, excluded_items=["sku-04"])
    # Allowed minus history (sku-01) minus denied (sku-04): ranked by the raw model.
    banned = set(range(1, NUM_ITEMS + 1)) - set(encode(["sku-03", "sku-05", "sku-09"]))
    want_ids, _ = raw_top_k(models["model"], history, 10, banned)
    assert out.item_ids == want_ids and len(want_ids) == 3
    nothing = rec.recommend(history, k=5, allowed_items=["unknown-1", "unknown-2"])
    assert nothing.items == () and not nothing.fallback
    denied = rec.recommend(history, k=5, excluded_items=ITEMS[2:])
    assert denied.items == ()  # everything else is in the history or denied


def test_include_history_allows_history_items(rec: Recommender, models: dict) -> None:
    history = ["sku-01", "sku-02", "sku-03"]
    out = rec.recommend(history, k=NUM_ITEMS, include_history=True)
    want_ids, _ = raw_top_k(models["model"], history, NUM_ITEMS, set())
    assert out.item_ids == want_ids
    assert set(history) <= set(out.item_ids)


def test_long_history_uses_most_recent_items(rec: Recommender) -> None:
    history = ITEMS[:20]
    recent = history[-MAX_LEN:]
    assert (
        rec.recommend(history, k=8, include_history=True).item_ids
        == rec.recommend(recent, k=8, include_history=True).item_ids
    )
    # Excluding the history covers the items older than the model's window too.
    out = rec.recommend(history, k=20)
    assert len(out.items) == 20 and not set(out.item_ids) & set(history)


def test_explain_returns_attended_history_items(rec: Recommender, models: dict) -> None:
    history = ["sku-03", "sku-08", "sku-03", "sku-11"]
    out = rec.recommend(history, k=3, explain=True)
    weights = np.asarray(models["model"].attention_weights(pad_left([encode(history)], MAX_LEN)))[0]
    expected: dict[str, float] = {}
    for item, w in zip(history, weights[-len(history) :]):
        expected[item] = expected.get(item, 0.0) + float(w)
    got = {e.item_id: e.weight for e in out.explanation}
    assert set(got) == set(history)
    for item, w in expected.items():
        assert got[item] == pytest.approx(w, rel=1e-5)
    assert [e.weight for e in out.explanation] == sorted(got.values(), reverse=True)
    assert sum(got.values()) == pytest.approx(1.0, rel=1e-5)
    assert rec.recommend(history, k=3).explanation == ()


def hand_set_predictor() -> Predictor:
    """A tiny model whose item table is set by hand (6 items "a".."f", d = 4).

    With history (a, b, a): c is aligned with a only, d with b only, e with
    neither (negative dot products: falls back to attention), f equally with
    both.
    """
    keras.utils.set_random_seed(3)
    model = SASRec(num_items=6, max_len=4, hidden_dim=4, num_blocks=1, num_heads=1, dropout=0.0)
    table = np.zeros((7, 4), dtype=np.float32)
    table[1:7, :2] = [[1, 0], [0, 1], [2, 0], [0, 3], [-1, -1], [1, 1]]
    model.item_embeddings.assign(table)
    return Predictor(model, ItemVocabulary(list("abcdef")), {"max_len": 4}, max_batch_size=2)


def test_per_item_explanations_follow_the_item_embeddings() -> None:
    predictor = hand_set_predictor()
    history = ("a", "b", "a")
    out = predictor.recommend([RecommendationRequest(history=history, k=4, explain=True)])[0]
    assert sorted(out.item_ids) == ["c", "d", "e", "f"]
    ids = pad_left([[1, 2, 1]], 4)
    a = np.asarray(predictor._model.attention_weights(ids))[0, -3:]
    attention = {"a": a[0] + a[2], "b": a[1]}
    per_item = {i.item_id: {e.item_id: e.weight for e in i.explanation} for i in out.items}
    assert per_item["c"] == {"a": pytest.approx(1.0)}
    assert per_item["d"] == {"b": pytest.approx(1.0)}
    assert per_item["c"] != per_item["d"]
    # e: every contribution is 0, so the attention itself; f: a and b count equally.
    for item in ("e", "f"):
        assert per_item[item] == pytest.approx(attention, rel=1e-5)
        weights = [e.weight for e in next(i for i in out.items if i.item_id == item).explanation]
        assert weights == sorted(weights, reverse=True)
    assert {e.item_id: e.weight for e in out.explanation} == pytest.approx(attention, rel=1e-5)
    plain = predictor.recommend([RecommendationRequest(history=history, k=4)])[0]
    assert all(i.explanation == () for i in plain.items) and plain.explanation == ()


def test_per_item_explanations_match_the_formula(rec: Recommender, models: dict) -> None:
    model = models["model"]
    history = ["sku-03", "sku-08", "sku-03", "sku-11", "sku-20"]
    out = rec.recommend(history, k=6, explain=True)
    encoded = encode(history)
    a = np.asarray(model.attention_weights(pad_left([encoded], MAX_LEN)))[0, -len(history) :]
    table = np.asarray(model.item_embeddings, dtype=np.float64)
    explanations = []
    for item in out.items:
        contrib = a * np.maximum(table[encoded] @ table[ITEMS.index(item.item_id) + 1], 0.0)
        share = contrib / contrib.sum() if contrib.sum() > 0 else a
        want: dict[str, float] = {}
        for h, w in zip(history, share):
            want[h] = want.get(h, 0.0) + float(w)
        top = sorted(((w, h) for h, w in want.items() if w > 0), key=lambda x: -x[0])[:5]
        got = [(e.weight, e.item_id) for e in item.explanation]
        assert [h for _, h in got] == [h for _, h in top]
        np.testing.assert_allclose([w for w, _ in got], [w for w, _ in top], rtol=1e-5)
        assert {h for _, h in got} <= set(history)
        assert sum(w for w, _ in got) <= 1.0 + 1e-6
        explanations.append(got)
    assert len({tuple(e) for e in explanations}) > 1  # item-specific, not one shared list


def test_chunked_top_k_equals_a_full_sort() -> None:
    """Large tables take the two-pass top-k path; it must equal a plain sort."""
    from sasrec.engines.inference import InferenceFunction

    keras.utils.set_random_seed(5)
    num_items = 3000
    model = SASRec(num_items=num_items, max_len=5, hidden_dim=8, num_blocks=1, dropout=0.0)
    recommend = InferenceFunction(model)
    rng = np.random.default_rng(0)
    histories = pad_left([rng.integers(1, num_items + 1, size=n) for n in (1, 3, 5, 2)], 5)
    deny = np.zeros((4, 3), dtype=np.int32)
    deny[1] = [7, 8, 9]
    allow = np.zeros((4, 40), dtype=np.int32)
    allow[2] = rng.integers(1, num_items + 1, size=40)
    scores = np.asarray(model.score_last(histories)).copy()
    for row in range(4):
        scores[row, histories[row]] = -np.inf
        scores[row, deny[row]] = -np.inf
        if allow[row].any():
            keep = np.full(num_items + 1, -np.inf)
            keep[allow[row]] = scores[row, allow[row]]
            scores[row] = keep
    for k in (1, 10, 25, 500):  # 500: k chunks cover most of the table, plain top-k
        out = recommend(histories, k=k, deny_ids=deny, allow_ids=allow)
        for row in range(4):
            order = [
                i for i in np.argsort(-scores[row], kind="stable") if np.isfinite(scores[row, i])
            ]
            want = order[:k]
            got = out["ids"][row]
            assert got[: len(want)].tolist() == want, (k, row)
            assert (got[len(want) :] == 0).all()
            np.testing.assert_allclose(
                out["scores"][row, : len(want)], scores[row, want], rtol=1e-5, atol=1e-6
            )


def test_k_zero_means_ten_and_large_k_is_capped_by_items(rec: Recommender) -> None:
    assert len(rec.recommend(["sku-01"], k=0).items) == 10
    assert len(rec.recommend(["sku-01"], k=500).items) == NUM_ITEMS - 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"history": ["sku-01"], "k": -1}, "k"),
        ({"history": ["sku-01"], "k": 1001}, "k"),
        ({"history": ["sku-01", "sku-02", "", "sku-03"]}, "history[2]"),
        ({"history": ["sku-01"] * 1001}, "history"),
        ({"history": ["sku-01"], "allowed_items": ["sku-02", ""]}, "allowed_items[1]"),
        ({"history": ["sku-01"], "excluded_items": ["x"] * 10_001}, "excluded_items"),
    ],
)
def test_invalid_requests_name_the_field(rec: Recommender, kwargs: dict, field: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        rec.recommend(**kwargs)
    assert [v.field for v in info.value.violations] == [field]
    assert str(info.value).startswith(f"{field}: ")


def test_every_violation_is_reported(rec: Recommender) -> None:
    with pytest.raises(InvalidRequestError) as info:
        rec.recommend(["", "a"], k=-5, excluded_items=["b", ""])
    assert [v.field for v in info.value.violations] == ["k", "history[0]", "excluded_items[1]"]


def test_batch_answers_equal_single_answers(rec: Recommender) -> None:
    requests = [
        RecommendationRequest(history=tuple(h), k=k, include_history=inc, explain=exp)
        for h in HISTORIES + [["nobody"], ITEMS[5:25]]
        for k, inc, exp in ((3, False, False), (12, True, True))
    ]
    batch = rec.recommend_batch(requests)
    assert len(batch) == len(requests) > rec.predictor.max_batch_size
    for request, got in zip(requests, batch):
        one = rec.recommend_batch([request])[0]
        assert got.item_ids == one.item_ids
        assert got.fallback == one.fallback and got.unknown_items == one.unknown_items
        np.testing.assert_allclose(
            [i.score for i in got.items], [i.score for i in one.items], rtol=1e-5, atol=1e-6
        )
        assert [e.item_id for e in got.explanation] == [e.item_id for e in one.explanation]


def test_model_info(rec: Recommender) -> None:
    info = rec.model_info()
    assert (info.model_version, info.num_items, info.max_history_length) == (
        "1",
        NUM_ITEMS,
        MAX_LEN,
    )
    assert info.metrics == {"full/ndcg@10": 0.25, "full/hr@10": 0.5}
    assert info.trained_at is not None and info.trained_at.tzinfo is not None


def test_malformed_popularity_file_is_rejected_with_its_path(models: dict, tmp_path: Path) -> None:
    broken = tmp_path / "7"
    shutil.copytree(models["plain"], broken)
    (broken / "popularity.json").write_text(json.dumps({"sku-01": "many"}))
    with pytest.raises(ValueError, match=r"popularity\.json.*sku-01"):
        Predictor.load(broken)
    (broken / "popularity.json").write_text(json.dumps({"counts": [1, 2, 3]}))
    with pytest.raises(ValueError, match=r"popularity\.json: expected 41 counts"):
        Predictor.load(broken)


def test_micro_batcher_scores_queued_requests_together(rec: Recommender) -> None:
    predictor = rec.predictor
    sizes: list[int] = []
    entered, release = threading.Event(), threading.Event()

    def hold_first(size: int) -> None:
        if not entered.is_set():
            entered.set()
            release.wait(10)

    batcher = MicroBatcher(max_batch_size=8, on_batch=sizes.append, before_batch=hold_first)
    batcher.start()
    try:
        requests = [RecommendationRequest(history=(ITEMS[i],), k=4) for i in range(12)]
        futures = [batcher.submit(predictor, predictor.prepare(requests[0]))]
        assert entered.wait(10)
        futures += [batcher.submit(predictor, predictor.prepare(r)) for r in requests[1:]]
        cancelled = batcher.submit(predictor, predictor.prepare(requests[0]))
        assert cancelled.cancel()
        expired = batcher.submit(predictor, predictor.prepare(requests[0]), time.monotonic())
        release.set()
        answers = [f.result(10) for f in futures]
        with pytest.raises(TimeoutError, match="deadline"):
            expired.result(10)
    finally:
        batcher.stop()
    # 1 held, then the 11 queued ones in batches of at most 8.
    assert sizes == [1, 8, 3]
    for request, answer in zip(requests, answers):
        assert answer.item_ids == rec.recommend(request.history, k=4).item_ids


def test_micro_batcher_resolves_asyncio_futures_per_batch(rec: Recommender) -> None:
    # The gRPC path: futures of the caller's event loop, resolved on that loop
    # (one call_soon_threadsafe per batch); cancelled ones are skipped.
    predictor = rec.predictor
    sizes: list[int] = []
    skipped: list[tuple[str, int]] = []
    entered, release = threading.Event(), threading.Event()

    def hold_first(size: int) -> None:
        if not entered.is_set():
            entered.set()
            release.wait(10)

    batcher = MicroBatcher(
        max_batch_size=8,
        on_batch=sizes.append,
        on_skipped=lambda reason, n: skipped.append((reason, n)),
        before_batch=hold_first,
    ).start()
    requests = [RecommendationRequest(history=(ITEMS[i],), k=4) for i in range(6)]

    async def scenario() -> tuple[list, BaseException]:
        loop = asyncio.get_running_loop()
        prepared = [predictor.prepare(r) for r in requests]
        first = batcher.submit_async(predictor, prepared[0], None, loop)
        await asyncio.to_thread(entered.wait, 10)
        rest = [batcher.submit_async(predictor, p, None, loop) for p in prepared[1:]]
        gone = batcher.submit_async(predictor, prepared[0], None, loop)
        gone.cancel()
        expired = batcher.submit_async(predictor, prepared[0], time.monotonic(), loop)
        release.set()
        answers = await asyncio.wait_for(asyncio.gather(first, *rest), 10)
        with pytest.raises(DeadlineExceededError) as info:
            await asyncio.wait_for(expired, 10)
        return answers, info.value

    try:
        answers, error = asyncio.run(scenario())
    finally:
        batcher.stop()
    assert "deadline" in str(error)
    assert sizes == [1, 5]
    assert ("cancelled", 1) in skipped and ("deadline", 1) in skipped
    for request, answer in zip(requests, answers):
        assert answer.item_ids == rec.recommend(request.history, k=4).item_ids


def test_micro_batcher_waits_for_a_full_batch_only_under_load(rec: Recommender) -> None:
    predictor = rec.predictor
    sizes: list[int] = []
    hold, entered, release = threading.Event(), threading.Event(), threading.Event()

    def hold_when_asked(size: int) -> None:
        if hold.is_set():
            hold.clear()
            entered.set()
            release.wait(10)

    # A busy wait far longer than the result timeouts below: a wait shows as a failure.
    batcher = MicroBatcher(
        max_batch_size=8,
        busy_wait_seconds=30.0,
        on_batch=sizes.append,
        before_batch=hold_when_asked,
    )
    batcher.start()
    try:
        request = predictor.prepare(RecommendationRequest(history=("sku-01",), k=3))
        # A lone caller never waits.
        batcher.submit(predictor, request).result(10)
        batcher.submit(predictor, request).result(10)
        hold.set()
        first = batcher.submit(predictor, request)
        assert entered.wait(10)
        queued = [batcher.submit(predictor, request) for _ in range(3)]
        release.set()
        for future in [first, *queued]:
            future.result(10)
        # The previous batch held 3: the next one waits until it has 3 again.
        late = [batcher.submit(predictor, request)]
        time.sleep(0.05)
        late += [batcher.submit(predictor, request) for _ in range(2)]
        for future in late:
            future.result(10)
    finally:
        batcher.stop()
    assert sizes == [1, 1, 1, 3, 3]


def test_split_by_length() -> None:
    assert split_by_length([2, 3, 2], 50) == [[0, 1, 2]]  # too little to save
    lengths = [50, 2, 3, 40] + [4] * 40
    assert split_by_length(lengths, 50) == [[1, 2] + list(range(4, 44)), [0, 3]]
    assert split_by_length([80] + [2] * 30, 50)[1] == [0]  # widths are capped at max_len


def test_length_groups_give_the_same_answers(
    rec: Recommender, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = [
        RecommendationRequest(history=tuple(ITEMS[i : i + n]), k=5, explain=n in (1, 9))
        for i, n in enumerate([1, 6, 2, 1, 9, 1, 3])
    ]
    single = [rec.recommend_batch([r])[0] for r in requests]
    monkeypatch.setattr(length_groups, "SPLIT_MIN_SAVED_POSITIONS", 1)
    assert len(split_by_length([len(r.history) for r in requests], MAX_LEN)) == 2
    for got, want in zip(rec.recommend_batch(requests), single):
        assert got.item_ids == want.item_ids
        np.testing.assert_allclose(
            [i.score for i in got.items], [i.score for i in want.items], rtol=1e-5, atol=1e-6
        )
        # The attention behind explanations comes from the row's own group.
        assert [e.item_id for e in got.explanation] == [e.item_id for e in want.explanation]
        np.testing.assert_allclose(
            [e.weight for e in got.explanation], [e.weight for e in want.explanation], atol=1e-5
        )


def test_batch_buckets() -> None:
    assert batch_buckets(1) == (1,)
    assert batch_buckets(32) == (1, 2, 4, 8, 16, 32)
    assert batch_buckets(24) == (1, 2, 4, 8, 16, 24)
    with pytest.raises(ValueError, match="max_batch_size"):
        batch_buckets(0)


def test_list_versions_ignores_staging_and_incomplete_dirs(models: dict, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(models["plain"], root / "3")
    shutil.copytree(models["plain"], root / "12")
    (root / ".tmp-abc").mkdir()
    (root / "20").mkdir()  # no manifest.json: still being written
    (root / "notes").mkdir()
    assert [p.name for p in list_versions(root)] == ["12", "3"]
    assert list_versions(root / "3") == [root / "3"]
    with pytest.raises(FileNotFoundError):
        list_versions(tmp_path / "missing")
    loaded = Recommender.load(root, max_batch_size=1, warm_up=False)
    assert loaded.model_version == "12"


def test_limits_are_configurable(models: dict) -> None:
    small = Recommender.load(models["plain"], limits=Limits(max_k=3, max_history=2), warm_up=False)
    with pytest.raises(InvalidRequestError, match="k: must be in 0..3"):
        small.recommend(["sku-01"], k=4)
    with pytest.raises(InvalidRequestError, match="history: at most 2"):
        small.recommend(["sku-01"] * 3, k=1)


def test_numpy_and_tensorflow_engines_give_the_same_answers(models: dict) -> None:
    version = models["root"] / "1"
    fast = Predictor.load(version, max_batch_size=8, engine="numpy")
    graph = Predictor.load(version, max_batch_size=8, engine="tensorflow")
    requests = [
        RecommendationRequest(history=tuple(h), k=k, explain=True)
        for h, k in zip(HISTORIES, (3, 7, 10, 40))
    ] + [
        RecommendationRequest(history=("sku-01", "sku-02"), include_history=True, k=5),
        RecommendationRequest(history=("sku-03",), excluded_items=("sku-04", "sku-05"), k=6),
        RecommendationRequest(history=("sku-03",), allowed_items=("sku-09", "sku-01", "x"), k=6),
        RecommendationRequest(history=tuple(ITEMS[:20]), k=8, explain=True),
    ]
    ours, theirs = fast.recommend(requests), graph.recommend(requests)
    for a, b in zip(ours, theirs):
        assert a.item_ids == b.item_ids
        np.testing.assert_allclose(
            [i.score for i in a.items], [i.score for i in b.items], rtol=1e-5, atol=1e-6
        )
        assert [e.item_id for e in a.explanation] == [e.item_id for e in b.explanation]
        for x, y in zip(a.items, b.items):
            assert [e.item_id for e in x.explanation] == [e.item_id for e in y.explanation]
    with pytest.raises(ValueError, match="engine must be one of .* received engine='jax'"):
        Predictor.load(version, engine="jax")


def test_micro_batcher_runs_a_lone_request_inline_only_when_idle(rec: Recommender) -> None:
    predictor = rec.predictor
    sizes: list[int] = []
    prepared = predictor.prepare(RecommendationRequest(history=("sku-01", "sku-02"), k=4))
    batcher = MicroBatcher(max_batch_size=8, on_batch=sizes.append)  # worker not started
    answer = batcher.run_inline(predictor, prepared)
    assert answer is not None and sizes == [1]
    assert answer.item_ids == rec.recommend(["sku-01", "sku-02"], k=4).item_ids
    queued = batcher.submit(predictor, prepared)  # something waits: must batch
    assert batcher.run_inline(predictor, prepared) is None and sizes == [1]
    batcher.start()
    assert queued.result(10).item_ids == answer.item_ids
    batcher.stop()
    held = MicroBatcher(before_batch=lambda size: None)  # a hook observes batches
    assert held.run_inline(predictor, prepared) is None
