"""``--preset sasrec`` reads the paper's already filtered files as they are: no k-core.

A hand-made file in the paper's format (``user item`` per line, time order)
with users and items far below 5 events: every user and item stays, and the
users with at least 3 events (the leave-one-out rule) are the evaluated ones.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sasrec.cli.data_flags import add_data_flags, data_options_from_args
from sasrec.training.options import DataOptions
from sasrec.training.preparation import prepare_data

# user 1: 4 events, user 2: 3, user 3: 2, user 4: 1. Items 7, 8, 9 appear once.
LINES = ["1 10", "1 11", "1 12", "1 7", "2 10", "2 11", "2 8", "3 12", "3 9", "4 10"]


def _write(tmp_path: Path) -> Path:
    path = tmp_path / "Tiny.txt"
    path.write_text("\n".join(LINES) + "\n")
    return path


def test_the_preset_keeps_every_user_and_item(tmp_path: Path) -> None:
    prepared = prepare_data(DataOptions(path=str(_write(tmp_path)), preset="sasrec"))
    assert prepared.vocabulary.num_items == 6  # 10, 11, 12, 7, 8, 9
    split = prepared.split
    assert len(split.train) == 4  # every user trains
    # Users 1 and 2 have >= 3 events: their last item is the test target.
    assert len(split.test) == 2
    assert sorted(prepared.vocabulary.decode(split.test.targets)) == ["7", "8"]


def test_the_5_core_still_applies_without_the_preset_and_on_request(tmp_path: Path) -> None:
    path = _write(tmp_path)
    assert DataOptions(path=str(path)).min_user == 5
    assert DataOptions(path=str(path), preset="ml-100k").min_item == 5
    parser = argparse.ArgumentParser()
    add_data_flags(parser)
    argv = ["--data", str(path), "--preset", "sasrec"]
    options = data_options_from_args(parser.parse_args(argv))
    assert (options.min_user, options.min_item) == (1, 1)
    options = data_options_from_args(parser.parse_args([*argv, "--min-user", "3"]))
    assert (options.min_user, options.min_item) == (3, 1)
