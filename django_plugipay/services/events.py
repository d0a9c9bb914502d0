"""Receiving events: verify, record once, apply through the mirror path, mark the outcome."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError
from django.db.models import F
from django.utils import timezone

from django_plugipay import signals
from django_plugipay.conf import app_settings
from django_plugipay.db import run_atomic, write_atomic
from django_plugipay.models import EventSource, EventStatus, WebhookEvent
from django_plugipay.services import mirror
from django_plugipay.services._queue import enqueue
from django_plugipay.webhooks import Event, parse_event, verify_signature

logger = logging.getLogger(__name__)

DONE = (EventStatus.PROCESSED, EventStatus.IGNORED)
ACTION_STATUS = {
    "checkout_session": {
        "completed": "completed",
        "expired": "expired",
        "canceled": "canceled",
        "async_payment_succeeded": "completed",
    },
    "payment": {"succeeded": "succeeded", "failed": "failed", "captured": "succeeded"},
    "refund": {
        "created": "pending",
        "succeeded": "succeeded",
        "failed": "failed",
        "canceled": "canceled",
    },
}


def ingest_webhook(*, body: bytes, signature: str | None) -> WebhookEvent:
    """Verify a delivery, record its event once and apply it (inline) or queue it (celery).

    Raises ``SignatureError`` or ``InvalidPayload`` before anything is stored, and re-raises
    whatever a signal receiver raised after marking the event ``failed``.
    """
    verify_signature(body, signature, app_settings.WEBHOOK_SECRETS, app_settings.WEBHOOK_TOLERANCE)
    parsed = parse_event(body)
    if app_settings.WEBHOOK_PROCESSING == "celery":
        event, _created = record_event(parsed, source=EventSource.WEBHOOK)
        if event.status not in DONE:
            enqueue(
                "django_plugipay.process_webhook_event",
                event.pk,
                inline=lambda: apply_event(event=event),
            )
        return event
    return process_event(parsed, source=EventSource.WEBHOOK)[0]


class _AlreadyRecorded(Exception):
    """The event id is in the log already (a duplicate, or a redelivery of a failed event)."""


def _fields(parsed: Event, source: str) -> dict[str, Any]:
    return {
        "type": parsed.type[:128],
        "kind": parsed.kind[:128],
        "mode": parsed.mode or "",
        "object_id": (parsed.object_id or "")[:64],
        "payload": dict(parsed.payload),
        "occurred_at": parsed.occurred_at,
        "source": source,
    }


def process_event(parsed: Event, *, source: str) -> tuple[WebhookEvent, bool]:
    """Record and apply a verified event exactly once; return ``(event, applied_now)``.

    A new event is inserted with its outcome and applied in one transaction. A duplicate that
    was applied is acknowledged and changes nothing; one that failed before is applied again
    under a row lock. If applying raises, the change rolls back, the event is stored as
    ``failed`` with the error (in its own transaction) and the exception propagates.
    """
    handled = _handles(parsed)
    try:
        return run_atomic(_insert_and_apply, parsed, source, handled), True
    except _AlreadyRecorded:
        event = WebhookEvent.objects.get(event_id=parsed.id)
        if event.status in DONE:
            return event, False
        return apply_event(event=event), True
    except Exception as exc:
        _record_failure(parsed, source, exc)
        _log_failure(parsed.id, parsed.kind)
        raise


def _insert_and_apply(parsed: Event, source: str, handled: bool) -> WebhookEvent:
    try:
        row = WebhookEvent.objects.create(
            event_id=parsed.id,
            **_fields(parsed, source),
            attempts=1,
            status=EventStatus.PROCESSED if handled else EventStatus.IGNORED,
            processed_at=timezone.now(),
        )
    except IntegrityError:  # rolls back the whole (outermost or savepoint) block
        raise _AlreadyRecorded from None
    _apply(parsed, row, handled)
    return row


def _apply(parsed: Event, row: WebhookEvent, handled: bool) -> None:
    """Apply a handled event's object, then announce the event (inside the transaction)."""
    if handled:
        _dispatch(parsed, row)
    signals.webhook_received.send(sender=WebhookEvent, instance=row, event=row)


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def _log_failure(event_id: str, kind: str) -> None:
    logger.exception(
        "plugipay event %s failed", event_id, extra={"event_id": event_id, "kind": kind}
    )


