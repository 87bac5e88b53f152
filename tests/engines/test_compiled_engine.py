"""The compiled engine against the NumPy engine and the TensorFlow graph.

Skips when the kernel is not built (no g++), unless ``SASREC_REQUIRE_KERNEL=1``
(``make test`` sets it where g++ exists), so a build that should have
happened cannot pass silently.
"""

from __future__ import annotations

import os
import threading

import keras
import numpy as np
import pytest

from sasrec.engines.compiled_engine import CompiledEngine, unavailable_reason
from sasrec.engines.inference import InferenceFunction
from sasrec.engines.numpy_engine import NumpyEngine
from sasrec.engines.registry import create_engine, resolve_engine
from sasrec.models import SASRec
from sasrec.padding import pad_left

_MISSING = unavailable_reason()
pytestmark = pytest.mark.skipif(
    _MISSING is not None and os.environ.get("SASREC_REQUIRE_KERNEL") != "1",
    reason=f"{_MISSING}",
)

# Catalogues over one scoring tile (128 columns) and ending mid-tile.
CONFIGS = {
    "pre-ln-2-blocks-2-heads": dict(num_items=300, max_len=12, hidden_dim=16, num_heads=2),
    "one-block-4-heads": dict(num_items=200, max_len=5, hidden_dim=16, num_heads=4, num_blocks=1),
    "post-ln": dict(num_items=150, max_len=9, hidden_dim=12, norm_first=False),
    "window-sinusoidal": dict(
        num_items=260, max_len=30, hidden_dim=8, attention_window=4, position_embedding="sinusoidal"
    ),
    "three-blocks-wide-ffn": dict(
        num_items=129, max_len=7, hidden_dim=12, num_blocks=3, ffn_dim=20
    ),
}


def trained_like(options: dict, seed: int) -> SASRec:
    """Non-trivial weights everywhere (fresh LayerNorms are identity, biases 0)."""
    keras.utils.set_random_seed(seed)
    model = SASRec(**{"num_blocks": 2, "dropout": 0.2, **options})
    rng = np.random.default_rng(seed)
    model.set_weights([w + rng.normal(0, 0.3, w.shape) for w in model.get_weights()])
    return model


def batch_of(rng: np.random.Generator, n: int, max_len: int) -> dict:
    """Rows of every shape: one item, full, longer than max_len, inner padding, unknown ids."""
    histories = [
        rng.integers(1, n + 1, 1),
        rng.integers(1, n + 1, max_len),
        rng.integers(1, n + 1, max_len + 3),
        np.array([0, 4, 0, 7, 7]),  # padding inside and a repeated item
        np.array([n + 5, 3, -2, 9]),  # out-of-range ids count as padding
        rng.integers(1, n + 1, 3),
    ]
    histories = [h.astype(np.int32) for h in histories]
    size = len(histories)
    return {
        "histories": histories,
        "exclude": [r % 3 != 1 for r in range(size)],
        "deny": [
            rng.integers(0, n + 3, 4) if r % 2 else np.zeros(0, np.int32) for r in range(size)
        ],
        "allow": [None, None, None, rng.integers(1, n + 1, 25), None, np.zeros(0, np.int64)],
    }


def top(engine, batch: dict, k: int):
    return engine.top_k(
        batch["histories"], k, batch["exclude"], batch["deny"], batch["allow"], with_attention=True
    )


