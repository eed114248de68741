"""The authorization policy: grants, denials, patterns, groups, admins, malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from flightsql.errors import PermissionDenied
from flightsql.security.plan import Access, PlanFacts, Privilege, TableName
from flightsql.security.policy import Authorizer, Policy, PolicyError

DOC = {
    "groups": {"analysts": ["alice", "carol"]},
    "policies": [
        {"name": "analysts read sales", "groups": ["analysts"], "catalog": "spark_catalog", "schema": "sales*",
         "privileges": ["select"]},
        {"name": "bob's sandbox", "users": ["bob"], "schema": "bob_?", "privileges": ["select", "modify", "create", "drop"]},
        {"name": "nobody reads salaries", "users": ["*"], "schema": "sales_eu", "table": "salaries",
         "privileges": ["select"], "deny": True},
        {"name": "operators", "users": ["root"], "privileges": ["admin"]},
    ],
}
POLICY = Policy.parse(DOC)


def t(schema: str, table: str, catalog: str = "spark_catalog") -> TableName:
    return TableName(catalog, schema, table)


@pytest.mark.parametrize(
    ("user", "privilege", "table", "allowed"),
    [
        ("alice", Privilege.SELECT, t("sales", "orders"), True),
        ("carol", Privilege.SELECT, t("SALES_EU", "Orders"), True),  # identifiers are case-insensitive
        ("alice", Privilege.MODIFY, t("sales", "orders"), False),
        ("alice", Privilege.SELECT, t("hr", "people"), False),  # nothing grants it
        ("alice", Privilege.SELECT, t("sales", "orders", catalog="other"), False),
        ("alice", Privilege.SELECT, t("sales_eu", "salaries"), False),  # deny overrides the group's grant
        ("bob", Privilege.DROP, t("bob_1", "scratch"), True),
        ("bob", Privilege.DROP, t("bob_12", "scratch"), False),  # ? is one character
        ("bob", Privilege.ADMIN, t("bob_1", "scratch"), False),
        ("root", Privilege.DROP, t("hr", "people"), True),  # admin implies all
        ("root", Privilege.SELECT, t("sales_eu", "salaries"), False),  # the deny is for every user
        ("mallory", Privilege.SELECT, t("sales", "orders"), False),
    ],
)
def test_grants_and_denials(user: str, privilege: Privilege, table: TableName, allowed: bool) -> None:
    assert POLICY.allows(user, privilege, table) is allowed


def test_what_a_user_may_see() -> None:
    assert POLICY.may_see("alice", "spark_catalog")
    assert POLICY.may_see("alice", "spark_catalog", "sales")
    assert not POLICY.may_see("alice", "spark_catalog", "hr")
    assert not POLICY.may_see("alice", "spark_catalog", "sales_eu", "salaries")
    assert POLICY.may_see("alice", "spark_catalog", "sales_eu", "orders")
    assert not POLICY.may_see("mallory", "spark_catalog")


def test_admins_are_admins_of_everything() -> None:
    authorizer = Authorizer(POLICY)
    assert authorizer.is_admin("root")
    assert not authorizer.is_admin("bob") and not authorizer.is_admin("alice")
    assert not Authorizer(None).is_admin("root")


def test_a_refusal_names_user_privilege_and_table() -> None:
    authorizer = Authorizer(POLICY)
    facts = PlanFacts(accesses=(Access(Privilege.SELECT, t("sales", "orders")), Access(Privilege.DROP, t("sales", "orders"))))
    with pytest.raises(PermissionDenied, match="alice may not drop spark_catalog.sales.orders") as info:
        authorizer.authorize("alice", facts)
    assert info.value.code is grpc.StatusCode.PERMISSION_DENIED


def test_a_refusal_does_not_confirm_what_the_user_may_not_see() -> None:
    with pytest.raises(PermissionDenied, match="or it does not exist"):
        Authorizer(POLICY).check("alice", [Access(Privilege.SELECT, t("hr", "people"))])


def test_without_a_policy_everything_is_allowed() -> None:
    Authorizer(None).check("anyone", [Access(Privilege.DROP, t("hr", "people"))])
    assert Authorizer(None).can_see("anyone", "spark_catalog", "hr", "people")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "JSON object"),
        ({"policy": []}, "unknown key"),
        ({"policies": [{"users": ["a"], "privileges": ["read"]}]}, "unknown privilege"),
        ({"policies": [{"users": ["a"], "privileges": ["select"], "tabel": "x"}]}, "unknown key"),
        ({"policies": [{"privileges": ["select"]}]}, "no users and no groups"),
        ({"policies": [{"groups": ["ghosts"], "privileges": ["select"]}]}, "unknown group"),
        ({"policies": [{"users": ["a"], "privileges": ["select"], "deny": "yes"}]}, "deny is true or false"),
        ({"policies": [{"users": "a", "privileges": ["select"]}]}, "list of names"),
        ({"policies": [{"users": ["a"], "privileges": ["select"], "schema": ""}]}, "schema"),
    ],
)
def test_malformed_policies_are_refused(doc: object, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Policy.parse(doc)


def test_a_file_is_named_in_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text("{not json")
    with pytest.raises(PolicyError, match=str(path)):
        Policy.load(path)
    path.write_text(json.dumps(DOC))
    assert Policy.load(path) == POLICY
