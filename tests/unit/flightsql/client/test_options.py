"""`flightsql query` options: what is refused before any server is asked."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from flightsql.cli import main, parser
from flightsql.client.errors import ExitCode, UsageError
from flightsql.client.options import resolve


class _Input(io.StringIO):
    def __init__(self, text: str = "", tty: bool = False) -> None:
        super().__init__(text)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def _args(*argv: str) -> argparse.Namespace:
    return parser().parse_args(["query", *argv])


def _resolve(*argv: str, stdin: str = "", tty: bool = False, env: dict[str, str] | None = None,
             prompt=None):  # type: ignore[no-untyped-def]
    def refuse(_: str) -> str:
        raise AssertionError("prompted for a password")

    return resolve(_args(*argv), stdin=_Input(stdin, tty), environ=env or {}, prompt=prompt or refuse)


def test_help_documents_every_option_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["query", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--uri", "--user", "--password-stdin", "--token", "--tls-root-certs", "--tls-skip-verify",
                   "--header", "--timeout", "--output", "--max-rows", "--progress", "--parallel"):
        assert option in text
    assert "(default: 100)" in text and "(default: auto)" in text
    assert "Exit codes:" in text and "4 server unreachable" in text


@pytest.mark.parametrize(("name", "fmt"), [
    ("r.parquet", "parquet"), ("r.csv", "csv"), ("r.arrow", "arrow-file"), ("R.FEATHER", "arrow-file"),
    ("r.arrows", "arrow-stream"),
])
def test_output_format_follows_the_extension(tmp_path: Path, name: str, fmt: str) -> None:
    options = _resolve("SELECT 1", "--output", str(tmp_path / name))
    assert options.output == tmp_path / name and options.output_format == fmt


@pytest.mark.parametrize("name", ["r.txt", "r.json", "result", "r.parquet.gz"])
def test_unknown_output_extension_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="cannot tell the format") as caught:
        _resolve("SELECT 1", "--output", str(tmp_path / name))
    assert caught.value.exit_code == ExitCode.USAGE
    assert ".parquet" in caught.value.message


def test_output_directory_must_exist(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such directory"):
        _resolve("SELECT 1", "-o", str(tmp_path / "missing" / "r.csv"))


def test_password_comes_from_stdin_then_environment() -> None:
    from_stdin = _resolve("SELECT 1", "--user", "alice", "--password-stdin", stdin="s3cret\nrest\n",
                          env={"FLIGHTSQL_PASSWORD": "other"})
    assert (from_stdin.user, from_stdin.password) == ("alice", "s3cret")
    from_env = _resolve("SELECT 1", "--user", "alice", env={"FLIGHTSQL_PASSWORD": "other"})
    assert from_env.password == "other"
    assert "other" not in repr(from_env)


def test_password_prompt_only_on_a_terminal() -> None:
    asked: list[str] = []
    options = _resolve("SELECT 1", "--user", "alice", tty=True, prompt=lambda p: asked.append(p) or "typed")
    assert options.password == "typed" and asked == ["password for alice: "]
    with pytest.raises(UsageError, match="FLIGHTSQL_PASSWORD"):
        _resolve("SELECT 1", "--user", "alice")


def test_password_is_never_an_option() -> None:
    with pytest.raises(SystemExit):
        _args("SELECT 1", "--user", "alice", "--password", "x")


def test_credentials_conflicts_are_refused() -> None:
    with pytest.raises(UsageError, match="either --user or --token"):
        _resolve("SELECT 1", "--user", "a", "--token", "t")
    with pytest.raises(UsageError, match="needs --user"):
        _resolve("SELECT 1", "--password-stdin", stdin="x\n")
    with pytest.raises(UsageError, match="both the SQL and the password"):
        _resolve("-", "--user", "a", "--password-stdin", stdin="x\n")


def test_token_from_option_or_environment() -> None:
    assert _resolve("SELECT 1", "--token", "abc").token == "abc"
    assert _resolve("SELECT 1", env={"FLIGHTSQL_TOKEN": "xyz"}).token == "xyz"
    assert _resolve("SELECT 1", "--user", "a", env={"FLIGHTSQL_TOKEN": "xyz", "FLIGHTSQL_PASSWORD": "p"}).token is None


def test_sql_from_stdin_and_empty_sql() -> None:
    assert _resolve("-", stdin="SELECT 2\n").sql == "SELECT 2\n"
    with pytest.raises(UsageError, match="empty"):
        _resolve("  ")


def test_uri_forms_and_tls_options(tmp_path: Path) -> None:
    assert _resolve("SELECT 1", "--uri", "db.example:31337").uri == "grpc://db.example:31337"
    with pytest.raises(UsageError, match="--uri must start with"):
        _resolve("SELECT 1", "--uri", "http://db.example:80")
    with pytest.raises(UsageError, match="need a grpc\\+tls:// URI"):
        _resolve("SELECT 1", "--tls-skip-verify")
    pem = tmp_path / "ca.pem"
    pem.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    options = _resolve("SELECT 1", "--uri", "grpc+tls://db:443", "--tls-root-certs", str(pem))
    assert options.tls and options.tls_root_certs == pem.read_bytes()
    with pytest.raises(UsageError, match="cannot read --tls-root-certs"):
        _resolve("SELECT 1", "--uri", "grpc+tls://db:443", "--tls-root-certs", str(tmp_path / "none.pem"))


def test_headers_timeout_and_limits() -> None:
    options = _resolve("SELECT 1", "--header", "X-Trace=a=b", "--header", "tenant=7", "--timeout", "2.5")
    assert options.headers == (("x-trace", "a=b"), ("tenant", "7"))
    assert options.timeout == 2.5
    assert _resolve("SELECT 1").timeout is None
    for bad in (["--header", "novalue"], ["--timeout", "-1"], ["--max-rows", "x"]):
        with pytest.raises(SystemExit):
            _args("SELECT 1", *bad)
    with pytest.raises(UsageError, match="--parallel"):
        _resolve("SELECT 1", "--parallel", "0")
