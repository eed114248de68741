"""PySpark data source "flightsql": read (and write) any Flight SQL server in parallel.

A client of Flight SQL: it imports neither ``flightsql`` nor ``flightmanager``.
"""
