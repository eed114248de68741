"""What judging a query costs: judging it as the server does (parse, analyse with
commands left unrun, render both plans, judge them), then making its DataFrame, against
making its DataFrame alone (the analysis Spark does anyway before it plans a query), in
one Spark session, rounds alternated so that a noisy neighbour hits both alike.

    .venv/bin/python bench/gate.py [--rounds 30]

Prints the median milliseconds of each side per statement and their ratio, and writes
``bench/results/gate.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

STATEMENTS = {
    "SELECT 1": "SELECT 1",
    "join + filter": "SELECT t.a, u.b FROM bench_t t JOIN bench_u u ON t.a = u.a WHERE t.b > 10",
    "CTE + aggregate": "WITH x AS (SELECT a, count(*) AS n FROM bench_t GROUP BY a) SELECT max(n) FROM x",
    "view over a join": "SELECT * FROM bench_v WHERE a < 5",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    from pyspark.sql import SparkSession

    from flightsql.security.guard import Gate

    spark = (SparkSession.builder.master("local[2]").appName("bench-gate")
             .config("spark.ui.enabled", "false").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    spark.sql("CREATE OR REPLACE TEMPORARY VIEW bench_t AS SELECT id % 100 AS a, id AS b FROM range(1000)")
    spark.sql("CREATE OR REPLACE TEMPORARY VIEW bench_u AS SELECT id AS a, cast(id AS string) AS b FROM range(100)")
    spark.sql("CREATE OR REPLACE TEMPORARY VIEW bench_v AS SELECT t.a, u.b FROM bench_t t JOIN bench_u u ON t.a = u.a")
    gate = Gate()
    results = {}
    for name, sql in STATEMENTS.items():
        gate_ms, analysis_ms = [], []
        for round_ in range(args.rounds + 3):
            sides = [("gate", lambda: (gate.check(spark, "bench", sql), spark.sql(sql)._jdf.queryExecution().analyzed())),
                     ("analysis", lambda: spark.sql(sql)._jdf.queryExecution().analyzed())]
            if round_ % 2:
                sides.reverse()
            for side, run in sides:
                start = time.perf_counter()
                run()
                elapsed = (time.perf_counter() - start) * 1000
                if round_ >= 3:  # warm-up rounds are not counted
                    (gate_ms if side == "gate" else analysis_ms).append(elapsed)
        g, a = statistics.median(gate_ms), statistics.median(analysis_ms)
        results[name] = {"gate_ms": round(g, 2), "analysis_ms": round(a, 2), "ratio": round(g / a, 2),
                         "gate_p90_ms": round(statistics.quantiles(gate_ms, n=10)[-1], 2)}
        print(f"{name:20s} analysis + gate {g:7.2f} ms   analysis alone {a:7.2f} ms   ratio {g / a:5.2f}", flush=True)
    out = Path(__file__).parent / "results" / "gate.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"rounds": args.rounds, "statements": results}, indent=2) + "\n")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
