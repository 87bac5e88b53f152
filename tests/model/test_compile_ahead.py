"""CompileAhead: XLA widths compiled on a thread, the same training as plain XLA.

Real TensorFlow training on a tiny model (no mocks): the widths the planner
predicts are the dataset's, the background compile leaves the real variables
alone, and a run through the dispatching train function gives the losses and
weights of the plain ``jit_compile=True`` run.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from sasrec.data.dataset import epoch_widths, make_training_dataset
from sasrec.models import SASRec
from sasrec.models.compile_ahead import CompileAhead
from sasrec.optimizers import FusedAdam

NUM_ITEMS = 40
MAX_LEN = 8
BATCH = 4


def _windows() -> tuple[np.ndarray, np.ndarray]:
    """18 left-padded windows of lengths 1..8, so several bucket widths occur."""
    rng = np.random.default_rng(3)
    inputs = np.zeros((18, MAX_LEN), np.int32)
    positives = np.zeros((18, MAX_LEN), np.int32)
    for row in range(18):
        length = 1 + row % MAX_LEN
        items = rng.integers(1, NUM_ITEMS + 1, length + 1)
        inputs[row, MAX_LEN - length :] = items[:-1]
        positives[row, MAX_LEN - length :] = items[1:]
    return inputs, positives


def _dataset(seed: int = 0):
    inputs, positives = _windows()
    return make_training_dataset(
        inputs, positives, NUM_ITEMS, BATCH, num_negatives=1, seed=seed, exclude_seen=True
    )


def _model(steps_per_execution: int = 2) -> SASRec:
    keras.utils.set_random_seed(7)
    model = SASRec(
        num_items=NUM_ITEMS, hidden_dim=8, num_blocks=1, num_heads=1, max_len=MAX_LEN,
        dropout=0.3, loss="bce", num_negatives=1,
    )  # fmt: skip
    model.compile(
        optimizer=FusedAdam(learning_rate=0.01),
        jit_compile=True,
        steps_per_execution=steps_per_execution,
    )
    return model


class _Losses(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.values: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.values.append(float(logs["loss"]))


def test_epoch_widths_are_the_widths_the_dataset_yields():
    inputs, positives = _windows()
    iterator = iter(_dataset(seed=5).repeat(2))
    for epoch in (0, 1):
        planned = epoch_widths(positives, BATCH, seed=5, epoch=epoch).tolist()
        seen = [int(next(iterator)["item_ids"].shape[1]) for _ in planned]
        assert seen == planned
    # Lengths 1..8 in batches of 4 sorted by length: more than one width.
    assert len(set(planned)) > 1


def test_background_compile_leaves_the_variables_alone_then_trains_as_plain_xla():
    reference = _model()
    plain_losses = _Losses()
    reference.fit(_dataset(), epochs=2, callbacks=[plain_losses], verbose=0, shuffle=False)

    model = _model()
    dataset = _dataset()
    before = [np.array(v) for v in model.variables + model.optimizer.variables]
    widths = epoch_widths(_windows()[1], BATCH, seed=0).tolist()
    ahead = CompileAhead(model, dataset.element_spec, BATCH, widths + widths[:1], MAX_LEN)
    ahead.start()
    ahead.stop_when_done()
    assert ahead.compiled == list(dict.fromkeys(widths))
    assert ahead.ready_widths() == sorted(set(widths))
    for old, new in zip(before, model.variables + model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(old, np.array(new))
    # Every step under XLA from the first one, with the thread's programs.
    losses = _Losses()
    model.fit(dataset, epochs=2, callbacks=[ahead.callback(), losses], verbose=0, shuffle=False)
    assert ahead.all_ready_epoch == 1
    np.testing.assert_allclose(losses.values, plain_losses.values, rtol=2e-4)
    for got, want in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    assert int(model.optimizer.iterations.numpy()) == int(reference.optimizer.iterations.numpy())


@pytest.mark.slow
def test_plain_steps_while_compiling_give_the_losses_of_plain_xla():
    """The thread compiles during fit: the first steps take the plain graph."""
    reference = _model()
    plain_losses = _Losses()
    reference.fit(_dataset(), epochs=3, callbacks=[plain_losses], verbose=0, shuffle=False)
    model = _model()
    dataset = _dataset()
    widths = sorted(set(epoch_widths(_windows()[1], BATCH, seed=0).tolist()))
    ahead = CompileAhead(model, dataset.element_spec, BATCH, widths, MAX_LEN)
    losses = _Losses()
    model.fit(dataset, epochs=3, callbacks=[ahead.callback(), losses], verbose=0, shuffle=False)
    np.testing.assert_allclose(losses.values, plain_losses.values, rtol=2e-4)
    for got, want in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_without_compile_steps_run_the_plain_graph():
    """No width ready: every step takes the plain graph, and training still learns."""
    model = _model()
    dataset = _dataset()
    ahead = CompileAhead(model, dataset.element_spec, BATCH, [], MAX_LEN)
    losses = _Losses()
    model.fit(dataset, epochs=4, callbacks=[ahead.callback(), losses], verbose=0, shuffle=False)
    assert ahead.compiled == []
    assert ahead.ready_widths() == []
    assert ahead.all_ready_epoch is None
    assert losses.values[-1] < losses.values[0]


def test_bad_arguments_are_refused():
    model = _model()
    spec = _dataset().element_spec
    with pytest.raises(ValueError, match=r"widths must be in 1\.\.8"):
        CompileAhead(model, spec, BATCH, [9], MAX_LEN)
    with pytest.raises(ValueError, match="batch_size >= 1"):
        CompileAhead(model, spec, 0, [2], MAX_LEN)
    plain = SASRec(num_items=NUM_ITEMS, hidden_dim=8, num_blocks=1, max_len=MAX_LEN, loss="bce")
    plain.compile(optimizer="adam", jit_compile=False)
    with pytest.raises(ValueError, match="jit_compile=True"):
        CompileAhead(plain, spec, BATCH, [2], MAX_LEN)


def test_sasrec_train_compiles_ahead_and_publishes(tmp_path, capsys):
    """The whole job with compile-ahead: a version is published, the widths are the plan's."""
    from sasrec.training.options import DataOptions, TrainOptions
    from sasrec.training.run import run_training

    data = DataOptions(synthetic_users=150, synthetic_items=60, min_user=3, min_item=2)
    model = {"hidden_dim": 16, "num_blocks": 1, "num_heads": 1, "max_len": 12, "loss": "bce"}
    train = TrainOptions(epochs=2, batch_size=32, verbose=2, tensorboard=False, bootstrap=20)
    version = run_training(tmp_path / "m", data, model, train)
    assert version is not None and (version / "model.keras").exists()
    line = [x for x in capsys.readouterr().out.splitlines() if "compiled on a thread" in x]
    assert len(line) == 1
    compiled = [int(w) for w in line[0].split("[")[1].split("]")[0].split(",") if w.strip()]
    assert set(compiled) <= {1, 2, 3, 4, 6, 8, 12}
    ready = json.loads((version / "history.json").read_text())["xla_all_ready_epoch"]
    assert ready is None or 1 <= ready <= 2


