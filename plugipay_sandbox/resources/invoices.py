"""Invoices: create, list, get, finalize, pay, void, send, send-email, the HTML and PDF documents,
the public read behind ``hostedInvoiceUrl``, and the control route that pays one by card."""

from __future__ import annotations

from typing import Any

from plugipay_sandbox import cards
from plugipay_sandbox.app import Request, Response, api, envelope, pages, paginate
from plugipay_sandbox.hosted import invoice as documents
from plugipay_sandbox.resources import (
    MAX_SAFE_INTEGER,
    MISSING,
    choice,
    created_between,
    integer,
    invalid,
    metadata,
    nested,
    present,
    string,
    time_filter,
)
from plugipay_sandbox.state import CURRENCIES, ApiError, Store, invoices, iso


def detail(store: Store, invoice: dict[str, Any]) -> dict[str, Any]:
    """The single-invoice read: the only one that carries ``chargeId``."""
    return {**(store.public(invoice) or {}), "chargeId": invoice["_chargeId"]}


def _lines(body: dict[str, Any]) -> list[dict[str, Any]]:
    lines = body.get("lines")
    if not isinstance(lines, list) or not lines:
        raise invalid(
            "lines", "lines must be a non-empty array of {description, quantity, unitAmount}."
        )
    for index, line in enumerate(lines):
        prefix = f"lines[{index}]"
        if not isinstance(line, dict):
            raise invalid(prefix, f"{prefix} must be an object.")
        nested(prefix, string, line, "description", required=True, max_length=500)
        nested(prefix, integer, line, "quantity", required=True, minimum=1)
        nested(prefix, integer, line, "unitAmount", required=True)
        nested(prefix, metadata, line)
    total = 0
    for index, line in enumerate(lines):
        total += line["quantity"] * line["unitAmount"]
        if line["quantity"] * line["unitAmount"] > MAX_SAFE_INTEGER or total > MAX_SAFE_INTEGER:
            raise invalid(
                f"lines[{index}]",
                f"The invoice's amounts must stay at most {MAX_SAFE_INTEGER} "
                "(quantity × unitAmount, and their sum).",
            )
    return [
        {k: line.get(k) for k in ("description", "quantity", "unitAmount", "metadata")}
        for line in lines
    ]


@api.add("POST", "/invoices")
def create(store: Store, request: Request):
    body = request.json()
    status = choice(body, "status", ("draft", "open")) or "draft"
    due = body.get("dueAt")
    if due is not None and not isinstance(due, str):
        raise invalid("dueAt", "dueAt must be an ISO-8601 time or epoch seconds.")
    due_at = time_filter({"dueAt": due} if due else {}, "dueAt")
    fields = present(
        {
            "customerId": string(body, "customerId", required=True),
            "currency": choice(body, "currency", CURRENCIES, required=True),
            "lines": _lines(body),
            "discount": integer(body, "discount"),
            "tax": integer(body, "tax"),
            "memo": string(body, "memo", max_length=2000),
            "subscriptionId": string(body, "subscriptionId"),
            "metadata": metadata(body),
        }
    )
    subtotal = sum(line["quantity"] * line["unitAmount"] for line in fields["lines"])
    if subtotal + (fields.get("tax") or 0) > MAX_SAFE_INTEGER:
        raise invalid("tax", f"The invoice's total must stay at most {MAX_SAFE_INTEGER}.")
    if due_at is not None:
        fields["dueAt"] = iso(due_at)
    customer = store.customers.get(fields["customerId"])
    if customer is None or customer["mode"] != request.mode:
        raise ApiError(
            404, "not_found", f"No customer with id {fields['customerId']!r}.", field="customerId"
        )
    fields = {k: v for k, v in fields.items() if v is not None}
    if "subscriptionId" in fields:
        subscription = store.subscriptions.get(fields["subscriptionId"])
        if subscription is None or subscription["customerId"] != customer["id"]:
            raise ApiError(
                404,
                "not_found",
                f"No subscription {fields['subscriptionId']!r} of this customer.",
                field="subscriptionId",
            )
    invoice = invoices.create_invoice(store, request.mode, fields, status=status)
    return envelope(detail(store, invoice), status=201, store=store)


@api.add("GET", "/invoices")
def list_(store: Store, request: Request):
    query = request.query
    items = [
        i
        for i in store.invoices.values()
        if i["mode"] == request.mode
        and all(
            name not in query or i[name] == query[name]
            for name in ("status", "customerId", "subscriptionId")
        )
    ]
    return paginate(store, request, created_between(items, query))


@api.add("GET", "/invoices/<id>")
def get(store: Store, request: Request):
    invoice = invoices.get_invoice(store, request.params["id"], request.mode)
    return envelope(detail(store, invoice), store=store)


def _action(operation):
    def handler(store: Store, request: Request):
        request.json()
        invoice = operation(store, request.mode, request.params["id"])
        return envelope(detail(store, invoice), store=store)

    return handler


api.add("POST", "/invoices/<id>/finalize")(_action(invoices.finalize_invoice))
api.add("POST", "/invoices/<id>/pay")(_action(invoices.pay_out_of_band))
api.add("POST", "/invoices/<id>/void")(_action(invoices.void_invoice))
api.add("POST", "/invoices/<id>/send")(_action(invoices.send_invoice))


@api.add("POST", "/invoices/<id>/send-email")
def send_email(store: Store, request: Request):
    to = string(request.json(), "to", max_length=320)
    to = None if to is MISSING else to
    if to is not None and "@" not in to:
        raise invalid("to", "to must be an email address.")
    result = invoices.email_invoice(store, request.mode, request.params["id"], to)
    return envelope(result, store=store)


@api.add("GET", "/invoices/<id>/invoice.html")
def invoice_html(store: Store, request: Request):
    invoice = invoices.get_invoice(store, request.params["id"], request.mode)
    return Response(documents.document_html(store, invoice), 200, "text/html; charset=utf-8")


@api.add("GET", "/invoices/<id>/invoice.pdf")
def invoice_pdf(store: Store, request: Request):
    invoice = invoices.get_invoice(store, request.params["id"], request.mode)
    return documents.pdf_response(store, invoice)


@api.add("GET", "/public/checkout/invoices/<id>", public=True)
def public_read(store: Store, request: Request):
    invoice = invoices.get_invoice(store, request.params["id"])
    if invoice["status"] == "draft":
        raise ApiError(404, "not_found", f"No invoice with id {invoice['id']!r}.")
    return envelope(store.public(invoice), store=store)


@pages.add("POST", "/_sandbox/invoices/<id>/pay")
def control_pay(store: Store, request: Request):
    """What the hosted invoice page does: ``{"card", "three_ds"?, "save"?}``."""
    body = request.json()
    if "card" not in body:
        raise ApiError(400, "VALIDATION_ERROR", 'Send {"card": number}.', field="card")
    three_ds = body.get("three_ds")
    if three_ds not in (None, "approve", "fail"):
        raise ApiError(400, "VALIDATION_ERROR", "three_ds is approve or fail.", field="three_ds")
    try:
        outcome, payment = invoices.pay_invoice_card(
            store,
            request.params["id"],
            str(body["card"]),
            three_ds=three_ds,
            save=bool(body.get("save")),
        )
    except cards.CardError as exc:
        raise ApiError(400, "VALIDATION_ERROR", exc.message, field="card") from exc
    invoice = invoices.get_invoice(store, request.params["id"])
    return envelope(
        {"outcome": outcome, "invoice": detail(store, invoice), "payment": store.public(payment)},
        store=store,
    )
