"""A Flight SQL client on the command line: ``flightsql query``.

The ``flightsql`` command calls the two functions below; everything else in
this package is the client's own. It speaks Flight SQL through pyarrow's
Flight client and needs nothing of the server or of Spark.
"""

from flightsql.client.command import add_query_parser, run_query

__all__ = ["add_query_parser", "run_query"]
