"""Subscriptions: create, update, cancel, pause, resume, and their lifecycle on the clock
(trial ends, renewals, dunning retries, due dates, scheduled cancels and resumes), including each
subscription's own test clock."""

from __future__ import annotations

from typing import Any

from plugipay_sandbox.state import invoices, plans
from plugipay_sandbox.state.core import ApiError, Family, Store, iso, new_id, not_found, register

DAY = 86400
COLLECTION_METHODS = ("charge_automatically", "send_invoice")
CANCEL_REASONS = ("customer_portal", "merchant", "failed_payment", "user_request")
LIVE_SUBSCRIPTION = ("trialing", "active", "past_due", "paused", "incomplete")


def sub_now(store: Store, subscription: dict[str, Any]) -> float:
    """The subscription's time: the sandbox clock plus what its test clock was advanced."""
    return store.now() + subscription.get("_clockOffset", 0.0)


def create_subscription(store: Store, mode: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Start a subscription: trialing, or billed at once (send_invoice: open invoice, incomplete;
    charge_automatically: the token is charged, active or past_due)."""
    with store.lock:
        customer = store.get(store.customers, mode, fields["customerId"], "customer")
        plan, price = _plan_price(store, mode, fields["planId"], fields["priceId"])
        method = fields.get("collectionMethod") or "charge_automatically"
        token = fields.pop("paymentTokenId", None) or customer.get("defaultPaymentTokenId")
        if token:
            invoices.check_token(store, customer, token, "paymentTokenId")
        elif method == "charge_automatically":
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                "charge_automatically needs paymentTokenId (or a customer "
                "defaultPaymentTokenId); use send_invoice to bill by invoice.",
                field="paymentTokenId",
            )
        trial_days = fields.pop("trialDays", None)
        trial_days = plan["trialDays"] if trial_days is None else trial_days
        discount = fields.pop("initialDiscount", None)
        subscription: dict[str, Any] = {
            "id": new_id("sub_"),
            "customerId": customer["id"],
            "planId": plan["id"],
            "priceId": price["id"],
            "status": "incomplete",
            "currentPeriodStart": None,
            "currentPeriodEnd": None,
            "trialEnd": None,
            "cancelAt": None,
            "canceledAt": None,
            "canceledReason": None,
            "pausedAt": None,
            "resumeAt": None,
            "defaultPaymentTokenId": token,
            "discountCouponId": fields.get("couponId"),
            "collectionMethod": method,
            "latestInvoiceId": None,
            "metadata": fields.get("metadata"),
            # Sandbox convention (Plugipay's sources name no such field): where the hosted
            # invoice page of this subscription's invoices sends the buyer after paying.
            "returnUrl": fields.get("returnUrl"),
            "_clockOffset": 0.0,
            "_discount": discount or 0,
        }
        store.stamp(subscription, mode)
        store.subscriptions[subscription["id"]] = subscription
        now = sub_now(store, subscription)
        if trial_days:
            end = now + trial_days * DAY
            subscription.update(
                status="trialing",
                trialEnd=iso(end),
                currentPeriodStart=iso(now),
                currentPeriodEnd=iso(end),
                _trialEndTs=end,
                _periodEndTs=end,
            )
            store.emit("subscription.created", subscription)
        else:
            subscription.update(_period(store, subscription, now))
            store.emit("subscription.created", subscription)
            _bill(store, subscription, now)
        return subscription


def _plan_price(
    store: Store, mode: str, plan_id: str, price_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    plan = store.plans.get(plan_id)
    if plan is None or plan["mode"] != mode:
        raise ApiError(404, "not_found", f"No plan with id {plan_id!r}.", field="planId")
    if not plan["active"]:
        raise ApiError(400, "VALIDATION_ERROR", f"Plan {plan_id} is archived.", field="planId")
    price = store.prices.get(price_id)
    if price is None or price["planId"] != plan_id:
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            f"priceId {price_id!r} is not a price of plan {plan_id}.",
            field="priceId",
        )
    if not price["active"]:
        raise ApiError(400, "VALIDATION_ERROR", f"Price {price_id} is inactive.", field="priceId")
    return plan, price


def _set(store: Store, subscription: dict[str, Any], **changes: Any) -> None:
    store.change(subscription, "subscription.updated", **changes)


def get_subscription(store: Store, subscription_id: str, mode: str | None = None) -> dict[str, Any]:
    subscription = store.subscriptions.get(subscription_id)
    if subscription is None or (mode is not None and subscription["mode"] != mode):
        raise not_found("subscription", subscription_id)
    return subscription


def _period(store: Store, subscription: dict[str, Any], start: float) -> dict[str, Any]:
    """The fields of a billing period starting at ``start`` (the end is kept as a timestamp)."""
    plan = store.plans[subscription["planId"]]
    end = plans.add_interval(start, plan["interval"], plan["intervalCount"])
    subscription["_periodEndTs"] = end
    return {"currentPeriodStart": iso(start), "currentPeriodEnd": iso(end)}


def _bill(store: Store, subscription: dict[str, Any], now: float) -> dict[str, Any]:
    """Invoice the current period; charge it or send it, as the collection method says."""
    plan = store.plans[subscription["planId"]]
    price = store.prices[subscription["priceId"]]
    start, end = subscription["currentPeriodStart"][:10], subscription["currentPeriodEnd"][:10]
    discount, subscription["_discount"] = subscription.get("_discount", 0), 0
    invoice = invoices.create_invoice(
        store,
        subscription["mode"],
        {
            "customerId": subscription["customerId"],
            "subscriptionId": subscription["id"],
            "currency": price["currency"],
            "discount": discount,
            "lines": [
                {
                    "description": f"{plan['name']} ({start} – {end})",
                    "quantity": 1,
                    "unitAmount": plans.price_amount(price),
                    "priceId": price["id"],
                }
            ],
        },
        status="open",
        now=now,
    )
    subscription["latestInvoiceId"] = invoice["id"]
    token = _token_for(store, subscription)
    if subscription["collectionMethod"] == "send_invoice":
        store.emit("invoice.sent", invoice)
    elif invoice["amountDue"] == 0:
        invoices.mark_paid(store, invoice, "card")
    elif not invoices.charge_token(store, invoice, token, now):
        _set(store, subscription, status="past_due")
    return invoice


def _token_for(store: Store, subscription: dict[str, Any]) -> str | None:
    """The subscription's token, else the customer's default (a card saved on an invoice page)."""
    customer = store.customers[subscription["customerId"]]
    return subscription["defaultPaymentTokenId"] or customer.get("defaultPaymentTokenId")


def update_subscription(
    store: Store, mode: str, subscription_id: str, fields: dict[str, Any]
) -> dict[str, Any]:
    """Change price (billed from the next period), default token or metadata."""
    with store.lock:
        subscription = get_subscription(store, subscription_id, mode)
        _require_live(subscription, "update")
        changes = dict(fields)
        if "priceId" in fields:
            price = store.prices.get(fields["priceId"])
            if price is None or price["mode"] != mode or not price["active"]:
                raise ApiError(
                    400,
                    "VALIDATION_ERROR",
                    f"priceId {fields['priceId']!r} is not an active price.",
                    field="priceId",
                )
            current = store.prices[subscription["priceId"]]
            if price["currency"] != current["currency"]:
                raise ApiError(
                    400,
                    "VALIDATION_ERROR",
                    f"priceId must be in {current['currency']}, like the current price.",
                    field="priceId",
                )
            changes["planId"] = price["planId"]
        if fields.get("defaultPaymentTokenId"):
            customer = store.customers[subscription["customerId"]]
            invoices.check_token(
                store, customer, fields["defaultPaymentTokenId"], "defaultPaymentTokenId"
            )
        _set(store, subscription, **changes)
        return subscription


def _require_live(subscription: dict[str, Any], action: str, *statuses: str) -> None:
    if subscription["status"] not in (statuses or LIVE_SUBSCRIPTION):
        raise ApiError(
            409,
            "conflict",
            f"Cannot {action} subscription {subscription['id']}: it is {subscription['status']}.",
        )


def cancel_subscription(
    store: Store, mode: str, subscription_id: str, *, at: str, reason: str | None
) -> dict[str, Any]:
    with store.lock:
        subscription = get_subscription(store, subscription_id, mode)
        _require_live(subscription, "cancel")
        if at == "now":
            _cancel(store, subscription, reason, sub_now(store, subscription))
        elif subscription["cancelAt"]:
            raise ApiError(
                409,
                "conflict",
                f"Subscription {subscription_id} already cancels at {subscription['cancelAt']}.",
            )
        else:
            subscription["_cancelAtTs"] = subscription["_periodEndTs"]
            subscription["_cancelReason"] = reason
            _set(store, subscription, cancelAt=subscription["currentPeriodEnd"])
        return subscription


def _cancel(store: Store, subscription: dict[str, Any], reason: str | None, now: float) -> None:
    for name in ("_cancelAtTs", "_cancelReason", "_resumeAtTs"):
        subscription.pop(name, None)
    subscription.update(status="canceled", canceledAt=iso(now), canceledReason=reason)
    for invoice in store.invoices.values():
        if invoice.get("subscriptionId") == subscription["id"]:
            invoice.pop("_retryTs", None)
    store.touch(subscription)
    store.emit("subscription.canceled", subscription)


def pause_subscription(
    store: Store, mode: str, subscription_id: str, resume_at: float | None
) -> dict[str, Any]:
    with store.lock:
        subscription = get_subscription(store, subscription_id, mode)
        _require_live(subscription, "pause", "trialing", "active", "past_due")
        now = sub_now(store, subscription)
        if resume_at is not None and resume_at <= now:
            raise ApiError(
                400, "VALIDATION_ERROR", "resumeAt must be in the future.", field="resumeAt"
            )
        subscription.update(
            _statusBeforePause=subscription["status"],
            status="paused",
            pausedAt=iso(now),
            resumeAt=iso(resume_at) if resume_at else None,
        )
        if resume_at:
            subscription["_resumeAtTs"] = resume_at
        store.touch(subscription)
        store.emit("subscription.paused", subscription)
        return subscription


def resume_subscription(store: Store, mode: str | None, subscription_id: str) -> dict[str, Any]:
    with store.lock:
        subscription = get_subscription(store, subscription_id, mode)
        _require_live(subscription, "resume", "paused")
        _resume(store, subscription, sub_now(store, subscription))
        _run_due(store, subscription)
        return subscription


def _resume(store: Store, subscription: dict[str, Any], now: float) -> None:
    """Back to the status it had; a period that ended while paused restarts now, billed."""
    subscription.pop("_resumeAtTs", None)
    subscription.update(
        status=subscription.pop("_statusBeforePause", "active"), pausedAt=None, resumeAt=None
    )
    store.touch(subscription)
    store.emit("subscription.resumed", subscription)
    if subscription["status"] != "trialing" and subscription["_periodEndTs"] <= now:
        _set(store, subscription, **_period(store, subscription, now))
        _bill(store, subscription, now)


def advance_subscription(store: Store, mode: str, subscription_id: str, days: int) -> dict:
    """``POST /test/clocks/advance``: move one subscription's own clock forward."""
    with store.lock:
        subscription = get_subscription(store, subscription_id, mode)
        subscription["_clockOffset"] = subscription.get("_clockOffset", 0.0) + days * DAY
        _run_due(store, subscription, days_advanced=days)
        return subscription


# ── the clock ──────────────────────────────────────────────────────────────────


def _due_steps(
    store: Store, subscription: dict[str, Any], waiting: list[dict[str, Any]] | None = None
) -> list[tuple[float, int, str, Any]]:
    """What this subscription has scheduled: (when, priority, step, invoice) tuples;
    ``waiting`` are its open and past-due invoices when the caller has gathered them."""
    status = subscription["status"]
    if status in ("canceled",):
        return []
    steps: list[tuple[float, int, str, Any]] = []
    if subscription.get("_cancelAtTs") is not None:
        steps.append((subscription["_cancelAtTs"], 0, "cancel", None))
    if status == "paused":
        if subscription.get("_resumeAtTs") is not None:
            steps.append((subscription["_resumeAtTs"], 1, "resume", None))
        return steps
    if status == "trialing":
        steps.append((subscription["_trialEndTs"], 2, "trial_end", None))
        return steps
    if status in ("active", "past_due") and subscription.get("_periodEndTs") is not None:
        steps.append((subscription["_periodEndTs"], 3, "renew", None))
    for invoice in store.invoices.values() if waiting is None else waiting:
        if invoice.get("subscriptionId") != subscription["id"]:
            continue
        if invoice["status"] == "past_due" and invoice.get("_retryTs") is not None:
            steps.append((invoice["_retryTs"], 4, "retry", invoice))
        if invoice["status"] == "open" and invoice.get("_dueTs") is not None:
            steps.append((invoice["_dueTs"], 5, "overdue", invoice))
    return steps


def _run_due(store: Store, subscription: dict[str, Any], days_advanced: int | None = None):
    """Apply every step due by the subscription's time, oldest first, each at its own moment."""
    now = sub_now(store, subscription)
    for _ in range(10_000):  # a bound, not a schedule: each step moves time forward
        steps = [s for s in _due_steps(store, subscription) if s[0] <= now]
        if not steps:
            return
        when, _priority, step, invoice = min(steps, key=lambda s: (s[0], s[1]))
        if step == "cancel":
            _cancel(store, subscription, subscription.get("_cancelReason"), when)
        elif step == "resume":
            _resume(store, subscription, when)
        elif step == "trial_end":
            subscription.pop("_trialEndTs")
            automatic = subscription["collectionMethod"] == "charge_automatically"
            status = "active" if automatic else "incomplete"
            _set(store, subscription, status=status, **_period(store, subscription, when))
            _bill(store, subscription, when)
        elif step == "renew":
            _renew(store, subscription, when, days_advanced)
        elif step == "retry":
            _retry(store, subscription, invoice, when)
        elif step == "overdue":
            invoices.mark_overdue(store, invoice)


def _renew(store: Store, subscription: dict[str, Any], when: float, days: int | None) -> None:
    subscription.update(_period(store, subscription, when))
    store.touch(subscription)
    invoice = _bill(store, subscription, when)
    if invoice["status"] == "paid" or subscription["collectionMethod"] == "send_invoice":
        if days is None:  # the renewal job's event carries only the new period
            fields = ("id", "currentPeriodStart", "currentPeriodEnd")
            store.emit(
                "subscription.renewed",
                {k: subscription[k] for k in fields},
                mode=subscription["mode"],
            )
        else:  # a test clock's carries the whole subscription and how far it moved
            store.emit("subscription.renewed", {**subscription, "daysAdvanced": days})


def _retry(store: Store, subscription: dict[str, Any], invoice: dict, when: float) -> None:
    if invoices.charge_token(store, invoice, _token_for(store, subscription), when):
        return
    if invoice.get("_retryTs") is None:  # that was the last retry
        invoice.update(status="uncollectible")
        store.touch(invoice)
        _cancel(store, subscription, "failed_payment", when)


def _tick(store: Store) -> None:
    """Run what is due, once per request: the open and past-due invoices are gathered in one
    pass, and only a subscription with a step due is run (each request stays cheap however
    many invoices months of renewals have made)."""
    waiting: dict[str, list[dict[str, Any]]] = {}
    for invoice in store.invoices.values():
        if invoice["status"] in ("open", "past_due") and invoice.get("subscriptionId"):
            waiting.setdefault(invoice["subscriptionId"], []).append(invoice)
    for subscription in sorted(store.subscriptions.values(), key=lambda s: s["_seq"]):
        now = sub_now(store, subscription)
        steps = _due_steps(store, subscription, waiting.get(subscription["id"], []))
        if any(when <= now for when, *_rest in steps):
            _run_due(store, subscription)


FAMILY = register(
    Family(
        "subscriptions",
        stores=("subscriptions",),
        event_kinds=(
            "subscription.created",
            "subscription.updated",
            "subscription.paused",
            "subscription.resumed",
            "subscription.canceled",
            "subscription.renewed",
        ),
        tick=_tick,
    )
)
