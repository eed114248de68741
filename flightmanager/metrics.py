"""Prometheus metrics of a node: what it serves and what it holds.

Exposed by whatever HTTP endpoint the process runs (``prometheus_client``'s default
registry); the figures show how results spread over the nodes.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ROWS_SERVED = Counter("flightsql_result_rows_served", "Result rows streamed to clients", ["node"])
BYTES_SERVED = Counter("flightsql_result_bytes_served", "Result bytes (Arrow IPC) streamed to clients", ["node"])
ROWS_RECEIVED = Counter("flightsql_result_rows_received", "Result rows committed from executor pushes", ["node"])
MEMORY_HELD = Gauge("flightsql_spool_memory_bytes", "Result bytes held in memory", ["node"])
DISK_HELD = Gauge("flightsql_spool_disk_bytes", "Result bytes spilled to disk", ["node"])
