"""`sasrec train` / `sasrec evaluate` end to end on tiny data (real TensorFlow training)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sasrec.artifact import latest_version, load_model_dir
from sasrec.cli import main
from sasrec.data.windows import training_windows
from sasrec.engines.scorer import Scorer
from sasrec.training.final_evaluation import evaluate_split
from sasrec.training.options import DataOptions, TrainOptions
from sasrec.training.preparation import prepare_data
from sasrec.training.run import mean_positions_per_batch, run_training

TINY_MODEL = {"hidden_dim": 16, "num_blocks": 1, "num_heads": 1, "max_len": 12, "dropout": 0.1}
TINY_DATA = DataOptions(synthetic_users=150, synthetic_items=60, min_user=3, min_item=2)


def tiny_train(**changes) -> TrainOptions:
    base = {"epochs": 2, "batch_size": 32, "verbose": 0, "tensorboard": False, "bootstrap": 50}
    return TrainOptions(**{**base, **changes})


def write_second_order_log(path: Path, users: int = 400, length: int = 14, seed: int = 0) -> None:
    """Next item = f(last two items): a first-order Markov model cannot know it."""
    rng = np.random.default_rng(seed)
    n = 24
    rows = ["user_id,item_id,timestamp"]
    for u in range(users):
        a, b = rng.integers(1, n + 1, size=2)
        seq = [int(a), int(b)]
        while len(seq) < length:
            seq.append((seq[-1] * 3 + seq[-2] * 7) % n + 1)
        rows += [f"u{u},item-{x},{1_700_000_000 + t * 60}" for t, x in enumerate(seq)]
    path.write_text("\n".join(rows) + "\n")


def test_train_artifact_reload_gives_same_scores(tmp_path: Path) -> None:
    version = run_training(tmp_path / "models", TINY_DATA, TINY_MODEL, tiny_train())
    assert version == tmp_path / "models" / "1"
    assert latest_version(tmp_path / "models") == version
    for name in (
        "model.keras",
        "vocabulary.json",
        "metrics.json",
        "data_stats.json",
        "history.json",
    ):
        assert (version / name).is_file(), name
    assert not (tmp_path / "models" / ".checkpoint").exists()
    metrics = json.loads((version / "metrics.json").read_text())
    assert 0.0 <= metrics["summary"]["full/sasrec/ndcg@10"] <= 1.0
    assert set(metrics["test"]["full_ranking_exclude_history"]) == {
        "sasrec",
        "popularity",
        "markov",
    }

    artifact = load_model_dir(version)
    histories = np.array([[0, 0, 1, 2, 3], [4, 5, 6, 7, 8]], dtype=np.int32)
    again = load_model_dir(version)
    np.testing.assert_array_equal(Scorer(artifact.model)(histories), Scorer(again.model)(histories))

    # Every position of an epoch weighs the same: the loss divides by the
    # epoch's mean valid positions per batch.
    inputs, positives = training_windows(prepare_data(TINY_DATA).split.train, 12)
    expected = np.count_nonzero(positives) / -(-len(positives) // 32)
    assert artifact.config.loss_denominator == pytest.approx(expected)
    assert expected == pytest.approx(mean_positions_per_batch(positives, 32))

    # A second run publishes version 2 beside version 1; per-batch means keep no denominator.
    second = run_training(
        tmp_path / "models", TINY_DATA, TINY_MODEL, tiny_train(epochs=1, loss_normalization="batch")
    )
    assert second.name == "2"
    assert load_model_dir(second).config.loss_denominator is None


def test_same_seed_gives_same_metrics(tmp_path: Path) -> None:
    # Also across steps_per_execution: several steps per call into TensorFlow
    # must be the very same updates as one step per call.
    model = {**TINY_MODEL, "loss": "bce"}  # an XLA-compiled step
    # One batch width: one XLA compile. Without compile-ahead, whose steps run
    # the plain graph or XLA depending on when the compile ends (float rounding).
    options = {"seed": 7, "bucket_multiple": 12, "compile_ahead": False}
    a = run_training(tmp_path / "a", TINY_DATA, model, tiny_train(**options))
    b = run_training(tmp_path / "b", TINY_DATA, model, tiny_train(**options))
    c = run_training(tmp_path / "c", TINY_DATA, model, tiny_train(**options, steps_per_execution=1))
    ma, mb, mc = (json.loads((v / "metrics.json").read_text())["summary"] for v in (a, b, c))
    assert ma == mb
    assert ma == mc
    ha, hc = (json.loads((v / "history.json").read_text()) for v in (a, c))
    assert ha["loss"] == hc["loss"]


def test_beats_both_baselines_on_sequential_data(tmp_path: Path) -> None:
    log = tmp_path / "second_order.csv"
    write_second_order_log(log)
    data = DataOptions(path=str(log), min_user=3, min_item=1)
    model = {**TINY_MODEL, "hidden_dim": 32, "dropout": 0.0}
    version = run_training(tmp_path / "m", data, model, tiny_train(epochs=25, patience=25))
    full = json.loads((version / "metrics.json").read_text())["test"]
    full = full["full_ranking_include_history"]
    ours = full["sasrec"]["ndcg@10"]["value"]
    assert ours > 1.2 * full["markov"]["ndcg@10"]["value"]
    assert ours > 2.0 * full["popularity"]["ndcg@10"]["value"]


def test_evaluate_command_reuses_training_settings(tmp_path: Path, capsys) -> None:
    version = run_training(tmp_path / "m", TINY_DATA, TINY_MODEL, tiny_train(epochs=1))
    report = tmp_path / "report.json"
    assert (
        main(["evaluate", "--model", str(version), "--bootstrap", "20", "--json", str(report)]) == 0
    )
    out = capsys.readouterr().out
    assert "Full ranking, history excluded" in out and "markov" in out
    evaluation = json.loads(report.read_text())
    artifact = load_model_dir(version)
    # Same numbers as the training job's own evaluation of the same weights.
    saved = json.loads((version / "metrics.json").read_text())["test"]
    assert evaluation["full_ranking_exclude_history"]["sasrec"]["ndcg@10"][
        "value"
    ] == pytest.approx(saved["full_ranking_exclude_history"]["sasrec"]["ndcg@10"]["value"])
    assert artifact.config.max_len == TINY_MODEL["max_len"]


def test_evaluate_split_matches_direct_protocol_call(tmp_path: Path) -> None:
    from sasrec.evaluation import evaluate_full_ranking

    version = run_training(tmp_path / "m", TINY_DATA, TINY_MODEL, tiny_train(epochs=1))
    artifact = load_model_dir(version)
    prepared = prepare_data(TINY_DATA)
    result = evaluate_split(
        artifact.model,
        prepared.split,
        artifact.config.num_items,
        12,
        sampled=False,
        bootstrap=0,
    )
    cases = prepared.split.test
    direct = evaluate_full_ranking(
        Scorer(artifact.model),
        [cases.history(i) for i in range(len(cases))],
        cases.targets,
        artifact.config.num_items,
        exclude_history=False,
        max_len=12,
        num_bootstrap=0,
    )
    got = result["full_ranking_include_history"]["sasrec"]
    assert got["ndcg@10"]["value"] == pytest.approx(direct["ndcg@10"]["value"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-len", "0"], "received max_len=0"),
        (["--batch-size", "0"], "batch_size must be an int >= 1, received batch_size=0"),
        (["--bucket-multiple", "-1"], "bucket_multiple must be None or an int >= 1"),
        (["--min-user", "1000"], "no events left"),
        (["--data", "TWO_EVENTS_PER_USER", "--min-user", "1", "--min-item", "1"], "too small"),
        (["--data", "does/not/exist.csv"], "does/not/exist.csv"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, capsys, argv, message) -> None:
    out = tmp_path / "models"
    if "TWO_EVENTS_PER_USER" in argv:
        log = tmp_path / "two.csv"
        log.write_text(
            "user_id,item_id,timestamp\n"
            + "".join(f"u{u},i{u % 3},{t}\n" for u in range(5) for t in (1, 2))
        )
        argv = [str(log) if a == "TWO_EVENTS_PER_USER" else a for a in argv]
    code = main(["train", "--out", str(out), "--epochs", "1", "--verbose", "0", *argv])
    assert code == 2
    assert message in capsys.readouterr().err
    assert latest_version(out) is None


def test_out_that_is_a_file_is_refused(tmp_path, capsys) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["train", "--out", str(target), "--epochs", "1", "--verbose", "0"]) == 2
    assert "is a file" in capsys.readouterr().err
    assert target.read_text() == "x"


def test_resume_after_kill_continues_from_checkpoint(tmp_path: Path) -> None:
    """Kill a real training process after its second epoch; --resume continues at epoch 3."""
    out = tmp_path / "models"
    argv = [
        sys.executable, "-m", "sasrec.cli", "train", "--out", str(out),
        "--synthetic-users", "300", "--synthetic-items", "80", "--min-user", "3",
        "--min-item", "2", "--hidden-dim", "16", "--num-blocks", "1", "--max-len", "12",
        "--batch-size", "16", "--epochs", "6", "--patience", "10", "--verbose", "2",
        "--no-tensorboard", "--no-sampled",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    meta = out / ".checkpoint" / "backup" / "training_metadata.json"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            if meta.exists() and json.loads(meta.read_text() or "{}").get("epoch", 0) >= 2:
                break
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint after 240 s")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert latest_version(out) is None  # nothing published by the killed run
    done_epochs = json.loads(meta.read_text())["epoch"]
    resumed = subprocess.run([*argv, "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"Epoch {done_epochs + 1}/6" in resumed.stdout
    assert "Epoch 1/6" not in resumed.stdout
    version = latest_version(out)
    assert version is not None
    records = json.loads((version / "metrics.json").read_text())["validation"]
    # The validation records of the killed epochs survive the restart.
    assert [r["epoch"] for r in records][:done_epochs] == list(range(1, done_epochs + 1))


def test_chunk_batches_option_is_validated() -> None:
    with pytest.raises(ValueError, match=r"chunk_batches must be an int >= 1, received chunk_b"):
        TrainOptions(chunk_batches=0)
    assert TrainOptions(chunk_batches=4).chunk_batches == 4


def test_bucket_multiple_option_is_validated() -> None:
    from sasrec.data.dataset import bucket_widths

    with pytest.raises(ValueError, match="bucket_multiple must be None or an int >= 1"):
        TrainOptions(bucket_multiple=0)
    assert TrainOptions(bucket_multiple=8).bucket_multiple == 8
    assert bucket_widths(50, TrainOptions(bucket_multiple=8).bucket_multiple).tolist() == [
        8, 16, 24, 32, 40, 48, 50
    ]  # fmt: skip


def test_optimizer_and_execution_options_are_validated() -> None:
    with pytest.raises(
        ValueError, match=r"adam_epsilon must be in \(0, 1\), received adam_epsilon=0"
    ):
        TrainOptions(adam_epsilon=0)
    with pytest.raises(ValueError, match="steps_per_execution=0"):
        TrainOptions(steps_per_execution=0)
    assert TrainOptions(adam_epsilon=1e-8).adam_epsilon == 1e-8
    with pytest.raises(ValueError, match="loss_normalization='sum'"):
        TrainOptions(loss_normalization="sum")
