"""Refunds: create (by sourceType+sourceId, chargeId or paymentId), get, list."""

from __future__ import annotations

from plugipay_sandbox.app import Request, api, envelope, paginate
from plugipay_sandbox.resources import created_between, integer, invalid, metadata
from plugipay_sandbox.state import Store, refunds
from plugipay_sandbox.state.refunds import REFUND_REASONS


@api.add("POST", "/refunds")
def create(store: Store, request: Request):
    body = request.json()
    integer(body, "amount", minimum=1)
    reason = body.get("reason")
    if reason is not None and reason not in REFUND_REASONS:
        raise invalid("reason", f"reason must be one of {', '.join(REFUND_REASONS)}.")
    metadata(body)
    refund = refunds.create_refund(store, request.mode, body)
    return envelope(store.public(refund), status=201, store=store)


@api.add("GET", "/refunds/<id>")
def get(store: Store, request: Request):
    refund = store.get(store.refunds, request.mode, request.params["id"], "refund")
    return envelope(store.public(refund), store=store)


@api.add("GET", "/refunds")
def list_(store: Store, request: Request):
    query = request.query
    charge = query.get("chargeId") or query.get("paymentId")
    items = [
        r
        for r in store.refunds.values()
        if r["mode"] == request.mode
        and ("status" not in query or r["status"] == query["status"])
        and (not charge or r["chargeId"] == charge)
        and ("sourceId" not in query or r["sourceId"] == query["sourceId"])
    ]
    return paginate(store, request, created_between(items, query))
