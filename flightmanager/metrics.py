"""Prometheus metrics of a node: what it runs, serves and holds.

Exposed at ``/metrics`` of the node's HTTP status server (``prometheus_client``'s
default registry, which also carries the process's CPU, memory and GC figures).
Every metric has a ``node`` label, so figures from all nodes can be summed or
compared: they show how results spread over the cluster.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# no "<name>_created" series next to every counter: they double the output and no alert uses them
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated

# -- queries (counted by the node that coordinates them) ---------------------------
QUERIES_STARTED = Counter(
    "flightsql_queries_started", "Queries and results registered, by where the result comes from "
    "(job: a Spark job pushes it to the nodes; driver: the driver holds it, e.g. metadata)", ["node", "kind"],
)
QUERIES_ENDED = Counter(
    "flightsql_queries_ended", "Queries that ended, by final state (FINISHED, FAILED, CANCELLED)", ["node", "state"],
)
QUERIES_RUNNING = Gauge("flightsql_queries_running", "Queries this node coordinates that are running now", ["node"])
QUERIES_WAITING = Gauge(
    "flightsql_queries_waiting", "Queries waiting for a slot to run on this node (see --max-running)", ["node"],
)
QUERIES_REFUSED = Counter(
    "flightsql_queries_refused", "Queries refused as busy (RESOURCE_EXHAUSTED), by why (queue_full, waited)",
    ["node", "why"],
)
QUERY_SECONDS = Histogram(
    "flightsql_query_duration_seconds", "Time from registration to the end of a query's job", ["node"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)

# -- results -------------------------------------------------------------------------
ROWS_SERVED = Counter("flightsql_result_rows_served", "Result rows streamed to clients", ["node"])
BYTES_SERVED = Counter("flightsql_result_bytes_served", "Result bytes (Arrow IPC) streamed to clients", ["node"])
ROWS_RECEIVED = Counter("flightsql_result_rows_received", "Result rows committed from executor pushes", ["node"])
PARTITIONS_PUSHED = Counter(
    "flightsql_partitions_pushed", "Partition pushes from executors, by outcome (committed; dropped: "
    "another attempt of the partition won; incomplete: the attempt failed before it finished)", ["node", "outcome"],
)

# -- spools ----------------------------------------------------------------------------
MEMORY_HELD = Gauge("flightsql_spool_memory_bytes", "Result bytes held in memory", ["node"])
DISK_HELD = Gauge("flightsql_spool_disk_bytes", "Result bytes spilled to disk", ["node"])
MEMORY_BUDGET = Gauge(
    "flightsql_spool_memory_budget_bytes", "Result bytes a node holds in memory before spilling", ["node"]
)
DISK_BUDGET = Gauge("flightsql_spool_disk_budget_bytes", "Spilled bytes a node holds before queries fail", ["node"])

# -- cluster ---------------------------------------------------------------------------
RESULT_CACHE = Counter(
    "flightsql_result_cache", "Repeated small queries: answers kept (made to keep), hits (served kept), misses",
    ["node", "outcome"],
)
DRIVER_RESTARTS = Counter(
    "flightsql_driver_restarts", "Times this node's Spark driver died and the node started again", ["node"]
)
LIVE_NODES = Gauge("flightsql_cluster_live_nodes", "Live nodes of the cluster, as this node sees them", ["node"])
