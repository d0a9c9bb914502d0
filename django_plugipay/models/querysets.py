"""Reusable filters for the mirror models."""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.db.models import F, Q, Sum
from django.db.models.functions import Coalesce

from django_plugipay.models.enums import (
    EventStatus,
    InvoiceStatus,
    PaymentStatus,
    RefundStatus,
    SessionStatus,
    SubscriptionStatus,
)

#: ``failure_code`` of a requested refund that could not be queued or sent yet (still retried).
NOT_SUBMITTED = "not_submitted"


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

    def stranded(self, requested_before) -> RefundQuerySet:
        """Requested, not known to Plugipay here, and either marked not submitted or older
        than ``requested_before``."""
        return self.filter(
            Q(failure_code=NOT_SUBMITTED) | Q(created_at__lt=requested_before),
            status=RefundStatus.REQUESTED,
            plugipay_id=None,
        )

    def total(self) -> int:
        return self.aggregate(total=Coalesce(Sum("amount"), 0))["total"]


class WebhookEventQuerySet(models.QuerySet):
    def failed(self) -> WebhookEventQuerySet:
        return self.filter(status=EventStatus.FAILED)

    def unprocessed(self) -> WebhookEventQuerySet:
        return self.filter(status__in=(EventStatus.RECEIVED, EventStatus.FAILED))

    def stranded(self, queued_before) -> WebhookEventQuerySet:
        """Recorded, not applied, and its task never sent or sent before ``queued_before``."""
        return self.filter(
            Q(queued_at__isnull=True) | Q(queued_at__lt=queued_before),
            status=EventStatus.RECEIVED,
        )


class PlanQuerySet(models.QuerySet):
    def active(self) -> PlanQuerySet:
        return self.filter(active=True)


class PriceQuerySet(models.QuerySet):
    def active(self) -> PriceQuerySet:
        return self.filter(active=True, plan__active=True)


class SubscriptionQuerySet(models.QuerySet):
    def for_user(self, user) -> SubscriptionQuerySet:
        return self.filter(customer__user=user)

    def live(self) -> SubscriptionQuerySet:
        """Not canceled (still at Plugipay's to move: renew, retry, cancel at period end)."""
        return self.exclude(status=SubscriptionStatus.CANCELED)

    def entitled(self, now: dt.datetime) -> SubscriptionQuerySet:
        """Subscriptions that give access now: trialing, active or past due (dunning), and
        not past a scheduled cancel (``cancel_at``) even before the cancel is heard of."""
        return self.filter(
            Q(cancel_at__isnull=True) | Q(cancel_at__gt=now),
            status__in=SubscriptionStatus.entitled_states(),
        )

    def on_trial(self, now: dt.datetime) -> SubscriptionQuerySet:
        return self.entitled(now).filter(
            Q(trial_end__isnull=True) | Q(trial_end__gt=now), status=SubscriptionStatus.TRIALING
        )

    def on_grace_period(self, now: dt.datetime) -> SubscriptionQuerySet:
        """Canceled at period end, and the period is not over yet."""
        return self.entitled(now).filter(cancel_at__gt=now)

    def stale(self, now: dt.datetime) -> SubscriptionQuerySet:
        """Live subscriptions whose period, trial or scheduled cancel or resume has passed
        here: Plugipay has moved them on (renewed, billed, canceled) unless a webhook is late."""
        return self.live().filter(
            Q(current_period_end__lt=now)
            | Q(trial_end__lt=now, status=SubscriptionStatus.TRIALING)
            | Q(cancel_at__lt=now)
            | Q(resume_at__lt=now, status=SubscriptionStatus.PAUSED)
        )


class InvoiceQuerySet(models.QuerySet):
    def for_user(self, user) -> InvoiceQuerySet:
        return self.filter(customer__user=user)

    def unpaid(self) -> InvoiceQuerySet:
        return self.filter(status__in=InvoiceStatus.unpaid_states())

    def paid(self) -> InvoiceQuerySet:
        return self.filter(status=InvoiceStatus.PAID)
