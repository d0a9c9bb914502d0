"""Invoices and payment tokens: create, finalize, pay (by card, token or off-platform), void,
send; the dunning state of a declined automatic charge; due dates of standalone invoices."""

from __future__ import annotations

import datetime as dt
from typing import Any

from plugipay_sandbox import cards
from plugipay_sandbox.state import refunds
from plugipay_sandbox.state.checkout import record_payment
from plugipay_sandbox.state.core import ApiError, Family, Store, iso, new_id, not_found, register

DAY = 86400
#: failed retry the subscription is canceled with reason ``failed_payment``.
DUNNING_DAYS = (3, 5, 7)
#: Days a send_invoice invoice is open before it is past due (sandbox convention).
DAYS_UNTIL_DUE = 7
#: Sandbox payment tokens and the test card each behaves like.
TEST_TOKENS = {
    "ptok_test_success": "4242424242424242",
    "ptok_test_decline": "4000000000000002",
    "ptok_test_insufficient_funds": "4000000000009995",
}
UNPAID = ("open", "past_due")


def invoice_now(store: Store, invoice: dict[str, Any]) -> float:
    """The invoice's time: its subscription's (test clock included), else the sandbox's."""
    subscription = store.subscriptions.get(invoice.get("subscriptionId") or "")
    return store.now() + (subscription or {}).get("_clockOffset", 0.0)


def check_token(store: Store, customer: dict[str, Any], token_id: str, field: str) -> str:
    """A token the customer may be charged with: a sandbox test token or one saved for them."""
    token = store.payment_tokens.get(token_id)
    if token_id in TEST_TOKENS or (token and token["customerId"] == customer["id"]):
        return token_id
    raise ApiError(
        400,
        "VALIDATION_ERROR",
        f"{field} {token_id!r} is not a payment token of customer {customer['id']}; use "
        f"{', '.join(TEST_TOKENS)} or a token saved on the hosted invoice page.",
        field=field,
    )


def save_token(store: Store, customer: dict[str, Any], card: cards.TestCard) -> dict[str, Any]:
    """Store the card as a payment token and make it the customer's default."""
    token = {
        "id": new_id("ptok_"),
        "object": "payment_token",
        "customerId": customer["id"],
        "brand": "visa",
        "last4": card.number[-4:],
        "_card": card.number,
    }
    store.stamp(token, customer["mode"])
    store.payment_tokens[token["id"]] = token
    previous = {"defaultPaymentTokenId": customer.get("defaultPaymentTokenId")}
    customer["defaultPaymentTokenId"] = token["id"]
    store.touch(customer)
    store.emit("customer.updated", customer, previous=previous)
    return token


def update_payment_method(
    store: Store, customer_id: str, number: str, expiry: str, cvc: str
) -> dict[str, Any]:
    """The portal's "update card": save the card (no charge) as the customer's default and put
    it on their live charge_automatically subscriptions. Raises ``cards.CardError``."""
    with store.lock:
        customer = store.customers[customer_id]
        token = save_token(
            store, customer, cards.check_card(number, expiry, cvc, today=store.today())
        )
        for subscription in store.subscriptions.values():
            if (
                subscription["customerId"] == customer_id
                and subscription["status"] != "canceled"
                and subscription["collectionMethod"] == "charge_automatically"
            ):
                store.change(
                    subscription, "subscription.updated", defaultPaymentTokenId=token["id"]
                )
        return token


def _token_card(store: Store, token_id: str) -> cards.TestCard:
    number = TEST_TOKENS.get(token_id) or store.payment_tokens[token_id]["_card"]
    return next(c for c in cards.TEST_CARDS if c.number == number)


def create_invoice(
    store: Store,
    mode: str,
    fields: dict[str, Any],
    *,
    status: str = "draft",
    now: float | None = None,
) -> dict[str, Any]:
    """A new invoice (``fields``: customerId, currency, lines and the optional fields).

    ``status="open"`` finalizes it at once; ``now`` is the time it is issued at (a subscription's
    own clock).
    """
    with store.lock:
        store.get(store.customers, mode, fields["customerId"], "customer")
        lines = [
            {
                "id": new_id("il_"),
                "description": line["description"],
                "quantity": line["quantity"],
                "unitAmount": line["unitAmount"],
                "amount": line["quantity"] * line["unitAmount"],
                "priceId": line.get("priceId"),
                "metadata": line.get("metadata"),
            }
            for line in fields.pop("lines")
        ]
        number = 1 + sum(1 for i in store.invoices.values() if i["mode"] == mode)
        invoice: dict[str, Any] = {
            "id": new_id("inv_"),
            "customerId": None,
            "subscriptionId": None,
            "status": "draft",
            "number": f"SBX-{number:06d}",
            "currency": None,
            "subtotal": 0,
            "discount": 0,
            "tax": 0,
            "total": 0,
            "amountPaid": 0,
            "amountDue": 0,
            "dueAt": None,
            "issuedAt": None,
            "paidAt": None,
            "voidedAt": None,
            "hostedInvoiceUrl": None,
            "collectionAttempts": 0,
            "lines": lines,
            "memo": None,
            "metadata": None,
            "_chargeId": None,
        }
        invoice.update(fields)
        subtotal = sum(line["amount"] for line in lines)
        total = max(0, subtotal - (invoice["discount"] or 0) + (invoice["tax"] or 0))
        invoice.update(subtotal=subtotal, total=total, amountDue=total)
        if invoice["dueAt"]:
            invoice["_dueTs"] = _parse_iso(invoice["dueAt"])
        store.stamp(invoice, mode)
        store.invoices[invoice["id"]] = invoice
        store.emit("invoice.created", invoice)
        if status == "open":
            _finalize(store, invoice, now if now is not None else store.now())
        return invoice


