"""SASRec model API: config, call, scoring, top-k with exclusions, attention, tracing."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from sasrec.config import SASRecConfig
from sasrec.layers import SASRecEncoder
from sasrec.models import SASRec

np_ = ops.convert_to_numpy


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return SASRec(num_items=40, max_len=6, hidden_dim=8, num_blocks=2, num_heads=2, loss="bce")


def test_config_round_trip():
    config = SASRecConfig(
        num_items=15,
        max_len=7,
        hidden_dim=12,
        num_blocks=1,
        num_heads=3,
        ffn_dim=20,
        dropout=0.1,
        attention_dropout=0.0,
        norm_first=False,
        position_embedding="sinusoidal",
        attention_window=3,
        loss="gbce",
        num_negatives=4,
        gbce_t=0.5,
        loss_denominator=12.5,
    )
    model = SASRec(**config.to_dict())
    assert SASRecConfig.from_dict(model.get_config()) == config
    assert SASRecConfig.from_dict(config.build_model().get_config()) == config
    clone = SASRec.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert isinstance(revived, SASRec) and revived.get_config() == model.get_config()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # Each setting is checked by the layer that uses it, naming it and its value.
        (
            {"hidden_dim": 10, "num_heads": 3},
            r"CausalSelfAttention: num_heads must divide hidden_dim=10, received num_heads=3",
        ),
        ({"loss": "hinge"}, r"SASRec: loss must be one of .*, received loss='hinge'"),
        ({"dropout": 1.0}, r"'embedding_dropout': rate must be .*, received rate=1\.0"),
        ({"attention_dropout": -0.5}, r"'attention_dropout': rate must be .*, received rate=-0\.5"),
        ({"max_len": 0}, r"PositionEmbedding: max_len must be an int >= 1, received max_len=0"),
        ({"num_items": 0}, r"ItemEmbedding: num_items must be an int >= 1, received num_items=0"),
        (
            {"position_embedding": "rotary"},
            r"SASRecEncoder: position_embedding must be one of .*received position_embedding=",
        ),
        ({"ffn_dim": 0}, r"PointWiseFeedForward: ffn_dim must be .*received ffn_dim=0"),
        ({"norm_first": 1}, r"TransformerBlock: norm_first must be a bool, received norm_first=1"),
        ({"attention_window": 0}, r"CausalSelfAttention: window must be .*received window=0"),
        ({"num_negatives": 0}, r"SASRec: num_negatives must be .*received num_negatives=0"),
        ({"gbce_t": 2}, r"SASRec: gbce_t must be a number in \[0, 1\], received gbce_t=2"),
        ({"loss_denominator": 0}, r"loss_denominator must be .*received loss_denominator=0"),
        (
            {"loss_denominator": float("nan")},
            r"loss_denominator must be .*received loss_denominator=nan",
        ),
    ],
)
def test_bad_setting_names_the_argument_and_value(kwargs, message):
    settings = {"num_items": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        SASRec(**settings)
    with pytest.raises(ValueError, match=message):
        SASRecConfig(**settings).build_model()


def test_config_construction_checks_the_unbuilt_settings_and_draws_no_seed():
    import random

    # Settings used by layers that hold no weight are checked when the config
    # is made (a bad config.json is refused on load); constructing the
    # config creates no weight and leaves the seeded initial weights alone.
    with pytest.raises(ValueError, match=r"num_heads must divide hidden_dim=10, received num_h"):
        SASRecConfig(num_items=10, hidden_dim=10, num_heads=3)
    with pytest.raises(ValueError, match=r"SASRec: loss must be one of"):
        SASRecConfig(num_items=10, loss="hinge")
    state = random.getstate()
    config = SASRecConfig(num_items=10, hidden_dim=8, num_heads=2)
    assert random.getstate() == state
    keras.utils.set_random_seed(1)
    direct = SASRec(**config.to_dict()).get_weights()
    keras.utils.set_random_seed(1)
    SASRecConfig(num_items=10, hidden_dim=8, num_heads=2)
    built = config.build_model().get_weights()
    assert len(direct) == len(built) and all(np.array_equal(a, b) for a, b in zip(direct, built))


def test_task_composed_from_an_encoder_equals_the_flat_form():
    keras.utils.set_random_seed(3)
    flat = SASRec(num_items=12, max_len=5, hidden_dim=8, num_heads=2, loss="gbce", gbce_t=0.5)
    keras.utils.set_random_seed(3)
    encoder = SASRecEncoder(
        num_items=12, max_len=5, hidden_dim=8, num_heads=2, dropout=0.2, name="encoder"
    )
    composed = SASRec(encoder=encoder, loss="gbce", gbce_t=0.5)
    assert composed.encoder is encoder
    # Same settings, weights in the same order under the same paths (the
    # models' own names differ).
    unnamed = [{k: v for k, v in m.get_config().items() if k != "name"} for m in (composed, flat)]
    assert unnamed[0] == unnamed[1]
    paths = [[w.path.split("/", 1)[1] for w in m.weights] for m in (composed, flat)]
    assert paths[0] == paths[1]
    ids = np.array([[0, 0, 3, 4, 5]], np.int32)
    np.testing.assert_array_equal(np_(composed(ids)), np_(flat(ids)))
    # The encoder's settings read through the task.
    assert (composed.num_items, composed.max_len, composed.hidden_dim) == (12, 5, 8)
    assert (composed.num_heads, composed.position_embedding, composed.loss_name) == (
        2,
        "learned",
        "gbce",
    )
    with pytest.raises(ValueError, match=r"either encoder=SASRecEncoder\(\.\.\.\) or the encoder"):
        SASRec(encoder=encoder, num_items=12)
    with pytest.raises(ValueError, match=r"received encoder=12"):
        SASRec(12)


def test_get_config_nests_the_serialized_encoder():
    model = SASRec(num_items=9, max_len=4, hidden_dim=4, loss="bce")
    config = model.get_config()
    assert config["encoder"]["registered_name"] == "sasrec>SASRecEncoder"
    assert config["encoder"]["config"]["num_items"] == 9
    assert "num_items" not in config  # said once, by the encoder
    assert {k: config[k] for k in ("loss", "num_negatives", "gbce_t", "loss_denominator")} == {
        "loss": "bce",
        "num_negatives": 1,
        "gbce_t": 0.75,
        "loss_denominator": None,
    }


def _flat_config(model: SASRec) -> dict:
    """The get_config of a SASRec saved before the encoder was nested."""
    base = keras.Model.get_config(model)
    return {**base, **SASRecConfig.from_dict(model.get_config()).to_dict()}


def test_from_config_accepts_the_flat_form_saved_before(tmp_path):
    import json
    import zipfile

    keras.utils.set_random_seed(4)
    model = SASRec(num_items=11, max_len=5, hidden_dim=8, num_heads=2, num_blocks=1, loss="bce")
    clone = SASRec.from_config(_flat_config(model))
    assert clone.get_config() == model.get_config()
    # A .keras file whose config.json has the flat form loads with its weights.
    model.save(tmp_path / "nested.keras")
    with zipfile.ZipFile(tmp_path / "nested.keras") as source:
        files = {name: source.read(name) for name in source.namelist()}
    saved = json.loads(files["config.json"])
    saved["config"] = _flat_config(model)
    files["config.json"] = json.dumps(saved).encode()
    with zipfile.ZipFile(tmp_path / "flat.keras", "w") as target:
        for name, data in files.items():
            target.writestr(name, data)
    loaded = keras.saving.load_model(tmp_path / "flat.keras")
    ids = np.array([[0, 1, 2, 3, 4]], np.int32)
    np.testing.assert_array_equal(np_(loaded(ids)), np_(model(ids)))


def test_model_file_saved_by_the_flat_config_code_still_loads():
    # Saved by the SASRec of before the encoder was nested (flat get_config).
    from pathlib import Path

    data = Path(__file__).parent / "data"
    loaded = keras.saving.load_model(data / "sasrec_flat_config.keras")
    assert isinstance(loaded, SASRec)
    assert SASRecConfig.from_dict(loaded.get_config()) == SASRecConfig(
        num_items=6, max_len=4, hidden_dim=4, num_blocks=1, num_heads=2, dropout=0.0, loss="bce"
    )
    out = np_(loaded(np.array([[0, 1, 2, 3]], np.int32)))
    # Same weights, same function: equal up to float32 round-off (oneDNN, on by
    # default on AVX-512 CPUs, sums in another order than the saving machine).
    np.testing.assert_allclose(
        out, np.load(data / "sasrec_flat_config_output.npy"), rtol=1e-6, atol=1e-6
    )


def test_call_accepts_ids_or_batch_dict(model):
    ids = np.array([[0, 0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10]], np.int32)
    batch = {"item_ids": ids, "positives": ids, "negatives": ids[..., None]}
    np.testing.assert_array_equal(np_(model(ids)), np_(model(batch)))
    assert model(ids).shape == (2, 6, 8)
    assert model(ids[:, 3:]).shape == (2, 3, 8)  # any width <= max_len


def test_score_last_is_last_state_dot_item_table(model):
    ids = np.array([[0, 0, 1, 2, 3, 4], [0, 0, 0, 0, 0, 9]], np.int32)
    scores = np_(model.score_last(ids))
    assert scores.shape == (2, 41) and scores.dtype == np.float32
    assert np.all(scores[:, 0] == -np.inf)
    expected = np_(model(ids))[:, -1] @ np_(model.item_embeddings).T
    np.testing.assert_allclose(scores[:, 1:], expected[:, 1:], rtol=1e-5, atol=1e-6)


def numpy_top_k(scores, histories, k, exclude, deny, allow):
    scores = scores.copy()
    scores[:, 0] = -np.inf
    for row in range(len(scores)):
        if exclude[row]:
            scores[row, histories[row][histories[row] > 0]] = -np.inf
        scores[row, deny[row][deny[row] > 0]] = -np.inf
        allowed = allow[row][allow[row] > 0]
        if allowed.size:
            keep = np.zeros(scores.shape[1], bool)
            keep[allowed] = True
            scores[row, ~keep] = -np.inf
    order = np.argsort(-scores[:, 1:], axis=1, kind="stable")[:, :k] + 1
    top = np.take_along_axis(scores, order, 1)
    return np.where(np.isfinite(top), order, 0), top


def test_top_k_with_exclusions_equals_numpy(model):
    rng = np.random.default_rng(0)
    histories = np.array(
        [[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 7], [0, 0, 0, 9, 9, 9]], np.int32
    )
    deny = rng.integers(0, 41, size=(4, 5)).astype(np.int32)
    allow = np.zeros((4, 6), np.int32)
    allow[1] = [11, 12, 13, 14, 0, 0]
    allow[3] = [9, 30, 31, 0, 0, 0]  # 9 is in the history: excluded anyway
    exclude = np.array([True, True, False, True])
    ids, scores = model.top_k(histories, 5, exclude, deny, allow)
    expected_ids, expected_scores = numpy_top_k(
        np_(model.score_last(histories)), histories, 5, exclude, deny, allow
    )
    np.testing.assert_array_equal(np_(ids), expected_ids)
    np.testing.assert_allclose(np_(scores), expected_scores, rtol=1e-6)
    assert np_(ids)[3].tolist()[2:] == [0, 0, 0]  # only 30 and 31 are eligible
    assert np.all(np_(scores)[3, 2:] == -np.inf)


def test_top_k_defaults_bounds_and_unknown_ids(model):
    histories = np.array([[0, 0, 0, 1, 2, 3]], np.int32)
    ids, scores = model.top_k(histories, 100)
    assert ids.shape == (1, 40)  # k is capped at N
    assert sorted(np_(ids)[0][:37].tolist()) == list(range(4, 41))
    assert np_(ids)[0][37:].tolist() == [0, 0, 0]
    kept, _ = model.top_k(histories, 3, exclude_history=False, deny_ids=np.array([[-5, 99]]))
    expected = np.argsort(-np_(model.score_last(histories))[0, 1:])[:3] + 1
    np.testing.assert_array_equal(np_(kept)[0], expected)
    with pytest.raises(ValueError, match="k must be >= 1"):
        model.top_k(histories, 0)


def test_attention_weights(model):
    ids = np.array([[0, 0, 1, 2, 3, 4], [0, 0, 0, 0, 0, 0]], np.int32)
    weights = np_(model.attention_weights(ids))
    assert weights.shape == (2, 6)
    np.testing.assert_allclose(weights[0].sum(), 1.0, rtol=1e-6)
    assert np.all(weights[0, :2] == 0) and np.all(weights[1] == 0)


@pytest.mark.filterwarnings("ignore:Your input ran out of data")
def test_train_step_traced_once_for_varying_widths():
    traces = []

    class Counting(SASRec):
        def train_step(self, data):
            traces.append(1)  # runs when traced, not per step
            return super().train_step(data)

    model = Counting(num_items=12, max_len=8, hidden_dim=8, num_blocks=1, loss="bce")
    model.compile(optimizer="adam")
    rng = np.random.default_rng(0)

    def batches():
        for width in (8, 3, 5, 8, 2, 6):
            ids = rng.integers(0, 13, size=(4, width)).astype(np.int32)
            yield {
                "item_ids": ids,
                "positives": np.roll(ids, -1, axis=1),
                "negatives": rng.integers(1, 13, size=(4, width, 1)).astype(np.int32),
            }

    spec = {
        "item_ids": tf.TensorSpec((None, None), tf.int32),
        "positives": tf.TensorSpec((None, None), tf.int32),
        "negatives": tf.TensorSpec((None, None, 1), tf.int32),
    }
    dataset = tf.data.Dataset.from_generator(batches, output_signature=spec)
    history = model.fit(dataset, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][-1])
    assert len(traces) == 1
