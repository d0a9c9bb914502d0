"""The sweeper: takes over work a fault left unfinished, with no command run by anyone.

A broker outage loses the enqueue of an event recorded behind a 200; a worker killed mid-task
leaves its event ``received`` until the broker's visibility timeout (an hour on Redis); a
database lost while a refund was at Plugipay leaves it ``requested`` without its Plugipay id;
a session completed or an invoice paid whose receipt sync was lost has no receipt mirrored;
a durable receiver's delivery waits for its backoff or for a crashed runner's lease.
Each step below finds such rows by their own state and finishes them through the normal,
idempotent path, for every account the project serves (each in its own database, with its
own credentials). :func:`sweep` runs every step from the ``django_plugipay.sweep`` task (beat,
every minute), from ``plugipay_sync``, and in-process (:func:`sweep_soon`) as webhooks arrive.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django_plugipay import accounts
from django_plugipay.conf import app_settings
from django_plugipay.db import discard_lost_connection
from django_plugipay.services._queue import enqueue
from django_plugipay.services.deliveries import run_deliveries
from django_plugipay.services.events import requeue_stranded_events
from django_plugipay.services.payouts import sync_missing_receipts
from django_plugipay.services.refunds import submit_stranded_refunds

logger = logging.getLogger(__name__)

#: The steps, in order: a name and a callable returning how many rows it took over. A step
#: added here (durable deliveries due, say) runs from every trigger.
STEPS: list[tuple[str, Callable[[], int]]] = [
    ("events", requeue_stranded_events),
    ("refunds", submit_stranded_refunds),
    ("deliveries", lambda: run_deliveries(limit=100)),
    ("receipts", sync_missing_receipts),
]

_lock = threading.Lock()
_last_sweep = float("-inf")


def sweep(*, account: Any = None) -> dict[str, int]:
    """Run every step once for every account (``account``: that one alone); return how many
    rows each step took over (all accounts together).

    Each account is swept inside ``acting_for`` (its database per ``ACCOUNT_DATABASE``, its
    credentials). A step that fails (the database or Plugipay unavailable) for one account is
    logged, counted as 0 and does not stop the other steps or accounts; the next sweep tries
    again. Safe to run concurrently and repeatedly. A single-account project's sweep runs the
    same statements as before accounts existed.
    """
    done: dict[str, int] = {name: 0 for name, _step in STEPS}
    for known in [accounts.known(account)] if account is not None else accounts.every():
        with accounts.acting_for(known.pk):
            for name, step in STEPS:
                try:
                    done[name] = done.get(name, 0) + step()
                except Exception as exc:
                    discard_lost_connection(exc)
                    logger.warning(
                        "plugipay sweep step %s failed for account %s: %s: %s",
                        name,
                        known.alias,
                        type(exc).__name__,
                        exc,
                        extra={"step": name, "account": known.alias},
                    )
    if any(done.values()):
        logger.info("plugipay sweep: %s", done, extra={"swept": done})
    return done


def sweep_soon() -> None:
    """Queue a sweep after the current transaction commits (a task with Celery, else run
    in-process), at most once per half ``STRANDED_AFTER`` in this process.

    What the webhook view calls on every delivery, so a project without beat still heals: a
    sweep that could not be sent does not count, so the first delivery after the broker is
    back re-queues what the outage stranded.
    """
    global _last_sweep
    now = time.monotonic()
    with _lock:
        if now - _last_sweep < app_settings.STRANDED_AFTER / 2:
            return
        _last_sweep = now
    enqueue("django_plugipay.sweep", inline=sweep, on_failure=_rearm)


def _rearm(exc: Exception) -> None:
    """The sweep could not be sent (the broker is down): the next delivery tries again, so
    the first one after the broker is back sweeps what the outage stranded."""
    global _last_sweep
    with _lock:
        _last_sweep = float("-inf")
