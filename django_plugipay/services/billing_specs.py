"""The billing resources' specs: plans, prices, subscriptions and invoices.

Applied through the same :func:`~django_plugipay.services.mirror.advance` as the rest; what
differs is declared here. Lock order: customer (0) → plan (2) → price (4) → subscription (10)
→ invoice (15) → payment (20) → refund (30).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from django.db import models

from django_plugipay import datetimes, signals
from django_plugipay.models import (
    Customer,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentStatus,
    Plan,
    Price,
    PriceModel,
    Subscription,
    SubscriptionStatus,
)
from django_plugipay.services.mirror import (
    PAYMENT,
    UPDATED_AT,
    UnresolvedReference,
    _client,
    _registered,
    advance,
    lock,
)
from django_plugipay.specs import (
    Boolean,
    Currency,
    Integer,
    Link,
    List,
    Object,
    ResourceSpec,
    Text,
    Timestamp,
    field,
)


def _known(model: type[models.Model], plugipay_id: str | None, resource: str, what: str) -> Any:
    """The pk of the mirrored row with ``plugipay_id``; an unknown one is fetched first (the
    apply step is rolled back, the object fetched outside the transaction, and run again)."""
    if not plugipay_id:
        return None
    pk = model._default_manager.filter(plugipay_id=plugipay_id).values_list("pk", flat=True).first()
    if pk is None:
        raise UnresolvedReference(
            f"{what} names {resource} {plugipay_id}, which is not known here yet.",
            resource=resource,
            plugipay_id=plugipay_id,
        )
    return pk


class PlanSpec(ResourceSpec):
    """A plan; its prices come embedded (``prices[]``) and are applied as its children."""

    name = "plan"
    events = ("created", "updated", "archived")
    model = Plan
    lock_rank = 2
    fields = {
        "name": field(Text(), "name"),
        "description": field(Text(), "description"),
        "interval": field(Text(), "interval"),
        "interval_count": field(Integer(1), "intervalCount", default=1),
        "trial_days": field(Integer(0), "trialDays", default=0),
        "active": field(Boolean(), "active", default=True),
        "portal_features": field(Object(), "portalFeatures"),
        "metadata": field(Object(), "metadata"),
    }
    refs = {"updated_at": UPDATED_AT, "prices": field(List(), "prices")}

    def after(self, row, moved_to, refs, event) -> None:
        for price in refs["prices"]:
            if isinstance(price, Mapping) and price.get("id"):
                advance(PRICE, {"mode": row.mode, **price}, event=event, context={"plan": row})

    def fetch(self, plugipay_id: str) -> Mapping[str, Any]:
        return _client().get_plan(plugipay_id)


class PriceSpec(ResourceSpec):
    """A price of a plan (synced through its plan: Plugipay has no price read)."""

    name = "price"
    model = Price
    lock_rank = 4
    fields = {
        "currency": field(Currency(), "currency"),
        "model": field(Text(), "model"),
        "unit_amount": field(Integer(0), "unitAmount"),
        "tiers": field(List(), "tiers"),
        "tax_mode": field(Text(), "taxMode"),
        "active": field(Boolean(), "active", default=True),
    }
    refs = {"updated_at": UPDATED_AT, "plan_id": field(Text(), "planId")}

    def read(self, obj, action=None):
        values, refs = super().read(obj, action)
        values["model"] = values["model"] or PriceModel.FLAT
        values["tax_mode"] = values["tax_mode"] or "exclusive"
        if values["model"] != PriceModel.FLAT:
            values["unit_amount"] = None  # tiers carry the amounts (kept in ``data``)
        return values, refs

    def lock_parent(self, values, refs, context) -> Plan:
        plan = context.get("plan")
        if plan is None and refs["plan_id"]:
            plan = lock(PLAN, Plan.objects.filter(plugipay_id=refs["plan_id"]))
        if plan is None:
            raise UnresolvedReference(
                f"Price {values['plugipay_id']} names plan {refs['plan_id']}, not known here yet.",
                resource="plan" if refs["plan_id"] else None,
                plugipay_id=refs["plan_id"],
            )
        values["plan_id"] = plan.pk
        return plan

    def sync(self, row: Price) -> Price:
        PLAN.sync(row.plan)
        row.refresh_from_db()
        return row


class SubscriptionSpec(ResourceSpec):
    name = "subscription"
    events = ("created", "updated", "paused", "resumed", "canceled", "renewed")
    model = Subscription
    lock_rank = 10
    open_statuses = True
    fields = {
        "current_period_start": field(Timestamp(), "currentPeriodStart"),
        "current_period_end": field(Timestamp(), "currentPeriodEnd"),
        "trial_end": field(Timestamp(), "trialEnd", "trialEndsAt"),
        "cancel_at": field(Timestamp(), "cancelAt"),
        "canceled_at": field(Timestamp(), "canceledAt"),
        "canceled_reason": field(Text(), "canceledReason"),
        "paused_at": field(Timestamp(), "pausedAt"),
        "resume_at": field(Timestamp(), "resumeAt"),
        "collection_method": field(Text(), "collectionMethod"),
        "metadata": field(Object(), "metadata"),
    }
    monotonic = frozenset({"current_period_start", "current_period_end"})
    #: cleared when a full object says so (a resume clears ``pausedAt``)
    clearable = frozenset({"cancel_at", "paused_at", "resume_at"})
    refs = {
        "updated_at": UPDATED_AT,
        "customer_id": field(Text(), "customerId"),
        "plan_id": field(Text(), "planId"),
        "price_id": field(Text(), "priceId"),
        "cancel_at_period_end": field(Boolean(), "cancelAtPeriodEnd"),
    }
    links = {"price": Link("django_plugipay.Price", "price_id")}
    tiers = (
        (
            SubscriptionStatus.INCOMPLETE,
            SubscriptionStatus.TRIALING,
            SubscriptionStatus.ACTIVE,
            SubscriptionStatus.PAST_DUE,
            SubscriptionStatus.PAUSED,
        ),
        (SubscriptionStatus.CANCELED,),
    )
    signals = {
        SubscriptionStatus.ACTIVE: signals.subscription_activated,
        SubscriptionStatus.PAST_DUE: signals.subscription_past_due,
        SubscriptionStatus.PAUSED: signals.subscription_paused,
        SubscriptionStatus.CANCELED: signals.subscription_canceled,
    }
    actions = {"canceled": SubscriptionStatus.CANCELED, "paused": SubscriptionStatus.PAUSED}
    outcomes = {
        SubscriptionStatus.ACTIVE: "success",
        SubscriptionStatus.TRIALING: "success",
        SubscriptionStatus.PAST_DUE: "failure",
    }

    def read(self, obj, action=None):
        values, refs = super().read(obj, action)
        if values["cancel_at"] is None and refs["cancel_at_period_end"]:  # the older name
            values["cancel_at"] = values["current_period_end"]
        return values, refs

    def incomplete(self, obj: Mapping[str, Any]) -> bool:
        """The renewal job's ``renewed`` event carries only the id and the new period."""
        return not obj.get("status") and not obj.get("customerId")

    def lock_parent(self, values, refs, context) -> dict[str, Any]:
        """Customer and plan must be known (fetched first when not): access checks read the
        customer, and a plan change is a signal."""
        values["customer_id"] = _known(Customer, refs["customer_id"], "customer", "A subscription")
        plan_id = _known(Plan, refs["plan_id"], "plan", "A subscription")
        values["plan_id"] = plan_id
        return {"plan_id": plan_id, "price_ref": refs["price_id"], "plan_ref": refs["plan_id"]}

    def changed(self, row, moved_to, parent) -> None:
        """A fresher object that names another plan or price moves the links (the shared
        path only fills empty ones)."""
        data = row.data or {}
        if data.get("planId") != parent["plan_ref"] or data.get("priceId") != parent["price_ref"]:
            return  # the row did not take this object in (stale)
        price_id = (
            Price.objects.filter(plugipay_id=parent["price_ref"])
            .values_list("pk", flat=True)
            .first()
            if parent["price_ref"]
            else None
        )
        moved = {}
        if parent["plan_id"] is not None and row.plan_id != parent["plan_id"]:
            moved["plan_id"] = parent["plan_id"]
        if price_id is not None and row.price_id != price_id:
            moved["price_id"] = price_id
        if moved:
            Subscription.objects.filter(pk=row.pk).update(**moved)
            for name, value in moved.items():
                setattr(row, name, value)

    def remember(self, row: Subscription) -> tuple:
        return (row.status, row.current_period_start, row.plan_id, row.price_id)

    def transitions(self, row, moved_to, before) -> list:
        sent = []
        if before is None:
            sent.append(signals.subscription_created)
            if row.status in self.signals:
                sent.append(self.signals[row.status])
            return sent
        status, start, plan_id, price_id = before
        if moved_to:
            if status == SubscriptionStatus.PAUSED and moved_to != SubscriptionStatus.CANCELED:
                sent.append(signals.subscription_resumed)
            if moved_to in self.signals:
                sent.append(self.signals[moved_to])
        new_start = row.current_period_start
        if (
            status == row.status == SubscriptionStatus.ACTIVE
            and start is not None
            and new_start is not None
            and new_start > start
        ):
            sent.append(signals.subscription_renewed)
        if (plan_id is not None and row.plan_id != plan_id) or (
            price_id is not None and row.price_id != price_id
        ):
            sent.append(signals.subscription_updated)
        return sent

    def fetch(self, plugipay_id: str) -> Mapping[str, Any]:
        return _client().get_subscription(plugipay_id)

    def in_flight(self, now: dt.datetime) -> models.QuerySet:
        return Subscription.objects.stale(now)


