"""Celery tasks: thin, idempotent wrappers over the services, always enqueued on commit."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

from celery import shared_task
from django.db import Error, models
from django.utils.dateparse import parse_datetime

from django_plugipay import services
from django_plugipay.db import is_transient
from django_plugipay.exceptions import TransientError
from django_plugipay.models import CheckoutSession, Refund

MAX_RETRIES = 8
BACKOFF_CAP = 600


def backoff(retries: int, retry_after: float | None = None) -> float:
    """Plugipay's Retry-After when it gave one, else exponential backoff with full jitter."""
    if retry_after is not None:
        return retry_after
    return random.uniform(0, min(BACKOFF_CAP, 2 * 2**retries))  # noqa: S311 - jitter


def _run(task, model: type[models.Model], pk: int, service: Callable, keyword: str) -> str | None:
    """Load the row (gone: nothing to do), call one service, retry what may pass."""
    obj = model._default_manager.filter(pk=pk).first()
    if obj is None:
        return None
    try:
        return service(**{keyword: obj}).status
    except TransientError as exc:
        raise task.retry(exc=exc, countdown=backoff(task.request.retries, exc.retry_after)) from exc
    except Error as exc:
        if not is_transient(exc):
            raise
        # The database went away past the in-transaction retries: later, on a fresh connection.
        raise task.retry(exc=exc, countdown=backoff(task.request.retries)) from exc


@shared_task(
    bind=True,
    name="django_plugipay.create_refund",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
)
def create_refund(self, refund_id: int) -> str | None:
    """Create a requested refund at Plugipay; every retry sends the same idempotency key.

    Terminal refunds are left alone, so a redelivered or duplicated task is harmless.
    """
    return _run(self, Refund, refund_id, services.submit_refund, "refund")


@shared_task(
    bind=True,
    name="django_plugipay.process_webhook_event",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
)
def process_webhook_event(self, event_id: int) -> str | None:
    """Apply a recorded event (``WEBHOOK_PROCESSING = "celery"``); retried while it fails.

    A failing receiver is retried too: the event stays ``failed`` and visible meanwhile. The
    event is not loaded first: the service's one locking statement reads and claims it.
    """
    try:
        event = services.apply_recorded_event(event_id)
    except Exception as exc:
        raise self.retry(exc=exc, countdown=backoff(self.request.retries)) from exc
    return None if event is None else event.status


@shared_task(
    bind=True,
    name="django_plugipay.sync_checkout_session",
    acks_late=True,
    max_retries=MAX_RETRIES,
)
def sync_checkout_session(self, session_id: int) -> str | None:
    return _run(self, CheckoutSession, session_id, services.sync_checkout_session, "session")


@shared_task(bind=True, name="django_plugipay.sync_refund", acks_late=True, max_retries=MAX_RETRIES)
def sync_refund(self, refund_id: int) -> str | None:
    return _run(self, Refund, refund_id, services.sync_refund, "refund")


@shared_task(bind=True, name="django_plugipay.reconcile", acks_late=True, max_retries=MAX_RETRIES)
def reconcile(self, since: str | None = None) -> dict:
    """Heal missed webhooks; schedule it with celery beat (see the docs)."""
    try:
        result = services.reconcile(since=parse_datetime(since) if since else None)
    except TransientError as exc:
        raise self.retry(exc=exc, countdown=backoff(self.request.retries, exc.retry_after)) from exc
    return dataclasses.asdict(result)


@shared_task(bind=True, name="django_plugipay.sync_plans", acks_late=True, max_retries=MAX_RETRIES)
def sync_plans(self) -> int:
    """Mirror the plan catalog; schedule it with celery beat next to ``reconcile``."""
    try:
        return len(services.sync_plans())
    except TransientError as exc:
        raise self.retry(exc=exc, countdown=backoff(self.request.retries, exc.retry_after)) from exc


@shared_task(name="django_plugipay.sweep", acks_late=True)
def sweep() -> dict[str, int]:
    """Take over stranded work (events whose task was lost, refunds never sent); schedule it
    with celery beat every minute. Never raises: a failing step waits for the next run."""
    return services.sweep()


@shared_task(name="django_plugipay.run_deliveries", acks_late=True)
def run_deliveries(delivery_ids: list[int] | None = None) -> int:
    """Run durable receivers' due deliveries (those ids only, when given: what a commit
    queues); schedule it with celery beat so retries and crashed runs are picked up."""
    return services.run_deliveries(only=delivery_ids)
