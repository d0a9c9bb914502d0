"""Owner-facing billing helpers: ``subscribed(owner)``, ``on_trial``, ``on_grace_period``, …

``owner`` is a user (through ``Customer.user``, in the configured mode) or any model instance
with a ``plugipay_customer`` relation (a ForeignKey or OneToOneField to ``Customer``: a Team,
an Organisation). Reads are answered from the mirror; a subscription that may have moved at
Plugipay without a webhook yet (awaiting its first invoice, past due, or past its period end,
trial end or scheduled cancel) is synced first, at most every ``API_SYNC_INTERVAL`` seconds and
never inside a database transaction — so ``subscribed()`` is already true on the first request
after the buyer returns from paying the first invoice.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from django_plugipay.conf import app_settings
from django_plugipay.context import acting_database
from django_plugipay.exceptions import PlugipayError
from django_plugipay.models import Customer, Invoice, Plan, Subscription
from django_plugipay.models.querysets import SubscriptionQuerySet
from django_plugipay.specs import status_group

logger = logging.getLogger(__name__)

#: at most this many subscriptions of one owner are synced on one read
MAX_SYNCS = 5

__all__ = [
    "customers",
    "invoices",
    "on_grace_period",
    "on_trial",
    "subscribed",
    "subscription",
    "subscriptions",
]


def customers(owner: Any) -> QuerySet[Customer]:
    """The owner's Plugipay customers: a user's (in the configured mode), or the one its
    ``plugipay_customer`` relation names."""
    if owner is None or getattr(owner, "is_anonymous", False) or owner.pk is None:
        return Customer.objects.none()
    if hasattr(type(owner), "plugipay_customer"):
        try:
            customer = owner.plugipay_customer
        except ObjectDoesNotExist:
            customer = None
        if customer is None:
            return Customer.objects.none()
        return Customer.objects.filter(pk=customer.pk)
    if isinstance(owner, get_user_model()):
        return Customer.objects.for_user(owner)
    raise TypeError(
        f"{type(owner).__name__} is not a billing owner: pass a user, or a model instance "
        "with a `plugipay_customer` relation to django_plugipay.Customer."
    )


def subscriptions(owner: Any, plan: Plan | str | None = None) -> SubscriptionQuerySet:
    """The owner's subscriptions (newest first), of ``plan`` (a Plan or its Plugipay id) when
    given, after syncing the ones Plugipay may have moved meanwhile."""
    rows = Subscription.objects.filter(customer__in=customers(owner))
    if plan is not None:
        rows = rows.filter(**({"plan": plan} if isinstance(plan, Plan) else _plan_lookup(plan)))
    sync_moving(rows)
    return rows.order_by("-created_at")


def _plan_lookup(plan: str) -> dict[str, str]:
    return {"plan__plugipay_id": plan}


def sync_moving(rows: SubscriptionQuerySet) -> None:
    """Sync (rate-limited, outside transactions) those of ``rows`` that may have moved at
    Plugipay without a webhook yet; on failure the mirror is answered as it is. Every read of
    subscriptions (these helpers, the DRF API) goes through it."""
    if transaction.get_connection(acting_database()).in_atomic_block:
        return  # no HTTP call inside a transaction: answer from the mirror
    now = timezone.now()
    fresh_until = now - dt.timedelta(seconds=app_settings.API_SYNC_INTERVAL)
    moving = Q(status__in=status_group(Subscription, "may_have_moved")) | Q(
        pk__in=Subscription.objects.stale(now).values("pk")
    )
    # Rate-limited on this path's own last fetch, not on synced_at: a webhook that lands while
    # the buyer is on the invoice page must not make the buyer's return skip its sync.
    due = rows.filter(moving).filter(
        Q(read_synced_at__isnull=True) | Q(read_synced_at__lt=fresh_until)
    )
    from django_plugipay.services.billing import sync_invoice, sync_subscription

    for row in due[:MAX_SYNCS]:
        Subscription.objects.filter(pk=row.pk).update(read_synced_at=now)
        with contextlib.suppress(PlugipayError):
            sync_subscription(subscription=row)
            # Its unpaid invoices move with it (open → past due, or paid): the mirror shows
            # the invoice in step with its subscription even before the webhook.
            for invoice in Invoice.objects.filter(subscription=row).unpaid()[:MAX_SYNCS]:
                sync_invoice(invoice=invoice)


def subscription(owner: Any, plan: Plan | str | None = None) -> Subscription | None:
    """The owner's current subscription: the newest one giving access, else the newest."""
    rows = subscriptions(owner, plan)
    return rows.entitled(timezone.now()).first() or rows.first()


def subscribed(owner: Any, plan: Plan | str | None = None) -> bool:
    """Does a subscription give the owner access now? Trialing until the trial ends, active,
    or past due on a renewal after an earlier payment (Plugipay is still collecting) — never
    on an unpaid first invoice, and not past a cancel scheduled for the period end. See
    ``SubscriptionQuerySet.entitled`` and the timeline in the billing reference."""
    return subscriptions(owner, plan).entitled(timezone.now()).exists()


def on_trial(owner: Any, plan: Plan | str | None = None) -> bool:
    return subscriptions(owner, plan).on_trial(timezone.now()).exists()


def on_grace_period(owner: Any, plan: Plan | str | None = None) -> bool:
    """Canceled at the end of the period, and the period is not over: still subscribed."""
    return subscriptions(owner, plan).on_grace_period(timezone.now()).exists()


def invoices(owner: Any) -> QuerySet[Invoice]:
    """The owner's invoices, newest first."""
    return Invoice.objects.filter(customer__in=customers(owner)).order_by("-created_at")
