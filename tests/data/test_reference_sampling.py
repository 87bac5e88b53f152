"""The SASRec reference's training sampler: negatives outside the user's items, newest windows.

Small hand-made users whose expected windows and allowed negatives are
written out; the training job's wiring of both options (in memory and
``--prepared``) at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sasrec.cli import main
from sasrec.cli.main import build_parser
from sasrec.cli.train_flags import train_options_from_args
from sasrec.data.dataset import epoch_batches, make_training_dataset
from sasrec.data.item_sets import ItemSets
from sasrec.data.negatives import sample_negatives
from sasrec.data.prepared import read_prepared
from sasrec.data.prepared_stream import PreparedStream
from sasrec.data.user_sequences import UserSequences
from sasrec.data.windows import training_windows, window_counts, window_owners
from sasrec.training.options import TrainOptions

# User "a": 7 training items, two windows of 3; user "b": 2 items, one window;
# user "c": one item, no window.
SEQS = UserSequences(["a", "b", "c"], [0, 7, 9, 10], [1, 2, 3, 4, 5, 6, 7, 8, 2, 9])
NUM_ITEMS = 11


def test_item_sets_membership_by_hand() -> None:
    sets = ItemSets.from_csr(SEQS.offsets, SEQS.items, NUM_ITEMS)
    rows = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    items = np.array([1, 7, 8, 8, 2, 1, 9, 11])
    assert sets.contains(rows, items).tolist() == [1, 1, 0, 1, 1, 0, 1, 0]
    # Broadcast: one row against a (rows, draws) array.
    grid = sets.contains(np.array([[0], [1]]), np.array([[3, 8], [3, 8]]))
    assert grid.tolist() == [[True, False], [False, True]]
    padded = ItemSets.from_rows(np.array([[0, 0, 4], [5, 5, 0]]), NUM_ITEMS)
    assert padded.keys.tolist() == [4, 12 + 5]  # padding ignored, duplicates once
    assert not ItemSets.from_rows(np.zeros((2, 3), int), 4).contains(np.array([0]), np.array([1]))
    with pytest.raises(ValueError, match=r"1\.\.11"):
        ItemSets.from_csr(np.array([0, 1]), np.array([12]), NUM_ITEMS)


def test_newest_windows_by_hand() -> None:
    assert window_counts(SEQS.lengths, 3).tolist() == [2, 1, 0]
    assert window_counts(SEQS.lengths, 3, newest_only=True).tolist() == [1, 1, 0]
    assert window_owners(SEQS.lengths, 3).tolist() == [0, 0, 1]
    assert window_owners(SEQS.lengths, 3, newest_only=True).tolist() == [0, 1]
    inputs, positives = training_windows(SEQS, 3)
    assert inputs.tolist() == [[1, 2, 3], [4, 5, 6], [0, 0, 8]]
    assert positives.tolist() == [[2, 3, 4], [5, 6, 7], [0, 0, 2]]
    inputs, positives = training_windows(SEQS, 3, newest_only=True)
    assert inputs.tolist() == [[4, 5, 6], [0, 0, 8]]
    assert positives.tolist() == [[5, 6, 7], [0, 0, 2]]
    # A window as long as the user: nothing is dropped.
    every = training_windows(SEQS, 6)
    newest = training_windows(SEQS, 6, newest_only=True)
    np.testing.assert_array_equal(every[0], newest[0])


def test_negatives_outside_the_users_whole_sequence() -> None:
    rng = np.random.default_rng(0)
    sets = ItemSets.from_csr(SEQS.offsets, SEQS.items, NUM_ITEMS)
    # Rows of users a, b, a: a may draw 8, 9, 10, 11; b all but 8 and 2.
    positives = np.array([[2, 3, 4], [0, 0, 2], [5, 6, 7]])
    neg = sample_negatives(positives, NUM_ITEMS, 50, rng, exclude_sets=sets, owners=[0, 1, 0])
    assert neg.shape == (3, 3, 50)
    assert set(neg[0].ravel()) == set(neg[2].ravel()) == {8, 9, 10, 11}
    assert set(neg[1].ravel()) == {1, 3, 4, 5, 6, 7, 9, 10, 11}
    # One item left outside the user's set: forced.
    one = ItemSets.from_csr(np.array([0, 2]), np.array([1, 2]), 3)
    forced = sample_negatives(np.array([[2, 1]]), 3, 4, rng, exclude_sets=one, owners=[0])
    assert forced.ravel().tolist() == [3] * 8
    with pytest.raises(ValueError, match="owners"):
        sample_negatives(positives, NUM_ITEMS, 1, rng, exclude_sets=sets)


@pytest.mark.parametrize("per_sequence", [False, True])
def test_history_excludes_more_than_the_window_for_a_long_user(per_sequence: bool) -> None:
    """User a's newest window [4, 5, 6] -> [5, 6, 7]: the window may draw 1, 2, 3, history not."""
    inputs, positives = training_windows(SEQS, 3)
    owners = window_owners(SEQS.lengths, 3)
    sets = ItemSets.from_csr(SEQS.offsets, SEQS.items, NUM_ITEMS)
    drawn: dict[str, set] = {"window": set(), "history": set()}
    for mode, options in (
        ("window", {"exclude_seen": True}),
        ("history", {"history": sets, "owners": owners}),
    ):
        for epoch in range(20):
            rng = np.random.default_rng(epoch)
            batches = epoch_batches(
                inputs,
                positives,
                NUM_ITEMS,
                3,
                20,
                rng,
                shuffle=False,
                negatives_per_sequence=per_sequence,
                **options,
            )
            negatives = next(batches)["negatives"]
            drawn[mode] |= set(negatives[1].ravel())  # user a's newest window
    assert drawn["history"] == {8, 9, 10, 11}
    assert {1, 2, 3} <= drawn["window"] and not drawn["window"] & {4, 5, 6, 7}


