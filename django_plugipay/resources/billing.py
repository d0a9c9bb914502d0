"""The billing resources: plans, prices, subscriptions and invoices.

Applied through the same :func:`~django_plugipay.services.apply.advance` as the rest; what
differs is declared here. Lock order: customer (0) → plan (2) → price (4) → subscription (10)
→ invoice (15) → payment (20) → refund (30).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from django_plugipay import datetimes, signals
from django_plugipay.client import endpoint, get_client
from django_plugipay.db import connection_for, execute, find, forget_rows, lock
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
from django_plugipay.resources.common import UPDATED_AT
from django_plugipay.specs import (
    Apply,
    Boolean,
    Currency,
    Group,
    Integer,
    Link,
    List,
    Object,
    ResourceSpec,
    Step,
    Text,
    Timestamp,
    UnresolvedReference,
    field,
    registered,
)

endpoint("plan", "/plans", "create", "get", "update", "list")
endpoint("price", "/prices", "update")
endpoint(
    "subscription",
    "/subscriptions",
    "create",
    "get",
    "update",
    "list",
    actions=("cancel", "pause", "resume"),
)
endpoint("invoice", "/invoices", "get", "list", actions=("void", "send", "finalize", "pay"))


def _known(model: type[models.Model], plugipay_id: str | None, resource: str, what: str) -> Any:
    """The pk of the mirrored row with ``plugipay_id``; an unknown one is fetched first (the
    apply step is rolled back, the object fetched outside the transaction, and run again)."""
    if not plugipay_id:
        return None
    found = find(model, plugipay_id=plugipay_id)  # compiled once: the pk, no ORDER BY
    if found is None:
        raise UnresolvedReference(
            f"{what} names {resource} {plugipay_id}, which is not known here yet.",
            resource=resource,
            plugipay_id=plugipay_id,
        )
    return found.pk


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
    example = {
        "id": "plan_v",
        "name": "Member",
        "description": "Monthly",
        "interval": "month",
        "intervalCount": 1,
        "trialDays": 7,
        "active": True,
        "portalFeatures": {"selfServeCancel": True},
        "metadata": {},
        "prices": [{"id": "price_v", "planId": "plan_v", "currency": "IDR", "unitAmount": 99000}],
        "updatedAt": "2026-01-01T00:00:00Z",
    }

    def after(self, row, moved_to, refs, event) -> list[Step]:
        return [
            Apply("price", {"mode": row.mode, **price}, context={"plan": row})
            for price in refs["prices"]
            if isinstance(price, Mapping) and price.get("id")
        ]

    def fetch(self, plugipay_id: str) -> Mapping[str, Any]:
        return get_client().get_plan(plugipay_id)


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
    locks_with = {"plan_id": "plan"}
    example = {
        "id": "price_v",
        "planId": "plan_v",
        "currency": "IDR",
        "model": "flat",
        "unitAmount": 99000,
        "tiers": [],
        "taxMode": "exclusive",
        "active": True,
        "updatedAt": "2026-01-01T00:00:00Z",
    }

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
            plan = lock(PLAN, plugipay_id=refs["plan_id"], only=())
        if plan is None:
            raise UnresolvedReference(
                f"Price {values['plugipay_id']} names plan {refs['plan_id']}, not known here yet.",
                resource="plan" if refs["plan_id"] else None,
                plugipay_id=refs["plan_id"],
            )
        values["plan_id"] = plan.pk
        return plan

    def synced_through(self, row: Price) -> list:
        return [row.plan]


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
    example = {
        "id": "sub_v",
        "status": "active",
        "customerId": "cus_v",
        "planId": "plan_v",
        "priceId": "price_v",
        "currentPeriodStart": "2026-01-01T00:00:00Z",
        "currentPeriodEnd": "2026-02-01T00:00:00Z",
        "trialEnd": None,
        "cancelAt": None,
        "canceledAt": None,
        "canceledReason": None,
        "pausedAt": None,
        "resumeAt": None,
        "cancelAtPeriodEnd": False,
        "collectionMethod": "send_invoice",
        "metadata": {},
        "updatedAt": "2026-01-01T00:00:00Z",
    }
    outcomes = {
        SubscriptionStatus.ACTIVE: "success",
        SubscriptionStatus.TRIALING: "success",
        SubscriptionStatus.PAST_DUE: "failure",
    }
    groups = {
        "live": Group(_("Not canceled")),
        #: the statuses that can give access (the rule is ``SubscriptionQuerySet.entitled``)
        "entitled": Group(
            _("Can give access"),
            (SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE),
        ),
        #: moving at Plugipay without a webhook yet (a first payment, dunning): synced on read
        "may_have_moved": Group(
            _("May have moved at Plugipay"),
            (SubscriptionStatus.INCOMPLETE, SubscriptionStatus.PAST_DUE),
        ),
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
        price = find(Price, plugipay_id=parent["price_ref"]) if parent["price_ref"] else None
        price_id = price.pk if price is not None else None
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
        return get_client().get_subscription(plugipay_id)

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
    groups = {"unpaid": Group(_("Unpaid"), (InvoiceStatus.OPEN, InvoiceStatus.PAST_DUE))}
    example = {
        "id": "inv_v",
        "status": "paid",
        "customerId": "cus_v",
        "subscriptionId": "sub_v",
        "number": "SBX-000001",
        "currency": "IDR",
        "subtotal": 99000,
        "discount": 0,
        "tax": 0,
        "total": 99000,
        "amountDue": 0,
        "amountPaid": 99000,
        "collectionAttempts": 0,
        "dueAt": "2026-01-08T00:00:00Z",
        "issuedAt": "2026-01-01T00:00:00Z",
        "paidAt": "2026-01-01T00:00:00Z",
        "voidedAt": None,
        "hostedInvoiceUrl": "https://pay.test/i/inv_v",
        "chargeId": "pay_inv_v",
        "lines": [],
        "metadata": {},
        "updatedAt": "2026-01-01T00:00:00Z",
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

    def after(self, row, moved_to, refs, event) -> list[Step]:
        """A paid invoice's charge is a Payment of it (refundable like any other): from the
        invoice's ``chargeId`` (its single read carries it), or a payment heard of earlier."""
        if row.status != InvoiceStatus.PAID:
            return []
        if moved_to == InvoiceStatus.PAID:
            _link_earlier_payments(row)
        if not refs["charge_id"]:
            return []
        payment = {
            "id": refs["charge_id"],
            "status": PaymentStatus.SUCCEEDED,
            "amount": row.amount_paid or row.total,
            "currency": row.currency or None,
            "paidAt": datetimes.to_api(row.paid_at) if row.paid_at else None,
            "mode": row.mode,
        }
        return [Apply("payment", payment, partial=True, context={"invoice": row})]

    def fetch(self, plugipay_id: str) -> Mapping[str, Any]:
        return get_client().get_invoice(plugipay_id)

    def in_flight(self, now: dt.datetime) -> models.QuerySet:
        """Unpaid invoices past their due date (overdue, retried or paid meanwhile)."""
        return Invoice.objects.unpaid().filter(due_at__lt=now)


