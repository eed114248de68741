"""Users and groups from a real OpenLDAP directory: bind, wrong passwords, injection,
group mapping into the policy, TLS to the directory, and a directory that goes away."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pyarrow.flight as flight
import pytest

from flightsql.auth.ldap import LdapDirectory, LdapSettings
from tests.integration import ldap_server
from tests.integration.conftest import RunningNode, start_node, stop_node, wait_until
from tests.integration.ldap_server import ADMIN_DN, ADMIN_PASSWORD, SUFFIX, Person, Slapd

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not ldap_server.available(), reason="OpenLDAP's slapd and ldap-utils are not installed "
                       "(dev/bootstrap.sh installs them)"),
]

PEOPLE = [Person("ann", "ann-pass-1234", ("analysts",)), Person("ben", "ben-pass-5678"),
          Person("cat", "cat-pass-9012", ("analysts", "operators"))]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ldap-certs")
    subprocess.run([sys.executable, "-m", "flightsql.cli", "tls", str(directory), "--name", "directory",
                    "--host", "localhost", "--host", "127.0.0.1"], check=True, capture_output=True)
    return directory


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[Slapd]:
    server = Slapd(tmp_path_factory.mktemp("slapd"), certs / "directory.pem", certs / "directory-key.pem",
                   certs / "ca.pem").start()
    server.populate(PEOPLE)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ldap_node(tmp_path_factory: pytest.TempPathFactory, slapd: Slapd, certs: Path) -> Iterator[RunningNode]:
    work = tmp_path_factory.mktemp("ldap-node")
    password = work / "bind-password"
    password.write_text(ADMIN_PASSWORD + "\n")
    policy = work / "policy.json"
    policy.write_text(json.dumps({
        "groups": {"analysts": [], "operators": []},  # members come from the directory
        "policies": [
            {"name": "analysts read scratch", "groups": ["analysts"], "schema": "default",
             "privileges": ["select", "create", "modify", "drop"]},
        ],
    }))
    running = start_node(
        work, "--ldap-url", slapd.tls_url, "--ldap-ca", str(certs / "ca.pem"),
        "--ldap-user-base", f"ou=people,{SUFFIX}", "--ldap-bind-dn", ADMIN_DN,
        "--ldap-bind-password-file", str(password), "--ldap-group-base", f"ou=groups,{SUFFIX}",
        "--policy", str(policy), "--conf", "spark.driver.memory=768m",
    )
    yield running
    assert stop_node(running) == 0, running.log()[-3000:]


def _login(node: RunningNode, user: str, password: str) -> flight.FlightCallOptions:
    client = flight.connect(node.uri)
    return flight.FlightCallOptions(headers=[client.authenticate_basic_token(user, password)])


def test_a_directory_user_logs_in_over_ldaps_and_queries(ldap_node: RunningNode) -> None:
    import adbc_driver_flightsql.dbapi as flightsql

    with flightsql.connect(ldap_node.uri, db_kwargs={"username": "ann", "password": "ann-pass-1234"},
                           autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS default.ldap_t AS SELECT id FROM range(5)")
        cur.execute("SELECT sum(id) FROM default.ldap_t")
        assert cur.fetchall() == [(10,)]


@pytest.mark.parametrize("user, password", [
    ("ann", "wrong-password"),
    ("ann", ""),  # an empty password is an anonymous bind to LDAP: never a login
    ("nobody", "ann-pass-1234"),
    ("*", "ann-pass-1234"),
    ("ann)(uid=*", "ann-pass-1234"),
    ("*)(|(uid=*", "x"),
])
def test_wrong_passwords_unknown_users_and_injected_filters_are_refused(ldap_node: RunningNode, user: str,
                                                                       password: str) -> None:
    with pytest.raises(flight.FlightUnauthenticatedError):
        _login(ldap_node, user, password)


def test_directory_groups_decide_what_the_policy_grants(ldap_node: RunningNode) -> None:
    import adbc_driver_flightsql.dbapi as flightsql
    import adbc_driver_manager

    with flightsql.connect(ldap_node.uri, db_kwargs={"username": "cat", "password": "cat-pass-9012"},
                           autocommit=True) as conn, conn.cursor() as cur:  # an analyst
        cur.execute("CREATE TABLE IF NOT EXISTS default.ldap_group_t AS SELECT 1 AS one")
        cur.execute("SELECT one FROM default.ldap_group_t")
        assert cur.fetchall() == [(1,)]
    with flightsql.connect(ldap_node.uri, db_kwargs={"username": "ben", "password": "ben-pass-5678"},
                           autocommit=True) as conn, conn.cursor() as cur:  # in no group
        with pytest.raises(adbc_driver_manager.Error, match="ben may not select from"):
            cur.execute("SELECT one FROM default.ldap_group_t")


def test_a_directory_that_goes_away_makes_logins_unavailable_until_it_is_back(ldap_node: RunningNode,
                                                                                slapd: Slapd) -> None:
    slapd.stop()
    try:
        with pytest.raises(flight.FlightUnavailableError, match="LDAP directory does not answer"):
            _login(ldap_node, "ann", "ann-pass-1234")
    finally:
        slapd.start()
    def logs_in() -> bool:
        try:
            _login(ldap_node, "ann", "ann-pass-1234")
        except flight.FlightUnavailableError:
            return False
        return True

    wait_until(logs_in, timeout=30, what="logins once the directory is back")


def test_a_dn_pattern_binds_without_a_search(slapd: Slapd) -> None:
    """The other way to find a user, against the same directory (plain LDAP, no TLS)."""
    directory = LdapDirectory(LdapSettings(slapd.url, user_dn=f"uid={{user}},ou=people,{SUFFIX}",
                                           group_base=f"ou=groups,{SUFFIX}"))
    assert directory.verify("ben", "ben-pass-5678")
    assert not directory.verify("ben", "ann-pass-1234")
    assert not directory.verify("ben,ou=people", "ben-pass-5678")  # escaped: no such entry
    assert directory.credential("nobody") is None
    assert directory.groups("cat") == frozenset({"analysts", "operators"})
    assert directory.groups("ben") == frozenset()
