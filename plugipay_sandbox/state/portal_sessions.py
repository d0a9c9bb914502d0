"""Billing-portal sessions: short-lived links to a customer's portal page."""

from __future__ import annotations

from typing import Any

from plugipay_sandbox.state.core import ApiError, Family, Store, iso, new_id, register

PORTAL_TTL = 15 * 60


def create_portal_session(
    store: Store, mode: str, customer_id: str, return_url: str
) -> dict[str, Any]:
    with store.lock:
        customer = store.customers.get(customer_id)
        if customer is None or customer["mode"] != mode:
            raise ApiError(
                404, "not_found", f"No customer with id {customer_id!r}.", field="customerId"
            )
        session: dict[str, Any] = {
            "id": new_id("bps_"),
            "customerId": customer_id,
            "returnUrl": return_url,
        }
        store.stamp(session, mode)
        session.pop("updatedAt")
        session["url"] = f"{store.base_url()}/portal/{session['id']}"
        session["_expiresTs"] = store.now() + PORTAL_TTL
        session["expiresAt"] = iso(session["_expiresTs"])
        store.portal_sessions[session["id"]] = session
        return session


FAMILY = register(Family("portal_sessions", stores=("portal_sessions",)))
