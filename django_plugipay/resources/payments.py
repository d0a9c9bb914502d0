"""The payment resource (a charge)."""

from __future__ import annotations

from typing import Any

from django_plugipay import signals
from django_plugipay.db import lock
from django_plugipay.models import CheckoutSession, Payment, PaymentStatus, SessionStatus
from django_plugipay.resources.checkout import CHECKOUT_SESSION
from django_plugipay.resources.common import UPDATED_AT, parent_fields
from django_plugipay.specs import (
    Currency,
    Integer,
    Link,
    Move,
    ResourceSpec,
    Step,
    Text,
    Timestamp,
    UnresolvedReference,
    field,
    registered,
)


class PaymentSpec(ResourceSpec):
    """A charge. Plugipay has no payments endpoint: it is synced through its session."""

    name = "payment"
    events = ("succeeded", "failed", "updated", "captured")
    model = Payment
    lock_rank = 20
    fields = {
        "amount": field(Integer(0), "amount"),
        "currency": field(Currency(), "currency"),
        "method": field(Text(), "method", "paymentMethod"),
        "failure_code": field(Text(), "failureCode"),
        "failure_message": field(Text(), "failureMessage"),
        "paid_at": field(Timestamp(), "paidAt"),
    }
    refs = {
        "updated_at": UPDATED_AT,
        "session_id": field(Text(), "checkoutSessionId"),
        "invoice_id": field(Text(), "invoiceId"),
        "customer_id": field(Text(), "customerId"),
    }
    links = {"customer": Link("django_plugipay.Customer", "customer_id")}
    locks_with = {"session_id": "checkout_session", "invoice_id": "invoice"}
    tiers = ((PaymentStatus.PENDING,), (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED))
    signals = {
        PaymentStatus.SUCCEEDED: signals.payment_succeeded,
        PaymentStatus.FAILED: signals.payment_failed,
    }
    actions = {
        "succeeded": PaymentStatus.SUCCEEDED,
        "failed": PaymentStatus.FAILED,
        "captured": PaymentStatus.SUCCEEDED,
        "updated": PaymentStatus.PENDING,
    }
    outcomes = {PaymentStatus.SUCCEEDED: "success", PaymentStatus.FAILED: "failure"}
    example = {
        "id": "pay_v",
        "status": "succeeded",
        "amount": 5000,
        "currency": "IDR",
        "checkoutSessionId": "cs_v",
        "method": "card",
        "paidAt": "2026-01-01T00:00:00Z",
    }

    def lock_parent(self, values, refs, context) -> Any:
        """The session (or invoice) first (lock order), so a payment and what it paid never
        deadlock."""
        session = context.get("session")
        if session is None and refs.get("session_id"):
            session = lock(
                CHECKOUT_SESSION,
                plugipay_id=refs["session_id"],
                only=parent_fields(CheckoutSession),
            )
        if (
            session is None
            and refs.get("session_id")
            and values.get("status") != PaymentStatus.SUCCEEDED
        ):
            # heard of before its session (a VA's pending, a declined card): the session is
            # fetched and applied first, so the payment is linked and an open session waits.
            # A succeeded one is linked by the session's completion, which names it.
            raise UnresolvedReference(
                f"Payment {values['plugipay_id']} names checkout session "
                f"{refs['session_id']}, not known here yet.",
                resource="checkout_session",
                plugipay_id=refs["session_id"],
            )
        invoice = context.get("invoice")
        if session is None and invoice is None and refs.get("invoice_id"):
            spec = registered("invoice")
            invoice = lock(spec, plugipay_id=refs["invoice_id"], only=parent_fields(spec.model))
        if invoice is not None:
            values["invoice_id"] = invoice.pk
            if invoice.customer_id is not None:
                values["customer_id"] = invoice.customer_id
            values["currency"] = values["currency"] or invoice.currency
        if session is not None:
            values["checkout_session_id"] = session.pk
            if session.customer_id is not None:
                values["customer_id"] = session.customer_id
            if values["amount"] is None:
                values["amount"] = session.amount
            values["currency"] = values["currency"] or session.currency
        if values["amount"] is None:
            values["amount"] = 0
        return session if session is not None else invoice

    def after(self, row: Payment, moved_to, refs, event) -> list[Step]:
        """A new pending charge of an open session (its ``payment.updated`` may be all that
        arrived): the session waits for the money (``pending``) or for staff confirming a
        manual transfer (``pending_review``)."""
        if moved_to != PaymentStatus.PENDING or row.checkout_session_id is None:
            return []
        # lock_parent locked this session in this transaction already (lock order), and the
        # engine handed that row to the payment: moved here, the receivers see it moved too.
        session = row.checkout_session
        if session is None or session.status != SessionStatus.OPEN:
            return []
        manual = row.method == "manual"
        status = SessionStatus.PENDING_REVIEW if manual else SessionStatus.PENDING
        method = row.method or session.payment_method
        return [Move("checkout_session", session, status, {"payment_method": method})]

    def synced_through(self, row: Payment) -> list:
        """Plugipay has no payments endpoint: a payment is synced through its session and
        its refunds."""
        through: list = [] if row.checkout_session is None else [row.checkout_session]
        return through + list(row.refunds.exclude(plugipay_id=None))


PAYMENT = registered("payment")