def _link_earlier_payments(invoice: Invoice) -> None:
    """Link the payments of the invoice's account heard of before ``invoice`` (its id in their
    ``invoiceId``) to it: on PostgreSQL in one statement compiled once, through the index on
    ``data -> invoiceId``."""
    if connection_for(Payment).vendor != "postgresql":
        Payment.objects.filter(
            invoice__isnull=True, account_id=invoice.account_id, data__invoiceId=invoice.plugipay_id
        ).update(invoice=invoice.pk, customer=invoice.customer_id)
    else:
        params = [invoice.pk, invoice.customer_id, invoice.account_id, invoice.plugipay_id]
        execute(Payment, "link_earlier_payments", _link_sql, params)
    forget_rows(Payment)  # changed here, not through the objects a page holds


def _link_sql(connection) -> str:
    qn, meta = connection.ops.quote_name, Payment._meta

    def column(name: str) -> str:
        return qn(meta.get_field(name).column)  # type: ignore[union-attr]

    # the index's own expression (Django's KeyTransform on PostgreSQL), so the index is used
    key = f"({column('data')} -> 'invoiceId') = to_jsonb(%s::text)"
    return (
        f"UPDATE {qn(meta.db_table)} SET {column('invoice')} = %s, {column('customer')} = %s "
        f"WHERE {column('invoice')} IS NULL AND {column('account')} = %s AND {key}"
    )


PLAN = registered("plan")
PRICE = registered("price")
SUBSCRIPTION = registered("subscription")
INVOICE = registered("invoice")
