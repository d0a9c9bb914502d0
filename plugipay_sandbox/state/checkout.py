"""Checkout sessions and the payments (charges) they make: create, pay, cancel, confirm, expire."""

from __future__ import annotations

from typing import Any

from plugipay_sandbox import cards
from plugipay_sandbox.state import refunds
from plugipay_sandbox.state.core import ApiError, Family, Store, iso, new_id, not_found, register

SESSION_OPEN_STATES = ("open", "pending", "pending_review")
SESSION_TERMINAL_STATES = ("completed", "expired", "canceled")
METHODS = ("qris", "va", "ewallet", "card", "retail", "paypal", "manual")
ASYNC_METHODS = ("va", "qris", "ewallet", "retail")
ADAPTERS = {
    "card": "xendit",
    "va": "xendit",
    "ewallet": "xendit",
    "retail": "xendit",
    "qris": "midtrans",
    "paypal": "paypal",
    "manual": "manual",
}


def create_session(store: Store, mode: str, fields: dict[str, Any]) -> dict[str, Any]:
    with store.lock:
        customer = None
        if fields.get("customerId"):
            customer = store.get(store.customers, mode, fields["customerId"], "customer")
        ttl = fields.pop("expiresInSec", None) or 86400
        session: dict[str, Any] = {
            "id": new_id("cs_"),
            "workspaceName": "Plugipay Sandbox",
            "customerId": None,
            "customer": None,
            "status": "open",
            "paymentMethod": None,
            "adapter": None,
            "lineItems": [],
            "metadata": None,
            "expiresAt": None,
            "completedAt": None,
            "paymentId": None,
        }
        session.update(fields)
        if customer is not None:
            session["customer"] = {
                k: customer[k] for k in ("id", "name", "email", "phone", "externalId")
            }
        store.stamp(session, mode)
        session["hostedUrl"] = f"{store.base_url()}/c/{session['id']}"
        session["expiresAt"] = iso(store.now() + ttl)
        session["_expires"] = store.now() + ttl
        store.sessions[session["id"]] = session
        store.emit("checkout_session.created", session)
        return session


def get_session(store: Store, session_id: str, mode: str | None = None) -> dict[str, Any]:
    session = store.sessions.get(session_id)
    if session is None or (mode is not None and session["mode"] != mode):
        raise not_found("checkout session", session_id)
    return session


def _require_open(store: Store, session: dict[str, Any], action: str) -> None:
    if session["status"] not in SESSION_OPEN_STATES:
        raise ApiError(
            409,
            "conflict",
            f"Cannot {action} checkout session {session['id']}: it is {session['status']}.",
        )


def cancel_session(store: Store, session_id: str, mode: str | None = None) -> dict[str, Any]:
    with store.lock:
        session = get_session(store, session_id, mode)
        _require_open(store, session, "cancel")
        session["status"] = "canceled"
        store.touch(session)
        store.emit("checkout_session.canceled", session)
        return session


def expire_session(store: Store, session_id: str) -> dict[str, Any]:
    with store.lock:
        session = get_session(store, session_id)
        _require_open(store, session, "expire")
        _expire(store, session)
        return session


def _expire(store: Store, session: dict[str, Any]) -> None:
    session["status"] = "expired"
    store.touch(session)
    store.emit("checkout_session.expired", session)


def confirm_session(store: Store, session_id: str, mode: str) -> dict[str, Any]:
    with store.lock:
        session = get_session(store, session_id, mode)
        if session["status"] != "pending_review":
            raise ApiError(
                409,
                "conflict",
                f"Checkout session {session_id} is "
                f"{session['status']}; only pending_review sessions can be "
                "confirmed.",
            )
        _complete(store, session, session["paymentMethod"] or "manual")
        return session


def pay_card(
    store: Store,
    session_id: str,
    number: str,
    expiry: str | None = None,
    cvc: str | None = None,
    three_ds: str | None = None,
) -> tuple[str, dict[str, Any] | None]:
    """Charge a test card; returns (outcome, payment). Raises CardError for bad input."""
    with store.lock:
        session = get_session(store, session_id)
        _require_open(store, session, "pay")
        card = cards.check_card(number, expiry, cvc, today=store.today())
        outcome, code = cards.charge(card, three_ds)
        if outcome == cards.REQUIRES_3DS:
            session["status"] = "pending"
            session["paymentMethod"] = "card"
            session["_3ds_card"] = card.number
            store.touch(session)
        elif outcome == cards.DECLINED:
            return outcome, _fail_charge(store, session, "card", code)
        else:
            return outcome, _complete(store, session, "card")
        return outcome, None


