"""The Flight SQL JDBC driver from pytest: a JVM in the test process (JPype) with the driver
jar that dev/jdbc-driver.sh fetches (see docs/decisions/0005-jdbc-tests.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration import leaks

from tests.integration.conftest import PASSWORD, USER, RunningNode

JARS = sorted((Path(__file__).resolve().parents[2] / ".cache" / "jdbc").glob("flight-sql-jdbc-driver-*.jar"))


def start_jvm(jpype: Any) -> None:
    """The test process's one JVM, with the driver on its class path."""
    import jpype.config
    import jpype.imports  # noqa: F401 - lets Python import Java packages (java.sql, ...)

    # the driver's gRPC threads never end: a JVM destroyed at exit would wait for them forever
    jpype.config.destroy_jvm = False
    if not jpype.isJVMStarted():
        # the driver's Arrow memory needs java.nio opened to it on Java 17
        jpype.startJVM("--add-opens=java.base/java.nio=ALL-UNNAMED", classpath=[str(JARS[-1])],
                       convertStrings=True)


@pytest.fixture(scope="module")
def jvm() -> Any:
    jpype = pytest.importorskip("jpype")
    if not JARS:
        pytest.skip("the Flight SQL JDBC driver is not in .cache/jdbc (dev/jdbc-driver.sh fetches it)")
    with leaks.session_resources():  # one JVM per process, for the whole session
        start_jvm(jpype)
    return jpype


def jdbc_connect(node: RunningNode, user: str = USER, password: str = PASSWORD, **properties: str) -> Any:
    """A java.sql.Connection to the node, as a BI tool opens one (user and password properties)."""
    from java.sql import DriverManager
    from java.util import Properties

    props = Properties()
    props.setProperty("user", user)
    props.setProperty("password", password)
    props.setProperty("useEncryption", "false")
    for key, value in properties.items():
        props.setProperty(key, value)
    hostport = node.uri.split("://", 1)[1]
    return DriverManager.getConnection(f"jdbc:arrow-flight-sql://{hostport}", props)


def jdbc_rows(result_set: Any) -> list[dict[str, Any]]:
    """Every row of a ResultSet by column label (getObject), and the ResultSet closed."""
    meta = result_set.getMetaData()
    labels = [meta.getColumnLabel(i + 1) for i in range(meta.getColumnCount())]
    rows = []
    while result_set.next():
        rows.append({label: result_set.getObject(label) for label in labels})
    result_set.close()
    return rows
