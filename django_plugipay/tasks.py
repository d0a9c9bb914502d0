"""Celery tasks: thin, idempotent wrappers over the services, always enqueued on commit."""

from __future__ import annotations

import dataclasses
import random

from celery import shared_task
from django.utils.dateparse import parse_datetime

from django_plugipay import services
from django_plugipay.exceptions import TransientError
from django_plugipay.models import CheckoutSession, Refund, WebhookEvent

MAX_RETRIES = 8
BACKOFF_CAP = 600


def backoff(retries: int, retry_after: float | None = None) -> float:
    """Plugipay's Retry-After when it gave one, else exponential backoff with full jitter."""
    if retry_after is not None:
        return retry_after
    return random.uniform(0, min(BACKOFF_CAP, 2 * 2**retries))  # noqa: S311 - jitter


def _retrying(task, exc: Exception):
    retry_after = exc.retry_after if isinstance(exc, TransientError) else None
    return task.retry(exc=exc, countdown=backoff(task.request.retries, retry_after))


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
    refund = Refund.objects.filter(pk=refund_id).first()
    if refund is None:
        return None
    try:
        return services.submit_refund(refund=refund).status
    except TransientError as exc:
        raise _retrying(self, exc) from exc


@shared_task(
    bind=True,
    name="django_plugipay.process_webhook_event",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=MAX_RETRIES,
)
def process_webhook_event(self, event_id: int) -> str | None:
    """Apply a recorded event (``WEBHOOK_PROCESSING = "celery"``); retried while it fails.

    A failing receiver is retried too: the event stays ``failed`` and visible meanwhile.
    """
    event = WebhookEvent.objects.filter(pk=event_id).first()
    if event is None:
        return None
    try:
        return services.apply_event(event=event).status
    except Exception as exc:
        raise _retrying(self, exc) from exc


@shared_task(
    bind=True, name="django_plugipay.sync_checkout_session", acks_late=True, max_retries=MAX_RETRIES
)
def sync_checkout_session(self, session_id: int) -> str | None:
    session = CheckoutSession.objects.filter(pk=session_id).first()
    if session is None:
        return None
    try:
        return services.sync_checkout_session(session=session).status
    except TransientError as exc:
        raise _retrying(self, exc) from exc


@shared_task(bind=True, name="django_plugipay.sync_refund", acks_late=True, max_retries=MAX_RETRIES)
def sync_refund(self, refund_id: int) -> str | None:
    refund = Refund.objects.filter(pk=refund_id).first()
    if refund is None:
        return None
    try:
        return services.sync_refund(refund=refund).status
    except TransientError as exc:
        raise _retrying(self, exc) from exc


@shared_task(bind=True, name="django_plugipay.reconcile", acks_late=True, max_retries=MAX_RETRIES)
def reconcile(self, since: str | None = None) -> dict:
    """Heal missed webhooks; schedule it with celery beat (see the docs)."""
    try:
        result = services.reconcile(since=parse_datetime(since) if since else None)
    except TransientError as exc:
        raise _retrying(self, exc) from exc
    return dataclasses.asdict(result)
