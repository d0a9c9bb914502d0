import os

import pytest

if os.environ.get("CELERY_BROKER_URL"):  # the service suite: a Celery app, tasks to a worker
    from tests.celery import app as celery_app  # noqa: F401


@pytest.fixture
def signals_log():
    """Record every django_plugipay signal sent during a test, as (signal name, plugipay id)."""
    from django_plugipay import signals

    names = [
        "checkout_session_completed",
        "checkout_session_expired",
        "checkout_session_canceled",
        "payment_succeeded",
        "payment_failed",
        "refund_succeeded",
        "refund_failed",
        "webhook_received",
    ]
    log = []
    receivers = []
    for name in names:

        def receiver(sender, instance, event, _name=name, **kwargs):
            ident = getattr(instance, "plugipay_id", None) or getattr(instance, "event_id", None)
            log.append((_name, ident))

        getattr(signals, name).connect(receiver, weak=False)
        receivers.append((getattr(signals, name), receiver))
    yield log
    for signal, receiver in receivers:
        signal.disconnect(receiver)
