"""The checkout session resource."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from django_plugipay import datetimes, signals
from django_plugipay.client import endpoint, get_client
from django_plugipay.models import CheckoutSession, PaymentStatus, SessionStatus
from django_plugipay.resources.common import UPDATED_AT
from django_plugipay.signals import checkout_session_pending
from django_plugipay.specs import (
    Apply,
    Currency,
    Group,
    Integer,
    Link,
    Object,
    ResourceSpec,
    Step,
    Text,
    Timestamp,
    field,
    registered,
)

endpoint(
    "checkout_session",
    "/checkout-sessions",
    "create",
    "get",
    "list",
    actions=("cancel", "confirm"),
)


class CheckoutSessionSpec(ResourceSpec):
    name = "checkout_session"
    events = (
        "created",
        "completed",
        "expired",
        "canceled",
        "async_payment_succeeded",
        "async_payment_failed",
    )
    model = CheckoutSession
    lock_rank = 10
    fields = {
        "amount": field(Integer(0), "amount", default=0),
        "currency": field(Currency(), "currency"),
        "url": field(Text(), "hostedUrl", "url"),
        "success_url": field(Text(), "successUrl"),
        "cancel_url": field(Text(), "cancelUrl"),
        "expires_at": field(Timestamp(), "expiresAt"),
        "completed_at": field(Timestamp(), "completedAt"),
        "payment_method": field(Text(), "paymentMethod"),
        "metadata": field(Object(), "metadata"),
    }
    refs = {
        "updated_at": UPDATED_AT,
        "customer_id": field(Text(), "customerId"),
        "payment_id": field(Text(), "paymentId"),
    }
    links = {"customer": Link("django_plugipay.Customer", "customer_id")}
    locks_with = {"payment_id": "payment"}
    tiers = (
        (SessionStatus.OPEN, SessionStatus.PENDING, SessionStatus.PENDING_REVIEW),
        (
            SessionStatus.COMPLETED,
            SessionStatus.EXPIRED,
            SessionStatus.CANCELED,
            SessionStatus.FAILED,
        ),
    )
    signals = {
        SessionStatus.COMPLETED: signals.checkout_session_completed,
        SessionStatus.EXPIRED: signals.checkout_session_expired,
        SessionStatus.CANCELED: signals.checkout_session_canceled,
    }
    first_entry = {
        SessionStatus.PENDING: ("pending_at", checkout_session_pending),
        SessionStatus.PENDING_REVIEW: ("pending_at", checkout_session_pending),
    }
    actions = {
        "completed": SessionStatus.COMPLETED,
        "expired": SessionStatus.EXPIRED,
        "canceled": SessionStatus.CANCELED,
        "async_payment_succeeded": SessionStatus.COMPLETED,
    }
    outcomes = {SessionStatus.COMPLETED: "success", SessionStatus.FAILED: "failure"}
    groups = {"open": Group(_("Open"))}
    example = {
        "id": "cs_v",
        "status": "completed",
        "amount": 5000,
        "currency": "IDR",
        "customerId": "cus_v",
        "paymentId": "pay_v",
        "paymentMethod": "card",
        "hostedUrl": "https://pay.test/c/cs_v",
        "expiresAt": "2026-01-02T00:00:00Z",
        "completedAt": "2026-01-01T00:00:00Z",
        "metadata": {"order": "1"},
        "updatedAt": "2026-01-01T00:00:00Z",
    }

    def after(self, row, moved_to, refs, event) -> list[Step]:
        """A completed session's charge becomes its Payment (once, whichever comes first)."""
        if row.status != SessionStatus.COMPLETED or not refs.get("payment_id"):
            return []
        payment_obj = {
            "id": refs["payment_id"],
            "status": PaymentStatus.SUCCEEDED,
            "amount": row.amount,
            "currency": row.currency or None,
            "method": row.payment_method or None,
            "paidAt": datetimes.to_api(row.completed_at) if row.completed_at else None,
            "mode": row.mode,
        }
        return [Apply("payment", payment_obj, partial=True, context={"session": row})]

    def fetch(self, plugipay_id: str) -> Mapping[str, Any]:
        return get_client().get_checkout_session(plugipay_id)

    def in_flight(self, now: dt.datetime) -> models.QuerySet:
        return CheckoutSession.objects.stale(now)


CHECKOUT_SESSION = registered("checkout_session")