def test_in_place_compile_leaves_every_variable_bit_identical_and_copies_nothing():
    """The first widths compile on the real variables: weights, moments, seeds, iterations kept."""
    model = _model()
    dataset = _dataset()
    before = [np.array(v) for v in model.variables + model.optimizer.variables]
    # Two widths in place, the third on the thread.
    widths = sorted(set(epoch_widths(_windows()[1], BATCH, seed=0).tolist()), reverse=True)[:3]
    assert len(widths) == 3
    ahead = CompileAhead(model, dataset.element_spec, BATCH, widths, MAX_LEN, in_place=2)
    variables_before = len(model.variables)
    ahead.start()
    # The in-place widths are ready when start() returns, before any step.
    assert ahead.compiled[:2] == widths[:2]
    assert set(widths[:2]) <= set(ahead.ready_widths())
    ahead.stop_when_done()
    assert ahead.compiled == widths
    assert len(model.variables) == variables_before
    assert int(model.optimizer.iterations.numpy()) == 0
    for old, new in zip(before, model.variables + model.optimizer.variables, strict=True):
        np.testing.assert_array_equal(old, np.array(new))


def test_in_place_widths_only_for_a_model_past_the_size_threshold(monkeypatch):
    from sasrec.models import compile_ahead

    model = _model()
    # The tiny model (a few KB of weights and moments) keeps the thread.
    assert compile_ahead.in_place_widths(model, [8, 4, 2]) == 0
    size = sum(
        int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
        for v in model.trainable_variables + model.optimizer.variables
    )
    monkeypatch.setattr(compile_ahead, "IN_PLACE_MIN_BYTES", size)
    assert compile_ahead.in_place_widths(model, [8, 4, 2]) == 3
    monkeypatch.setattr(compile_ahead, "IN_PLACE_MIN_BYTES", size + 1)
    assert compile_ahead.in_place_widths(model, [8, 4, 2]) == 0


def test_no_in_place_compile_when_the_optimizer_moves_weights_without_a_gradient():
    """Weight decay changes the weights on a zero gradient: those widths go to the thread."""
    keras.utils.set_random_seed(7)
    model = SASRec(num_items=NUM_ITEMS, hidden_dim=8, num_blocks=1, max_len=MAX_LEN, loss="bce")
    model.compile(optimizer=keras.optimizers.AdamW(weight_decay=0.1), jit_compile=True)
    ahead = CompileAhead(model, _dataset().element_spec, BATCH, [8, 4], MAX_LEN, in_place=2)
    ahead._compile_in_place([8, 4])
    assert ahead.compiled == [] and ahead.ready_widths() == []
