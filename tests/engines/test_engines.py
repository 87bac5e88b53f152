"""The engine interface: every registered engine gives the same answers through it.

The reference is the Keras model itself (``score_last`` and
``attention_weights``), so a shared mistake in the engines would still fail.
The compiled engine takes part when its kernel is built (``make setup``).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from sasrec.engines import length_groups
from sasrec.engines.compiled_engine import unavailable_reason
from sasrec.engines.engine import Engine, TopK
from sasrec.engines.registry import DEFAULT_ENGINE, ENGINES, create_engine, resolve_engine
from sasrec.models import SASRec
from sasrec.padding import pad_left

NUM_ITEMS = 60
MAX_LEN = 8


@pytest.fixture(scope="module")
def model() -> SASRec:
    """Random non-trivial weights everywhere (fresh LayerNorms are identity, biases 0)."""
    keras.utils.set_random_seed(7)
    model = SASRec(num_items=NUM_ITEMS, max_len=MAX_LEN, hidden_dim=12, num_blocks=2, num_heads=2)
    rng = np.random.default_rng(8)
    model.set_weights([w + rng.normal(0, 0.3, w.shape) for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def engines(model: SASRec) -> dict[str, Engine]:
    """Each concrete engine (``auto`` is one of them), compiled only when built."""
    names = ["numpy", "tensorflow"] + ([] if unavailable_reason(model) else ["compiled"])
    return {name: create_engine(name, model) for name in names}


def requests(rng: np.random.Generator, lengths: list[int]) -> dict:
    """Ragged histories with every kind of exclusion, one row per length."""
    histories = [rng.integers(1, NUM_ITEMS + 1, n).astype(np.int32) for n in lengths]
    size = len(lengths)
    exclude = [i % 3 != 1 for i in range(size)]
    deny = [
        rng.integers(1, NUM_ITEMS + 1, 3).astype(np.int32) if i % 2 else np.zeros(0, np.int32)
        for i in range(size)
    ]
    allow = [
        rng.choice(np.arange(1, NUM_ITEMS + 1), 12, replace=False).astype(np.int32)
        if i % 4 == 3
        else None
        for i in range(size)
    ]
    return {"histories": histories, "exclude": exclude, "deny": deny, "allow": allow}


def reference_top_k(model: SASRec, batch: dict, k: int) -> tuple[list, list]:
    """Ids and scores from the Keras model's full score rows, ties by lower id."""
    padded = pad_left(batch["histories"], MAX_LEN)
    scores = ops.convert_to_numpy(model.score_last(padded)).astype(np.float64)
    ids_out, scores_out = [], []
    for row in range(len(padded)):
        s = scores[row].copy()
        s[0] = -np.inf
        if batch["exclude"][row]:
            s[padded[row][padded[row] > 0]] = -np.inf
        s[batch["deny"][row]] = -np.inf
        if batch["allow"][row] is not None:
            kept = np.full_like(s, -np.inf)
            kept[batch["allow"][row]] = s[batch["allow"][row]]
            s = kept
        order = [i for i in np.argsort(-s, kind="stable") if np.isfinite(s[i])][:k]
        ids_out.append(order)
        scores_out.append(s[order])
    return ids_out, scores_out


def run(engine: Engine, batch: dict, k: int) -> TopK:
    return engine.top_k(
        batch["histories"], k, batch["exclude"], batch["deny"], batch["allow"], with_attention=True
    )


def test_registry_builds_each_named_engine_and_refuses_others(engines: dict, model: SASRec) -> None:
    assert ENGINES == ("auto", "compiled", "numpy", "tensorflow") and DEFAULT_ENGINE == "auto"
    auto = resolve_engine("auto", model)
    assert auto == ("numpy" if unavailable_reason(model) else "compiled")
    assert create_engine("auto", model).name == auto
    for name, engine in engines.items():
        assert isinstance(engine, Engine) and engine.name == name
        assert (engine.num_items, engine.max_len) == (NUM_ITEMS, MAX_LEN)
        np.testing.assert_array_equal(engine.item_table, np.asarray(model.item_embeddings))
    with pytest.raises(ValueError, match=r"engine must be one of .* received engine='jax'"):
        create_engine("jax", model)


@pytest.mark.parametrize("k", [1, 5, NUM_ITEMS + 10])
def test_engines_agree_with_each_other_and_the_keras_model(
    engines: dict, model: SASRec, k: int
) -> None:
    batch = requests(np.random.default_rng(k), [1, 3, MAX_LEN, 2, MAX_LEN + 4, 5, 4, 1])
    want_ids, want_scores = reference_top_k(model, batch, k)
    answers = {name: run(engine, batch, k) for name, engine in engines.items()}
    graph_top = answers["tensorflow"]
    finite = np.isfinite(graph_top.scores)
    for name, top in answers.items():
        assert top.ids.shape == graph_top.ids.shape == (8, min(k, NUM_ITEMS)), name
        np.testing.assert_array_equal(top.ids, graph_top.ids, err_msg=name)
        np.testing.assert_array_equal(np.isfinite(top.scores), finite, err_msg=name)
        np.testing.assert_allclose(
            top.scores[finite], graph_top.scores[finite], rtol=1e-4, atol=1e-5, err_msg=name
        )
    for row, (ids, scores) in enumerate(zip(want_ids, want_scores)):
        assert graph_top.ids[row, : len(ids)].tolist() == ids, row
        assert (graph_top.ids[row, len(ids) :] == 0).all()
        np.testing.assert_allclose(graph_top.scores[row, : len(ids)], scores, rtol=1e-4, atol=1e-5)


def test_attention_is_the_models_last_position_attention(engines: dict, model: SASRec) -> None:
    batch = requests(np.random.default_rng(3), [2, MAX_LEN, 1, 5])
    want = ops.convert_to_numpy(model.attention_weights(pad_left(batch["histories"], MAX_LEN)))
    for name, engine in engines.items():
        attention = run(engine, batch, 3).attention
        for row, history in enumerate(batch["histories"]):
            t = min(history.size, MAX_LEN)
            # Last-aligned: the most recent item is the last column, whatever the width.
            np.testing.assert_allclose(
                attention[row, -t:], want[row, -t:], rtol=1e-4, atol=1e-6, err_msg=name
            )
    no_attention = engines["tensorflow"].top_k(batch["histories"], 3)
    assert no_attention.attention is None


def test_length_groups_change_no_answer(engines: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = requests(np.random.default_rng(11), [1, MAX_LEN, 1, 2, 1, MAX_LEN, 1])
    whole = {name: run(engine, batch, 6) for name, engine in engines.items()}
    monkeypatch.setattr(length_groups, "SPLIT_MIN_SAVED_POSITIONS", 1)
    lengths = [h.size for h in batch["histories"]]
    assert len(length_groups.split_by_length(lengths, MAX_LEN)) == 2
    for name, engine in engines.items():
        split = run(engine, batch, 6)
        np.testing.assert_array_equal(split.ids, whole[name].ids, err_msg=name)
        np.testing.assert_allclose(split.scores, whole[name].scores, rtol=1e-5, atol=1e-6)
        for row, t in enumerate(lengths):
            np.testing.assert_allclose(
                split.attention[row, -t:], whole[name].attention[row, -t:], rtol=1e-5, atol=1e-6
            )
