"""Users are not the server: statements that reach the node's OS or JVM are refused.

Each :class:`~flightsql.security.plan.Feature` is refused to every user unless the
operator lists it in ``--allow-server-access`` (``spark.flight.sql.allowServerAccess``),
for deployments where every user is trusted with the node's own rights.  The decision
is made on the plans (:mod:`flightsql.security.plan`), before anything runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flightsql.errors import PermissionDenied
from flightsql.security.plan import Feature, PlanFacts, inspect, protected_setting

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

ALL = "all"
SETTING = "--allow-server-access"


def parse_allowed(text: str) -> frozenset[Feature]:
    """The features an operator allows, from ``a,b,c`` or ``all``; ValueError names a wrong one."""
    names = {part.strip().lower() for part in (text or "").split(",") if part.strip()}
    if ALL in names:
        return frozenset(Feature)
    known = {f.value: f for f in Feature}
    unknown = sorted(names - set(known))
    if unknown:
        raise ValueError(
            f"{SETTING}: unknown feature {', '.join(unknown)}; one of {', '.join(sorted(known))} or {ALL}"
        )
    return frozenset(known[name] for name in names)


class Gate:
    """Every statement passes here before it is prepared or run.

    ``authorize(user, facts)`` is the authorization policy's check of the tables the
    statement touches (it raises PermissionDenied); without a policy it lets all pass."""

    def __init__(
        self,
        allowed: frozenset[Feature] = frozenset(),
        authorize: Callable[[str, PlanFacts], None] = lambda user, facts: None,
    ) -> None:
        self.allowed = allowed
        self.authorize = authorize
        if allowed:
            log.warning("users may reach the server through: %s", ", ".join(sorted(f.value for f in allowed)))

    def check(
        self, spark: SparkSession, user: str, sql: str, parameter_count: int = 0, analysed_plan: Any = None
    ) -> PlanFacts:
        """Judge ``sql`` for ``user``; PERMISSION_DENIED names what was refused and why.
        ``analysed_plan``: a query's analysed JVM plan, where the caller has one."""
        facts = inspect(spark, sql, parameter_count, analysed_plan)
        self.check_facts(user, facts)
        return facts

    def check_facts(self, user: str, facts: PlanFacts) -> None:
        for reach in facts.reaches:
            if reach.feature not in self.allowed:
                log.warning("refused to %s: %s", user, reach.what)
                raise PermissionDenied(
                    f"{reach.what} is not allowed: users do not act as the server "
                    f"(an operator can allow '{reach.feature.value}' with {SETTING})"
                )
        self.authorize(user, facts)

    def check_setting(self, user: str, key: str) -> None:
        """A Spark setting a session asks for (SetSessionOptions)."""
        if protected_setting(key) and Feature.SERVER_SETTINGS not in self.allowed:
            log.warning("refused to %s: setting %s", user, key)
            raise PermissionDenied(
                f"setting {key} is not allowed: it would change how the server reaches files, classes or "
                f"other systems (an operator can allow '{Feature.SERVER_SETTINGS.value}' with {SETTING})"
            )
