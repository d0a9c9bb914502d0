"""Subscriptions: create, list, get, update, cancel, pause, resume; and the test clock."""

from __future__ import annotations

from plugipay_sandbox.app import Request, api, envelope, paginate
from plugipay_sandbox.resources import (
    choice,
    created_between,
    integer,
    invalid,
    metadata,
    present,
    string,
    time_filter,
    url,
)
from plugipay_sandbox.state import Store, subscriptions
from plugipay_sandbox.state.core import CLOCK_LIMIT


@api.add("POST", "/subscriptions")
def create(store: Store, request: Request):
    body = request.json()
    fields = present(
        {
            "customerId": string(body, "customerId", required=True),
            "planId": string(body, "planId", required=True),
            "priceId": string(body, "priceId", required=True),
            "trialDays": integer(body, "trialDays", maximum=730),
            "paymentTokenId": string(body, "paymentTokenId"),
            "collectionMethod": choice(body, "collectionMethod", subscriptions.COLLECTION_METHODS),
            "metadata": metadata(body),
            "initialDiscount": integer(body, "initialDiscount"),
            "couponId": string(body, "couponId"),
            "returnUrl": url(body, "returnUrl", required=False),
        }
    )
    subscription = subscriptions.create_subscription(store, request.mode, fields)
    return envelope(store.public(subscription), status=201, store=store)


@api.add("GET", "/subscriptions")
def list_(store: Store, request: Request):
    query = request.query
    items = [
        s
        for s in store.subscriptions.values()
        if s["mode"] == request.mode
        and all(name not in query or s[name] == query[name] for name in ("status", "planId"))
        and ("customerId" not in query or s["customerId"] == query["customerId"])
    ]
    return paginate(store, request, created_between(items, query))


@api.add("GET", "/subscriptions/<id>")
def get(store: Store, request: Request):
    subscription = subscriptions.get_subscription(store, request.params["id"], request.mode)
    return envelope(store.public(subscription), store=store)


@api.add("PATCH", "/subscriptions/<id>")
def update(store: Store, request: Request):
    body = request.json()
    fields = present(
        {
            "priceId": string(body, "priceId", nullable=False),
            "defaultPaymentTokenId": string(body, "defaultPaymentTokenId"),
            "metadata": metadata(body),
        }
    )
    subscription = subscriptions.update_subscription(
        store, request.mode, request.params["id"], fields
    )
    return envelope(store.public(subscription), store=store)


@api.add("POST", "/subscriptions/<id>/cancel")
def cancel(store: Store, request: Request):
    body = request.json()
    at = choice(body, "at", ("period_end", "now")) or "period_end"
    reason = choice(body, "reason", subscriptions.CANCEL_REASONS)
    subscription = subscriptions.cancel_subscription(
        store, request.mode, request.params["id"], at=at, reason=reason
    )
    return envelope(store.public(subscription), store=store)


@api.add("POST", "/subscriptions/<id>/pause")
def pause(store: Store, request: Request):
    value = request.json().get("resumeAt")
    if value is not None and not isinstance(value, str):
        raise invalid("resumeAt", "resumeAt must be an ISO-8601 time or epoch seconds.")
    resume_at = time_filter({"resumeAt": value} if value else {}, "resumeAt")
    subscription = subscriptions.pause_subscription(
        store, request.mode, request.params["id"], resume_at
    )
    return envelope(store.public(subscription), store=store)


@api.add("POST", "/subscriptions/<id>/resume")
def resume(store: Store, request: Request):
    request.json()
    subscription = subscriptions.resume_subscription(store, request.mode, request.params["id"])
    return envelope(store.public(subscription), store=store)


@api.add("POST", "/test/clocks/advance")
def advance_clock(store: Store, request: Request):
    if request.mode != "test":
        raise invalid("subscriptionId", "Test clocks exist only in test mode.")
    body = request.json()
    subscription_id = string(body, "subscriptionId", required=True)
    days = integer(body, "days", required=True, minimum=1, maximum=3650)
    own = subscriptions.get_subscription(store, subscription_id, request.mode)
    if store.now() + own.get("_clockOffset", 0.0) + days * 86400 > CLOCK_LIMIT:
        raise invalid("days", "The subscription's clock cannot go past year 9989.")
    subscription = subscriptions.advance_subscription(store, request.mode, subscription_id, days)
    return envelope({**(store.public(subscription) or {}), "daysAdvanced": days}, store=store)
