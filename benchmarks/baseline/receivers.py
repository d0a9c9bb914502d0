"""Count every transition signal once it commits, to check exactly-once after a run.

The ledger is instrumentation and should cost the measured receiver as little as it can. By
default it is one plain INSERT per signal (no ORM model construction), read back after a run
whose servers are other processes (gunicorn, Celery). A suite that applies events in this
process keeps it in memory instead (:func:`in_memory`): each signal is appended to a list
when its transaction commits, and nothing is sent to the database."""

import contextlib
import functools

from django.db import connection, transaction

from benchmarks.baseline.models import SignalRecord
from django_plugipay import signals

INSERT = f"INSERT INTO {SignalRecord._meta.db_table} (signal, object_id) VALUES (%s, %s)"

NAMES = ("checkout_session_completed", "payment_succeeded", "refund_succeeded")

#: the ledger while :func:`in_memory` is open, else None (rows in the database)
_memory: list[tuple[str, str]] | None = None


@contextlib.contextmanager
def in_memory():
    """Keep the ledger in the list yielded, each signal appended once its transaction commits
    (a rolled-back one is not), until the block ends."""
    global _memory
    saved, _memory = _memory, []
    try:
        yield _memory
    finally:
        _memory = saved


def _record(name):
    def receiver(sender, instance, event, **kwargs):
        if _memory is not None:
            transaction.on_commit(functools.partial(_memory.append, (name, instance.plugipay_id)))
            return
        with connection.cursor() as cursor:
            cursor.execute(INSERT, [name, instance.plugipay_id])

    return receiver


for _name in NAMES:
    getattr(signals, _name).connect(_record(_name), weak=False, dispatch_uid=f"bench_{_name}")
