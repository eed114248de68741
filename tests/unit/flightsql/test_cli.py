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
    from flightsql.serve_options import OPTIONS
    from flightsql.settings import FILE_KEYS, env_name

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in OPTIONS:
        assert option.flag in text
        assert f"file: {FILE_KEYS[option.name]}; env: {env_name(option.name)})" in text
    assert "(default: 127.0.0.1;" in text and "(default: local[*];" in text and "(default: 512m;" in text
    assert "--config FILE" in text and "FLIGHTSQL_CONFIG" in text


def test_serve_reports_a_bad_settings_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "node.conf"
    config.write_text("spark.flight.prot 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "flightsql.cli", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "unknown setting spark.flight.prot (did you mean spark.flight.port?)" in result.stderr
    assert "Traceback" not in result.stderr


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
