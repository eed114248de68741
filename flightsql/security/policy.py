"""Who may do what with which tables: a policy file after Apache Ranger's resource model.

A policy file is JSON::

    {
      "groups": {"analysts": ["alice", "carol"]},
      "policies": [
        {"name": "analysts read sales", "groups": ["analysts"],
         "catalog": "spark_catalog", "schema": "sales*", "table": "*", "privileges": ["select"]},
        {"name": "bob owns his sandbox", "users": ["bob"], "schema": "bob_*",
         "privileges": ["select", "modify", "create", "drop"]},
        {"name": "nobody reads salaries", "users": ["*"], "schema": "hr", "table": "salaries",
         "privileges": ["select"], "deny": true},
        {"name": "operators", "users": ["root"], "privileges": ["admin"]}
      ]
    }

A policy names users and groups (``"*"``: every user) and a resource: catalog, schema and
table patterns (``*`` and ``?`` wildcards, case-insensitive like Spark's identifiers;
an absent pattern is ``*``).  Privileges are ``select``, ``modify`` (insert, update,
delete, merge, truncate, append), ``create``, ``drop`` and ``admin`` (everything,
including ALTER, and seeing every user's queries when it covers every table).  A user is
allowed what an allow policy grants and no deny policy takes away (deny overrides, as
in Ranger); whatever no policy grants is refused.  Schemas themselves are the resource
``<catalog>.<schema>.*`` (CREATE and DROP DATABASE).
"""

from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from flightsql.errors import PermissionDenied
from flightsql.security.plan import Access, PlanFacts, Privilege, TableName

log = logging.getLogger(__name__)

ANY = "*"
_POLICY_KEYS = {"name", "users", "groups", "catalog", "schema", "table", "privileges", "deny"}
_FILE_KEYS = {"groups", "policies"}


class PolicyError(ValueError):
    """The policy file is malformed; the message names the file and the policy."""


def _matches(pattern: str, value: str) -> bool:
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


@dataclass(frozen=True)
class Rule:
    name: str
    users: frozenset[str]
    groups: frozenset[str]
    catalog: str
    schema: str
    table: str
    privileges: frozenset[Privilege]
    deny: bool

    def applies_to(self, user: str, groups: frozenset[str]) -> bool:
        return ANY in self.users or user in self.users or bool(self.groups & groups)

    def covers(self, table: TableName) -> bool:
        return (_matches(self.catalog, table.catalog) and _matches(self.schema, table.schema)
                and _matches(self.table, table.table))

    def grants(self, privilege: Privilege) -> bool:
        return privilege in self.privileges or Privilege.ADMIN in self.privileges


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    groups: dict[str, frozenset[str]]  # user -> groups
    #: groups a directory (LDAP) puts the user in, besides the file's
    directory: Callable[[str], frozenset[str]] | None = None

    def groups_of(self, user: str) -> frozenset[str]:
        own = self.groups.get(user, frozenset())
        return own if self.directory is None else own | self.directory(user)

    def allows(self, user: str, privilege: Privilege, table: TableName) -> bool:
        groups = self.groups_of(user)
        relevant = [r for r in self.rules if r.applies_to(user, groups) and r.covers(table) and r.grants(privilege)]
        return any(not r.deny for r in relevant) and not any(r.deny for r in relevant)

    def may_see(self, user: str, catalog: str, schema: str | None = None, table: str | None = None) -> bool:
        """Whether ``user`` has any privilege on something at or inside this catalog/schema/table."""
        groups = self.groups_of(user)
        for rule in self.rules:
            if rule.deny or not rule.applies_to(user, groups) or not _matches(rule.catalog, catalog):
                continue
            if schema is not None and not _matches(rule.schema, schema):
                continue
            if table is not None and not _matches(rule.table, table):
                continue
            if table is None or any(
                self.allows(user, p, TableName(catalog, schema or "", table)) for p in Privilege
            ):
                return True
        return False

    @classmethod
    def load(cls, path: Path) -> Policy:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise PolicyError(f"cannot read policy file {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise PolicyError(f"{path}: not valid JSON: {exc}") from None
        return cls.parse(doc, str(path))

    @classmethod
    def parse(cls, doc: Any, source: str = "policy") -> Policy:
        if not isinstance(doc, dict):
            raise PolicyError(f"{source}: a policy file is a JSON object with 'groups' and 'policies'")
        unknown = set(doc) - _FILE_KEYS
        if unknown:
            raise PolicyError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}; expected groups, policies")
        members: dict[str, set[str]] = {}
        groups = doc.get("groups", {})
        if not isinstance(groups, dict):
            raise PolicyError(f"{source}: 'groups' maps a group name to a list of users")
        for group, users in groups.items():
            for user in _names(users, f"{source}: group {group!r}"):
                members.setdefault(user, set()).add(group)
        policies = doc.get("policies", [])
        if not isinstance(policies, list):
            raise PolicyError(f"{source}: 'policies' is a list of policies")
        rules = tuple(_rule(p, f"{source}: policy {i + 1}", set(groups)) for i, p in enumerate(policies))
        return cls(rules, {user: frozenset(g) for user, g in members.items()})