def test_dataset_history_needs_the_owner_of_every_window() -> None:
    inputs, positives = training_windows(SEQS, 3)
    sets = ItemSets.from_csr(SEQS.offsets, SEQS.items, NUM_ITEMS)
    with pytest.raises(ValueError, match="owners"):
        make_training_dataset(inputs, positives, NUM_ITEMS, 2, 1, seed=0, history=sets)
    with pytest.raises(ValueError, match="owners"):
        make_training_dataset(
            inputs, positives, NUM_ITEMS, 2, 1, seed=0, history=sets, owners=np.array([0])
        )


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "prep"
    argv = ["data", "prepare", "--out", str(out), "--synthetic-users", "200"]
    argv += ["--synthetic-items", "80", "--shards", "2", "--rows-per-file", "60"]
    assert main(argv) == 0
    return out


def test_streamed_newest_windows_equal_the_in_memory_ones(prepared: Path) -> None:
    max_len = 5
    stream = PreparedStream.open(prepared)
    inputs, positives = training_windows(read_prepared(prepared).split.train, max_len, True)
    streamed = [
        np.concatenate([x, y], axis=1)
        for file in stream.files
        for x, y in stream.file_windows(file, max_len, users=25, newest_only=True)
    ]
    rows = np.concatenate(streamed)
    expected = np.concatenate([inputs, positives], axis=1)
    assert len(inputs) < len(training_windows(read_prepared(prepared).split.train, max_len)[0])
    # The same windows, in file order instead of user order.
    assert sorted(map(tuple, rows.tolist())) == sorted(map(tuple, expected.tolist()))
    assert stream.epoch_size(max_len, newest_only=True) == (
        len(inputs),
        int(np.count_nonzero(positives)),
    )


TRAIN = [
    *("--hidden-dim", "8", "--num-blocks", "1", "--num-heads", "1", "--max-len", "5"),
    *("--loss", "bce", "--epochs", "1", "--verbose", "0", "--no-tensorboard"),
    *("--bootstrap", "10", "--no-sampled-eval", "--trained-windows", "newest"),
]


def _trained_newest_windows(prepared: Path, run: Path) -> dict:
    users = read_prepared(prepared).split.train.lengths
    history = json.loads((run / "1" / "history.json").read_text())
    assert history["training_windows"] == int(np.count_nonzero(users >= 2))
    training = json.loads((run / "1" / "training.json").read_text())
    assert training["train"]["trained_windows"] == "newest"
    return training["train"]


def test_training_in_memory_with_the_reference_sampler(prepared: Path, tmp_path: Path) -> None:
    # From the log the PREPARED folder was made of: one window per user.
    argv = ["--synthetic-users", "200", "--synthetic-items", "80", "--negatives", "history"]
    assert main(["train", "--out", str(tmp_path / "m"), *argv, *TRAIN]) == 0
    assert _trained_newest_windows(prepared, tmp_path / "m")["negatives"] == "history"


@pytest.mark.slow
def test_training_streamed_newest_windows(prepared: Path, tmp_path: Path) -> None:
    assert main(["train", "--out", str(tmp_path / "m"), "--prepared", str(prepared), *TRAIN]) == 0
    assert _trained_newest_windows(prepared, tmp_path / "m")["negatives"] == "window"


def test_history_negatives_from_prepared_are_refused_with_exit_2(
    prepared: Path, tmp_path: Path, capsys
) -> None:
    argv = ["train", "--out", str(tmp_path / "m"), "--prepared", str(prepared)]
    assert main([*argv, *TRAIN, "--negatives", "history"]) == 2
    err = capsys.readouterr().err
    assert "--negatives history" in err and "--prepared" in err and "Traceback" not in err
    assert not (tmp_path / "m" / "1").exists()


def test_sampler_flags_and_their_spellings() -> None:
    def options(*flags: str):
        return train_options_from_args(build_parser().parse_args(["train", "--out", "m", *flags]))

    assert (options().negatives, options().trained_windows) == ("window", "all")
    assert options("--negatives", "unseen").negatives == "window"  # the older spelling
    assert options("--negatives", "history", "--trained-windows", "newest").trained_windows == (
        "newest"
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--out", "m", "--trained-windows", "oldest"])
    with pytest.raises(ValueError, match="negatives must be one of"):
        TrainOptions(negatives="user")


@pytest.mark.slow
def test_the_command_compiles_ahead_on_its_own_inter_op_thread(tmp_path: Path) -> None:
    """``sasrec train`` configures TensorFlow's threads first: with the run's count (2), not 1."""
    import subprocess
    import sys

    argv = [sys.executable, "-m", "sasrec.cli", "train", "--out", str(tmp_path / "m")]
    argv += ["--synthetic-users", "200", "--synthetic-items", "80", *TRAIN, "--verbose", "2"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "compiled on a thread" in done.stdout + done.stderr
    assert "one inter-op thread" not in done.stdout + done.stderr
