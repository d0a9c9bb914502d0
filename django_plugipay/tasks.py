"""Celery tasks: thin, idempotent wrappers over the services, always enqueued on commit."""

from __future__ import annotations

from celery import shared_task
from django.utils.dateparse import parse_datetime

from django_plugipay import services
from django_plugipay.exceptions import TransientError
from django_plugipay.models import CheckoutSession, Refund, WebhookEvent

RETRY = {"retry_backoff": 2, "retry_backoff_max": 600, "retry_jitter": True, "max_retries": 8}


@shared_task(
    name="django_plugipay.create_refund",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(TransientError,),
    **RETRY,
)
def create_refund(refund_id: int) -> str | None:
    """Create a requested refund at Plugipay; every retry sends the same idempotency key."""
    refund = Refund.objects.filter(pk=refund_id).first()
    if refund is None:
        return None
    return services.submit_refund(refund=refund).status


@shared_task(
    name="django_plugipay.process_webhook_event",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(Exception,),
    **RETRY,
)
def process_webhook_event(event_id: int) -> str | None:
    """Apply a recorded event (``WEBHOOK_PROCESSING = "celery"``); retried while it fails."""
    event = WebhookEvent.objects.filter(pk=event_id).first()
    if event is None:
        return None
    return services.apply_event(event=event).status


@shared_task(
    name="django_plugipay.sync_checkout_session",
    acks_late=True,
    autoretry_for=(TransientError,),
    **RETRY,
)
def sync_checkout_session(session_id: int) -> str | None:
    session = CheckoutSession.objects.filter(pk=session_id).first()
    if session is None:
        return None
    return services.sync_checkout_session(session=session).status


@shared_task(
    name="django_plugipay.sync_refund", acks_late=True, autoretry_for=(TransientError,), **RETRY
)
def sync_refund(refund_id: int) -> str | None:
    refund = Refund.objects.filter(pk=refund_id).first()
    if refund is None:
        return None
    return services.sync_refund(refund=refund).status


@shared_task(
    name="django_plugipay.reconcile", acks_late=True, autoretry_for=(TransientError,), **RETRY
)
def reconcile(since: str | None = None) -> dict:
    """Heal missed webhooks; schedule it with celery beat (see the docs)."""
    import dataclasses

    result = services.reconcile(since=parse_datetime(since) if since else None)
    return dataclasses.asdict(result)
