"""Billing-portal sessions: create a short-lived link to the customer's portal page."""

from __future__ import annotations

from plugipay_sandbox.app import Request, api, envelope
from plugipay_sandbox.resources import string, url
from plugipay_sandbox.state import Store, portal_sessions


@api.add("POST", "/portal-sessions")
def create(store: Store, request: Request):
    body = request.json()
    customer_id = string(body, "customerId", required=True)
    return_url = url(body, "returnUrl")
    session = portal_sessions.create_portal_session(store, request.mode, customer_id, return_url)
    return envelope(store.public(session), status=201, store=store)
