"""The final evaluation's randomness comes from ``eval_seed``, not the training seed.

Two tiny real trainings with training seeds 1 and 2 and one ``eval_seed``:
the popularity baseline is the same model in both (fitted on the same
sequences), so its sampled-protocol figure is equal exactly when both runs
ranked the same users against the same negatives. Another ``eval_seed``
draws other negatives, which changes that figure.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sasrec.artifact import load_model_dir
from sasrec.training import DataOptions, TrainOptions, run_training
from sasrec.training.final_evaluation import evaluate_split
from sasrec.training.preparation import prepare_data

MODEL = {"hidden_dim": 16, "num_blocks": 1, "num_heads": 1, "max_len": 10}
EVAL_SEED = 5


def _write_log(path: Path, users: int = 150, items: int = 60, length: int = 8) -> None:
    rng = np.random.default_rng(0)
    rows = ["user_id,item_id,timestamp"]
    for u in range(users):
        picks = rng.integers(1, items + 1, size=length)
        rows += [f"u{u},i{x},{1_700_000_000 + t}" for t, x in enumerate(picks)]
    path.write_text("\n".join(rows) + "\n")


def _sampled(version: Path, name: str) -> dict:
    metrics = json.loads((version / "metrics.json").read_text())
    return metrics["test"]["sampled"][name]


def test_training_seeds_share_the_evaluation_draws_of_one_eval_seed(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    _write_log(log)
    data = DataOptions(path=str(log), min_user=1, min_item=1)
    versions = []
    for seed in (1, 2):
        train = TrainOptions(
            epochs=1,
            verbose=0,
            tensorboard=False,
            bootstrap=10,
            seed=seed,
            eval_seed=EVAL_SEED,
            bucket_multiple=10,  # one batch width: one XLA compile per run
        )
        versions.append(run_training(tmp_path / f"seed{seed}", data, MODEL, train))
    first, second = (_sampled(v, "popularity") for v in versions)
    assert first["seed"] == second["seed"] == EVAL_SEED
    assert first["ndcg@10"]["value"] == second["ndcg@10"]["value"]
    assert first["hr@10"]["value"] == second["hr@10"]["value"]
    # The trained models differ: the training seed did change the training.
    assert _sampled(versions[0], "sasrec") != _sampled(versions[1], "sasrec")

    # Another eval seed: other negatives for the same popularity model.
    loaded = load_model_dir(versions[0])
    other = evaluate_split(
        loaded.model,
        prepare_data(data).split,
        loaded.config.num_items,
        loaded.config.max_len,
        bootstrap=10,
        seed=EVAL_SEED + 1,
    )["sampled"]["popularity"]
    assert other["ndcg@10"]["value"] != first["ndcg@10"]["value"]


def test_training_ranks_a_quarter_of_the_protocols_working_memory_at_a_time():
    from sasrec.evaluation._protocol import EVAL_MEMORY_BYTES, users_per_chunk
    from sasrec.training.final_evaluation import TRAINING_EVAL_MEMORY_BYTES

    assert TRAINING_EVAL_MEMORY_BYTES * 4 == EVAL_MEMORY_BYTES
    # The 30M-event log's catalogue: 3 users a chunk instead of 15.
    assert users_per_chunk(256, 703_061, TRAINING_EVAL_MEMORY_BYTES) == 3
    assert users_per_chunk(256, 703_061, EVAL_MEMORY_BYTES) == 15
