"""A Livy-compatible REST gateway: SQL sessions and statements over HTTP, run as Flight SQL
calls to the node itself, recorded in ZooKeeper so that any node answers for them."""
