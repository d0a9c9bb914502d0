"""Recurring billing: the catalog, subscribing, cancel/pause/resume, invoices, the portal.

Every call writes to Plugipay first (with an idempotency key, outside any transaction) and then
applies the object Plugipay answered through the same path as webhooks, so the webhook that
follows changes nothing and every signal is sent once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from django.db.models import Q

from django_plugipay import datetimes
from django_plugipay.accounts import takes_account
from django_plugipay.client import get_client, new_idempotency_key
from django_plugipay.db import run_atomic
from django_plugipay.exceptions import APIError, PlugipayError
from django_plugipay.models import (
    CollectionMethod,
    Customer,
    Invoice,
    Plan,
    Price,
    Subscription,
)
from django_plugipay.resources.billing import INVOICE, PLAN, SUBSCRIPTION
from django_plugipay.services.apply import advance, sync_object
from django_plugipay.specs import status_group
from django_plugipay.webhooks import normalise_status

CANCEL_AT = ("period_end", "now")


@dataclasses.dataclass(frozen=True)
class Subscribed:
    """What :func:`subscribe` returns: the subscription, and for ``send_invoice`` the hosted
    page of the first invoice to send the buyer to (None when nothing is due yet: a trial, or
    a ``charge_automatically`` subscription charged at once)."""

    subscription: Subscription
    invoice: Invoice | None = None
    #: False when the customer already had a live subscription to the plan: that one (and
    #: its unpaid invoice, if any) is returned and nothing is created.
    created: bool = True

    @property
    def invoice_url(self) -> str | None:
        return self.invoice.hosted_url or None if self.invoice is not None else None


@takes_account
def sync_plans() -> list[Plan]:
    """Mirror Plugipay's catalog: every plan and its prices (archived ones too, inactive)."""
    return [advance(PLAN, obj) for obj in get_client().list_plans(limit=100)]


@takes_account
def subscribe(
    *,
    customer: Customer,
    price: Price,
    trial_days: int | None = None,
    collection_method: str = CollectionMethod.SEND_INVOICE,
    payment_token_id: str | None = None,
    metadata: dict[str, str] | None = None,
    return_url: str | None = None,
    idempotency_key: str | None = None,
) -> Subscribed:
    """Subscribe ``customer`` to ``price`` (of its plan) at Plugipay and mirror the result.

    A customer has at most one live (not canceled) subscription to a plan, whichever of its
    prices (a price replaced since included): when there is one, it is returned with
    ``created=False`` (and its unpaid invoice, so ``invoice_url`` still
    leads to the payment) and nothing is created — a second click, or two concurrent ones,
    never subscribe twice. The check runs under a lock on the customer's row, and every
    attempt for the same customer, price and generation (how many subscriptions to the price
    the customer had) sends the same idempotency key, so two requests that both pass the check
    before either is mirrored get the same subscription back from Plugipay.

    ``trial_days`` None takes the plan's. ``send_invoice`` (the default) bills by a hosted
    invoice: send the buyer to ``result.invoice_url``; ``charge_automatically`` needs
    ``payment_token_id`` (or the customer's default token). ``return_url`` is where the hosted
    invoice page sends the buyer back to after paying. Raises ``APIError`` with Plugipay's
    message when it refuses.
    """
    if collection_method not in CollectionMethod.values:
        raise PlugipayError(
            f"collection_method must be one of {', '.join(CollectionMethod.values)}.",
            code="collection_method",
        )
    existing, generation = run_atomic(_live_subscription, customer.pk, price.plan_id)
    if existing is not None:
        return Subscribed(subscription=existing, invoice=_unpaid_invoice(existing), created=False)
    body: dict[str, Any] = {
        "customerId": customer.plugipay_id,
        "planId": price.plan.plugipay_id,
        "priceId": price.plugipay_id,
        "collectionMethod": collection_method,
    }
    if trial_days is not None:
        body["trialDays"] = int(trial_days)
    if payment_token_id:
        body["paymentTokenId"] = payment_token_id
    if metadata:
        body["metadata"] = metadata
    if return_url:
        body["returnUrl"] = return_url
    # one key per customer, plan and generation: two calls at once for two prices of the plan
    # send the same key, and Plugipay makes one subscription (the other call's is refused)
    key = idempotency_key or (
        f"django-plugipay-subscribe-{customer.plugipay_id}-{price.plan.plugipay_id}-{generation}"
    )
    client = get_client()
    try:
        obj = client.create_subscription(body, idempotency_key=key)
    except APIError as exc:
        made = _made_meanwhile(exc, customer, price) if not idempotency_key else None
        if made is None:
            raise
        subscription = advance(SUBSCRIPTION, made)
        return Subscribed(subscription, _unpaid_invoice(subscription), created=False)
    invoice_obj = None
    if obj.get("latestInvoiceId") and collection_method == CollectionMethod.SEND_INVOICE:
        invoice_obj = client.get_invoice(obj["latestInvoiceId"])
    subscription = advance(SUBSCRIPTION, obj)
    invoice = advance(INVOICE, invoice_obj) if invoice_obj is not None else None
    return Subscribed(subscription=subscription, invoice=invoice)


