"""Receipts: list, get, the PDF / HTML / ESC-POS documents, and "email" (no mail is sent)."""

from __future__ import annotations

from typing import Any

from plugipay_sandbox.app import Request, Response, api, envelope, paginate
from plugipay_sandbox.hosted import i18n
from plugipay_sandbox.hosted import receipt as documents
from plugipay_sandbox.resources import created_between, invalid, string
from plugipay_sandbox.state import Store, receipts


def render(store: Store, receipt: dict[str, Any]) -> dict[str, Any]:
    """The receipt with the links to its documents."""
    base = f"{store.base_url()}/api/v1/receipts/{receipt['id']}"
    links = {kind: f"{base}/receipt.{kind}" for kind in ("pdf", "html", "escpos")}
    return {**store.public(receipt), "links": links}


@api.add("GET", "/receipts")
def list_(store: Store, request: Request):
    query = request.query
    source_type = query.get("sourceType")
    if source_type is not None and source_type not in receipts.SOURCE_TYPES:
        raise invalid(
            "sourceType", f"sourceType must be one of {', '.join(receipts.SOURCE_TYPES)}."
        )
    items = [
        r
        for r in store.receipts.values()
        if r["mode"] == request.mode
        and source_type in (None, r["sourceType"])
        and query.get("customerId") in (None, r["customerId"])
        and query.get("sourceId") in (None, r["sourceId"])
    ]
    items = created_between(items, query, ("issuedAfter",), ("issuedBefore",), field="issuedAt")
    return paginate(store, request, items, lambda r: render(store, r))


@api.add("GET", "/receipts/<id>")
def get(store: Store, request: Request):
    found = receipts.get_receipt(store, request.mode, request.params["id"])
    return envelope(render(store, found), store=store)


def _document(store: Store, request: Request, make) -> Response:
    found = receipts.get_receipt(store, request.mode, request.params["id"])
    token = i18n.activate(
        i18n.language_of(request.query.get("lang"), request.headers.get("accept-language"))
    )
    try:
        return make(found)
    finally:
        i18n.reset(token)


@api.add("GET", "/receipts/<id>/receipt.pdf")
def pdf(store: Store, request: Request):
    return _document(store, request, documents.pdf_response)


@api.add("GET", "/receipts/<id>/receipt.html")
def html(store: Store, request: Request):
    return _document(store, request, documents.html_document)


@api.add("GET", "/receipts/<id>/receipt.escpos")
def escpos(store: Store, request: Request):
    return _document(store, request, documents.escpos_response)


@api.add("POST", "/receipts/<id>/email")
def email(store: Store, request: Request):
    to = string(request.json(), "to", max_length=254)
    if isinstance(to, str) and "@" not in to:
        raise invalid("to", "to must be an email address.")
    found = receipts.get_receipt(store, request.mode, request.params["id"])
    found = receipts.email_receipt(store, found, to if isinstance(to, str) else None)
    return envelope(render(store, found), store=store)