class InvoiceSpec(ResourceSpec):
    name = "invoice"
    events = (
        "created",
        "finalized",
        "sent",
        "updated",
        "paid",
        "failed",
        "payment_failed",
        "voided",
    )
    model = Invoice
    lock_rank = 15
    open_statuses = True
    fields = {
        "number": field(Text(), "number"),
        "currency": field(Currency(), "currency"),
        "subtotal": field(Integer(0), "subtotal", default=0),
        "discount": field(Integer(0), "discount", default=0),
        "tax": field(Integer(0), "tax", default=0),
        "total": field(Integer(0), "total", default=0),
        "amount_due": field(Integer(0), "amountDue", default=0),
        "amount_paid": field(Integer(0), "amountPaid", default=0),
        "collection_attempts": field(Integer(0), "collectionAttempts", default=0),
        "due_at": field(Timestamp(), "dueAt"),
        "issued_at": field(Timestamp(), "issuedAt"),
        "paid_at": field(Timestamp(), "paidAt"),
        "voided_at": field(Timestamp(), "voidedAt"),
        "hosted_url": field(Text(), "hostedInvoiceUrl", "hostedUrl"),
        "lines": field(List(), "lines"),
        "metadata": field(Object(), "metadata"),
    }
    monotonic = frozenset({"collection_attempts", "amount_paid"})
    refs = {
        "updated_at": UPDATED_AT,
        "customer_id": field(Text(), "customerId"),
        "subscription_id": field(Text(), "subscriptionId"),
        "charge_id": field(Text(), "chargeId"),
    }
    tiers = (
        (InvoiceStatus.DRAFT,),
        (InvoiceStatus.OPEN, InvoiceStatus.PAST_DUE, InvoiceStatus.UNCOLLECTIBLE),
        (InvoiceStatus.PAID, InvoiceStatus.VOID),
    )
    signals = {InvoiceStatus.PAID: signals.invoice_paid, InvoiceStatus.VOID: signals.invoice_voided}
    actions = {
        "finalized": InvoiceStatus.OPEN,
        "paid": InvoiceStatus.PAID,
        "voided": InvoiceStatus.VOID,
    }
    outcomes = {
        InvoiceStatus.PAID: "success",
        InvoiceStatus.PAST_DUE: "failure",
        InvoiceStatus.UNCOLLECTIBLE: "failure",
    }

    def lock_parent(self, values, refs, context) -> None:
        values["customer_id"] = _known(Customer, refs["customer_id"], "customer", "An invoice")
        values["subscription_id"] = _known(
            Subscription, refs["subscription_id"], "subscription", "An invoice"
        )

    def remember(self, row: Invoice) -> int:
        return row.collection_attempts

    def transitions(self, row, moved_to, before) -> list:
        sent = super().transitions(row, moved_to, before)
        attempts_before = 0 if before is None else before
        failed = row.collection_attempts > attempts_before and row.status not in self.terminal
        if failed and row.status != InvoiceStatus.DRAFT:
            sent.insert(0, signals.invoice_payment_failed)
        return sent

    def after(self, row, moved_to, refs, event) -> None:
        """A paid invoice's charge is a Payment of it (refundable like any other): from the
        invoice's ``chargeId`` (its single read carries it), or a payment heard of earlier."""
        if row.status != InvoiceStatus.PAID:
            return
        if refs["charge_id"]:
            payment = {
                "id": refs["charge_id"],
                "status": PaymentStatus.SUCCEEDED,
                "amount": row.amount_paid or row.total,
                "currency": row.currency or None,
                "paidAt": datetimes.to_api(row.paid_at) if row.paid_at else None,
                "mode": row.mode,
            }
            advance(PAYMENT, payment, event=event, partial=True, context={"invoice": row})
        if moved_to == InvoiceStatus.PAID:
            Payment.objects.filter(invoice__isnull=True, data__invoiceId=row.plugipay_id).update(
                invoice=row.pk, customer=row.customer_id
            )

    def fetch(self, plugipay_id: str) -> Mapping[str, Any]:
        return _client().get_invoice(plugipay_id)

    def in_flight(self, now: dt.datetime) -> models.QuerySet:
        """Unpaid invoices past their due date (overdue, retried or paid meanwhile)."""
        return Invoice.objects.unpaid().filter(due_at__lt=now)


PLAN = _registered("plan")
PRICE = _registered("price")
SUBSCRIPTION = _registered("subscription")
INVOICE = _registered("invoice")
