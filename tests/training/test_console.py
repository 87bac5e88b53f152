"""`sasrec train` shows our progress and report; TensorFlow's logs only with --log-level debug."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

# What TensorFlow's C++ runtime (and absl) write to stderr: glog-style lines
# such as "I0000 00:00:1796320102.560098  7810 cpu_feature_guard.cc:227] ...",
# "2026-12-03 17:48:01.123: I tensorflow/...] ...", and their follow-up notices.
TENSORFLOW_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:.*\] |[IWEF]\d{4} \d\d:\d\d:\d\d|.*oneDNN|.*absl::InitializeLog"
    r"|.*Type inference failed|.*cpu_feature_guard)",
    flags=re.M,
)

TINY_TRAIN = [
    "--synthetic-users", "60", "--synthetic-items", "30", "--min-user", "3", "--min-item", "2",
    "--hidden-dim", "8", "--num-blocks", "1", "--max-len", "8", "--epochs", "1",
    "--batch-size", "32", "--no-tensorboard", "--no-sampled", "--bootstrap", "10",
    "--verbose", "2",
]  # fmt: skip


def _train(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP_")}
    return subprocess.run(
        [sys.executable, "-m", "sasrec.cli", "train", "--out", str(out), *TINY_TRAIN, *extra],
        env={**env, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_train_console_shows_our_output_and_no_tensorflow_logs(tmp_path: Path) -> None:
    run = _train(tmp_path / "quiet")
    assert run.returncode == 0, run.stderr[-3000:]
    assert TENSORFLOW_LINE.findall(run.stderr) == [], run.stderr[:3000]
    # Our progress and report are all there, on stdout.
    assert "epoch 1: val NDCG@10" in run.stdout
    assert "Full ranking, history excluded" in run.stdout
    assert f"saved {tmp_path / 'quiet' / '1'}" in run.stdout


def test_log_level_debug_lets_tensorflow_logs_through(tmp_path: Path) -> None:
    run = _train(tmp_path / "debug", "--log-level", "debug")
    assert run.returncode == 0, run.stderr[-3000:]
    # The pattern above does match TensorFlow's lines: the quiet test can fail.
    assert TENSORFLOW_LINE.search(run.stderr), run.stderr[:3000]
    assert "Full ranking, history excluded" in run.stdout
