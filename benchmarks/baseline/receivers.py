"""Count every transition signal once it commits, to check exactly-once after a run.

One plain INSERT per signal (no ORM model construction): the ledger is instrumentation, and
should cost the measured receiver as little as it can."""

from django.db import connection

from benchmarks.baseline.models import SignalRecord
from django_plugipay import signals

INSERT = f"INSERT INTO {SignalRecord._meta.db_table} (signal, object_id) VALUES (%s, %s)"

NAMES = ("checkout_session_completed", "payment_succeeded", "refund_succeeded")


def _record(name):
    def receiver(sender, instance, event, **kwargs):
        with connection.cursor() as cursor:
            cursor.execute(INSERT, [name, instance.plugipay_id])

    return receiver


for _name in NAMES:
    getattr(signals, _name).connect(_record(_name), weak=False, dispatch_uid=f"bench_{_name}")
