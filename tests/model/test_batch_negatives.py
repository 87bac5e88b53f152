"""Batch-shared negatives: one set of n items scored by every position of a batch."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from keras import ops

from sasrec.config import SASRecConfig
from sasrec.data.dataset import make_training_dataset
from sasrec.data.negatives import sample_batch_negatives
from sasrec.models import SASRec

np_ = ops.convert_to_numpy
NUM_ITEMS = 12

IDS = np.array([[0, 3, 4, 5], [0, 0, 7, 8]], np.int32)
POSITIVES = np.array([[0, 4, 5, 6], [0, 0, 8, 2]], np.int32)
# Item 5 is the positive of (0, 2); item 2 the positive of (1, 3).
DRAWN = np.array([[[2, 5, 9, 11]]], np.int32)


def batch_model(loss: str, num_negatives: int = 4, **kwargs) -> SASRec:
    keras.utils.set_random_seed(0)
    return SASRec(
        num_items=NUM_ITEMS,
        max_len=4,
        hidden_dim=8,
        num_blocks=1,
        dropout=0.0,
        loss=loss,
        num_negatives=num_negatives,
        negative_sharing="batch",
        **kwargs,
    )


def position_terms(model: SASRec, hidden: np.ndarray):
    """(positive score, [negative scores without the positive]) per valid position, by loops."""
    table = np_(model.item_embeddings)
    terms = []
    for b in range(POSITIVES.shape[0]):
        for t in range(POSITIVES.shape[1]):
            target = POSITIVES[b, t]
            if target == 0:
                continue
            h = hidden[b, t]
            negatives = [float(h @ table[j]) for j in DRAWN.ravel() if j != target]
            terms.append((float(h @ table[target]), negatives))
    return terms


def test_batch_gbce_equals_a_direct_computation_with_collisions_masked():
    model = batch_model("gbce", gbce_t=0.5)
    hidden = np_(model(IDS))
    loss = float(np_(model.sequence_loss(hidden, POSITIVES, DRAWN)))
    alpha = 4 / (NUM_ITEMS - 1)
    beta = alpha * (0.5 * (1 - 1 / alpha) + 1 / alpha)
    terms = position_terms(model, hidden)
    assert [len(neg) for _, neg in terms] == [4, 3, 4, 4, 3]  # two collisions masked
    expected = np.mean(
        [
            beta * math.log1p(math.exp(-pos)) + sum(math.log1p(math.exp(n)) for n in neg)
            for pos, neg in terms
        ]
    )
    assert loss == pytest.approx(expected, rel=1e-5)


def test_batch_sampled_softmax_equals_the_corrected_direct_computation():
    model = batch_model("sampled_softmax")
    hidden = np_(model(IDS))
    loss = float(np_(model.sequence_loss(hidden, POSITIVES, DRAWN)))
    # Each sampled exponential stands for (N - 1) / n of the non-positive items.
    correction = math.log((NUM_ITEMS - 1) / 4)
    expected = np.mean(
        [
            math.log(math.exp(pos) + sum(math.exp(n + correction) for n in neg)) - pos
            for pos, neg in position_terms(model, hidden)
        ]
    )
    assert loss == pytest.approx(expected, rel=1e-5)


def test_batch_sampled_softmax_over_every_other_item_is_the_full_softmax():
    """n = N - 1 items and one common positive: no correction, the exact full softmax."""
    full = SASRec(num_items=NUM_ITEMS, max_len=4, hidden_dim=8, num_blocks=1, loss="softmax")
    sampled = batch_model("sampled_softmax", num_negatives=NUM_ITEMS - 1)
    sampled.set_weights(full.get_weights())
    positives = np.where(POSITIVES > 0, 7, 0).astype(np.int32)
    everything_but_7 = np.array([[[j for j in range(1, NUM_ITEMS + 1) if j != 7]]], np.int32)
    hidden = full(IDS)
    np.testing.assert_allclose(
        np_(sampled.sequence_loss(hidden, positives, everything_but_7)),
        np_(full.sequence_loss(hidden, positives)),
        rtol=1e-5,
    )


def test_batch_negatives_equal_sequence_shared_copies():
    """(1, 1, n) for the batch gives the loss of the same set repeated per sequence."""
    for loss in ("bce", "gbce", "sampled_softmax"):
        batch = batch_model(loss)
        per_sequence = SASRec.from_config({**batch.get_config(), "negative_sharing": "sequence"})
        per_sequence.set_weights(batch.get_weights())
        hidden = batch(IDS)
        if loss == "sampled_softmax":
            # The sequence-shared softmax has no correction: compare without it.
            hidden_np = np_(hidden)
            expected = np.mean(
                [
                    math.log(math.exp(pos) + sum(math.exp(n) for n in neg)) - pos
                    for pos, neg in position_terms(batch, hidden_np)
                ]
            )
            tiled = np.repeat(DRAWN, 2, axis=0)
            value = float(np_(per_sequence.sequence_loss(hidden, POSITIVES, tiled)))
            assert value == pytest.approx(expected, rel=1e-5)
            continue
        np.testing.assert_allclose(
            np_(batch.sequence_loss(hidden, POSITIVES, DRAWN)),
            np_(per_sequence.sequence_loss(hidden, POSITIVES, np.repeat(DRAWN, 2, axis=0))),
            rtol=1e-5,
        )


def test_batch_negatives_need_fewer_than_the_catalogue():
    with pytest.raises(ValueError, match=r"num_negatives < num_items.*num_negatives=12"):
        batch_model("gbce", num_negatives=NUM_ITEMS)
    with pytest.raises(ValueError, match="num_negatives < num_items"):
        SASRecConfig(num_items=10, loss="gbce", num_negatives=10, negative_sharing="batch")
    with pytest.raises(ValueError, match="negative_sharing must be one of"):
        SASRecConfig(num_items=10, negative_sharing="user")
    # The full softmax draws nothing: the setting is inert there.
    SASRecConfig(num_items=10, loss="softmax", num_negatives=10, negative_sharing="batch")
    with pytest.raises(ValueError, match="0 < num_negatives < num_items"):
        sample_batch_negatives(5, 5, np.random.default_rng(0))


def test_sampler_draws_distinct_items_in_range():
    drawn = sample_batch_negatives(50, 49, np.random.default_rng(3))
    assert drawn.shape == (1, 1, 49) and drawn.dtype == np.int32
    values = drawn.ravel()
    assert len(set(values.tolist())) == 49 and values.min() >= 1 and values.max() <= 50
    again = sample_batch_negatives(50, 49, np.random.default_rng(3))
    np.testing.assert_array_equal(drawn, again)


def test_dataset_gives_one_set_per_batch_and_the_model_trains_under_xla():
    rng = np.random.default_rng(0)
    inputs = np.zeros((20, 4), np.int32)
    positives = np.zeros((20, 4), np.int32)
    for row in range(20):
        start = rng.integers(0, NUM_ITEMS)
        seq = (start + np.arange(5)) % NUM_ITEMS + 1
        inputs[row], positives[row] = seq[:-1], seq[1:]
    dataset = make_training_dataset(
        inputs, positives, NUM_ITEMS, batch_size=8, num_negatives=6, seed=1,
        negatives_per_batch=True,
    )  # fmt: skip
    batches = list(dataset)
    # 20 windows in batches of 8: the last is padded to 8 rows, its set stays (1, 1, 6).
    assert [tuple(b["negatives"].shape) for b in batches] == [(1, 1, 6)] * 3
    assert [b["item_ids"].shape[0] for b in batches] == [8, 8, 8]
    for b in batches:
        values = np_(b["negatives"]).ravel()
        assert len(set(values.tolist())) == 6 and values.min() >= 1 and values.max() <= NUM_ITEMS
    with pytest.raises(ValueError, match="num_negatives < num_items"):
        make_training_dataset(
            inputs, positives, NUM_ITEMS, batch_size=8, num_negatives=NUM_ITEMS, seed=1,
            negatives_per_batch=True,
        )  # fmt: skip

    model = batch_model("sampled_softmax", num_negatives=6)
    model.compile(optimizer=keras.optimizers.Adam(0.05), jit_compile=True)
    history = model.fit(dataset, epochs=8, verbose=0).history["loss"]
    assert history[-1] < 0.6 * history[0], history


def test_negative_sharing_round_trips_through_the_config():
    model = batch_model("gbce", num_negatives=5)
    again = SASRec.from_config(model.get_config())
    assert again.negative_sharing == "batch" and again.num_negatives == 5
    assert SASRecConfig.from_dict(model.get_config()).negative_sharing == "batch"


def test_compile_ahead_builds_warm_up_batches_with_the_batch_set_of_negatives():
    """The warm-up batch keeps the static (1, 1, n) shape: every width compiles ahead."""
    from sasrec.data.dataset import epoch_widths
    from sasrec.models.compile_ahead import CompileAhead

    inputs = np.zeros((12, 4), np.int32)
    positives = np.zeros((12, 4), np.int32)
    for row in range(12):
        length = 1 + row % 4
        items = (row + np.arange(length + 1)) % NUM_ITEMS + 1
        inputs[row, 4 - length :], positives[row, 4 - length :] = items[:-1], items[1:]
    dataset = make_training_dataset(
        inputs, positives, NUM_ITEMS, batch_size=4, num_negatives=6, seed=0,
        negatives_per_batch=True,
    )  # fmt: skip
    model = batch_model("gbce", num_negatives=6)
    model.compile(optimizer=keras.optimizers.Adam(0.01), jit_compile=True)
    # One width is enough to build a warm-up batch (each compile costs seconds).
    widest = max(epoch_widths(positives, 4, seed=0).tolist())
    ahead = CompileAhead(model, dataset.element_spec, 4, [widest], 4)
    ahead.start()
    ahead.stop_when_done()
    assert ahead.compiled == [widest] and ahead.ready_widths() == [widest]
