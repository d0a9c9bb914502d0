"""Reusable filters for the mirror models."""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.db.models import F, Q, Sum
from django.db.models.functions import Coalesce

from django_plugipay.models.enums import (
    EventStatus,
    PaymentStatus,
    RefundStatus,
    SessionStatus,
)


class CustomerQuerySet(models.QuerySet):
    def for_user(self, user) -> CustomerQuerySet:
        return self.filter(user=user)


class CheckoutSessionQuerySet(models.QuerySet):
    def open(self) -> CheckoutSessionQuerySet:
        return self.filter(status__in=SessionStatus.open_states())

    def stale(self, now: dt.datetime) -> CheckoutSessionQuerySet:
        """Sessions still open here although Plugipay must have expired or settled them."""
        return self.open().filter(expires_at__lt=now)

    def for_user(self, user) -> CheckoutSessionQuerySet:
        return self.filter(customer__user=user)


class PaymentQuerySet(models.QuerySet):
    def succeeded(self) -> PaymentQuerySet:
        return self.filter(status=PaymentStatus.SUCCEEDED)

    def refundable(self) -> PaymentQuerySet:
        return self.succeeded().filter(amount_refunded__lt=F("amount"))

    def for_user(self, user) -> PaymentQuerySet:
        return self.filter(customer__user=user)

    def with_refund_totals(self) -> PaymentQuerySet:
        """Annotate ``amount_in_flight``: refunds requested or pending, not yet settled."""
        in_flight = Q(refunds__status__in=(RefundStatus.REQUESTED, RefundStatus.PENDING))
        return self.annotate(amount_in_flight=Coalesce(Sum("refunds__amount", filter=in_flight), 0))


class RefundQuerySet(models.QuerySet):
    def for_user(self, user) -> RefundQuerySet:
        return self.filter(payment__customer__user=user)

    def in_flight(self) -> RefundQuerySet:
        return self.filter(status__in=(RefundStatus.REQUESTED, RefundStatus.PENDING))

    def total(self) -> int:
        return self.aggregate(total=Coalesce(Sum("amount"), 0))["total"]


class WebhookEventQuerySet(models.QuerySet):
    def failed(self) -> WebhookEventQuerySet:
        return self.filter(status=EventStatus.FAILED)

    def unprocessed(self) -> WebhookEventQuerySet:
        return self.filter(status__in=(EventStatus.RECEIVED, EventStatus.FAILED))