def _made_meanwhile(exc: APIError, customer: Customer, price: Price) -> dict | None:
    """The customer's live subscription to the price's plan at Plugipay, when ``exc`` says
    the plan's key was sent with another body: a call at the same moment subscribed to
    another price of the plan with it."""
    if (exc.code or "").lower() != "idempotency_mismatch":
        return None
    found = get_client().list_subscriptions(
        customerId=customer.plugipay_id, planId=price.plan.plugipay_id
    )
    live = status_group(Subscription, "live")
    return next((obj for obj in found if normalise_status(obj.get("status")) in live), None)


def _live_subscription(customer_pk: int, plan_pk: int) -> tuple[Subscription | None, int]:
    """Under the customer's row lock: its live subscription to the plan (at any of its
    prices), else None and how many (canceled) subscriptions to the plan it had before."""
    Customer.objects.select_for_update().filter(pk=customer_pk).first()
    rows = Subscription.objects.filter(customer_id=customer_pk).filter(
        Q(plan_id=plan_pk) | Q(price__plan_id=plan_pk)
    )
    live = rows.live().order_by("-created_at").first()
    return live, 0 if live is not None else rows.count()


def _unpaid_invoice(subscription: Subscription) -> Invoice | None:
    """The subscription's oldest unpaid invoice (the one to pay first), if any."""
    return subscription.invoices.unpaid().order_by("created_at").first()


def _act(subscription: Subscription, action: str, body: dict[str, Any]) -> Subscription:
    obj = get_client().subscription_action(
        subscription.plugipay_id, action, body, idempotency_key=new_idempotency_key()
    )
    return advance(SUBSCRIPTION, obj)


@takes_account
def cancel_subscription(
    *, subscription: Subscription, at: str = "period_end", reason: str | None = None
) -> Subscription:
    """Cancel now (``subscription_canceled`` at once) or at the end of the period (``cancel_at``
    set; the subscription keeps access until then: ``billing.on_grace_period()``)."""
    if at not in CANCEL_AT:
        raise PlugipayError("at must be 'period_end' or 'now'.", code="at")
    body: dict[str, Any] = {"at": at}
    if reason:
        body["reason"] = reason
    return _act(subscription, "cancel", body)


@takes_account
def pause_subscription(
    *, subscription: Subscription, resume_at: dt.datetime | None = None
) -> Subscription:
    """Pause billing (``subscription_paused``); it resumes at ``resume_at`` when given."""
    body: dict[str, Any] = {}
    if resume_at is not None:
        body["resumeAt"] = datetimes.to_api(resume_at)
    return _act(subscription, "pause", body)


@takes_account
def resume_subscription(*, subscription: Subscription) -> Subscription:
    """Resume a paused subscription (``subscription_resumed``)."""
    return _act(subscription, "resume", {})


@takes_account
def change_subscription_price(*, subscription: Subscription, price: Price) -> Subscription:
    """Move the subscription to another price (billed from the next period;
    ``subscription_updated``)."""
    obj = get_client().update_subscription(
        subscription.plugipay_id,
        {"priceId": price.plugipay_id},
        idempotency_key=new_idempotency_key(),
    )
    return advance(SUBSCRIPTION, obj)


@takes_account
def sync_subscription(*, subscription: Subscription) -> Subscription:
    """Fetch the subscription from Plugipay and apply it (the same path as webhooks)."""
    return sync_object(subscription)


@takes_account
def sync_invoice(*, invoice: Invoice) -> Invoice:
    """Fetch the invoice from Plugipay and apply it; a paid one's charge becomes its Payment."""
    return sync_object(invoice)


@takes_account
def void_invoice(*, invoice: Invoice) -> Invoice:
    """Void an unpaid invoice (``invoice_voided``)."""
    obj = get_client().invoice_action(
        invoice.plugipay_id, "void", idempotency_key=new_idempotency_key()
    )
    return advance(INVOICE, obj)


@takes_account
def email_invoice(*, invoice: Invoice, to: str | None = None) -> str:
    """Have Plugipay email the invoice (to the customer's address unless ``to``); returns the
    address it was sent to."""
    body = {"to": to} if to else {}
    result = get_client().invoice_action(
        invoice.plugipay_id, "send-email", body, idempotency_key=new_idempotency_key()
    )
    return str((result or {}).get("to") or to or "")


@takes_account
def create_portal_session(*, customer: Customer, return_url: str) -> str:
    """A fresh, short-lived billing-portal URL for ``customer`` (redirect to it at once)."""
    obj = get_client().create_portal_session(
        {"customerId": customer.plugipay_id, "returnUrl": return_url},
        idempotency_key=new_idempotency_key(),
    )
    return str(obj["url"])


@takes_account
def invoice_document(*, invoice: Invoice, kind: str = "pdf"):
    """The invoice's document from Plugipay (``kind`` ``"pdf"`` or ``"html"``): a streamed
    ``requests.Response`` the caller reads and closes."""
    if kind not in ("pdf", "html"):
        raise PlugipayError("kind must be 'pdf' or 'html'.", code="kind")
    return get_client().invoice_document(invoice.plugipay_id, kind)