def _parse_iso(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def get_invoice(store: Store, invoice_id: str, mode: str | None = None) -> dict[str, Any]:
    invoice = store.invoices.get(invoice_id)
    if invoice is None or (mode is not None and invoice["mode"] != mode):
        raise not_found("invoice", invoice_id)
    return invoice


def _require(invoice: dict[str, Any], action: str, *statuses: str) -> None:
    if invoice["status"] not in statuses:
        raise ApiError(
            409,
            "conflict",
            f"Cannot {action} invoice {invoice['id']}: it is {invoice['status']} "
            f"(only {' or '.join(statuses)}).",
        )


def _finalize(store: Store, invoice: dict[str, Any], now: float) -> None:
    invoice.update(
        status="open",
        issuedAt=iso(now),
        hostedInvoiceUrl=f"{store.base_url()}/i/{invoice['id']}",
    )
    if not invoice["dueAt"]:
        invoice["_dueTs"] = now + DAYS_UNTIL_DUE * DAY
        invoice["dueAt"] = iso(invoice["_dueTs"])
    store.touch(invoice)
    store.emit("invoice.finalized", invoice)


def finalize_invoice(store: Store, mode: str, invoice_id: str) -> dict[str, Any]:
    with store.lock:
        invoice = get_invoice(store, invoice_id, mode)
        _require(invoice, "finalize", "draft")
        _finalize(store, invoice, invoice_now(store, invoice))
        return invoice


def void_invoice(store: Store, mode: str, invoice_id: str) -> dict[str, Any]:
    with store.lock:
        invoice = get_invoice(store, invoice_id, mode)
        _require(invoice, "void", "draft", "open", "past_due")
        invoice.update(status="void", voidedAt=iso(store.now()), amountDue=0)
        invoice.pop("_retryTs", None)
        store.touch(invoice)
        store.emit("invoice.voided", invoice)
        return invoice


def send_invoice(store: Store, mode: str, invoice_id: str) -> dict[str, Any]:
    with store.lock:
        invoice = get_invoice(store, invoice_id, mode)
        _require(invoice, "send", "open", "past_due")
        store.emit("invoice.sent", invoice)
        return invoice


def email_invoice(store: Store, mode: str, invoice_id: str, to: str | None) -> dict[str, Any]:
    """The sandbox sends no mail: it answers what it would have sent and emits invoice.sent."""
    with store.lock:
        invoice = get_invoice(store, invoice_id, mode)
        _require(invoice, "email", "open", "past_due", "paid")
        to = to or store.customers[invoice["customerId"]].get("email")
        if not to:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"Customer {invoice['customerId']} has no email; send `to`.",
                field="to",
            )
        store.emit("invoice.sent", invoice)
        return {"sent": True, "to": to}


def pay_out_of_band(store: Store, mode: str, invoice_id: str) -> dict[str, Any]:
    """``POST /invoices/{id}/pay``: money received off-platform, recorded as a manual payment."""
    with store.lock:
        invoice = get_invoice(store, invoice_id, mode)
        _require(invoice, "pay", *UNPAID)
        mark_paid(store, invoice, "manual")
        return invoice


def _payment(
    store: Store, invoice: dict[str, Any], method: str, status: str, code: str | None = None
) -> dict[str, Any]:
    return record_payment(
        store,
        invoice["mode"],
        source_type="invoice",
        source_id=invoice["id"],
        method=method,
        status=status,
        fields={
            "invoiceId": invoice["id"],
            "customerId": invoice["customerId"],
            "amount": invoice["amountDue"],
            "currency": invoice["currency"],
            "metadata": invoice.get("metadata"),
        },
        failure_code=code,
    )


def mark_paid(store: Store, invoice: dict[str, Any], method: str) -> dict[str, Any] | None:
    """Mark the invoice paid, with a succeeded payment unless nothing was due."""
    payment = _payment(store, invoice, method, "succeeded") if invoice["amountDue"] else None
    invoice.pop("_3ds_card", None)
    invoice.pop("_retryTs", None)
    invoice.update(
        status="paid",
        amountPaid=invoice["amountPaid"] + invoice["amountDue"],
        amountDue=0,
        paidAt=payment["paidAt"] if payment else iso(store.now()),
        _chargeId=payment["id"] if payment else None,
    )
    store.touch(invoice)
    if payment:
        store.emit("payment.succeeded", payment)
    store.emit("invoice.paid", invoice)
    subscription = store.subscriptions.get(invoice.get("subscriptionId") or "")
    if subscription and subscription["status"] in ("incomplete", "past_due"):
        unpaid = [
            i
            for i in store.invoices.values()
            if i.get("subscriptionId") == subscription["id"] and i["status"] in UNPAID
        ]
        if not unpaid:
            store.change(subscription, "subscription.updated", status="active")
    return payment


