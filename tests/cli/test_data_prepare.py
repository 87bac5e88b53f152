"""`sasrec data prepare` (pandas engine) end to end, and `sasrec train --prepared`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sasrec.cli import main
from sasrec.data.prepared import read_prepared
from sasrec.training.options import DataOptions
from sasrec.training.preparation import prepare_data


def _log(path: Path) -> Path:
    # u1: 4 events with a tie at t=30 (file order breaks it), u2: 3, u3: 1 (k-core drops it),
    # one exact duplicate row.
    path.write_text(
        "user_id,item_id,timestamp\n"
        "u2,b,5\nu1,a,10\nu1,c,30\nu1,b,30\nu2,a,6\nu1,a,40\nu3,c,1\nu2,c,7\nu2,c,7\n"
    )
    return path


def test_prepare_writes_what_train_would_read(tmp_path: Path, capsys) -> None:
    log = _log(tmp_path / "log.csv")
    out = tmp_path / "prep"
    flags = ["--data", str(log), "--min-user", "2", "--min-item", "1"]
    assert main(["data", "prepare", "--out", str(out), "--shards", "3", *flags]) == 0
    assert "wrote" in capsys.readouterr().out
    data = read_prepared(out)
    # Hand-computed: users by first appearance (u2 before u1), ties by file order.
    assert data.sequences.user_ids.tolist() == ["u2", "u1"]
    assert data.vocabulary.item_ids == ["a", "b", "c"]
    assert data.sequences.to_lists() == [[2, 1, 3], [1, 3, 2, 1]]
    assert data.split.train.to_lists() == [[2], [1, 3]]
    assert data.split.test.targets.tolist() == [3, 1]
    steps = {s["name"]: s["removed"] for s in data.report.steps}
    assert steps["duplicates"] == 1 and steps["k_core"] == 1
    # The same as the in-memory path of `sasrec train --data`.
    direct = prepare_data(DataOptions(path=str(log), min_user=2, min_item=1))
    assert data.split.train == direct.split.train
    assert data.split.test.histories == direct.split.test.histories
    assert data.report.to_dict() == direct.report.to_dict()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["min_user"] == 2 and manifest["shards"] == 3


def test_bad_input_is_exit_2_with_file_and_line_and_no_folder(tmp_path: Path, capsys) -> None:
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp\nu1,i1,10\nu1,i2,soon\n")
    out = tmp_path / "prep"
    code = main(["data", "prepare", "--out", str(out), "--data", str(log), "--strict"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{log}, line 3" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == [log]


def test_existing_out_and_bad_shards_are_exit_2(tmp_path: Path, capsys) -> None:
    log = _log(tmp_path / "log.csv")
    (tmp_path / "prep").mkdir()
    assert main(["data", "prepare", "--out", str(tmp_path / "prep"), "--data", str(log)]) == 2
    assert "exists already" in capsys.readouterr().err
    argv = ["data", "prepare", "--out", str(tmp_path / "p2"), "--data", str(log), "--shards", "0"]
    assert main(argv) == 2
    assert "--shards" in capsys.readouterr().err
    assert not (tmp_path / "p2").exists()


def test_train_from_prepared_streams_what_train_from_the_log_reads(tmp_path: Path) -> None:
    # Streaming batches differ from the in-memory ones (other batch company and
    # order), so the losses differ a little; the windows, the data, the
    # evaluated users and the baselines fitted file by file are the same.
    log = tmp_path / "log.csv"
    assert main(["data", "synth", "--out", str(log), "--users", "120", "--items", "50"]) == 0
    data_flags = ["--min-user", "3", "--min-item", "2"]
    assert main(["data", "prepare", "--out", str(tmp_path / "prep"), "--data", str(log),
                 *data_flags]) == 0  # fmt: skip
    common = [
        "--hidden-dim", "16", "--num-blocks", "1", "--max-len", "10", "--batch-size", "32",
        "--epochs", "2", "--verbose", "0", "--no-tensorboard", "--no-sampled",
        "--bootstrap", "10",
    ]  # fmt: skip
    assert main(["train", "--out", str(tmp_path / "a"), "--data", str(log), *data_flags,
                 *common]) == 0  # fmt: skip
    assert main(["train", "--out", str(tmp_path / "b"), "--prepared", str(tmp_path / "prep"),
                 *common]) == 0  # fmt: skip
    a, b = ({name: json.loads((tmp_path / run / "1" / f"{name}.json").read_text())
             for name in ("history", "metrics", "popularity", "data_stats")}
            for run in ("a", "b"))  # fmt: skip
    assert a["history"]["training_windows"] == b["history"]["training_windows"] > 0
    assert len(a["history"]["loss"]) == len(b["history"]["loss"]) == 2
    # The same epoch normalisation: losses of the same scale, both falling.
    np.testing.assert_allclose(a["history"]["loss"], b["history"]["loss"], rtol=0.02)
    assert b["history"]["loss"][1] < b["history"]["loss"][0]
    assert a["popularity"] == b["popularity"]
    assert a["data_stats"] == b["data_stats"]
    ma, mb = a["metrics"], b["metrics"]
    assert ma["test"]["num_users"] == mb["test"]["num_users"] > 0
    for key in ("full/popularity/ndcg@10", "full/markov/ndcg@10", "full_incl/markov/hr@10"):
        assert ma["summary"][key] == mb["summary"][key], key


@pytest.mark.parametrize("argv", [["--prepared", "nowhere"]])
def test_train_on_a_missing_prepared_folder_is_exit_2(tmp_path: Path, capsys, argv) -> None:
    assert main(["train", "--out", str(tmp_path / "m"), "--epochs", "1", *argv]) == 2
    assert "not a PREPARED folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--spark-master", "local[2]", "--spark-remote", "sc://h:15002"], "alternatives"),
        (["--spark-remote", "sc://h:15002", "--checkpoint-dir", "/tmp/c"], "spark.checkpoint.dir"),
        ([], "needs --data"),
    ],
)
def test_spark_engine_settings_are_checked_before_spark_starts(
    tmp_path: Path, capsys, argv, message
) -> None:
    out = tmp_path / "prep"
    code = main(["data", "prepare", "--engine", "spark", "--out", str(out), *argv])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_spark_conf_must_be_key_value(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "prepare", "--out", "p", "--spark-conf", "no-equals-sign"])
    assert exit_info.value.code == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
