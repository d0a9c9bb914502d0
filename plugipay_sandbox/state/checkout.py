"""Checkout sessions and the payments (charges) they make: create, pay, cancel, confirm, expire."""

from __future__ import annotations

import base64
from typing import Any

from plugipay_sandbox import cards
from plugipay_sandbox.state import refunds
from plugipay_sandbox.state.core import ApiError, Family, Store, iso, new_id, not_found, register

SESSION_OPEN_STATES = ("open", "pending", "pending_review")
SESSION_TERMINAL_STATES = ("completed", "expired", "canceled")
METHODS = ("qris", "va", "ewallet", "card", "retail", "paypal", "manual")
ASYNC_METHODS = ("va", "qris", "ewallet", "retail")
#: How long a pending charge waits for the money (capped by its session's expiry).
PENDING_TTL = {"va": 24 * 3600, "retail": 48 * 3600, "qris": 15 * 60, "ewallet": 10 * 60}
#: Who carries each asynchronous method; the first is the default.
CHANNELS = {
    "va": ("BCA", "Mandiri", "BNI", "BRI", "Permata"),
    "ewallet": ("OVO", "GoPay", "DANA", "ShopeePay"),
    "retail": ("Alfamart", "Indomaret"),
}
VA_PREFIXES = {
    "BCA": "39358",
    "Mandiri": "88908",
    "BNI": "98829",
    "BRI": "26215",
    "Permata": "8528",
}
MERCHANT_NAME = "PT Toko Sandbox"
#: The manual adapter's bank accounts (plugipay-api.md §13), shown on the hosted page.
MERCHANT_ACCOUNTS = (
    {"bankName": "BCA", "accountNumber": "1234567890", "accountHolder": MERCHANT_NAME},
    {"bankName": "Mandiri", "accountNumber": "1370012345678", "accountHolder": MERCHANT_NAME},
)
PENDING_FAILURES = {
    "expired": "The payment was not made before it expired.",
    "canceled": "The checkout session was canceled.",
    "payment_failed": "The bank or e-wallet reported the payment as failed.",
}
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
            "workspaceName": store.merchant_name(),
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
            "instructions": None,
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
        _drop_pending(store, session, "canceled")
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
    _drop_pending(store, session, "expired")
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
        _complete(store, session, "manual", store.payments.get(session["id"]))
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


def start_async(
    store: Store, session_id: str, method: str, channel: str | None = None
) -> dict[str, Any]:
    """The buyer picked VA/QRIS/e-wallet/retail: a pending charge with instructions.

    The session and its charge wait in ``pending`` until :func:`settle_payment` or the charge's
    expiry (:data:`PENDING_TTL`, never past the session's own).
    """
    with store.lock:
        session = get_session(store, session_id)
        _require_open(store, session, "pay")
        if method == "manual":
            raise ApiError(409, "conflict", "Manual transfers are claimed, not started.")
        channel = _channel(method, channel)
        payment = _charge(store, session, method, "pending")
        payment["_expires"] = min(session["_expires"], store.now() + PENDING_TTL[method])
        payment["instructions"] = instructions(store, session, payment, method, channel)
        session.update(status="pending", paymentMethod=method, adapter=payment["adapter"])
        session["instructions"] = payment["instructions"]
        store.touch(session)
        store.emit("payment.updated", payment, previous={"status": None})
        return session


def _channel(method: str, channel: str | None) -> str | None:
    choices = CHANNELS.get(method)
    if not choices:
        return None
    if channel is None:
        return choices[0]
    for choice in choices:
        if choice.lower() == str(channel).lower():
            return choice
    raise ApiError(
        400,
        "VALIDATION_ERROR",
        f"{method} is paid through one of {', '.join(choices)}, not {channel!r}.",
        field="channel",
    )