def _names(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(f"{where}: expected a list of names")
    return list(value)


def _rule(doc: Any, where: str, known_groups: set[str]) -> Rule:
    if not isinstance(doc, dict):
        raise PolicyError(f"{where}: a policy is a JSON object")
    name = doc.get("name")
    where = f"{where} ({name})" if isinstance(name, str) else where
    unknown = set(doc) - _POLICY_KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; expected "
                          f"{', '.join(sorted(_POLICY_KEYS))}")
    users = _names(doc.get("users", []), f"{where}: users")
    groups = _names(doc.get("groups", []), f"{where}: groups")
    if not users and not groups:
        raise PolicyError(f"{where}: names no users and no groups")
    missing = set(groups) - known_groups
    if missing:
        raise PolicyError(f"{where}: unknown group(s) {', '.join(sorted(missing))}")
    patterns = {}
    for key in ("catalog", "schema", "table"):
        value = doc.get(key, ANY)
        if not isinstance(value, str) or not value:
            raise PolicyError(f"{where}: {key} is a name or a pattern with * and ?")
        patterns[key] = value
    names = _names(doc.get("privileges"), f"{where}: privileges")
    known = {p.value: p for p in Privilege}
    wrong = [n for n in names if n.lower() not in known]
    if wrong:
        raise PolicyError(f"{where}: unknown privilege(s) {', '.join(wrong)}; one of {', '.join(known)}")
    deny = doc.get("deny", False)
    if not isinstance(deny, bool):
        raise PolicyError(f"{where}: deny is true or false")
    return Rule(str(name or where), frozenset(users), frozenset(groups), patterns["catalog"], patterns["schema"],
                patterns["table"], frozenset(known[n.lower()] for n in names), deny)


_VERBS = {
    Privilege.SELECT: "select from", Privilege.MODIFY: "modify", Privilege.CREATE: "create",
    Privilege.DROP: "drop", Privilege.ADMIN: "administer",
}


class Authorizer:
    """Enforces a policy; without one (``policy=None``) every user may use every table."""

    def __init__(self, policy: Policy | None) -> None:
        self.policy = policy

    @classmethod
    def from_file(cls, path: Path | None, directory: Callable[[str], frozenset[str]] | None = None) -> Authorizer:
        """The policy in ``path``; ``directory``: where users' groups come from besides it."""
        if path is None:
            log.warning("no authorization policy (--policy): every user may read, change and drop every table")
            return cls(None)
        policy = replace(Policy.load(path), directory=directory)
        log.info("authorization policy %s: %d policies", path, len(policy.rules))
        return cls(policy)

    def check(self, user: str, accesses: Iterable[Access]) -> None:
        if self.policy is None:
            return
        for access in accesses:
            if not self.policy.allows(user, access.privilege, access.table):
                if not self.can_see(user, access.table.catalog, access.table.schema, access.table.table):
                    # do not confirm that what the user may not see exists
                    raise PermissionDenied(f"{user} may not {_VERBS[access.privilege]} {access.table}: "
                                           "no policy grants it (or it does not exist)")
                raise PermissionDenied(f"{user} may not {_VERBS[access.privilege]} {access.table}")

    def authorize(self, user: str, facts: PlanFacts) -> None:
        """The Gate's check of a statement's tables."""
        self.check(user, facts.accesses)

    def can_see(self, user: str, catalog: str, schema: str | None = None, table: str | None = None) -> bool:
        return self.policy is None or self.policy.may_see(user, catalog, schema, table)

    def is_admin(self, user: str) -> bool:
        """Admin of everything: sees every user's queries on the status page."""
        return self.policy is not None and self.policy.allows(user, Privilege.ADMIN, TableName(ANY, ANY, ANY))
