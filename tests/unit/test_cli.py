"""The flightsql command line, where it needs no Spark."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flightsql.cli import main, parser


def test_serve_refuses_a_public_address_without_users() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flightsql.cli", "serve", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "without authentication" in result.stderr
    assert "--users" in result.stderr


def test_help_documents_every_option_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--host", "--port", "--master", "--conf", "--users", "--memory-budget", "--disk-budget",
                   "--result-ttl", "--allow-unauthenticated-remote", "--demo"):
        assert option in text
    assert "(default: 127.0.0.1)" in text and "(default: local[*])" in text


def test_conf_must_be_key_value() -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["serve", "--conf", "no-equals-sign"])
    args = parser().parse_args(["serve", "--conf", "spark.a=1", "--conf", "spark.b=x=y"])
    assert args.conf == [("spark.a", "1"), ("spark.b", "x=y")]


def test_users_add_from_stdin(tmp_path) -> None:  # type: ignore[no-untyped-def]
    users = tmp_path / "users"
    result = subprocess.run(
        [sys.executable, "-m", "flightsql.cli", "users", "add", str(users), "carol", "--password-stdin"],
        input="s3cret-pass\n", capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    text = users.read_text()
    assert text.startswith("carol:$argon2id$") and "s3cret-pass" not in text
