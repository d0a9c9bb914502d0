"""Background work, defined once: each piece is a plain function in :data:`WORK`, sent as a
Celery task or a Django task (``django.tasks``), always enqueued on commit."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
from collections.abc import Callable
from typing import Any

from celery import shared_task
from django.db import Error, models
from django.utils.dateparse import parse_datetime

from django_plugipay import accounts, services
from django_plugipay.conf import app_settings
from django_plugipay.db import is_transient
from django_plugipay.exceptions import TransientError
from django_plugipay.models import CheckoutSession, Refund
from django_plugipay.services._queue import (
    _enqueue_django,
    refuse_django_task,
    tasks_framework,
    use_django_task,
)

logger = logging.getLogger(__name__)

MAX_RETRIES = 8
BACKOFF_CAP = 600


def backoff(retries: int, retry_after: float | None = None) -> float:
    """Plugipay's Retry-After when it gave one, else exponential backoff with full jitter."""
    if retry_after is not None:
        return retry_after
    return random.uniform(0, min(BACKOFF_CAP, 2 * 2**retries))  # noqa: S311 - jitter


def _status(model: type[models.Model], service: str, keyword: str) -> Callable:
    """Load the row (gone: nothing to do) and call one service on it; its new status. The
    service is looked up when the work runs, so a test (or a project) may replace it."""

    def work(pk: int, account: str | None = None) -> str | None:
        with accounts.acting_for(account) if account else contextlib.nullcontext():
            obj = model._default_manager.filter(pk=pk).first()
            return None if obj is None else getattr(services, service)(**{keyword: obj}).status

    return work


def _apply_event(event_id: int, account: str | None = None) -> str | None:
    """Apply one recorded event; ``account``: the alias of the account whose database holds
    it (``ACCOUNT_DATABASE``), named by whoever queued it while acting for that account."""
    # Not loaded first: the service's one locking statement reads and claims the event.
    if account is None:
        event = services.apply_recorded_event(event_id)
    else:
        with accounts.acting_for(account):
            event = services.apply_recorded_event(event_id)
    return None if event is None else event.status


def _apply_pending(batch_size: int | None = None) -> int:
    if batch_size is None:
        return services.apply_queued_events()
    return services.apply_queued_events(batch_size=batch_size)


def _run_deliveries(delivery_ids: list[int] | None, account: str | None) -> int:
    """The deliveries a commit queued are rows of the database of the account that recorded
    them (named by its alias when one was acting), not necessarily the default one."""
    if account is None:
        return services.run_deliveries(only=delivery_ids)
    with accounts.acting_for(account):
        return services.run_deliveries(only=delivery_ids)


def _reconcile(since: str | None = None, account: str | None = None) -> dict:
    """One account's reconciliation (its result), or, without ``account``, every account's
    in turn (a single account: its result as before; several: the results by alias, one
    account's failure logged and not stopping the others)."""
    start = parse_datetime(since) if since else None
    if account is not None or len(accounts.every()) == 1:
        return dataclasses.asdict(services.reconcile(since=start, account=account))
    return accounts.each_account(
        lambda: dataclasses.asdict(services.reconcile(since=start)), what="reconcile"
    )


def transient(exc: BaseException) -> bool:
    """Worth another try later: Plugipay's transient errors, and the database going away past
    the in-transaction retries (a fresh connection next time)."""
    if isinstance(exc, TransientError):
        return True
    return isinstance(exc, Error) and is_transient(exc)


def always(exc: BaseException) -> bool:
    return isinstance(exc, Exception)


def never(exc: BaseException) -> bool:
    return False


@dataclasses.dataclass(frozen=True)
class Work:
    """One piece of background work: its body, what is worth retrying, and how often."""

    function: Callable[..., Any]
    retryable: Callable[[BaseException], bool] = transient
    max_retries: int = MAX_RETRIES


#: Every piece of background work by task name (the Celery task names, a public contract).
WORK: dict[str, Work] = {
    "django_plugipay.create_refund": Work(_status(Refund, "submit_refund", "refund")),
    # A failing receiver is retried too: the event stays ``failed`` and visible meanwhile.
    "django_plugipay.process_webhook_event": Work(_apply_event, retryable=always),
    "django_plugipay.process_pending_events": Work(_apply_pending),
    "django_plugipay.sync_checkout_session": Work(
        _status(CheckoutSession, "sync_checkout_session", "session")
    ),
    "django_plugipay.sync_refund": Work(_status(Refund, "sync_refund", "refund")),
    "django_plugipay.sync_receipts": Work(
        lambda source_id, account=None: len(
            services.sync_receipts(source_id=source_id, account=account)
        )
    ),
    "django_plugipay.reconcile": Work(_reconcile),
    "django_plugipay.sync_plans": Work(
        lambda: sum(
            accounts.each_account(lambda: len(services.sync_plans()), what="sync_plans").values()
        )
    ),
    # Its own rows carry attempts and backoff; the scheduled run picks up what a crash left.
    "django_plugipay.run_deliveries": Work(
        lambda delivery_ids=None, account=None: _run_deliveries(delivery_ids, account),
        retryable=never,
    ),
    # Never raises: a failing step waits for the next run.
    "django_plugipay.sweep": Work(lambda: services.sweep(), retryable=never),
}