def instructions(
    store: Store, session: dict[str, Any], payment: dict[str, Any], method: str, channel: str | None
) -> dict[str, Any]:
    """What the buyer must do, in the public charge-response shape (``heading``, ``note``,
    ``bankAccounts``, ``qrImageUrl``, ``amount``, ``currency``) plus sandbox conventions:
    ``method``, ``channel``, ``accountNumber``, ``qrString``, ``approvalUrl``, ``paymentCode``,
    ``paymentId``, ``expiresAt``, ``claimedAt``, ``proofUrl``."""
    base = f"{store.base_url()}/c/{session['id']}"
    digits = str(int(payment["id"][-12:], 36))[-10:].rjust(10, "0")
    info: dict[str, Any] = {
        "kind": "instructions",
        "method": method,
        "channel": channel,
        "heading": None,
        "note": None,
        "bankAccounts": [],
        "accountNumber": None,
        "qrString": None,
        "qrImageUrl": None,
        "approvalUrl": None,
        "paymentCode": None,
        "amount": session["amount"],
        "currency": session["currency"],
        "paymentId": payment["id"],
        "expiresAt": iso(payment.get("_expires") or session["_expires"]),
        "claimedAt": None,
        "proofUrl": None,
    }
    if method == "va":
        number = VA_PREFIXES[channel or "BCA"] + digits
        info.update(
            heading=f"{channel} virtual account",
            note="Transfer the exact amount; the account closes at expiresAt.",
            accountNumber=number,
            bankAccounts=[
                {"bankName": channel, "accountNumber": number, "accountHolder": MERCHANT_NAME}
            ],
        )
    elif method == "qris":
        info.update(
            heading="QRIS",
            note="Scan with any bank or e-wallet app.",
            qrString=qris_string(session, payment),
            qrImageUrl=f"{base}/qr.svg",
        )
    elif method == "ewallet":
        info.update(
            heading=f"{channel} payment",
            note=f"Approve the payment in {channel}.",
            approvalUrl=f"{base}/ewallet",
        )
    elif method == "retail":
        info.update(
            heading=f"Pay at {channel}",
            note="Show the payment code at the cashier.",
            paymentCode="PLGP" + digits[-8:],
        )
    elif method == "manual":
        info.update(
            heading="Manual bank transfer",
            note="Transfer to one of these accounts, then tell the merchant.",
            bankAccounts=[dict(account) for account in MERCHANT_ACCOUNTS],
        )
    return info


def qris_string(session: dict[str, Any], payment: dict[str, Any]) -> str:
    """An EMVCo-shaped QRIS payload (with a real CRC-16/CCITT checksum)."""

    def tag(tag_id: str, value: str) -> str:
        return f"{tag_id}{len(value):02d}{value}"

    merchant = tag("00", "ID.CO.QRIS.WWW") + tag("01", "ID1020SANDBOX") + tag("02", payment["id"])
    body = (
        tag("00", "01")
        + tag("01", "12")
        + tag("26", merchant)
        + tag("52", "5411")
        + tag("53", "360")
        + tag("54", str(session["amount"]))
        + tag("58", "ID")
        + tag("59", "PLUGIPAY SANDBOX")
        + tag("60", "JAKARTA")
        + "6304"
    )
    crc = 0xFFFF
    for byte in body.encode():
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return body + f"{crc:04X}"


def pay_async(store: Store, session_id: str, method: str, channel: str | None = None):
    """The control route's immediate form: pay at once (manual: claim)."""
    with store.lock:
        session = get_session(store, session_id)
        _require_open(store, session, "pay")
        if method == "manual":
            return claim_transfer(store, session_id)
        _channel(method, channel)
        return _complete(store, session, method)


def settle_payment(store: Store, payment_id: str, outcome: str) -> dict[str, Any]:
    """The bank/wallet answers a pending charge: ``succeeded`` or ``failed``."""
    if outcome not in ("succeeded", "failed"):
        raise ApiError(400, "VALIDATION_ERROR", "outcome is succeeded or failed.", field="outcome")
    with store.lock:
        payment = store.payments.get(payment_id)
        if payment is None:
            raise not_found("payment", payment_id)
        if payment["status"] != "pending" or payment["method"] == "manual":
            raise ApiError(
                409,
                "conflict",
                f"Payment {payment_id} is {payment['status']}"
                + (" (manual: confirm the session)" if payment["method"] == "manual" else "")
                + "; only a pending VA/QRIS/e-wallet/retail charge settles.",
            )
        session = get_session(store, payment["checkoutSessionId"])
        if outcome == "succeeded":
            _complete(store, session, payment["method"], payment)
            store.emit("checkout_session.async_payment_succeeded", session)
        else:
            _fail_pending(store, session, payment, "payment_failed")
        return payment


