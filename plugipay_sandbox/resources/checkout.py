"""Checkout sessions: create, get, list, cancel, confirm, and the public (hosted-page) read."""

from __future__ import annotations

from plugipay_sandbox.app import Request, api, envelope, paginate
from plugipay_sandbox.resources import (
    MISSING,
    created_between,
    integer,
    invalid,
    metadata,
    present,
    string,
    url,
)
from plugipay_sandbox.state import CURRENCIES, Store
from plugipay_sandbox.state import checkout as sessions
from plugipay_sandbox.state.checkout import METHODS

MAX_TTL = 30 * 24 * 3600


def _line_items(body: dict) -> list:
    items = body.get("lineItems", [])
    if items is None:
        return []
    if not isinstance(items, list):
        raise invalid("lineItems", "lineItems must be an array.")
    for index, item in enumerate(items):
        field = f"lineItems[{index}]"
        if not isinstance(item, dict):
            raise invalid(field, f"{field} must be an object.")
        string(item, "name", required=True)
        integer(item, "quantity", required=True, minimum=1)
        integer(item, "unitAmount", required=True, minimum=0)
    return items


@api.add("POST", "/checkout-sessions")
def create(store: Store, request: Request):
    body = request.json()
    currency = string(body, "currency", required=True, max_length=3)
    if currency not in CURRENCIES:
        raise invalid("currency", f"currency must be one of {', '.join(CURRENCIES)}.")
    methods = body.get("methods", MISSING)
    if not isinstance(methods, list) or not methods:
        raise invalid("methods", "methods must be a non-empty array.")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise invalid("methods", f"unknown methods {unknown}; use {', '.join(METHODS)}.")
    fields = present(
        {
            "amount": integer(body, "amount", required=True, minimum=1),
            "currency": currency,
            "methods": methods,
            "successUrl": url(body, "successUrl"),
            "cancelUrl": url(body, "cancelUrl"),
            "customerId": string(body, "customerId"),
            "lineItems": _line_items(body),
            "expiresInSec": integer(body, "expiresInSec", minimum=60, maximum=MAX_TTL),
            "metadata": metadata(body),
            "templateId": string(body, "templateId"),
        }
    )
    session = sessions.create_session(store, request.mode, fields)
    return envelope(store.public(session), status=201, store=store)


@api.add("GET", "/checkout-sessions/<id>")
def get(store: Store, request: Request):
    return envelope(
        store.public(sessions.get_session(store, request.params["id"], request.mode)), store=store
    )


@api.add("GET", "/checkout-sessions")
def list_(store: Store, request: Request):
    query = request.query
    items = [
        s
        for s in store.sessions.values()
        if s["mode"] == request.mode
        and ("status" not in query or s["status"] == query["status"])
        and ("customerId" not in query or s["customerId"] == query["customerId"])
    ]
    return paginate(store, request, created_between(items, query))


@api.add("POST", "/checkout-sessions/<id>/cancel")
def cancel(store: Store, request: Request):
    request.json()
    session = sessions.cancel_session(store, request.params["id"], request.mode)
    return envelope(store.public(session), store=store)


@api.add("POST", "/checkout-sessions/<id>/confirm")
def confirm(store: Store, request: Request):
    request.json()
    session = sessions.confirm_session(store, request.params["id"], request.mode)
    return envelope(store.public(session), store=store)


@api.add("GET", "/public/checkout/sessions/<id>", public=True)
def public_read(store: Store, request: Request):
    session = sessions.get_session(store, request.params["id"])
    keys = (
        "id",
        "amount",
        "currency",
        "status",
        "expiresAt",
        "successUrl",
        "cancelUrl",
        "lineItems",
    )
    data = {
        "session": {k: session[k] for k in keys},
        "methods": list(session["methods"]),
        "catalog": [
            {"id": m, "label": m.upper(), "group": m, "currency": session["currency"]}
            for m in session["methods"]
        ],
        "branding": {
            "brandName": store.merchant_name(),
            "brandLogoUrl": None,
            "brandAccentColor": "#4f46e5",
            "brandTagline": "Not Plugipay: test only",
        },
        "activeAdapters": ["xendit", "midtrans", "manual"],
    }
    return envelope(data, store=store)


@api.add("POST", "/public/checkout/sessions/<id>/charge", public=True)
def public_charge(store: Store, request: Request):
    """The hosted page's method choice: ``redirect`` for cards, ``instructions`` otherwise."""
    body = request.json()
    method = string(body, "method", required=True)
    channel = string(body, "channel")
    channel = None if channel is MISSING else channel  # the method's default bank
    session = sessions.get_session(store, request.params["id"])
    if method not in session["methods"]:
        raise invalid("method", f"this session accepts {', '.join(session['methods'])}.")
    if method in ("card", "paypal"):
        return envelope({"kind": "redirect", "redirectUrl": session["hostedUrl"]}, store=store)
    if method == "manual":
        payment = {"id": session["id"], "_expires": session["_expires"]}
        return envelope(sessions.instructions(store, session, payment, method, None), store=store)
    session = sessions.start_async(store, session["id"], method, channel)
    return envelope(session["instructions"], store=store)


@api.add("POST", "/public/checkout/sessions/<id>/buyer-claim", public=True)
def public_buyer_claim(store: Store, request: Request):
    proof_url = string(request.json(), "proofUrl")
    session = sessions.claim_transfer(
        store, request.params["id"], None if proof_url is MISSING else proof_url
    )
    return envelope(store.public(session), store=store)


@api.add("POST", "/public/checkout/sessions/<id>/proof-image", public=True)
def public_proof_image(store: Store, request: Request):
    data = request.file("file")
    if not data:
        raise invalid("file", "Send the image as the multipart field file.")
    return envelope({"url": sessions.store_proof(store, request.params["id"], data)}, store=store)
