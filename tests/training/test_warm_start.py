"""``sasrec train --init-from``: old ids keep their rows and meaning, new ids get new rows."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from sasrec.artifact import TRAINING_FILE, load_model_dir
from sasrec.cli import main
from sasrec.config import SASRecConfig
from sasrec.models import SASRec
from sasrec.training.warm_start import copy_base_weights, extended_vocabulary, warm_config
from sasrec.vocabulary import ItemVocabulary


def item_table(model: SASRec) -> np.ndarray:
    (table,) = [w for w in model.weights if w.shape[0] == model.encoder.num_items + 1]
    return np.asarray(table.numpy())


def test_extended_vocabulary_keeps_old_indices_and_appends_new_items() -> None:
    base = ItemVocabulary(["c", "a", "x"])
    fresh = ItemVocabulary(["a", "b", "c", "d"])
    merged = extended_vocabulary(base, fresh)
    assert merged.item_ids == ["c", "a", "x", "b", "d"]
    assert [merged.index(i) for i in ("c", "a", "x")] == [1, 2, 3]


def test_copy_base_weights_copies_every_weight_and_the_old_rows() -> None:
    keras.utils.set_random_seed(1)
    base = SASRec(num_items=5, max_len=4, hidden_dim=8, num_blocks=1, num_heads=2)
    base.build()
    keras.utils.set_random_seed(2)
    target = SASRec(num_items=9, max_len=4, hidden_dim=8, num_blocks=1, num_heads=2)
    target.build()
    fresh_rows = item_table(target)[6:].copy()
    assert copy_base_weights(target, base, base_num_items=5) == 5
    np.testing.assert_array_equal(item_table(target)[:6], item_table(base))
    np.testing.assert_array_equal(item_table(target)[6:], fresh_rows)
    others = {w.path: w.numpy() for w in base.weights if w.shape[0] != 6}
    for w in target.weights:
        if w.path in others:
            np.testing.assert_array_equal(w.numpy(), others[w.path])
    wider = SASRec(num_items=9, max_len=4, hidden_dim=16, num_blocks=1, num_heads=2)
    wider.build()
    with pytest.raises(ValueError, match="shape"):
        copy_base_weights(wider, base, base_num_items=5)


def test_warm_config_keeps_the_architecture() -> None:
    base = SASRecConfig(num_items=5, hidden_dim=8, loss_denominator=3.5)
    config, rest = warm_config(base, {"loss": "gbce", "dropout": 0.2}, num_items=7)
    assert (config.num_items, config.hidden_dim, config.loss_denominator) == (7, 8, None)
    assert rest == {"loss": "gbce"}
    with pytest.raises(ValueError, match=r"hidden_dim=16 \(base: 8\)"):
        warm_config(base, {"hidden_dim": 16}, num_items=7)


TINY = [
    "--min-user", "3", "--min-item", "1", "--hidden-dim", "16", "--num-blocks", "1",
    "--max-len", "12", "--batch-size", "16", "--no-tensorboard", "--no-sampled",
    "--bootstrap", "10", "--epochs", "1", "--verbose", "0",
]  # fmt: skip


def test_init_from_extends_the_vocabulary_and_starts_from_the_base_rows(tmp_path: Path) -> None:
    root = tmp_path / "models"
    base_data = ["--synthetic-users", "120", "--synthetic-items", "40"]
    assert main(["train", "--out", str(root), *TINY, *base_data]) == 0
    base = load_model_dir(root / "1")
    # A learning rate of 1e-9 leaves the weights where the warm start put them.
    new_data = ["--synthetic-users", "150", "--synthetic-items", "55", "--synthetic-seed", "1"]
    argv = ["train", "--out", str(root), *TINY, *new_data, "--init-from", str(root), "--lr", "1e-9"]
    assert main(argv) == 0
    update = load_model_dir(root / "2")
    old_ids = base.vocabulary.item_ids
    assert update.vocabulary.item_ids[: len(old_ids)] == old_ids
    new_ids = update.vocabulary.item_ids[len(old_ids) :]
    assert new_ids and not set(new_ids) & set(old_ids)
    old_table, new_table = item_table(base.model), item_table(update.model)
    np.testing.assert_allclose(new_table[: len(old_ids) + 1], old_table, atol=1e-5)
    fresh = new_table[len(old_ids) + 1 :]
    assert np.abs(fresh[:, None, :] - old_table[None, 1:, :]).max(axis=-1).min() > 1e-3
    training = json.loads((root / "2" / TRAINING_FILE).read_text())
    assert training["train"]["init_from"] == str(root)
    # The architecture cannot change on a warm start: exit 2, nothing published.
    assert main([*argv, "--hidden-dim", "32"]) == 2
    assert not (root / "3").exists()
