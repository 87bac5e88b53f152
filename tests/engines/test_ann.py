"""ANN retrieval: the Faiss IVF index, its cache, and exact answers from its candidates.

Equivalence: with every inverted list probed the index returns the true
nearest candidates, so :class:`AnnEngine` must give the full scan's ids and
scores, with history exclusion, deny and allow lists; with few lists probed
the recall of a clustered table must still reach the tuning target.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import keras
import numpy as np
import pytest

faiss = pytest.importorskip("faiss")

from sasrec.artifact import save_model_dir  # noqa: E402
from sasrec.engines.ann_engine import AnnEngine  # noqa: E402
from sasrec.engines.ann_index import (  # noqa: E402
    ANN_INDEX_FILE,
    ANN_INDEX_META_FILE,
    AnnIndex,
    candidate_count,
    default_nlist,
)
from sasrec.engines.numpy_engine import NumpyEngine  # noqa: E402
from sasrec.engines.retrieval import resolve_retrieval, tuning_queries  # noqa: E402
from sasrec.models import SASRec  # noqa: E402
from sasrec.serving.domain import RecommendationRequest  # noqa: E402
from sasrec.serving.predictor import Predictor  # noqa: E402
from sasrec.vocabulary import ItemVocabulary  # noqa: E402

NUM_ITEMS = 400
MAX_LEN = 8


@pytest.fixture(scope="module")
def model() -> SASRec:
    keras.utils.set_random_seed(3)
    return SASRec(
        num_items=NUM_ITEMS, max_len=MAX_LEN, hidden_dim=16, num_blocks=1, num_heads=2, dropout=0.0
    )


@pytest.fixture(scope="module")
def exact(model: SASRec) -> NumpyEngine:
    return NumpyEngine(model)


@pytest.fixture(scope="module")
def exhaustive(exact: NumpyEngine) -> AnnEngine:
    index = AnnIndex.build(exact.item_table)
    index.set_nprobe(index.nlist)  # every list: the candidates are the true best
    return AnnEngine(exact, index)


def clustered_table(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Rows around 50 centres with log-normal norms, as trained item tables are."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, d))
    rows = centres[rng.integers(0, 50, n + 1)] + 0.3 * rng.normal(size=(n + 1, d))
    rows *= rng.lognormal(0.0, 0.5, size=(n + 1, 1))
    return rows.astype(np.float32)


def test_default_nlist_and_candidates() -> None:
    assert default_nlist(1_000_000) == 1000
    assert default_nlist(100) == 2  # at least 39 items per list
    assert candidate_count(10) == 40 and candidate_count(50) == 200


def test_tuned_index_reaches_the_recall_target_with_few_lists() -> None:
    table = clustered_table(20_000, 32)
    index = AnnIndex.build(table)
    rng = np.random.default_rng(1)
    queries = table[rng.integers(1, 20_001, 300)] + 0.1 * rng.normal(size=(300, 32))
    recall = index.tune(table, queries.astype(np.float32), target=0.99)
    assert recall >= 0.99
    assert index.nprobe < index.nlist  # not a full scan in disguise
    # Independent check on fresh queries: exact top 10 inside the 40 candidates.
    fresh = (table[rng.integers(1, 20_001, 100)] + 0.1 * rng.normal(size=(100, 32))).astype(
        np.float32
    )
    found = index.search(fresh, candidate_count(10))
    scores = fresh @ table.T
    scores[:, 0] = -np.inf
    truth = np.argsort(-scores, axis=1)[:, :10]
    hits = np.mean([len(np.intersect1d(t, f)) / 10 for t, f in zip(truth, found)])
    assert hits >= 0.97
    assert found.min() >= 1 and found.max() <= 20_000  # never padding row 0


def test_exact_top_in_small_chunks_equals_the_sorted_scan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sasrec.engines import ann_index

    table = clustered_table(3_000, 8)
    queries = table[np.random.default_rng(2).integers(1, 3_001, 70)] * 1.5
    scores = queries @ table.T
    scores[:, 0] = -np.inf
    truth = np.sort(np.argsort(-scores, axis=1)[:, :10], axis=1)
    # 5 queries' scores and argpartition indices per chunk instead of 64: same answer.
    budget = 5 * (4 + 8) * 3_001
    monkeypatch.setattr(ann_index, "_EXACT_CHUNK_BYTES", budget)
    tracemalloc.start()
    top = ann_index._exact_top(table, queries, 10)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # The chunk's working memory stays within the budget (scores and indices together).
    assert peak <= budget + top.nbytes + 16_384
    assert top.shape == (70, 10) and top.dtype == np.int64
    assert np.array_equal(np.sort(top, axis=1), truth)
    # Its own small array: no row is a view into a chunk's (chunk, N + 1) scores.
    assert top.base is None and top.nbytes == 70 * 10 * 8


@pytest.mark.parametrize(
    "case",
    [
        {"k": 5},
        {"k": 10, "exclude": False},
        {"k": 7, "deny": True},
        {"k": 4, "allow": True},
        {"k": 3, "allow": True, "deny": True},
    ],
    ids=["plain", "history-included", "deny", "allow", "allow-and-deny"],
)
def test_exhaustive_ann_equals_the_full_scan(
    exact: NumpyEngine, exhaustive: AnnEngine, case: dict
) -> None:
    rng = np.random.default_rng(7)
    histories = [rng.integers(1, NUM_ITEMS + 1, size=n) for n in (1, 3, MAX_LEN, 5)]
    deny = [rng.integers(1, NUM_ITEMS + 1, size=20) for _ in histories]
    allow = [rng.integers(1, NUM_ITEMS + 1, size=30) for _ in histories]
    deny = deny if case.get("deny") else None
    allow = allow if case.get("allow") else None
    exclude = case.get("exclude", True)
    want = exact.top_k(histories, case["k"], exclude, deny, allow, with_attention=True)
    got = exhaustive.top_k(histories, case["k"], exclude, deny, allow, with_attention=True)
    np.testing.assert_array_equal(got.ids, want.ids)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got.attention, want.attention)
    if exclude:
        for row, history in zip(got.ids, histories):
            assert not set(row.tolist()) & set(history.tolist())


def test_rows_excluding_a_quarter_of_the_catalogue_take_the_full_scan(
    exact: NumpyEngine, exhaustive: AnnEngine
) -> None:
    history = [np.array([1, 2, 3])]
    deny = [np.arange(4, 4 + NUM_ITEMS // 2)]  # half the items denied
    before = exhaustive.full_scans
    got = exhaustive.top_k(history, 10, True, deny, None)
    want = exact.top_k(history, 10, True, deny, None)
    assert exhaustive.full_scans == before + 1
    np.testing.assert_array_equal(got.ids, want.ids)


def test_an_allow_list_smaller_than_k_returns_only_eligible_items(
    exhaustive: AnnEngine,
) -> None:
    got = exhaustive.top_k([np.array([5, 6])], 10, True, None, [np.array([5, 9, 11, 0, 9999])])
    kept = got.ids[0][np.isfinite(got.scores[0])]
    assert sorted(kept.tolist()) == [9, 11]  # 5 is history, 0 and 9999 out of range
    assert (got.ids[0][2:] == 0).all()


def test_cache_round_trip_and_foreign_tables(tmp_path: Path, exact: NumpyEngine) -> None:
    index = AnnIndex.build(exact.item_table)
    index.tune(exact.item_table, tuning_queries(exact, count=64))
    index.save(tmp_path)
    loaded = AnnIndex.load(tmp_path, exact.item_table)
    assert loaded is not None and loaded.nprobe == index.nprobe
    queries = exact.item_table[1:20]
    np.testing.assert_array_equal(loaded.search(queries, 40), index.search(queries, 40))
    other = exact.item_table.copy()
    other[5, 0] += 1.0
    assert AnnIndex.load(tmp_path, other) is None  # built from another table
    (tmp_path / ANN_INDEX_FILE).write_bytes(b"truncated")
    assert AnnIndex.load(tmp_path, exact.item_table) is None  # size mismatch
    (tmp_path / ANN_INDEX_META_FILE).unlink()
    assert AnnIndex.load(tmp_path, exact.item_table) is None
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]  # atomic writes


def test_resolve_retrieval() -> None:
    assert resolve_retrieval("auto", 249_999) == "exact"
    assert resolve_retrieval("auto", 250_000) == "ann"
    assert resolve_retrieval("exact", 10**8) == "exact"
    assert resolve_retrieval("ann", 10) == "ann"
    with pytest.raises(ValueError, match="needs one of the engines"):
        resolve_retrieval("ann", 10, engine="tensorflow")
    with pytest.raises(ValueError, match="retrieval must be one of"):
        resolve_retrieval("hnsw", 10)


def test_predictor_caches_the_index_in_the_version_dir(tmp_path: Path, model: SASRec) -> None:
    version = tmp_path / "1"
    items = [f"sku-{i:03d}" for i in range(1, NUM_ITEMS + 1)]
    save_model_dir(version, model, ItemVocabulary(items))
    ann = Predictor.load(version, retrieval="ann")
    assert ann.retrieval == "ann" and isinstance(ann.scoring_engine, AnnEngine)
    cached = (version / ANN_INDEX_FILE).stat().st_mtime_ns
    again = Predictor.load(version, retrieval="ann")  # reads the cache, writes nothing
    assert (version / ANN_INDEX_FILE).stat().st_mtime_ns == cached
    assert again.scoring_engine.index.nprobe == ann.scoring_engine.index.nprobe
    exact = Predictor.load(version, retrieval="exact")
    request = RecommendationRequest(history=("sku-001", "sku-007"), k=5, explain=True)
    got = ann.predict([ann.prepare(request)])[0]
    want = exact.predict([exact.prepare(request)])[0]
    # The tuned index of a 400-item table: the top 5 must match the full scan.
    assert got.item_ids == want.item_ids
    assert got.items[0].explanation == want.items[0].explanation


def test_a_version_that_cannot_hold_the_cache_serves_from_memory(
    tmp_path: Path, model: SASRec, caplog
) -> None:
    version = tmp_path / "1"
    save_model_dir(version, model, ItemVocabulary([f"i{i}" for i in range(1, NUM_ITEMS + 1)]))
    # A directory where the index file goes: the write fails as on a read-only
    # mount (and does so for root too).
    (version / ANN_INDEX_FILE / "x").mkdir(parents=True)
    predictor = Predictor.load(version, retrieval="ann")
    assert isinstance(predictor.scoring_engine, AnnEngine)
    assert "ANN index not cached" in caplog.text
    assert not [p for p in os.listdir(version) if p.endswith(".tmp")]


def test_hot_reload_swaps_the_index_with_the_model(tmp_path: Path, model: SASRec) -> None:
    from sasrec.serving.model_watcher import ModelWatcher

    items = [f"sku-{i:03d}" for i in range(1, NUM_ITEMS + 1)]
    save_model_dir(tmp_path / "1", model, ItemVocabulary(items))
    served: list[Predictor] = []
    watcher = ModelWatcher(
        tmp_path,
        load=lambda path: Predictor.load(path, retrieval="ann"),
        on_loaded=served.append,
        poll_seconds=0,
    )
    watcher.load_initial()
    keras.utils.set_random_seed(11)
    newer = SASRec(
        num_items=NUM_ITEMS, max_len=MAX_LEN, hidden_dim=16, num_blocks=1, num_heads=2, dropout=0.0
    )
    save_model_dir(tmp_path / "2", newer, ItemVocabulary(items))
    assert watcher.poll_once()
    old, new = served
    assert new.version == "2" and (tmp_path / "2" / ANN_INDEX_FILE).exists()
    assert new.scoring_engine.index is not old.scoring_engine.index
    # The new index was built from the new table, not reused from the old one.
    assert new.scoring_engine.index.checksum != old.scoring_engine.index.checksum
    assert new.scoring_engine.item_table is not old.scoring_engine.item_table
