"""A PySpark application submitted as a batch by the REST API tests.

    batch_job.py write OUT    write 1,000 rows (id, id * 2) as parquet at OUT
    batch_job.py wait FILE    run until FILE exists (at most 10 minutes), then end well
"""

import pathlib
import sys
import time

from pyspark.sql import SparkSession

mode, target = sys.argv[1], sys.argv[2]
spark = SparkSession.builder.appName(f"flightsql-test-batch-{mode}").getOrCreate()
if mode == "write":
    spark.range(0, 1000, 1, 4).selectExpr("id", "id * 2 AS doubled").write.mode("overwrite").parquet(target)
    print("batch job wrote 1000 rows", flush=True)
elif mode == "wait":
    print("batch job waiting", flush=True)
    deadline = time.time() + 600
    while not pathlib.Path(target).exists() and time.time() < deadline:
        time.sleep(0.2)
    print("batch job released", flush=True)
spark.stop()
