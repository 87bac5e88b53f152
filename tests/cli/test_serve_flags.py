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
