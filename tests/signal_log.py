"""Counts committed signals across processes (test process and Celery worker) in one file.

Connected only when PLUGIPAY_SIGNAL_LOG names a file; a line is written after the transaction
that sent the signal commits, so a rolled-back transition is never counted.
"""

import os

from django.db import transaction

from django_plugipay import signals

NAMES = [
    "checkout_session_completed",
    "payment_succeeded",
    "payment_failed",
    "refund_succeeded",
    "refund_failed",
    "subscription_activated",
    "subscription_renewed",
    "subscription_canceled",
    "invoice_paid",
]


def _writer(name):
    def receiver(sender, instance, event, **kwargs):
        path = os.environ.get("PLUGIPAY_SIGNAL_LOG")
        if not path:
            return
        line = f"{name} {instance.plugipay_id} {os.getpid()}\n"

        def write():
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(line)

        transaction.on_commit(write)

    return receiver


RECEIVERS = [_writer(name) for name in NAMES]
for _name, _receiver in zip(NAMES, RECEIVERS, strict=True):
    getattr(signals, _name).connect(_receiver, dispatch_uid=f"signal_log_{_name}")


def read(path) -> list[tuple[str, str]]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [tuple(line.split()[:2]) for line in handle if line.strip()]