def _celery(task, *args: Any) -> Any:
    """Run ``task``'s work; a retryable failure becomes a Celery retry with backoff."""
    work = WORK[task.name]
    try:
        return work.function(*args)
    except Exception as exc:
        if not work.retryable(exc):
            raise
        delay = backoff(task.request.retries, getattr(exc, "retry_after", None))
        raise task.retry(exc=exc, countdown=delay) from exc


@shared_task(
    bind=True,
    name="django_plugipay.create_refund",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
)
def create_refund(self, refund_id: int, account: str | None = None) -> str | None:
    """Create a requested refund at Plugipay; every retry sends the same idempotency key.

    Terminal refunds are left alone, so a redelivered or duplicated task is harmless.
    """
    return _celery(self, refund_id, account)


@shared_task(
    bind=True,
    name="django_plugipay.process_webhook_event",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
)
def process_webhook_event(self, event_id: int, account: str | None = None) -> str | None:
    """Apply a recorded event (``WEBHOOK_PROCESSING = "celery"``) of ``account`` (an alias;
    default: the database of no account in particular); retried while it fails."""
    return _celery(self, event_id, account)


@shared_task(
    bind=True,
    name="django_plugipay.process_pending_events",
    acks_late=True,
    max_retries=MAX_RETRIES,
)
def process_pending_events(self, batch_size: int | None = None) -> int:
    """Apply the queued events a batch per transaction (any number of workers at once: each
    batch is claimed with ``SKIP LOCKED``); the number taken. What the webhook view sends,
    a few times a second at most, in the queued mode."""
    return _celery(self, batch_size)


@shared_task(
    bind=True, name="django_plugipay.sync_checkout_session", acks_late=True, max_retries=MAX_RETRIES
)
def sync_checkout_session(self, session_id: int) -> str | None:
    return _celery(self, session_id)


@shared_task(bind=True, name="django_plugipay.sync_refund", acks_late=True, max_retries=MAX_RETRIES)
def sync_refund(self, refund_id: int) -> str | None:
    return _celery(self, refund_id)


@shared_task(
    bind=True, name="django_plugipay.sync_receipts", acks_late=True, max_retries=MAX_RETRIES
)
def sync_receipts(self, source_id: str, account: str | None = None) -> int:
    """Mirror the receipts Plugipay issued for a session or invoice (``receipt_issued`` once
    for each new one); sent after the session completed or the invoice was paid."""
    return _celery(self, source_id, account)


@shared_task(bind=True, name="django_plugipay.reconcile", acks_late=True, max_retries=MAX_RETRIES)
def reconcile(self, since: str | None = None, account: str | None = None) -> dict:
    """Heal missed webhooks of one account (an alias), or of every account the project serves
    when none is named; schedule it once with celery beat (see the docs)."""
    return _celery(self, since, account)


@shared_task(bind=True, name="django_plugipay.sync_plans", acks_late=True, max_retries=MAX_RETRIES)
def sync_plans(self) -> int:
    """Mirror the plan catalog; schedule it with celery beat next to ``reconcile``."""
    return _celery(self)


@shared_task(name="django_plugipay.sweep", bind=True, acks_late=True)
def sweep(self) -> dict[str, int]:
    """Take over stranded work (events whose task was lost, refunds never sent); schedule it
    with celery beat every minute. Never raises: a failing step waits for the next run."""
    return _celery(self)


@shared_task(name="django_plugipay.run_deliveries", bind=True, acks_late=True)
def run_deliveries(self, delivery_ids: list[int] | None = None, account: str | None = None) -> int:
    """Run durable receivers' due deliveries (those ids only, when given: what a commit
    queues, with the alias of the account whose database holds them); schedule it with
    celery beat so retries and crashed runs are picked up."""
    return _celery(self, delivery_ids, account)


def run_work(name: str, args: list, attempt: int = 0) -> Any:
    """Run the work ``name`` for a Django task; a retryable failure enqueues the task again
    after a backoff (the backend's ``run_after`` where it supports it), up to the work's
    ``max_retries``, since ``django.tasks`` has no retries of its own."""
    work = WORK[name]
    try:
        return work.function(*args)
    except Exception as exc:
        if not work.retryable(exc) or attempt >= work.max_retries:
            raise
        delay = backoff(attempt, getattr(exc, "retry_after", None))
        logger.warning(
            "plugipay %s %s failed (attempt %s), retrying in %.1fs: %s: %s",
            name,
            args,
            attempt + 1,
            delay,
            type(exc).__name__,
            exc,
            extra={"task": name, "task_args": args, "attempt": attempt + 1},
        )
        _enqueue_django(name, args, countdown=delay, attempt=attempt + 1)
        return None


_framework = tasks_framework()
if _framework is not None:

    def run_task(name: str, args: list, attempt: int = 0) -> Any:
        """The one Django task (``PLUGIPAY["TASKS"] = "django"``): runs :data:`WORK` by name,
        on ``PLUGIPAY["TASKS_BACKEND"]``'s ``PLUGIPAY["TASKS_QUEUE"]``."""
        return run_work(name, args, attempt)

    try:
        run_task = _framework.task(
            backend=app_settings.TASKS_BACKEND, queue_name=app_settings.raw("TASKS_QUEUE")
        )(run_task)
    except Exception as exc:  # noqa: BLE001 - the project's TASKS refuses it: a check says why
        refuse_django_task(exc)
    else:
        use_django_task(run_task)
