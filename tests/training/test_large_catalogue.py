"""Large catalogues: the full softmax is replaced or refused before any memory is spent.

The memory budget is injected with ``SASREC_SOFTMAX_BUDGET_BYTES`` (the
documented override), sized around hand-computed estimates of a tiny run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sasrec.artifact import latest_version, load_model_dir
from sasrec.cli import main
from sasrec.training.loss_choice import (
    BUDGET_ENV,
    SoftmaxTooLargeError,
    choose_loss,
    memory_budget_bytes,
    softmax_logit_bytes,
)

ITEMS = 30
MODEL_ARGV = ["--hidden-dim", "16", "--num-blocks", "1", "--num-heads", "1", "--max-len", "10"]
TRAIN_ARGV = ["--epochs", "1", "--verbose", "0", "--batch-size", "16", "--no-tensorboard"]
TRAIN_ARGV += ["--bootstrap", "10"]
# 3 tensors × batch 16 × width 10 × (30 + 1) scores × 4 bytes.
SOFTMAX_BYTES = 3 * 16 * 10 * 31 * 4  # 59,520


def write_log(path: Path, users: int = 120, length: int = 8, seed: int = 0) -> None:
    """Every one of the ITEMS items appears often enough to survive the cleaning."""
    rng = np.random.default_rng(seed)
    rows = ["user_id,item_id,timestamp"]
    for u in range(users):
        items = rng.integers(1, ITEMS + 1, size=length)
        rows += [f"u{u},item-{x},{1_700_000_000 + t * 60}" for t, x in enumerate(items)]
    path.write_text("\n".join(rows) + "\n")


def _train(tmp_path: Path, *argv: str) -> tuple[int, Path]:
    log = tmp_path / "log.csv"
    write_log(log)
    out = tmp_path / "models"
    code = main(["train", "--out", str(out), "--data", str(log), *MODEL_ARGV, *TRAIN_ARGV, *argv])
    return code, out


def test_estimate_is_three_float32_tensors_of_batch_width_catalogue() -> None:
    assert softmax_logit_bytes(batch_size=16, width=10, num_items=ITEMS) == SOFTMAX_BYTES
    # The reported case: 444,596 items, default batch 128 and width 50: 34 GB.
    assert softmax_logit_bytes(128, 50, 444_596) == 3 * 128 * 50 * 444_597 * 4 == 34_145_049_600


def test_default_loss_past_the_budget_trains_with_gbce_and_says_why(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv(BUDGET_ENV, str(SOFTMAX_BYTES - 1))
    code, out = _train(tmp_path, "--num-negatives", "8")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    line = next(x for x in captured.out.splitlines() if x.startswith("loss: gbce"))
    assert "8 negatives" in line and "t=0.75" in line
    assert f"{SOFTMAX_BYTES:,} bytes" in line and f"{SOFTMAX_BYTES - 1:,} bytes" in line
    config = load_model_dir(latest_version(out)).config
    assert (config.loss, config.num_negatives, config.gbce_t) == ("gbce", 8, 0.75)


def test_default_negatives_past_the_budget_are_gsasrecs_256() -> None:
    overrides, note = choose_loss({"max_len": 10}, ITEMS, 16, budget_bytes=SOFTMAX_BYTES - 1)
    assert overrides == {"max_len": 10, "loss": "gbce", "num_negatives": 256}
    assert note is not None and "256 negatives" in note


def test_explicit_softmax_past_the_budget_is_exit_2_with_the_numbers(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv(BUDGET_ENV, str(SOFTMAX_BYTES - 1))
    code, out = _train(tmp_path, "--loss", "softmax")
    err = capsys.readouterr().err
    assert code == 2
    assert f"{SOFTMAX_BYTES:,} bytes" in err  # the estimate
    assert f"{SOFTMAX_BYTES - 1:,} bytes" in err  # the budget
    assert "--loss gbce --num-negatives 256" in err
    assert latest_version(out) is None


def test_explicit_softmax_in_the_library_raises_before_training() -> None:
    with pytest.raises(SoftmaxTooLargeError, match="--loss gbce --num-negatives 256"):
        choose_loss({"loss": "softmax", "max_len": 10}, ITEMS, 16, budget_bytes=SOFTMAX_BYTES - 1)


def test_at_the_budget_nothing_changes(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(BUDGET_ENV, str(SOFTMAX_BYTES))
    code, out = _train(tmp_path)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "loss: gbce" not in captured.out
    config = load_model_dir(latest_version(out)).config
    assert (config.loss, config.num_negatives) == ("softmax", 1)


def test_sampled_losses_are_never_switched() -> None:
    overrides = {"loss": "bce", "max_len": 10}
    assert choose_loss(overrides, ITEMS, 16, budget_bytes=1) == (overrides, None)


def test_budget_defaults_to_a_quarter_of_physical_memory(monkeypatch) -> None:
    import os

    monkeypatch.delenv(BUDGET_ENV, raising=False)
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert memory_budget_bytes() == int(physical * 0.25)
    monkeypatch.setenv(BUDGET_ENV, "nonsense")
    with pytest.raises(ValueError, match=BUDGET_ENV):
        memory_budget_bytes()


def test_eval_user_limit_samples_past_the_score_budget() -> None:
    from sasrec.training.final_evaluation import MAX_EVAL_SCORES, eval_user_limit

    # The reported catalogue: 10^10 // 444,597 = 22,492 users per protocol.
    assert eval_user_limit(500_000, 444_596) == MAX_EVAL_SCORES // 444_597 == 22_492
    assert eval_user_limit(6_040, 3_416) == 6_040  # ML-1M: every user
    assert eval_user_limit(6_040, 3_416, max_users=100) == 100


def test_final_evaluation_on_a_user_sample_says_so(tmp_path: Path) -> None:
    from sasrec.config import SASRecConfig
    from sasrec.models import SASRec
    from sasrec.training.final_evaluation import evaluate_split
    from sasrec.training.options import DataOptions
    from sasrec.training.preparation import prepare_data

    log = tmp_path / "log.csv"
    write_log(log)
    prepared = prepare_data(DataOptions(path=str(log)))
    num_items = prepared.vocabulary.num_items
    config = SASRecConfig(num_items=num_items, hidden_dim=16, num_blocks=1, num_heads=1, max_len=10)
    model = SASRec(**config.to_dict())
    lines: list[str] = []
    total = len(prepared.split.test)
    report = evaluate_split(
        model, prepared.split, num_items, 10, sampled=False, bootstrap=50, max_users=40,
        progress=lines.append,
    )  # fmt: skip
    assert total > 40
    assert report["num_users"] == 40
    assert report["users_sampled"] == {"evaluated": 40, "of": total, "seed": 0}
    full = report["full_ranking_exclude_history"]["sasrec"]
    assert full["num_users"] == 40 and full["ndcg@10"]["ci95"] is not None
    assert any(f"40 of {total:,} users" in line for line in lines)

    everyone = evaluate_split(model, prepared.split, num_items, 10, sampled=False, bootstrap=0)
    assert everyone["num_users"] == total and "users_sampled" not in everyone


def test_report_names_the_user_sample() -> None:
    from sasrec.training.report import format_evaluation

    entry = {"value": 0.1, "ci95": [0.09, 0.11]}
    full = {
        name: {"protocol": "full_ranking", "k": 10, "num_users": 40, "exclude_history": True,
               "ndcg@10": entry, "hr@10": entry, "mrr": entry}
        for name in ("sasrec", "popularity")
    }  # fmt: skip
    evaluation = {
        "cases": "test",
        "num_users": 40,
        "users_sampled": {"evaluated": 40, "of": 1_200, "seed": 0},
        "full_ranking_exclude_history": full,
    }
    assert "40 of 1,200 users, a seeded sample" in format_evaluation(evaluation)
