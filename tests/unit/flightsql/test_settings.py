"""Settings: defaults, a settings file, the environment and flags, merged in that order."""

from __future__ import annotations

from pathlib import Path

import pytest

from flightsql.cli import parser
from flightsql.serve_options import OPTIONS, flags_of
from flightsql.settings import FILE_KEYS, Settings, load, read_file


def _flags(*argv: str) -> dict[str, object]:
    return flags_of(parser().parse_args(["serve", *argv]))


def test_every_setting_has_one_file_key_and_one_flag() -> None:
    names = {f for f in Settings.__dataclass_fields__ if f != "conf"}
    assert set(FILE_KEYS) == names
    assert {o.name for o in OPTIONS} == names
    assert len(set(FILE_KEYS.values())) == len(FILE_KEYS)


def test_defaults_without_any_source() -> None:
    assert load(_flags(), environ={}) == Settings()


def test_file_environment_and_flags_win_in_that_order(tmp_path: Path) -> None:
    config = tmp_path / "node.conf"
    config.write_text(
        "# a node of the analytics cluster\n"
        "spark.flight.port            40000\n"
        "spark.flight.host=0.0.0.0\n"
        "spark.flight.manager.zookeeper.url  zk1:2181,zk2:2181/flightsql\n"
        "spark.flight.spool.memoryBudget 1g   # per node\n"
        "spark.flight.demo true\n"
        "spark.master spark://master:7077\n"
        "spark.executor.memory 2g\n"
        "spark.sql.shuffle.partitions = 8\n"
    )
    environ = {"FLIGHTSQL_PORT": "40001", "FLIGHTSQL_RESULT_TTL": "30"}
    settings = load(_flags("--result-ttl", "45", "--conf", "spark.executor.memory=3g"), environ, config)
    assert settings.port == 40001  # environment over file
    assert settings.result_ttl == 45.0  # flag over environment
    assert settings.host == "0.0.0.0" and settings.demo is True
    assert settings.zookeeper == "zk1:2181,zk2:2181/flightsql"
    assert settings.memory_budget == 1 << 30
    assert settings.master == "spark://master:7077"
    # Spark settings from the file, then --conf: Spark keeps the last of a key
    assert settings.conf == (
        ("spark.executor.memory", "2g"), ("spark.sql.shuffle.partitions", "8"), ("spark.executor.memory", "3g"),
    )


def test_flags_not_given_do_not_hide_the_environment() -> None:
    settings = load(_flags(), environ={"FLIGHTSQL_PORT": "40002", "FLIGHTSQL_DEMO": "yes"})
    assert settings.port == 40002 and settings.demo is True


def test_config_file_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "node.conf"
    config.write_text("spark.flight.http.port 8080\n")
    assert load(_flags(), environ={"FLIGHTSQL_CONFIG": str(config)}).http_port == 8080


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("spark.flight.prot 1\n", "node.conf:1: unknown setting spark.flight.prot (did you mean spark.flight.port?)"),
        ("\nspark.flight.port many\n", "node.conf:2: spark.flight.port: not a valid int"),
        ("port 1\n", "node.conf:1: 'port' is not a spark.* key"),
        ("spark.flight.demo maybe\n", "spark.flight.demo: not a valid bool"),
    ],
)
def test_bad_file_lines_are_named(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "node.conf"
    config.write_text(text)
    with pytest.raises(ValueError) as raised:
        read_file(config)
    assert message in str(raised.value)


def test_missing_file_and_bad_environment_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read settings file"):
        load({}, environ={}, config=tmp_path / "absent.conf")
    with pytest.raises(ValueError, match="FLIGHTSQL_PORT: not a valid int"):
        load({}, environ={"FLIGHTSQL_PORT": "x"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"port": 70000}, "port must be a port number"),
        ({"execution_mode": "fast"}, "execution-mode must be one of auto, single, distributed"),
        ({"log_format": "xml"}, "log-format must be one of text, json"),
        ({"result_ttl": 0.0}, "result-ttl and token-ttl must be > 0"),
    ],
)
def test_check_refuses_nonsense(change: dict[str, object], message: str) -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match=message):
        replace(Settings(), **change).check()  # type: ignore[arg-type]


def test_the_sample_settings_file_is_valid() -> None:
    sample = Path(__file__).resolve().parents[3] / "dev" / "node.conf"
    values, conf = read_file(sample)
    # the sample leaves out what needs files of its own (shown there as comments)
    assert set(values) == set(FILE_KEYS) - {"demo", "secret_file", "allow_unauthenticated_remote",
                                            "internal_advertise_host", "tls_cert", "tls_key", "tls_ca",
                                            *(name for name in FILE_KEYS if name.startswith("ldap_"))}
    assert dict(conf) == {"spark.driver.memory": "2g", "spark.sql.shuffle.partitions": "16"}
    settings = load({}, environ={}, config=sample)
    assert settings.zookeeper == "localhost:2181/flightsql" and settings.http_port == 8080
