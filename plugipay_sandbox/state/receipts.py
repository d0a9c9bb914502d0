"""Receipts: issued when a checkout session completes or an invoice is paid, never changed after.

A receipt is a snapshot taken at issue time: the brand, the customer, the lines, the payment's
method and reference, and — when the account's tax setting is on — the PPN back-calculated from
the gross (``round(total × rate / (1 + rate))``) with the merchant's NPWP.
"""

from __future__ import annotations

from typing import Any

from plugipay_sandbox.state import money
from plugipay_sandbox.state.core import (
    ApiError,
    Family,
    Store,
    iso,
    new_id,
    not_found,
    register,
)

SOURCE_TYPES = ("checkout_session", "invoice")


def _lines(kind: str, obj: dict[str, Any]) -> list[dict[str, Any]]:
    if kind == "invoice":
        return [
            {
                "description": line["description"],
                "quantity": line["quantity"],
                "unitAmount": line["unitAmount"],
                "amount": line["amount"],
            }
            for line in obj.get("lines") or []
        ]
    lines = [
        {
            "description": str(item["name"]),
            "quantity": item["quantity"],
            "unitAmount": item["unitAmount"],
            "amount": item["quantity"] * item["unitAmount"],
        }
        for item in obj.get("lineItems") or []
    ]
    if sum(line["amount"] for line in lines) != obj["amount"]:  # no items, or they differ
        lines = [
            {
                "description": obj.get("description") or f"Checkout {obj['id']}",
                "quantity": 1,
                "unitAmount": obj["amount"],
                "amount": obj["amount"],
            }
        ]
    return lines


def issue(store: Store, source_type: str, obj: dict[str, Any], payment: dict[str, Any]) -> None:
    """Issue the receipt for a paid session or invoice (once per source)."""
    account = obj["accountId"]
    if any(
        r["sourceId"] == obj["id"] and r["accountId"] == account
        for r in dict.values(store.receipts)
    ):
        return
    settings = money.settings(store, account)
    customer = dict.get(store.customers, obj.get("customerId") or "") or {}
    brand = dict.get(store.accounts, account) or {}
    total = payment["amount"]
    tax = money.tax_of(total, settings["taxRate"]) if settings["taxEnabled"] else 0
    number = 1 + sum(1 for r in dict.values(store.receipts) if r["accountId"] == account)
    receipt = {
        "id": new_id("rcpt_"),
        "object": "receipt",
        "accountId": account,
        "number": f"RCPT-{number:06d}",
        "sourceType": source_type,
        "sourceId": obj["id"],
        "customerId": obj.get("customerId"),
        "paymentId": payment["id"],
        "amount": total,
        "currency": payment["currency"],
        "method": payment.get("method"),
        "adapter": payment.get("adapter"),
        "providerReference": payment["id"],
        "brand": {
            "name": brand.get("brandName") or store.config.merchant_name,
            "email": brand.get("businessEmail"),
        },
        "customer": {"name": customer.get("name"), "email": customer.get("email")},
        "lines": _lines(source_type, obj),
        "subtotal": total - tax,
        "taxAmount": tax,
        "taxRate": settings["taxRate"] if settings["taxEnabled"] else None,
        "taxId": settings["taxId"] if settings["taxEnabled"] else None,
        "total": total,
        "paidAt": payment.get("paidAt"),
        "issuedAt": iso(store.now()),
        "emailedAt": None,
        "emailedTo": None,
        "mode": obj["mode"],
        "_issuedAtTs": store.now(),
        "_seq": store.next_seq(),
    }
    store.receipts[receipt["id"]] = receipt


def _on_event(store: Store, event: dict[str, Any]) -> None:
    """Issue a receipt for a completed session or a paid invoice, read from the stored objects
    (a synthetic event from ``POST /events/trigger`` issues none)."""
    kind, object_id = event["kind"], event["object"].get("id") or ""
    if kind == "checkout_session.completed":
        source = dict.get(store.sessions, object_id)
        charge = (
            (source or {}).get("paymentId") if (source or {}).get("status") == "completed" else None
        )
        source_type = "checkout_session"
    elif kind == "invoice.paid":
        source = dict.get(store.invoices, object_id)
        charge = (source or {}).get("_chargeId") if (source or {}).get("status") == "paid" else None
        source_type = "invoice"
    else:
        return
    payment = dict.get(store.payments, charge or "")
    if source and payment and payment["status"] == "succeeded" and payment["amount"]:
        issue(store, source_type, source, payment)


def get_receipt(store: Store, mode: str, receipt_id: str) -> dict[str, Any]:
    receipt = store.receipts.get(receipt_id)
    if receipt is None or receipt["mode"] != mode:
        raise not_found("receipt", receipt_id)
    return receipt


def email_receipt(store: Store, receipt: dict[str, Any], to: str | None) -> dict[str, Any]:
    """Record the receipt as e-mailed (the sandbox sends no mail) to ``to`` or the customer."""
    with store.lock:
        to = to or receipt["customer"].get("email")
        if not to:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                "The receipt's customer has no email; send `to`.",
                field="to",
            )
        receipt.update(emailedAt=iso(store.now()), emailedTo=to)
        return receipt


FAMILY = register(Family("receipts", stores=("receipts",), on_event=_on_event))
