"""The NumPy serving path against the TensorFlow model (reference vs optimised)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from sasrec.engines.inference import InferenceFunction
from sasrec.engines.numpy_sasrec import NumpySASRec, _top_k_rows
from sasrec.models import SASRec
from sasrec.padding import pad_left

CONFIGS = {
    "pre-ln-2-heads": dict(num_heads=2),
    "post-ln": dict(norm_first=False),
    "sinusoidal-window": dict(position_embedding="sinusoidal", attention_window=3),
    "gelu-ffn-wide-3-blocks": dict(num_blocks=3, ffn_dim=24),
}


def trained_like(model: SASRec, seed: int) -> SASRec:
    """Non-trivial weights everywhere (fresh LayerNorms are identity, biases 0)."""
    rng = np.random.default_rng(seed)
    model.set_weights([w + rng.normal(0, 0.3, w.shape) for w in model.get_weights()])
    return model


def histories_batch(rng: np.random.Generator, max_len: int, num_items: int) -> np.ndarray:
    lengths = [1, 2, max_len, max_len + 3, 4, 3]
    return pad_left([rng.integers(1, num_items + 1, n).tolist() for n in lengths], max_len)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_hidden_state_and_attention_match_tensorflow(name):
    keras.utils.set_random_seed(3)
    options = dict(num_items=40, max_len=7, hidden_dim=12, num_blocks=2, dropout=0.3)
    options.update(CONFIGS[name])
    model = trained_like(SASRec(**options), seed=5)
    if name.startswith("gelu"):
        for block in model.encoder.blocks:
            block.feed_forward.inner_dense.activation = keras.activations.gelu
    fast = NumpySASRec(model)
    histories = histories_batch(np.random.default_rng(0), 7, 40)
    hidden, attention = fast.encode_last(histories)
    expected = ops.convert_to_numpy(model(histories))[:, -1]
    np.testing.assert_allclose(hidden, expected, rtol=1e-4, atol=1e-5)
    expected_attention = ops.convert_to_numpy(model.attention_weights(histories))
    np.testing.assert_allclose(attention, expected_attention, rtol=1e-4, atol=1e-6)
    # Narrower (trimmed) input: same last state, as positions are anchored at the end.
    trimmed, _ = fast.encode_last(histories[:2, -2:])
    np.testing.assert_allclose(trimmed, hidden[:2], rtol=1e-4, atol=1e-5)
    # A lone history with no padding (a served request's shape) skips the last
    # block's mask unless a window (3 here, narrower than 7) hides keys.
    lone = histories[2:3]
    assert (lone != 0).all()
    lone_hidden, lone_attention = fast.encode_last(lone)
    np.testing.assert_allclose(lone_hidden, hidden[2:3], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(lone_attention, expected_attention[2:3], rtol=1e-4, atol=1e-6)


def test_top_k_with_exclusions_equals_inference_function():
    keras.utils.set_random_seed(4)
    model = trained_like(SASRec(num_items=50, max_len=6, hidden_dim=8, num_heads=2), seed=6)
    fast = NumpySASRec(model)
    graph = InferenceFunction(model)
    histories = pad_left([[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11], [], [12, 12]], 6)
    exclude = np.array([True, False, True, True, True])
    deny = [np.array([4, 5, 99]), np.array([], np.int32), np.array([12, 13]), np.array([]), [0]]
    allow = [None, None, None, np.array([20, 21]), np.array([12, 30, 31, 32])]
    deny_matrix = pad_left([list(d) for d in deny], 3)[:, ::-1].copy()
    allow_matrix = np.array([[0] * 4, [0] * 4, [0] * 4, [20, 21, 0, 0], [12, 30, 31, 32]])
    for k in (1, 7, 50, 60):
        ids, scores = fast.top_k(histories, k, exclude, deny, allow)
        want = graph(histories, k, exclude, deny_matrix, allow_matrix)
        np.testing.assert_array_equal(ids, want["ids"])
        finite = np.isfinite(want["scores"])
        np.testing.assert_array_equal(np.isfinite(scores), finite)
        np.testing.assert_allclose(scores[finite], want["scores"][finite], rtol=1e-4, atol=1e-5)
    # Hand-checked: the allow list [20, 21] leaves two items, then empty slots.
    ids, scores = fast.top_k(histories[3:4], 4, True, None, [np.array([21, 20])])
    assert sorted(ids[0, :2].tolist()) == [20, 21] and ids[0, 2:].tolist() == [0, 0]
    assert np.isneginf(scores[0, 2:]).all()


def test_top_k_rows_breaks_ties_by_lower_index():
    scores = np.array([[-np.inf, 1.0, 3.0, 3.0, 2.0, 3.0], [-np.inf] * 6], np.float32)
    ids, values = _top_k_rows(scores, 4)
    assert ids.tolist() == [[2, 3, 5, 4], [0, 0, 0, 0]]
    assert values[0].tolist() == [3.0, 3.0, 3.0, 2.0]
    assert np.isneginf(values[1]).all()


def test_bad_width_is_refused():
    model = SASRec(num_items=5, max_len=4, hidden_dim=4)
    with pytest.raises(ValueError, match=r"1 <= t <= 4, received \(1, 5\)"):
        NumpySASRec(model).encode_last(np.ones((1, 5), np.int32))


def test_chunked_top_k_equals_a_full_stable_sort_even_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 50, size=(5, 5000)).astype(np.float32)  # many exact ties
    scores[:, 0] = -np.inf
    scores[1] = rng.normal(size=5000)
    scores[2] = -np.inf
    scores[2, [4001, 17, 4002]] = [1.0, 2.0, 1.0]  # three eligible items only
    scores[3, 4990:] = 99.0  # the best items in the last, partial chunk
    for k in (1, 5, 10, 40):
        ids, values = _top_k_rows(scores, k)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        want = np.take_along_axis(scores, order, axis=1)
        finite = np.isfinite(want)
        np.testing.assert_array_equal(ids, np.where(finite, order, 0))
        np.testing.assert_array_equal(values, want)
    ids, _ = _top_k_rows(scores[2:3], 5)
    assert ids.tolist() == [[17, 4001, 4002, 0, 0]]


def test_scoring_copy_of_the_table_gives_the_views_answers(monkeypatch):
    # A table within the cap is scored through a row-major copy, one over it
    # through the transposed view: same ids, scores equal to float32 rounding.
    import sasrec.engines.numpy_sasrec as numpy_sasrec

    keras.utils.set_random_seed(5)
    model = trained_like(SASRec(num_items=60, max_len=5, hidden_dim=8), seed=7)
    copied = NumpySASRec(model)
    monkeypatch.setattr(numpy_sasrec, "SCORING_COPY_MAX_BYTES", 0)
    viewed = NumpySASRec(model)
    assert copied.scoring_table.flags.c_contiguous
    assert not viewed.scoring_table.flags.c_contiguous
    np.testing.assert_array_equal(copied.scoring_table, copied.table.T)
    histories = histories_batch(np.random.default_rng(1), 5, 60)
    ids, scores = copied.top_k(histories, k=7)
    want_ids, want_scores = viewed.top_k(histories, k=7)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-6)


def test_without_scoring_copy_the_table_is_held_once_and_answers_the_same():
    keras.utils.set_random_seed(5)
    model = trained_like(SASRec(num_items=60, max_len=5, hidden_dim=8), seed=7)
    copied = NumpySASRec(model)
    encoder_only = NumpySASRec(model, scoring_copy=False)
    # The view of the table, not a second table (publishing's ANN build).
    assert np.shares_memory(encoder_only.scoring_table, encoder_only.table)
    assert not np.shares_memory(copied.scoring_table, copied.table)
    histories = histories_batch(np.random.default_rng(1), 5, 60)
    ids, scores = copied.top_k(histories, k=7)
    want_ids, want_scores = encoder_only.top_k(histories, k=7)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-6)
