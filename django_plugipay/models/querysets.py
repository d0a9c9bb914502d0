"""Reusable filters for the mirror models.

Status groups (open sessions, refunds in flight, unpaid invoices, subscriptions that can give
access or may have moved) are read from the resource specs' tiers
(:func:`django_plugipay.specs.status_group`), never listed here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

from django.apps import apps
from django.db import models
from django.db.models import Exists, F, OuterRef, Q, Sum
from django.db.models.functions import Coalesce

from django_plugipay.conf import app_settings
from django_plugipay.context import current_account_pk
from django_plugipay.models.enums import (
    DeliveryStatus,
    EventSource,
    EventStatus,
    InvoiceStatus,
    PaymentStatus,
    RefundStatus,
    SubscriptionStatus,
)
from django_plugipay.specs import status_group

#: ``failure_code`` of a requested refund that could not be queued or sent yet (still retried).
NOT_SUBMITTED = "not_submitted"
_QuerySet = TypeVar("_QuerySet", bound=models.QuerySet)


def owned_by(queryset: _QuerySet, user, customer: str = "customer__") -> _QuerySet:
    """The rows of ``user``'s Plugipay customer in the configured mode and the account acting
    (the default account outside ``acting_for``) — the ownership rule every ``for_user`` and
    ``billing.customers`` follow. ``customer`` is the lookup path from the row to its customer
    (``""`` for customers themselves)."""
    if user is None or getattr(user, "is_anonymous", False) or user.pk is None:
        return queryset.none()
    return queryset.filter(
        **{
            f"{customer}user": user,
            f"{customer}mode": app_settings.MODE,
            f"{customer}account_id": current_account_pk(),
        }
    )


class CustomerQuerySet(models.QuerySet):
    def for_user(self, user) -> CustomerQuerySet:
        return owned_by(self, user, customer="")


class CheckoutSessionQuerySet(models.QuerySet):
    def open(self) -> CheckoutSessionQuerySet:
        return self.filter(status__in=status_group(self.model, "open"))

    def stale(self, now: dt.datetime) -> CheckoutSessionQuerySet:
        """Sessions still open here although Plugipay must have expired or settled them."""
        return self.open().filter(expires_at__lt=now)

    def for_user(self, user) -> CheckoutSessionQuerySet:
        return owned_by(self, user)


class PaymentQuerySet(models.QuerySet):
    def succeeded(self) -> PaymentQuerySet:
        return self.filter(status=PaymentStatus.SUCCEEDED)

    def refundable(self) -> PaymentQuerySet:
        return self.succeeded().filter(amount_refunded__lt=F("amount"))

    def for_user(self, user) -> PaymentQuerySet:
        return owned_by(self, user)

    def with_refund_totals(self) -> PaymentQuerySet:
        """Annotate ``amount_in_flight``: refunds requested or pending, not yet settled."""
        refund = apps.get_model("django_plugipay", "Refund")
        in_flight = Q(refunds__status__in=status_group(refund, "in_flight"))
        return self.annotate(amount_in_flight=Coalesce(Sum("refunds__amount", filter=in_flight), 0))


class RefundQuerySet(models.QuerySet):
    def for_user(self, user) -> RefundQuerySet:
        return owned_by(self, user, customer="payment__customer__")

    def in_flight(self) -> RefundQuerySet:
        return self.filter(status__in=status_group(self.model, "in_flight"))

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

    def endpoint_disabled(self) -> Any:
        """The latest ``webhook_endpoint.disabled`` event when no webhook has arrived since
        (deliveries resuming is the proof the endpoint works again); else None."""
        kind = "webhook_endpoint.disabled"
        disabled: Any = self.filter(kind=kind).order_by("-received_at").first()
        if disabled is None:
            return None
        since = self.filter(source=EventSource.WEBHOOK, received_at__gt=disabled.received_at)
        return None if since.exclude(kind=kind).exists() else disabled

    def stranded(self, queued_before) -> WebhookEventQuerySet:
        """Recorded, not applied, and its task never sent or sent before ``queued_before``."""
        return self.filter(
            Q(queued_at__isnull=True) | Q(queued_at__lt=queued_before),
            status=EventStatus.RECEIVED,
        )


class DeliveryQuerySet(models.QuerySet):
    def due(self, now: dt.datetime, *, force: bool = False) -> DeliveryQuerySet:
        """Deliveries to run now: pending or failed past their backoff (``force``: failed or
        dead whatever the backoff), and running ones whose lease expired (the process died)."""
        waiting = Q(status__in=(DeliveryStatus.PENDING, DeliveryStatus.FAILED))
        if force:
            waiting = Q(
                status__in=(DeliveryStatus.PENDING, DeliveryStatus.FAILED, DeliveryStatus.DEAD)
            )
        else:
            waiting &= Q(next_attempt_at__lte=now)
        return self.filter(waiting | Q(status=DeliveryStatus.RUNNING, leased_until__lt=now))

    def dead(self) -> DeliveryQuerySet:
        return self.filter(status=DeliveryStatus.DEAD)

    def overdue(self, now: dt.datetime, by: dt.timedelta) -> DeliveryQuerySet:
        """Waiting to run (or to be taken over) for longer than ``by``: nobody runs them."""
        late = now - by
        return self.filter(
            Q(status__in=(DeliveryStatus.PENDING, DeliveryStatus.FAILED), next_attempt_at__lt=late)
            | Q(status=DeliveryStatus.RUNNING, leased_until__lt=late)
        )

    def for_object(self, obj: models.Model) -> DeliveryQuerySet:
        from django.contrib.contenttypes.models import ContentType

        return self.filter(content_type=ContentType.objects.get_for_model(obj), object_id=obj.pk)


#: the metadata key under which ``plugipay_plans`` records a plan's key of the ``PLANS`` setting
PLAN_KEY = "django_plugipay_plan"


class PlanQuerySet(models.QuerySet):
    def active(self) -> PlanQuerySet:
        return self.filter(active=True)

    def for_key(self, key: str) -> PlanQuerySet:
        """The plans ``plugipay_plans`` made for ``key`` of ``PLUGIPAY["PLANS"]``."""
        return self.filter(**{f"metadata__{PLAN_KEY}": key})


class PriceQuerySet(models.QuerySet):
    def active(self) -> PriceQuerySet:
        return self.filter(active=True, plan__active=True)


class SubscriptionQuerySet(models.QuerySet):
    def for_user(self, user) -> SubscriptionQuerySet:
        return owned_by(self, user)

    def live(self) -> SubscriptionQuerySet:
        """Not canceled (still at Plugipay's to move: renew, retry, cancel at period end)."""
        return self.filter(status__in=status_group(self.model, "live"))

    def entitled(self, now: dt.datetime) -> SubscriptionQuerySet:
        """Subscriptions that give access now — the one entitlement rule:

        * ``trialing`` until the trial ends;
        * ``active`` (the period is paid for, or its invoice is not due yet);
        * ``past_due`` only when the subscription was paid for before (a renewal Plugipay is
          still collecting): an unpaid first invoice never gives access, so a member whose
          trial ended without a payment has none — ``incomplete`` and then ``past_due`` alike
          — until a payment makes the subscription ``active``;
        * never ``incomplete``, ``paused`` or ``canceled``, nor past a scheduled cancel
          (``cancel_at``) even before the cancel is heard of.
        """
        invoices = apps.get_model("django_plugipay", "Invoice")._default_manager
        paid_before = Exists(
            invoices.filter(subscription=OuterRef("pk"), status=InvoiceStatus.PAID).values("pk")
        )
        return self.filter(
            Q(status=SubscriptionStatus.TRIALING, trial_end__isnull=True)
            | Q(status=SubscriptionStatus.TRIALING, trial_end__gt=now)
            | Q(status=SubscriptionStatus.ACTIVE)
            | Q(paid_before, status=SubscriptionStatus.PAST_DUE),
            Q(cancel_at__isnull=True) | Q(cancel_at__gt=now),
            status__in=status_group(self.model, "entitled"),
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
        return owned_by(self, user)

    def unpaid(self) -> InvoiceQuerySet:
        return self.filter(status__in=status_group(self.model, "unpaid"))

    def paid(self) -> InvoiceQuerySet:
        return self.filter(status=InvoiceStatus.PAID)