def assert_same_top(got, want, name: str) -> None:
    np.testing.assert_array_equal(got.ids, want.ids, err_msg=name)
    finite = np.isfinite(want.scores)
    np.testing.assert_array_equal(np.isfinite(got.scores), finite, err_msg=name)
    np.testing.assert_allclose(got.scores[finite], want.scores[finite], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_top_k_and_attention_equal_the_numpy_engines(name: str) -> None:
    options = CONFIGS[name]
    model = trained_like(options, seed=len(name))
    compiled, numpy_engine = CompiledEngine(model), NumpyEngine(model)
    batch = batch_of(np.random.default_rng(1), options["num_items"], options["max_len"])
    n = options["num_items"]
    for k in (1, 10, 64, 65, n, n + 7):  # the scan, the sort, k past the candidates
        got, want = top(compiled, batch, k), top(numpy_engine, batch, k)
        assert got.ids.shape == (6, min(k, n)) and got.ids.dtype == np.int32
        assert got.scores.dtype == np.float32
        assert_same_top(got, want, f"{name} k={k}")
    # The attention behind explanations: same width, the same weights.
    np.testing.assert_allclose(got.attention, want.attention, rtol=1e-4, atol=1e-6)
    # An allow list that is empty allows nothing: the row is all empty slots.
    assert (got.ids[5] == 0).all() and np.isneginf(got.scores[5]).all()
    # The encoder alone (what the ann retrieval reads) is the NumPy engine's too.
    padded, hidden, attention = compiled.encode(batch["histories"])
    want_padded, want_hidden, want_attention = numpy_engine.encode(batch["histories"])
    np.testing.assert_array_equal(padded, want_padded)
    np.testing.assert_allclose(hidden, want_hidden, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(attention, want_attention, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["pre-ln-2-blocks-2-heads", "window-sinusoidal", "post-ln"])
def test_top_k_equals_the_tensorflow_graph(name: str) -> None:
    options = CONFIGS[name]
    model = trained_like(options, seed=3)
    n, max_len = options["num_items"], options["max_len"]
    rng = np.random.default_rng(2)
    histories = [rng.integers(1, n + 1, size).astype(np.int32) for size in (1, 4, max_len, 2)]
    exclude = np.array([True, False, True, True])
    deny = [np.array([5, 6]), np.zeros(0, np.int32), np.array([1]), np.zeros(0, np.int32)]
    allow = [None, None, None, np.arange(10, 40, dtype=np.int32)]
    deny_matrix = pad_left([d.tolist() for d in deny], 2)
    allow_matrix = np.zeros((4, 30), np.int32)
    allow_matrix[3] = allow[3]
    graph = InferenceFunction(model)
    compiled = CompiledEngine(model)
    for k in (3, n + 2):
        got = compiled.top_k(histories, k, exclude, deny, allow)
        want = graph(pad_left(histories, max_len), min(k, n), exclude, deny_matrix, allow_matrix)
        np.testing.assert_array_equal(got.ids, want["ids"])
        finite = np.isfinite(want["scores"])
        np.testing.assert_allclose(got.scores[finite], want["scores"][finite], rtol=1e-4, atol=1e-5)


def test_equal_scores_go_to_the_lower_id() -> None:
    model = trained_like(CONFIGS["post-ln"], seed=4)
    table = model.encoder.item_embedding.embeddings
    weights = np.asarray(table).copy()
    weights[[20, 90, 140]] = weights[3]  # four items with identical scores, across tiles
    table.assign(weights)
    compiled, numpy_engine = CompiledEngine(model), NumpyEngine(model)
    histories = [np.array([5, 6], np.int32), np.array([7], np.int32)]
    for k in (150, 8):
        got = compiled.top_k(histories, k, False)
        assert_same_top(got, numpy_engine.top_k(histories, k, False), f"k={k}")
    full = compiled.top_k(histories, 150, False)
    for row in range(2):
        position = {int(i): p for p, i in enumerate(full.ids[row])}
        order = sorted((3, 20, 90, 140), key=position.__getitem__)
        assert order == [3, 20, 90, 140]
        assert np.ptp(full.scores[row, [position[i] for i in order]]) == 0.0


def test_concurrent_calls_give_the_sequential_answers() -> None:
    model = trained_like(CONFIGS["one-block-4-heads"], seed=5)
    engine = CompiledEngine(model)
    rng = np.random.default_rng(6)
    batches = [
        [rng.integers(1, 201, rng.integers(1, 6)) for _ in range(size)] for size in (1, 7, 3)
    ]
    want = [engine.top_k(b, 12).ids for b in batches]
    results: dict[int, list] = {}

    def work(index: int) -> None:
        results[index] = [engine.top_k(b, 12).ids for b in batches * 20]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for answers in results.values():
        for got, expected in zip(answers, want * 20):
            np.testing.assert_array_equal(got, expected)


def test_bad_input_is_a_clear_error() -> None:
    engine = CompiledEngine(trained_like(CONFIGS["post-ln"], seed=7))
    ok = np.array([1, 2], np.int32)
    with pytest.raises(TypeError, match=r"histories\[1\] must be a 1-D integer array.*float64"):
        engine.top_k([ok, np.array([1.5, 2.0])], 3)
    with pytest.raises(TypeError, match=r"histories\[0\] must be a 1-D integer array.*2 dim"):
        engine.top_k([np.ones((2, 2), np.int32)], 3)
    with pytest.raises(TypeError, match="histories must be a sequence"):
        engine.top_k(7, 3)
    with pytest.raises(ValueError, match="exclude_history has 3 entries for 2 histories"):
        engine.top_k([ok, ok], 3, [True, False, True])
    with pytest.raises(ValueError, match="deny_ids has 1 rows for 2 histories"):
        engine.top_k([ok, ok], 3, True, [ok])
    # Empty input and k = 0 are answers, not errors.
    assert engine.top_k([], 3).ids.shape == (0, 3)
    assert engine.top_k([ok], 0).ids.shape == (1, 0)
    # Lists of ints and int64 rows are accepted as NumPy's engine accepts them.
    np.testing.assert_array_equal(
        engine.top_k([[1, 2]], 4).ids, engine.top_k([np.array([1, 2], np.int64)], 4).ids
    )


def test_auto_serves_with_numpy_when_the_kernel_cannot_run_the_model() -> None:
    model = trained_like(CONFIGS["post-ln"], seed=8)
    assert resolve_engine("auto", model) == "compiled"
    assert create_engine("auto", model).name == "compiled"
    for block in model.encoder.blocks:
        block.feed_forward.inner_dense.activation = keras.activations.gelu
    assert "relu" in unavailable_reason(model)
    assert resolve_engine("auto", model) == "numpy"
    with pytest.raises(ValueError, match="engine 'compiled' unavailable: .*relu"):
        CompiledEngine(model)


def test_the_predictor_serves_with_the_compiled_engine_by_default() -> None:
    from sasrec.serving.domain import RecommendationRequest
    from sasrec.serving.predictor import Predictor
    from sasrec.vocabulary import ItemVocabulary

    model = trained_like(CONFIGS["post-ln"], seed=9)
    vocabulary = ItemVocabulary([f"i{i}" for i in range(1, 151)])
    default = Predictor(model, vocabulary, {"max_len": 9})
    forced = Predictor(model, vocabulary, {"max_len": 9}, engine="numpy")
    assert (default.engine, forced.engine) == ("compiled", "numpy")
    request = RecommendationRequest(history=("i3", "i40", "i7"), k=6, explain=True)
    ours, theirs = default.recommend([request])[0], forced.recommend([request])[0]
    assert ours.item_ids == theirs.item_ids and len(ours.items) == 6
    for a, b in zip(ours.items, theirs.items):
        assert a.score == pytest.approx(b.score, rel=1e-4, abs=1e-5)
    assert ours.explanation and len(ours.explanation) == len(theirs.explanation)
    for a, b in zip(ours.explanation, theirs.explanation):
        assert a.item_id == b.item_id and a.weight == pytest.approx(b.weight, abs=1e-5)


def test_a_table_past_the_copy_cap_is_scored_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    from sasrec.engines import numpy_sasrec

    options = CONFIGS["pre-ln-2-blocks-2-heads"]
    model = trained_like(options, seed=10)
    tiled = CompiledEngine(model)
    monkeypatch.setattr(numpy_sasrec, "SCORING_COPY_MAX_BYTES", 0)
    in_place = CompiledEngine(model)
    batch = batch_of(np.random.default_rng(11), options["num_items"], options["max_len"])
    for k in (5, 70):
        assert_same_top(top(in_place, batch, k), top(tiled, batch, k), f"k={k}")