@write_atomic
def _record_failure(parsed: Event, source: str, exc: Exception) -> None:
    error = _describe(exc)
    event, created = WebhookEvent.objects.get_or_create(
        event_id=parsed.id,
        defaults={
            **_fields(parsed, source),
            "status": EventStatus.FAILED,
            "attempts": 1,
            "last_error": error,
        },
    )
    if not created:  # never overwrite a concurrent delivery's success
        WebhookEvent.objects.filter(pk=event.pk).exclude(status__in=DONE).update(
            status=EventStatus.FAILED, attempts=F("attempts") + 1, last_error=error
        )


def record_event(parsed: Event, *, source: str) -> tuple[WebhookEvent, bool]:
    """Store the event (status ``received``) once per event id, to apply later."""
    try:
        return run_atomic(
            WebhookEvent.objects.create, event_id=parsed.id, **_fields(parsed, source)
        ), True
    except IntegrityError:
        return WebhookEvent.objects.get(event_id=parsed.id), False


def apply_event(*, event: WebhookEvent) -> WebhookEvent:
    """Apply a recorded event exactly once (a queued, failed or replayed one).

    The event row is locked, so concurrent attempts apply it once. If anything raises (a
    receiver, the database), the change rolls back, the event is marked ``failed`` with the
    error and attempt count in its own transaction, and the exception propagates.
    """
    try:
        return run_atomic(_apply_recorded, event)
    except Exception as exc:
        WebhookEvent.objects.filter(pk=event.pk).update(
            status=EventStatus.FAILED,
            attempts=F("attempts") + 1,
            last_error=_describe(exc),
        )
        _log_failure(event.event_id, event.kind)
        raise


def _apply_recorded(event: WebhookEvent) -> WebhookEvent:
    row = WebhookEvent.objects.select_for_update().get(pk=event.pk)
    if row.status in DONE:
        return row
    parsed = parse_event(row.payload)
    handled = _handles(parsed)
    _apply(parsed, row, handled)
    row.status = EventStatus.PROCESSED if handled else EventStatus.IGNORED
    row.attempts += 1
    row.last_error = ""
    row.processed_at = timezone.now()
    row.save(update_fields=["status", "attempts", "last_error", "processed_at"])
    return row


HANDLED_RESOURCES = ("checkout_session", "payment", "refund", "customer")


def _handles(parsed: Event) -> bool:
    return parsed.resource in HANDLED_RESOURCES and bool(parsed.object_id)


def _dispatch(parsed: Event, row: WebhookEvent) -> None:
    """Route a handled event to its upsert."""
    obj: dict[str, Any] = dict(parsed.object)
    obj.setdefault("mode", parsed.mode or app_settings.MODE)
    fallback = ACTION_STATUS.get(parsed.resource, {}).get(parsed.action)
    if fallback and not obj.get("status"):
        obj["status"] = fallback
    if parsed.resource == "checkout_session":
        mirror.upsert_checkout_session(obj, event=row)
    elif parsed.resource == "payment":
        mirror.upsert_payment(obj, event=row)
    elif parsed.resource == "refund":
        _apply_refund(obj, row)
    elif parsed.resource == "customer":
        mirror.upsert_customer(obj, event=row)


def _apply_refund(obj: Mapping[str, Any], row: WebhookEvent) -> None:
    try:
        mirror.upsert_refund(obj, event=row)
    except mirror.UnresolvedReference:
        # The refund arrived before the payment: learn the session from Plugipay, then retry.
        if not obj.get("sourceId"):
            raise
        from django_plugipay.client import get_client

        mirror.upsert_checkout_session(get_client().get_checkout_session(obj["sourceId"]))
        mirror.upsert_refund(obj, event=row)


def replay_failed_events(*, limit: int | None = None) -> dict[str, int]:
    """Apply every failed (or stuck unprocessed) event again; return counts by outcome."""
    counts = {"processed": 0, "failed": 0}
    events = WebhookEvent.objects.unprocessed().order_by("occurred_at", "received_at")
    for event in events[:limit] if limit else events:
        try:
            apply_event(event=event)
            counts["processed"] += 1
        except Exception:  # already recorded on the event by apply_event
            counts["failed"] += 1
    return counts