def claim_transfer(
    store: Store, session_id: str, proof_url: str | None = None, mode: str | None = None
) -> dict[str, Any]:
    """The buyer's "I have transferred": a manual charge (id = the session's) waits for review."""
    with store.lock:
        session = get_session(store, session_id, mode)
        if session["status"] != "open":
            raise ApiError(
                409,
                "conflict",
                f"Checkout session {session_id} is {session['status']}; only an open "
                "session can claim a transfer.",
            )
        if "manual" not in session["methods"]:
            raise ApiError(409, "conflict", f"Checkout session {session_id} does not offer manual.")
        payment = _charge(store, session, "manual", "pending")
        # Plugipay: a manual payment's charge id is the session's own id (plugipay-api.md §10.3).
        del store.payments[payment["id"]]
        payment["id"] = session["id"]
        store.payments[payment["id"]] = payment
        payment["instructions"] = instructions(store, session, payment, "manual", None)
        payment["instructions"].update(claimedAt=iso(store.now()), proofUrl=proof_url)
        session.update(status="pending_review", paymentMethod="manual", adapter="manual")
        session["instructions"] = payment["instructions"]
        store.touch(session)
        store.emit("payment.updated", payment, previous={"status": None})
        return session


PROOF_MAX_BYTES = 4 * 1000 * 1000
PROOF_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}


def proof_type(data: bytes) -> str | None:
    """The image type by its magic bytes (PNG, JPEG or WEBP), else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def store_proof(store: Store, session_id: str, data: bytes) -> str:
    """Keep a proof-of-transfer image; returns its URL. ApiError for a bad or large one."""
    if len(data) > PROOF_MAX_BYTES:
        raise ApiError(413, "payload_too_large", "The proof must be at most 4 MB.", field="file")
    content_type = proof_type(data)
    if content_type is None:
        raise ApiError(
            400, "VALIDATION_ERROR", "The proof must be a PNG, JPEG or WEBP image.", field="file"
        )
    with store.lock:
        session = get_session(store, session_id)
        proof: dict[str, Any] = {
            "id": new_id("proof_"),
            "contentType": content_type,
            "size": len(data),
        }
        store.stamp(proof, session["mode"])
        proof["_data"] = base64.b64encode(data).decode("ascii")
        store.proofs[proof["id"]] = proof
        return f"{store.base_url()}/c/{session_id}/proof/{proof['id']}"


def _fail_pending(
    store: Store, session: dict[str, Any], payment: dict[str, Any], code: str
) -> None:
    payment.update(
        status="failed",
        failureCode=code,
        failureMessage=PENDING_FAILURES[code],
    )
    store.touch(payment)
    if session["status"] in ("pending", "pending_review"):
        session["status"] = "open"
        session["instructions"] = None
        store.touch(session)
    store.emit("payment.failed", payment)
    store.emit("checkout_session.async_payment_failed", session)


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


def _complete(
    store: Store, session: dict[str, Any], method: str, payment: dict[str, Any] | None = None
) -> dict[str, Any]:
    if payment is None:
        payment = _charge(store, session, method, "succeeded")
    else:
        payment.update(status="succeeded", paidAt=iso(store.now()))
        payment.pop("_expires", None)
        store.touch(payment)
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


def _drop_pending(store: Store, session: dict[str, Any], code: str) -> None:
    """A pending charge dies with its session (canceled or expired)."""
    for payment in _pending_charges(store, session["id"]):
        _fail_pending(store, session, payment, code)


def _pending_charges(store: Store, session_id: str) -> list[dict[str, Any]]:
    return [
        p
        for p in store.payments.values()
        if p["status"] == "pending" and p.get("checkoutSessionId") == session_id
    ]


def _tick(store: Store) -> None:
    now = store.now()
    for payment in list(store.payments.values()):
        if payment["status"] == "pending" and payment.get("_expires", now + 1) <= now:
            session = store.sessions[payment["checkoutSessionId"]]
            _fail_pending(store, session, payment, "expired")
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
        stores=("sessions", "payments", "proofs"),
        event_kinds=(
            "checkout_session.created",
            "checkout_session.completed",
            "checkout_session.expired",
            "checkout_session.canceled",
            "checkout_session.async_payment_succeeded",
            "checkout_session.async_payment_failed",
            "payment.succeeded",
            "payment.failed",
            "payment.updated",
        ),
        tick=_tick,
    )
)
