"""The single apply path: upsert a mirror row under a row lock, move it forward, send signals.

Every route that brings news of a remote change (webhook, sync, reconciliation, the response
to a create call) ends here. Each function runs in one transaction, locks the row it changes,
applies only forward transitions and sends the transition's signal inside that transaction, so
a signal is sent once per object per transition whatever the route or the number of deliveries.
Locks are always taken in the order session → payment → refund.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any, TypeVar

from django.db import IntegrityError, models, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from django_plugipay import signals
from django_plugipay.db import write_atomic
from django_plugipay.models import (
    CheckoutSession,
    Customer,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    SessionStatus,
    WebhookEvent,
)
from django_plugipay.webhooks import normalise_status

logger = logging.getLogger(__name__)

REFUND_REFERENCE_KEY = "django_plugipay_refund"
M = TypeVar("M", bound=models.Model)

SESSION_SIGNALS = {
    SessionStatus.COMPLETED: signals.checkout_session_completed,
    SessionStatus.EXPIRED: signals.checkout_session_expired,
    SessionStatus.CANCELED: signals.checkout_session_canceled,
}
PAYMENT_SIGNALS = {
    PaymentStatus.SUCCEEDED: signals.payment_succeeded,
    PaymentStatus.FAILED: signals.payment_failed,
}
REFUND_SIGNALS = {
    RefundStatus.SUCCEEDED: signals.refund_succeeded,
    RefundStatus.FAILED: signals.refund_failed,
}
REFUND_RANK = {RefundStatus.REQUESTED: 0, RefundStatus.PENDING: 1}


class UnresolvedReference(Exception):
    """An event names an object this database cannot place yet (e.g. an unknown payment)."""


def timestamp(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    moment = parse_datetime(value.replace("Z", "+00:00"))
    if moment is not None and timezone.is_naive(moment):
        moment = timezone.make_aware(moment, dt.timezone.utc)
    return moment


def is_fresher(row: models.Model, obj: Mapping[str, Any]) -> bool:
    """Is ``obj`` at least as new as what the row last took in (by ``updatedAt``)?"""
    new, old = timestamp(obj.get("updatedAt")), timestamp((row.data or {}).get("updatedAt"))
    return new is None or old is None or new >= old


def lock_or_create(model: type[M], lookup: dict[str, Any], defaults: dict[str, Any]):
    """Return ``(row, created)`` with the row locked for the rest of the transaction.

    A concurrent insert of the same unique id is caught (savepoint) and the winner's row is
    locked instead, so duplicates never raise.
    """
    row = model.objects.select_for_update().filter(**lookup).first()
    if row is not None:
        return row, False
    return create_or_lock(model, lookup, defaults)


def create_or_lock(model: type[M], lookup: dict[str, Any], defaults: dict[str, Any]):
    """Insert the row, or lock the one a concurrent transaction inserted first."""
    try:
        with transaction.atomic():
            return model.objects.create(**lookup, **defaults), True
    except IntegrityError:
        return model.objects.select_for_update().get(**lookup), False


def _send(signal, sender, instance, event: WebhookEvent | None) -> None:
    signal.send(sender=sender, instance=instance, event=event)


def _mode(obj: Mapping[str, Any]) -> str:
    return "live" if obj.get("mode") == "live" else "test"


# ── customers ───────────────────────────────────────────────────────────────────


def customer_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "email": obj.get("email") or "",
        "name": obj.get("name") or "",
        "phone": obj.get("phone") or "",
        "external_id": obj.get("externalId") or None,
        "metadata": obj.get("metadata") or {},
        "mode": _mode(obj),
        "data": dict(obj),
        "synced_at": timezone.now(),
    }


@write_atomic(savepoint=False)
def upsert_customer(
    obj: Mapping[str, Any], *, event: WebhookEvent | None = None, user=None
) -> Customer:
    fields = customer_fields(obj)
    if user is not None:
        fields["user"] = user
    row, created = lock_or_create(Customer, {"plugipay_id": obj["id"]}, fields)
    if not created and (is_fresher(row, obj) or (user is not None and row.user_id is None)):
        for name, value in fields.items():
            setattr(row, name, value)
        row.save()
    return row


def _customer_id_for(obj: Mapping[str, Any], session: CheckoutSession | None) -> int | None:
    """The charge's customer: the session's (already known), else looked up by Plugipay id."""
    if session is not None and session.customer_id is not None:
        return session.customer_id
    customer = _customer_for(obj.get("customerId"))
    return customer.pk if customer is not None else None


def _customer_for(customer_id: Any) -> Customer | None:
    if not customer_id:
        return None
    return Customer.objects.filter(plugipay_id=customer_id).first()


# ── checkout sessions ─────────────────────────────────────────────────────────


def session_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "status": normalise_status(obj.get("status")) or SessionStatus.OPEN,
        "amount": int(obj.get("amount") or 0),
        "currency": str(obj.get("currency") or ""),
        "url": obj.get("hostedUrl") or obj.get("url") or "",
        "success_url": obj.get("successUrl") or "",
        "cancel_url": obj.get("cancelUrl") or "",
        "expires_at": timestamp(obj.get("expiresAt")),
        "completed_at": timestamp(obj.get("completedAt")),
        "payment_method": obj.get("paymentMethod") or "",
        "metadata": obj.get("metadata") or {},
        "mode": _mode(obj),
        "data": dict(obj),
        "synced_at": timezone.now(),
    }


@write_atomic(savepoint=False)
def upsert_checkout_session(
    obj: Mapping[str, Any], *, event: WebhookEvent | None = None
) -> CheckoutSession:
    """Take in a remote session; on completion, create its payment (once)."""
    fields = session_fields(obj)
    customer = _customer_for(obj.get("customerId"))
    if customer is not None:
        fields["customer"] = customer
    row, created = lock_or_create(CheckoutSession, {"plugipay_id": obj["id"]}, fields)
    transition = fields["status"] if created else None
    if not created:
        old, new = row.status, fields["status"]
        terminal = SessionStatus.terminal()
        moves = old not in terminal and new != old and (new in terminal or is_fresher(row, obj))
        if moves or (new == old and is_fresher(row, obj)):
            for name, value in fields.items():
                if name != "customer" or value is not None:
                    setattr(row, name, value)
            row.save()
            transition = new if moves else None
    signal = SESSION_SIGNALS.get(transition) if transition else None
    if signal is not None:
        _send(signal, CheckoutSession, row, event)
    if row.status == SessionStatus.COMPLETED and obj.get("paymentId"):
        _payment_from_session(row, obj, event)
    return row


def _payment_from_session(
    session: CheckoutSession, obj: Mapping[str, Any], event: WebhookEvent | None
) -> Payment:
    payment_obj = {
        "id": obj["paymentId"],
        "status": PaymentStatus.SUCCEEDED,
        "amount": obj.get("amount"),
        "currency": obj.get("currency"),
        "method": obj.get("paymentMethod"),
        "customerId": obj.get("customerId"),
        "paidAt": obj.get("completedAt"),
        "mode": obj.get("mode"),
        "checkoutSessionId": obj["id"],
    }
    return upsert_payment(payment_obj, event=event, session=session, from_session=True)


# ── payments ─────────────────────────────────────────────────────────────────


def payment_fields(obj: Mapping[str, Any], session: CheckoutSession | None) -> dict[str, Any]:
    fields = {
        "status": normalise_status(obj.get("status")) or PaymentStatus.PENDING,
        "amount": int(obj.get("amount") or (session.amount if session else 0)),
        "currency": str(obj.get("currency") or (session.currency if session else "")),
        "method": obj.get("method") or obj.get("paymentMethod") or "",
        "failure_code": obj.get("failureCode") or "",
        "failure_message": obj.get("failureMessage") or "",
        "paid_at": timestamp(obj.get("paidAt")),
        "mode": _mode(obj),
        "checkout_session": session,
        "customer_id": _customer_id_for(obj, session),
        "synced_at": timezone.now(),
    }
    return fields


@write_atomic(savepoint=False)
def upsert_payment(
    obj: Mapping[str, Any],
    *,
    event: WebhookEvent | None = None,
    session: CheckoutSession | None = None,
    from_session: bool = False,
) -> Payment:
    """Take in a remote charge; ``payment_succeeded``/``payment_failed`` fire once."""
    if session is None and obj.get("checkoutSessionId"):
        session = CheckoutSession.objects.filter(plugipay_id=obj["checkoutSessionId"]).first()
    fields = payment_fields(obj, session)
    if not from_session:
        fields["data"] = dict(obj)
    row, created = lock_or_create(Payment, {"plugipay_id": obj["id"]}, fields)
    transition = fields["status"] if created else None
    if not created:
        old, new = row.status, fields["status"]
        if old not in PaymentStatus.terminal() and new != old:
            for name in ("status", "failure_code", "failure_message", "paid_at", "method"):
                setattr(row, name, fields[name] or getattr(row, name))
            transition = new
        if row.checkout_session_id is None and session is not None:
            row.checkout_session = session
        if row.customer_id is None:
            row.customer_id = fields["customer_id"]
        if not from_session and is_fresher(row, obj):
            row.data = dict(obj)
        row.synced_at = fields["synced_at"]
        row.save()
    signal = PAYMENT_SIGNALS.get(transition) if transition else None
    if signal is not None:
        _send(signal, Payment, row, event)
    return row


# ── refunds ──────────────────────────────────────────────────────────────────


def refund_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "status": normalise_status(obj.get("status")) or RefundStatus.PENDING,
        "amount": int(obj.get("amount") or 0),
        "currency": str(obj.get("currency") or ""),
        "reason": obj.get("reason") or "",
        "failure_code": obj.get("failureCode") or "",
        "failure_message": obj.get("failureMessage") or obj.get("failureReason") or "",
        "mode": _mode(obj),
        "data": dict(obj),
        "synced_at": timezone.now(),
    }


def _locked_payment_for_refund(obj: Mapping[str, Any]) -> Payment | None:
    charge_id = obj.get("chargeId") or obj.get("paymentId")
    if charge_id:
        payment = Payment.objects.select_for_update().filter(plugipay_id=charge_id).first()
        if payment is not None:
            return payment
    source_id = obj.get("sourceId")
    if source_id:
        return (
            Payment.objects.select_for_update()
            .filter(checkout_session__plugipay_id=source_id, status=PaymentStatus.SUCCEEDED)
            .first()
        )
    return None


@write_atomic
def upsert_refund(obj: Mapping[str, Any], *, event: WebhookEvent | None = None) -> Refund:
    """Take in a remote refund; keep ``payment.amount_refunded`` true; signal settlement once.

    Raises :class:`UnresolvedReference` when the refunded payment is not known here.
    """
    payment = _locked_payment_for_refund(obj)
    if payment is None:
        raise UnresolvedReference(
            f"Refund {obj.get('id')} names payment {obj.get('chargeId') or obj.get('sourceId')}, "
            "which is not known here yet."
        )
    fields = refund_fields(obj)
    reference = (obj.get("metadata") or {}).get(REFUND_REFERENCE_KEY)
    row = Refund.objects.select_for_update().filter(plugipay_id=obj["id"]).first()
    if row is None and reference:
        row = Refund.objects.select_for_update().filter(idempotency_key=reference).first()
    transition = None
    if row is None:  # not known here: Plugipay's own refund (e.g. made in its dashboard)
        row, created = create_or_lock(
            Refund,
            {"plugipay_id": obj["id"]},
            {**fields, "payment": payment, "currency": fields["currency"] or payment.currency},
        )
        transition = fields["status"] if created else None
    if transition is None:
        transition = _advance_refund(row, obj, fields)
    if transition == RefundStatus.SUCCEEDED:
        recount_refunded(payment)
    signal = REFUND_SIGNALS.get(transition) if transition else None
    if signal is not None:
        _send(signal, Refund, row, event)
    return row


def _advance_refund(row: Refund, obj: Mapping[str, Any], fields: dict[str, Any]) -> str | None:
    old, new = row.status, fields["status"]
    terminal = RefundStatus.terminal()
    moves = (
        old not in terminal
        and new != old
        and (new in terminal or REFUND_RANK.get(new, 0) > REFUND_RANK.get(old, 0))
    )
    row.plugipay_id = row.plugipay_id or obj["id"]
    if moves:
        row.status = new
        row.failure_code = fields["failure_code"] or row.failure_code
        row.failure_message = fields["failure_message"] or row.failure_message
    if moves or is_fresher(row, obj):
        row.data = fields["data"]
    row.mode = fields["mode"]
    row.synced_at = fields["synced_at"]
    row.save()
    return new if moves else None


def recount_refunded(payment: Payment) -> None:
    """Set ``amount_refunded`` to the sum of succeeded refunds (the payment is locked)."""
    total = (
        payment.refunds.filter(status=RefundStatus.SUCCEEDED).aggregate(total=Sum("amount"))[
            "total"
        ]
        or 0
    )
    if total != payment.amount_refunded:
        payment.amount_refunded = total
        payment.save(update_fields=["amount_refunded", "updated_at"])


@write_atomic
def mark_refund_failed(
    refund: Refund, *, code: str, message: str, data: Mapping[str, Any] | None = None
) -> Refund:
    """A refund Plugipay refused outright: failed, once, with the API's message."""
    with transaction.atomic():
        Payment.objects.select_for_update().filter(pk=refund.payment_id).first()
        row = Refund.objects.select_for_update().get(pk=refund.pk)
        if row.status in RefundStatus.terminal():
            return row
        row.status = RefundStatus.FAILED
        row.failure_code, row.failure_message = code, message
        if data:
            row.plugipay_id = row.plugipay_id or data.get("id")
            row.data = dict(data)
        row.save()
        _send(signals.refund_failed, Refund, row, None)
        return row