def finish_3ds(store: Store, session_id: str, approve: bool) -> tuple[str, dict[str, Any] | None]:
    with store.lock:
        session = get_session(store, session_id)
        card = session.get("_3ds_card")
        if session["status"] != "pending" or not card:
            raise ApiError(409, "conflict", "This session has no 3-D Secure step waiting.")
        return pay_card(store, session_id, card, three_ds="approve" if approve else "fail")


def start_async(store: Store, session_id: str, method: str) -> dict[str, Any]:
    """The buyer picked VA/QRIS/e-wallet/manual: the session waits for the money."""
    with store.lock:
        session = get_session(store, session_id)
        _require_open(store, session, "pay")
        session["paymentMethod"] = method
        session["status"] = "pending_review" if method == "manual" else "pending"
        store.touch(session)
        return session


def pay_async(store: Store, session_id: str, method: str) -> dict[str, Any]:
    with store.lock:
        session = get_session(store, session_id)
        _require_open(store, session, "pay")
        if method == "manual":
            return start_async(store, session_id, method)
        return _complete(store, session, method)


def record_payment(
    store: Store,
    mode: str,
    *,
    source_type: str,
    source_id: str,
    method: str,
    status: str,
    fields: dict[str, Any],
    failure_code: str | None = None,
) -> dict[str, Any]:
    """Store a charge (``fields``: amount, currency, customerId, metadata, source links).

    ``source_type``/``source_id`` name what it paid, for refunds (``checkout_session``,
    ``invoice``); a failed one carries ``failure_code`` and its message.
    """
    payment: dict[str, Any] = {
        "id": new_id("pay_"),
        "object": "payment",
        "checkoutSessionId": None,
        "customerId": None,
        "amount": 0,
        "currency": None,
        "status": status,
        "method": method,
        "adapter": ADAPTERS.get(method, "xendit"),
        "failureCode": None,
        "failureMessage": None,
        "paidAt": None,
        "metadata": None,
        "_sourceType": source_type,
        "_sourceId": source_id,
    }
    payment.update(fields)
    store.stamp(payment, mode)
    if status == "succeeded":
        payment["paidAt"] = payment["createdAt"]
    if status == "failed":
        payment["failureCode"] = failure_code
        payment["failureMessage"] = cards.FAILURE_MESSAGES.get(
            failure_code or "", "Payment failed."
        )
    store.payments[payment["id"]] = payment
    return payment


def _charge(
    store: Store, session: dict[str, Any], method: str, status: str, code: str | None = None
) -> dict[str, Any]:
    return record_payment(
        store,
        session["mode"],
        source_type="checkout_session",
        source_id=session["id"],
        method=method,
        status=status,
        fields={
            "checkoutSessionId": session["id"],
            "customerId": session.get("customerId"),
            "amount": session["amount"],
            "currency": session["currency"],
            "metadata": session.get("metadata"),
        },
        failure_code=code,
    )


def _fail_charge(store: Store, session: dict[str, Any], method: str, code: str | None):
    payment = _charge(store, session, method, "failed", code)
    session["status"] = "open"
    session.pop("_3ds_card", None)
    store.touch(session)
    store.emit("payment.failed", payment)
    return payment


def _complete(store: Store, session: dict[str, Any], method: str) -> dict[str, Any]:
    payment = _charge(store, session, method, "succeeded")
    session.pop("_3ds_card", None)
    session.update(
        status="completed",
        completedAt=payment["paidAt"],
        paymentId=payment["id"],
        paymentMethod=method,
        adapter=payment["adapter"],
    )
    store.touch(session)
    store.emit("checkout_session.completed", session)
    store.emit("payment.succeeded", payment)
    return payment


def _tick(store: Store) -> None:
    now = store.now()
    for session in store.sessions.values():
        if session["status"] in SESSION_OPEN_STATES and session["_expires"] <= now:
            _expire(store, session)


def _captured_payment(store: Store, mode: str, session_id: str) -> dict[str, Any]:
    session = get_session(store, session_id, mode)
    if session["status"] != "completed" or not session["paymentId"]:
        raise ApiError(
            409,
            "conflict",
            f"Checkout session {session['id']} has no "
            f"captured payment (status {session['status']}).",
        )
    return store.payments[session["paymentId"]]


refunds.register_source("checkout_session", _captured_payment)

FAMILY = register(
    Family(
        "checkout",
        stores=("sessions", "payments"),
        event_kinds=(
            "checkout_session.created",
            "checkout_session.completed",
            "checkout_session.expired",
            "checkout_session.canceled",
            "payment.succeeded",
            "payment.failed",
        ),
        tick=_tick,
    )
)
