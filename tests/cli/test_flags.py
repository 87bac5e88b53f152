"""The command line's flags: one data flag group, defaults from the option dataclasses."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from sasrec.cli import main
from sasrec.cli.data_flags import data_flag_names, data_options_from_args
from sasrec.cli.dataclass_flags import field_docs
from sasrec.cli.main import build_parser
from sasrec.cli.train_flags import model_overrides_from_args, train_options_from_args
from sasrec.config import SASRecConfig
from sasrec.training.options import DataOptions, TrainOptions

# The commands that read an interaction log, with their required flags.
LOG_COMMANDS = {
    ("data", "stats"): [],
    ("data", "prepare"): ["--out", "prepared"],
    ("train",): ["--out", "models"],
    ("evaluate",): ["--model", "models/1"],
}


def _subparser(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def _data_defaults(parser: argparse.ArgumentParser) -> dict[str, object]:
    return {
        a.option_strings[0]: a.default
        for a in parser._actions
        if a.option_strings and a.option_strings[0] in data_flag_names(parser)
    }


def test_every_command_that_reads_a_log_has_the_same_data_flags_and_defaults() -> None:
    parsers = {path: _subparser(path) for path in LOG_COMMANDS}
    flags = {path: data_flag_names(p) for path, p in parsers.items()}
    defaults = {path: _data_defaults(p) for path, p in parsers.items()}
    stats = ("data", "stats")
    # Only `train` can read a PREPARED folder instead of a log.
    assert "--prepared" in flags[("train",)]
    flags[("train",)].discard("--prepared")
    defaults[("train",)].pop("--prepared")
    for path in LOG_COMMANDS:
        assert flags[path] == flags[stats], path
        assert defaults[path] == defaults[stats], path
    # The flags that had drifted apart are all there, k-core defaults as in train.
    for flag in ("--format", "--no-header", "--event-types", "--sep", "--split", "--min-user"):
        assert flag in flags[stats]
    # Not given (None): DataOptions resolves 5, or the preset's own k-core.
    assert defaults[stats]["--min-user"] is defaults[stats]["--min-item"] is None
    args = build_parser().parse_args(["data", "stats", "--data", "log.txt"])
    assert (data_options_from_args(args).min_user, data_options_from_args(args).min_item) == (5, 5)


@pytest.mark.parametrize("sep", ["tab", "\\t", "\t"])
def test_sep_tab_means_a_tab_in_every_command(sep: str) -> None:
    for path, required in LOG_COMMANDS.items():
        args = build_parser().parse_args([*path, *required, "--data", "log.txt", "--sep", sep])
        assert data_options_from_args(args).reader == {"sep": "\t"}, path


def test_no_flags_give_the_dataclass_defaults() -> None:
    args = build_parser().parse_args(["train", "--out", "models"])
    assert data_options_from_args(args) == DataOptions()
    assert train_options_from_args(args) == TrainOptions()
    expected = SASRecConfig(num_items=1).to_dict()
    del expected["num_items"]
    # Resolved by the training job from the catalogue's size when not given.
    del expected["loss"], expected["num_negatives"]
    assert model_overrides_from_args(args) == expected


def test_every_config_and_option_field_has_a_train_flag() -> None:
    dests = {a.dest for a in _subparser(("train",))._actions}
    for cls, prefix, set_elsewhere in (
        (SASRecConfig, "model_", {"num_items"}),  # from the data
        (TrainOptions, "train_", set()),
        (DataOptions, "data_", {"reader"}),  # the reader flags fill it
    ):
        for field in dataclasses.fields(cls):
            if field.name not in set_elsewhere:
                assert prefix + field.name in dests, f"{cls.__name__}.{field.name}"


def test_every_train_flag_has_help_and_shows_its_default() -> None:
    parser = _subparser(("train",))
    text = " ".join(parser.format_help().split())  # fails if a help string has a stray %
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = action.option_strings[0]
        assert action.help and len(action.help) > 20, name
        if action.required:
            assert "(required)" in action.help, name
        else:
            assert "(default: " in action.help, name
    assert "(default: 200)" in text  # --epochs, from TrainOptions
    assert "(default: softmax)" in text  # --loss, from SASRecConfig


def test_help_text_comes_from_the_dataclass_docstrings() -> None:
    parser = _subparser(("train",))
    by_flag = {a.option_strings[0]: a.help for a in parser._actions if a.option_strings}
    assert by_flag["--ffn-dim"].startswith(field_docs(SASRecConfig)["ffn_dim"])
    assert by_flag["--epochs"] == "Maximum epochs. (default: %(default)s)"


def test_flags_reach_the_options() -> None:
    argv = [
        "train", "--out", "m", "--ffn-dim", "32", "--attention-dropout", "0.1", "--norm", "post",
        "--lr", "0.01", "--no-sampled", "--negatives", "uniform", "--bucket-multiple", "8",
        "--event-types", "view,buy", "--time-col", "none", "--user-col", "0", "--no-header",
        "--loss-denominator", "12.5",
    ]  # fmt: skip
    args = build_parser().parse_args(argv)
    model = model_overrides_from_args(args)
    assert (model["ffn_dim"], model["attention_dropout"], model["norm_first"]) == (32, 0.1, False)
    assert model["loss_denominator"] == 12.5
    train = train_options_from_args(args)
    assert (train.learning_rate, train.sampled_eval, train.negatives) == (0.01, False, "uniform")
    assert train.bucket_multiple == 8
    assert (
        train_options_from_args(
            build_parser().parse_args(["train", "--out", "m", "--bucket-multiple", "0"])
        ).bucket_multiple
        is None
    )
    data = data_options_from_args(args)
    assert data.event_types == ("view", "buy")
    assert data.reader == {"header": False, "user": 0, "timestamp": None}


@pytest.mark.parametrize(
    "argv",
    [["--norm", "middle"], ["--epochs", "many"], ["--split", "random"], ["--sep", ""]],
)
def test_bad_flag_values_exit_2_with_the_flag_named(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--out", "m", *argv])
    assert exit_info.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_stats_and_train_read_a_tab_file_the_same_way(tmp_path: Path, capsys) -> None:
    # Tab separated but named .txt: without --sep it would be sniffed; --sep tab must agree.
    log = tmp_path / "log.txt"
    rows = [f"u{u}\ti{(u + t) % 4}\t{t}" for u in range(3) for t in range(1, 5)]
    log.write_text("user_id\titem_id\ttimestamp\n" + "\n".join(rows) + "\n")
    code = main(["data", "stats", "--data", str(log), "--sep", "tab", "--min-user", "1",
                 "--min-item", "1"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    # 3 users x 4 events, every item kept; leave-one-out: 2 training events per user.
    assert "result: 3 users, 4 items, 12 events" in out
    assert '"train_events": 6' in out


def test_stats_applies_the_train_k_core_by_default(tmp_path: Path, capsys) -> None:
    # u0..u4 have 5 events, u5 has 4: the default k-core (5, 5) drops u5 and its items.
    rows = [f"u{u},i{t},{t}" for u in range(5) for t in range(5)]
    rows += [f"u5,j{t},{t}" for t in range(4)]
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp\n" + "\n".join(rows) + "\n")
    assert main(["data", "stats", "--data", str(log)]) == 0
    out = capsys.readouterr().out
    assert "result: 5 users, 5 items, 25 events" in out


def test_stats_bad_file_is_exit_2_naming_the_file(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "missing.csv"
    assert main(["data", "stats", "--data", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sasrec data stats: error:") and str(missing) in err
    assert "Traceback" not in err
