"""Compiled inference function and SavedModel export against the Keras model."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from sasrec.engines.inference import InferenceFunction, export_saved_model
from sasrec.models import SASRec
from sasrec.padding import pad_left

np_ = ops.convert_to_numpy


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(1)
    return SASRec(num_items=30, max_len=6, hidden_dim=8, num_blocks=2, num_heads=2)


@pytest.fixture(scope="module")
def recommend(model):
    return InferenceFunction(model)


def numpy_reference(scores, histories, k, exclude, deny, allow):
    scores = scores.copy()
    scores[:, 0] = -np.inf
    for row in range(len(scores)):
        banned = list(deny[row][deny[row] > 0])
        if exclude[row]:
            banned += list(histories[row][histories[row] > 0])
        scores[row, banned] = -np.inf
        allowed = allow[row][allow[row] > 0]
        if allowed.size:
            mask = np.ones(scores.shape[1], bool)
            mask[allowed] = False
            scores[row, mask] = -np.inf
    ids = np.argsort(-scores[:, 1:], axis=1, kind="stable")[:, :k] + 1
    top = np.take_along_axis(scores, ids, 1)
    return np.where(np.isfinite(top), ids, 0), top


def test_matches_numpy_and_traces_once(model, recommend):
    histories = pad_left([[1, 2, 3], [4, 5, 6, 7, 8, 9, 10], [11], []], model.max_len)
    deny = np.array([[4, 5, 0], [0, 0, 0], [12, 13, 14], [0, 0, 0]], np.int32)
    allow = np.array([[0, 0], [0, 0], [0, 0], [20, 21]], np.int32)
    exclude = np.array([True, False, True, True])
    out = recommend(histories, k=7, exclude_history=exclude, deny_ids=deny, allow_ids=allow)
    assert out["ids"].dtype == np.int32 and out["scores"].dtype == np.float32
    expected_ids, expected_scores = numpy_reference(
        np_(model.score_last(histories)), histories, 7, exclude, deny, allow
    )
    np.testing.assert_array_equal(out["ids"], expected_ids)
    np.testing.assert_allclose(out["scores"], expected_scores, rtol=1e-5, atol=1e-6)
    assert out["ids"][3].tolist() == [20, 21, 0, 0, 0, 0, 0]
    # Other batch sizes, widths and k reuse the single trace.
    short = histories[[0, 2]]  # at most 3 items: the first 3 columns are padding
    narrow = recommend(short[:, 3:], k=3)
    np.testing.assert_array_equal(narrow["ids"], recommend(short, k=3)["ids"])
    assert recommend(histories[:1], k=50)["ids"].shape == (1, 30)
    assert recommend.function.experimental_get_tracing_count() == 1


def test_matches_keras_top_k(model, recommend):
    histories = pad_left([[3, 4, 5, 6, 7, 8], [9, 9, 2]], model.max_len)
    out = recommend(histories, k=5)
    ids, scores = model.top_k(histories, 5)
    np.testing.assert_array_equal(out["ids"], np_(ids))
    np.testing.assert_allclose(out["scores"], np_(scores), rtol=1e-5, atol=1e-6)


def test_bad_inputs(recommend):
    with pytest.raises(ValueError, match="more than max_len=6"):
        recommend(np.zeros((1, 7), np.int32))
    with pytest.raises(ValueError, match="k must be"):
        recommend(np.zeros((1, 6), np.int32), k=0)
    with pytest.raises(ValueError, match="deny_ids must be"):
        recommend(np.zeros((2, 6), np.int32), deny_ids=[[1]])
    with pytest.raises(ValueError, match="2-D integer"):
        recommend(np.zeros((6,), np.int32))


def test_saved_model_matches_keras_model(model, tmp_path):
    path = export_saved_model(model, tmp_path / "saved")
    with pytest.raises(ValueError, match="already exists"):
        export_saved_model(model, path)
    loaded = tf.saved_model.load(str(path))
    serving = loaded.signatures["serving_default"]
    histories = pad_left([[1, 2, 3], [7, 8, 9, 10, 11, 12, 13], [5]], model.max_len)
    out = serving(histories=tf.constant(histories), k=tf.constant(4))
    ids, scores = model.top_k(histories, 4)
    np.testing.assert_array_equal(out["ids"].numpy(), np_(ids))
    np.testing.assert_allclose(out["scores"].numpy(), np_(scores), rtol=1e-5, atol=1e-6)
    full = loaded.signatures["recommend"](
        histories=tf.constant(histories),
        k=tf.constant(2),
        exclude_history=tf.constant([False, True, True]),
        deny_ids=tf.constant([[0], [0], [0]]),
        allow_ids=tf.constant([[1], [0], [0]]),
    )
    assert full["ids"].numpy()[0].tolist() == [1, 0]
