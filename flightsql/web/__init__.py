"""A node's HTTP face for people and monitoring: the status page, its JSON, and metrics."""
