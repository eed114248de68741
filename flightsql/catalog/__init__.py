"""Catalog metadata of the Flight SQL server.

* :mod:`flightsql.catalog.schemas` - Arrow schemas of every metadata result.
* :mod:`flightsql.catalog.sql_info` - the ``CommandGetSqlInfo`` answers.
* :mod:`flightsql.catalog.facts` - gathers the engine facts those answers use.
* :mod:`flightsql.catalog.xdbc_types` - the ``CommandGetXdbcTypeInfo`` rows.
* :mod:`flightsql.catalog.patterns` - SQL ``LIKE`` filter patterns.

Importing the package imports none of them, and no module here imports pyspark.
"""
