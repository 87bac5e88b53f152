"""`sasrec train --prepared`: the streaming run end to end, its errors and its strategies."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sasrec.artifact import load_model_dir
from sasrec.cli import main
from sasrec.data.prepared_stream import PreparedStream
from sasrec.vocabulary import ItemVocabulary
from tests.training.test_distribution import MIRRORED, _env, _losses, _run_workers

MODEL = [
    *("--hidden-dim", "16", "--num-blocks", "1", "--num-heads", "1", "--max-len", "10"),
    *("--loss", "bce", "--dropout", "0", "--bucket-multiple", "10"),
    *("--epochs", "2", "--verbose", "2", "--no-tensorboard", "--bootstrap", "10"),
    *("--max-valid-users", "100", "--no-sampled-eval", "--shuffle-buffer", "64"),
]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("streaming")
    out = root / "prep"
    argv = ["data", "prepare", "--out", str(out), "--synthetic-users", "300"]
    argv += ["--synthetic-items", "100", "--shards", "3", "--rows-per-file", "40"]
    assert main(argv) == 0
    return out


def test_a_run_from_prepared_publishes_a_model_that_recommends(prepared: Path, tmp_path) -> None:
    out = tmp_path / "m"
    assert main(["train", "--out", str(out), "--prepared", str(prepared), *MODEL]) == 0
    artifact = load_model_dir(out / "1")
    assert artifact.vocabulary == ItemVocabulary.load(prepared / "vocabulary.json")
    # Training holds the vocabulary as its text; publishing writes that text.
    stream = PreparedStream.open(prepared)
    items = json.loads((prepared / "manifest.json").read_text())["num_items"]
    assert stream.vocabulary.num_items == items and stream.vocabulary._parsed is None
    assert (out / "1" / "vocabulary.json").read_text() == stream.vocabulary.to_json()
    ids, scores = artifact.model.top_k(np.array([[0, 0, 1, 2, 3] * 2], np.int32), k=5)
    assert np.asarray(ids).shape == (1, 5) and np.all(np.isfinite(np.asarray(scores)))
    history = json.loads((out / "1" / "history.json").read_text())
    manifest = json.loads((prepared / "manifest.json").read_text())
    lengths = np.repeat(manifest["train_lengths"]["length"], manifest["train_lengths"]["users"])
    assert history["training_windows"] == int((-(-(np.maximum(lengths - 1, 0)) // 10)).sum())
    training = json.loads((out / "1" / "training.json").read_text())
    assert training["data"]["prepared"] == str(prepared)
    assert training["train"]["shuffle_buffer"] == 64


@pytest.mark.parametrize("damage", ["garbage", "missing"])
def test_a_bad_or_missing_shard_is_exit_2_with_the_file(
    prepared: Path, tmp_path: Path, capsys, damage: str
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(prepared, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    victim = copy / manifest["files"][1]
    if damage == "garbage":
        victim.write_bytes(b"PAR1 truncated")
    else:
        victim.unlink()
    out = tmp_path / "m"
    assert main(["train", "--out", str(out), "--prepared", str(copy), *MODEL]) == 2
    err = capsys.readouterr().err
    assert str(victim) in err and "Traceback" not in err
    assert not (out / "1").exists()


@pytest.mark.slow
def test_mirrored_and_two_workers_stream_like_one_device(prepared: Path, tmp_path: Path) -> None:
    base = ["-m", "sasrec.cli", "train", "--prepared", str(prepared), *MODEL]
    one = tmp_path / "one"
    result = subprocess.run(
        [sys.executable, *base, "--out", str(one), "--batch-size", "16"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    mirrored = tmp_path / "mirrored"
    result = subprocess.run(
        [sys.executable, str(script), *base[2:], "--out", str(mirrored), "--batch-size", "8"]
        + ["--strategy", "mirrored"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "strategy: mirrored, 2 replica(s)" in result.stdout
    assert _losses(mirrored) == pytest.approx(_losses(one), rel=1e-4)
    two = tmp_path / "two"
    argv = [*base, "--out", str(two), "--batch-size", "8", "--strategy", "multi-worker"]
    outputs = _run_workers(argv, 2)
    assert "worker 1 of 2; global batch 16" in outputs[1]
    assert _losses(two) == pytest.approx(_losses(one), rel=1e-4)
