"""A primary/replica router for tests, whose replica ("tenant" here) lags behind the primary."""


class LaggingReplica:
    """Reads of the ``lagging`` models go to the replica, which has none of the rows just
    written; every other read, and every write, goes to the primary."""

    lagging: tuple[type, ...] = ()

    def db_for_read(self, model, **hints):
        return "tenant" if model in self.lagging else "default"

    def db_for_write(self, model, **hints):
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        return True
