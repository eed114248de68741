"""ZooKeeper coordination: the znode layout, membership, the query registry."""