def _fail(store: Store, invoice: dict[str, Any], code: str | None) -> dict[str, Any]:
    payment = _payment(store, invoice, "card", "failed", code)
    invoice.pop("_3ds_card", None)
    invoice["collectionAttempts"] += 1
    store.touch(invoice)
    store.emit("payment.failed", payment)
    store.emit("invoice.failed", invoice)
    return payment


def pay_invoice_card(
    store: Store,
    invoice_id: str,
    number: str,
    expiry: str | None = None,
    cvc: str | None = None,
    *,
    three_ds: str | None = None,
    save: bool = False,
) -> tuple[str, dict[str, Any] | None]:
    """Pay an open invoice with a test card (the hosted page); returns (outcome, payment).

    Raises ``cards.CardError`` for bad form input. ``save`` stores the card as the customer's
    default payment token once the payment succeeds.
    """
    with store.lock:
        invoice = get_invoice(store, invoice_id)
        _require(invoice, "pay", *UNPAID)
        card = cards.check_card(number, expiry, cvc, today=store.today())
        outcome, code = cards.charge(card, three_ds)
        if outcome == cards.REQUIRES_3DS:
            invoice["_3ds_card"] = card.number
            invoice["_3ds_save"] = save
            return outcome, None
        if outcome == cards.DECLINED:
            return outcome, _fail(store, invoice, code)
        payment = mark_paid(store, invoice, "card")
        if save:
            save_token(store, store.customers[invoice["customerId"]], card)
        return cards.SUCCESS, payment


def finish_invoice_3ds(
    store: Store, invoice_id: str, approve: bool
) -> tuple[str, dict[str, Any] | None]:
    with store.lock:
        invoice = get_invoice(store, invoice_id)
        card = invoice.get("_3ds_card")
        if invoice["status"] not in UNPAID or not card:
            raise ApiError(409, "conflict", "This invoice has no 3-D Secure step waiting.")
        return pay_invoice_card(
            store,
            invoice_id,
            card,
            three_ds="approve" if approve else "fail",
            save=bool(invoice.pop("_3ds_save", False)),
        )


def charge_token(store: Store, invoice: dict[str, Any], token_id: str | None, now: float) -> bool:
    """Charge a charge_automatically invoice; a decline starts (or continues) dunning."""
    card = _token_card(store, token_id) if token_id else None
    if card is not None and card.outcome != cards.DECLINED:
        mark_paid(store, invoice, "card")
        return True
    _fail(store, invoice, card.failure_code if card else "no_payment_token")
    if invoice["status"] == "open":
        invoice.update(status="past_due", _firstFailureTs=now)
    # Automatic attempts only (a decline on the hosted page does not move the schedule).
    attempts = invoice["_automaticAttempts"] = invoice.get("_automaticAttempts", 0) + 1
    if attempts <= len(DUNNING_DAYS):
        invoice["_retryTs"] = invoice["_firstFailureTs"] + DUNNING_DAYS[attempts - 1] * DAY
    else:
        invoice.pop("_retryTs", None)
    return False


def refundable_payment(store: Store, mode: str, invoice_id: str) -> dict[str, Any]:
    invoice = get_invoice(store, invoice_id, mode)
    if invoice["status"] != "paid" or not invoice["_chargeId"]:
        raise ApiError(
            409,
            "conflict",
            f"Invoice {invoice_id} has no captured payment (status {invoice['status']}).",
        )
    return store.payments[invoice["_chargeId"]]


refunds.register_source("invoice", refundable_payment)


def mark_overdue(store: Store, invoice: dict[str, Any]) -> None:
    """A send_invoice invoice passed its due date unpaid: it and its subscription go past due,
    each with an event (``invoice.updated`` first), so a mirror never shows one moved and the
    other not."""
    invoice.pop("_dueTs", None)
    store.change(invoice, "invoice.updated", status="past_due")
    subscription = store.subscriptions.get(invoice.get("subscriptionId") or "")
    if subscription and subscription["status"] in ("active", "incomplete"):
        store.change(subscription, "subscription.updated", status="past_due")


def _tick(store: Store) -> None:
    """Standalone invoices past their due date (a subscription's go on its own clock)."""
    now = store.now()
    for invoice in store.invoices.values():
        if (
            invoice["status"] == "open"
            and not invoice.get("subscriptionId")
            and invoice.get("_dueTs", now + 1) <= now
        ):
            mark_overdue(store, invoice)


FAMILY = register(
    Family(
        "invoices",
        stores=("invoices", "payment_tokens"),
        event_kinds=(
            "invoice.created",
            "invoice.finalized",
            "invoice.sent",
            "invoice.paid",
            "invoice.voided",
            "invoice.failed",
            "invoice.updated",
        ),
        tick=_tick,
    )
)
