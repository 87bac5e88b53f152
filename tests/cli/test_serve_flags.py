"""`sasrec serve` flags: the token rule and the bind default, through the real command line."""

from __future__ import annotations

from sasrec.cli import main
from sasrec.cli.main import build_parser


def test_empty_auth_token_with_the_environment_token_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SASREC_AUTH_TOKEN", "s3cret")
    assert main(["serve", "--model", str(tmp_path), "--auth-token", ""]) == 2
    err = capsys.readouterr().err
    assert "SASREC_AUTH_TOKEN" in err and "Traceback" not in err


def test_serve_binds_loopback_by_default():
    args = build_parser().parse_args(["serve", "--model", "models"])
    assert args.host == "127.0.0.1"


def test_retrieval_and_version_flags_default_to_one_version_and_auto():
    args = build_parser().parse_args(["serve", "--model", "models"])
    assert (args.retrieval, args.keep_versions, args.canary_percent) == ("auto", 1, 0.0)
    assert args.version_label == []


def test_bad_version_flags_exit_2_naming_the_flag(tmp_path, capsys):
    bad = [
        ["--retrieval", "ann", "--engine", "tensorflow"],
        ["--canary-percent", "150"],
        ["--keep-versions", "0"],
        ["--version-label", "beta=3"],
    ]
    for flags in bad:
        assert main(["serve", "--model", str(tmp_path), *flags]) == 2, flags
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert any(
            name in err
            for name in ("retrieval", "canary_percent", "keep_versions", "--version-label")
        ), err
