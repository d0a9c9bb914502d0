"""A durable receiver that notes each run in ``PLUGIPAY_SHIP_LOG`` (the crash tests).

With ``PLUGIPAY_CRASH=while-running`` it kills its own process instead. The service suite's
Celery worker imports this module when ``PLUGIPAY_SHIP_LOG`` is set, so it has the receiver too.
"""

import os
import signal

from django_plugipay import durable_receiver, signals

NAME = "tests.durable_crash.ship"


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@durable_receiver(signals.payment_succeeded, name=NAME)
def ship(sender, instance, event, delivery, **kwargs):
    if os.environ.get("PLUGIPAY_CRASH") == "while-running":
        die()
    with open(os.environ["PLUGIPAY_SHIP_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{instance.plugipay_id} {delivery.key} {delivery.attempt} {os.getpid()}\n")
