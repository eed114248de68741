#!/usr/bin/env bash
# Fetch the Flight SQL JDBC driver the JDBC tests drive (a pinned release from Maven
# Central) into .cache/jdbc with Maven. Nothing is committed; quick when it is there.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${FLIGHT_SQL_JDBC_VERSION:-18.3.0}
jar=.cache/jdbc/flight-sql-jdbc-driver-$version.jar
if [ -f "$jar" ]; then
  exit 0
fi
if ! command -v mvn >/dev/null 2>&1; then
  echo "Maven is not installed: the JDBC tests will be skipped" >&2
  exit 0
fi
mkdir -p .cache/jdbc
mvn -q -B dependency:copy -Dartifact="org.apache.arrow:flight-sql-jdbc-driver:$version" \
  -DoutputDirectory=.cache/jdbc >/dev/null || echo "could not fetch $jar: the JDBC tests will be skipped" >&2
