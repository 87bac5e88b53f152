"""The pipeline on the real files in ../shared/data (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sasrec.data.cleaning import prepare
from sasrec.data.encoding import build_vocabulary, encode_sequences
from sasrec.data.readers import load_interactions
from sasrec.data.splitting import leave_one_out, temporal_split
from sasrec.data.windows import training_windows

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"

pytestmark = pytest.mark.realdata


def _need(relative: str) -> Path:
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"{path} not available")
    return path


def _check_no_training_event_after_targets(split) -> None:
    train = split.train
    last_train = {
        u: float(train.timestamps[train.offsets[i + 1] - 1])
        for i, u in enumerate(train.user_ids)
        if train.offsets[i + 1] > train.offsets[i]
    }
    for cases in (split.valid, split.test):
        for i, user in enumerate(cases.user_ids):
            assert last_train.get(user, -np.inf) <= cases.target_timestamps[i]
            history_ts = cases.histories.timestamps[
                cases.histories.offsets[i] : cases.histories.offsets[i + 1]
            ]
            assert history_ts.size == 0 or history_ts.max() <= cases.target_timestamps[i]


def test_movielens_100k():
    df, report = load_interactions(_need("ml-100k"), preset="ml-100k")
    df, report = prepare(df, report=report)
    assert (report.stats["users"], report.stats["items"], report.stats["events"]) == (
        943,
        1682,
        100_000,
    )
    seqs = encode_sequences(df, build_vocabulary(df))
    split = leave_one_out(seqs)
    assert len(split.test) == 943
    _check_no_training_event_after_targets(split)
    temporal = temporal_split(seqs)
    assert float(temporal.train.timestamps.max()) <= temporal.info["valid_cutoff"]
    assert float(temporal.valid.target_timestamps.min()) > temporal.info["valid_cutoff"]
    assert float(temporal.test.target_timestamps.min()) > temporal.info["test_cutoff"]
    _check_no_training_event_after_targets(temporal)


def test_amazon_games_sasrec_format():
    df, report = load_interactions(_need("amazon-games/Video.txt"), preset="sasrec")
    df, report = prepare(df, report=report)
    assert (report.stats["users"], report.stats["items"], report.stats["events"]) == (
        31_013,
        23_715,
        287_107,
    )
    vocab = build_vocabulary(df)
    seqs = encode_sequences(df, vocab)
    split = leave_one_out(seqs)
    _check_no_training_event_after_targets(split)
    inputs, positives = training_windows(split.train, 50)
    targets = int(np.maximum(split.train.lengths - 1, 0).sum())
    assert int((positives != 0).sum()) == targets
    assert inputs.shape[0] >= len(split.train) - int((split.train.lengths < 2).sum())


def test_amazon_musical_instruments_json():
    path = _need("amazon-musical-instruments/Musical_Instruments.json")
    df, report = load_interactions(path, preset="amazon")
    df, report = prepare(df, report=report)
    assert (report.stats["users"], report.stats["items"], report.stats["events"]) == (
        1_429,
        900,
        10_261,
    )
    split = leave_one_out(encode_sequences(df, build_vocabulary(df)))
    _check_no_training_event_after_targets(split)
