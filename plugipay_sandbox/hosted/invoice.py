"""The hosted invoice page at ``/i/<inv_id>`` (pay by test card, 3-D Secure, save the card) and
the invoice documents (printable HTML and a one-page PDF)."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any
from urllib.parse import urlencode

from plugipay_sandbox import cards, pdf
from plugipay_sandbox.app import Request, Response, pages, redirect
from plugipay_sandbox.hosted.i18n import gettext as _
from plugipay_sandbox.hosted.layout import (
    WIB,
    card_fields,
    money,
    page,
    test_card_rows,
    three_ds_page,
)
from plugipay_sandbox.state import ApiError, Store, invoices

STATUS_LABELS = {
    "open": "Open",
    "past_due": "Past due",
    "paid": "Paid",
    "void": "Void",
    "uncollectible": "Uncollectible",
    "draft": "Draft",
}


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def day(value: str | None) -> str:
    """An ISO time as a date people read (``30 Nov 2026``), the day it is in Jakarta."""
    if not value:
        return "—"
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(WIB)
    return f"{moment.day} {_(MONTHS[moment.month - 1])} {moment.year}"


def badge(status: str) -> str:
    return f'<span class="badge {escape(status)}">{_(STATUS_LABELS.get(status, status))}</span>'


def _totals(invoice: dict[str, Any]) -> list[tuple[str, int]]:
    rows = [("Subtotal", invoice["subtotal"])]
    if invoice["discount"]:
        rows.append(("Discount", -invoice["discount"]))
    if invoice["tax"]:
        rows.append(("Tax", invoice["tax"]))
    rows.append(("Total", invoice["total"]))
    if invoice["amountPaid"]:
        rows.append(("Amount paid", invoice["amountPaid"]))
    rows.append(("Amount due", invoice["amountDue"]))
    return rows


def summary(store: Store, invoice: dict[str, Any]) -> str:
    currency = invoice["currency"]
    customer = store.customers.get(invoice["customerId"]) or {}
    lines = "".join(
        f"<tr><td>{escape(line['description'])}<div class=muted>{line['quantity']} × "
        f"{money(line['unitAmount'], currency)}</div></td>"
        f"<td class='r nw'>{money(line['amount'], currency)}</td></tr>"
        for line in invoice["lines"]
    )
    totals = "".join(
        f"<tr class=total><td>{_(label)}</td><td class='r nw'>{money(amount, currency)}</td></tr>"
        for label, amount in _totals(invoice)
    )
    due = invoice["amountDue"] if invoice["status"] != "paid" else invoice["total"]
    billed = escape(customer.get("name") or customer.get("email") or invoice["customerId"])
    if invoice["status"] == "paid":
        when = f"{_('Paid')} {day(invoice['paidAt'])}"
    else:
        when = f"{_('Due')} {day(invoice['dueAt'])}"
    memo = f'<p class="muted">{escape(invoice["memo"])}</p>' if invoice.get("memo") else ""
    return f"""<div class="card"><div class="brand"><span class="logo"></span>{
        escape(store.merchant_name())
    }</div><div class="muted" style="margin-top:12px">{_("Invoice")} {escape(invoice["number"])}
{badge(invoice["status"])}</div>
<div class="amount" data-testid="amount">{money(due, currency)}</div>
<div class="muted">{when} · {_("billed to")} {billed}</div>
<table style="margin-top:16px">{lines}{totals}</table>{memo}
<a class="linkbtn" href="/i/{escape(invoice["id"])}/invoice.pdf">{_("Download PDF")}</a></div>"""


SAVE_CARD = "Save this card for future payments (a sandbox payment token on the customer)"


def pay_form(invoice: dict[str, Any], values: dict, errors: dict, alert: str, portal: str) -> str:
    iid = escape(invoice["id"])
    alert_html = f'<div class="alert" role="alert">{escape(alert)}</div>' if alert else ""
    if invoice["status"] == "past_due" and not alert:
        alert_html = f'<div class="alert" role="alert">{_("This invoice is past due.")}</div>'
    checked = " checked" if values.get("save") else ""
    pay_amount = money(invoice["amountDue"], invoice["currency"])
    return f"""<div class="card"><h2 style="margin:0 0 4px">{_("Pay by card")}</h2>{alert_html}
<form method="post" action="/i/{iid}/pay"><input type="hidden" name="portal"
value="{escape(portal)}">{card_fields(values, errors)}
<label class="check"><input type="checkbox" name="save" value="1"{checked}> {_(SAVE_CARD)}</label>
<button class="btn" type="submit">{_("Pay {amount}", amount=pay_amount)}</button>
</form>{_back(portal)}
<details style="margin-top:18px" open><summary class="muted">
{_("Sandbox test cards (any future expiry, any 3-digit CVC)")}</summary>
<table>{test_card_rows()}</table></details></div>"""


def _back(portal: str) -> str:
    if not portal:
        return ""
    back = _("Back to the billing portal")
    return f'<a class="linkbtn" href="/portal/{escape(portal)}">{back}</a>'


RECEIPT = "Paid on {date}. A receipt is on its way (the sandbox sends no mail)."


def return_link(store: Store, invoice: dict[str, Any]) -> str:
    """ "Return to <merchant>": the ``returnUrl`` its subscription was created with (a sandbox
    convention), named by the sandbox's merchant name when it has one, else by its host."""
    subscription = store.subscriptions.get(invoice.get("subscriptionId") or "") or {}
    target = subscription.get("returnUrl")
    if not target:
        return ""
    label = _("Return to {merchant}", merchant=store.merchant_name())
    return f'<a class="btn" data-testid="return" href="{escape(target)}">{escape(label)}</a>'


def status_card(store: Store, invoice: dict[str, Any], portal: str) -> str:
    status = invoice["status"]
    if status == "paid":
        body = (
            f'<div class="status ok">{_("Payment received")}</div><p class="muted">'
            f"{_(RECEIPT, date=day(invoice['paidAt']))}</p>{return_link(store, invoice)}"
            f'<a class="btn alt" href="/i/{escape(invoice["id"])}/invoice.pdf">'
            f"{_('Download the invoice (PDF)')}</a>"
        )
    elif status == "void":
        body = (
            f'<div class="status bad">{_("This invoice was voided")}</div>'
            f'<p class="muted">{_("Nothing is due.")}</p>'
        )
    else:
        label = _(STATUS_LABELS.get(status, status)).lower()
        body = (
            f'<div class="status bad">{_("This invoice is {status}", status=label)}'
            f'</div><p class="muted">{_("It can no longer be paid here.")}</p>'
        )
    return f'<div class="card">{body}{_back(portal)}</div>'


def render(store, invoice, values=None, errors=None, alert="", portal="", status=200):
    if invoice["status"] in invoices.UNPAID:
        side = pay_form(invoice, values or {}, errors or {}, alert, portal)
    else:
        side = status_card(store, invoice, portal)
    title = f"{_('Invoice')} {invoice['number']}"
    return page(title, f'<div class="wrap">{summary(store, invoice)}{side}</div>', status)


def _invoice(store: Store, request: Request) -> dict[str, Any]:
    invoice = store.invoices.get(request.params["id"])
    if invoice is None or invoice["status"] == "draft":
        raise ApiError(404, "not_found", "No such invoice.")
    return invoice


def _self(invoice: dict[str, Any], portal: str, suffix: str = "") -> str:
    query = f"?{urlencode({'portal': portal})}" if portal else ""
    return f"/i/{invoice['id']}{suffix}{query}"


@pages.add("GET", "/i/<id>")
def show(store: Store, request: Request):
    invoice = _invoice(store, request)
    portal = request.query.get("portal", "")
    if invoice.get("_3ds_card") and invoice["status"] in invoices.UNPAID:
        return redirect(_self(invoice, portal, "/3ds"))
    return render(store, invoice, portal=portal)


@pages.add("POST", "/i/<id>/pay")
def pay(store: Store, request: Request):
    invoice = _invoice(store, request)
    form = request.form()
    portal = form.get("portal", "")
    try:
        outcome, payment = invoices.pay_invoice_card(
            store,
            invoice["id"],
            form.get("number", ""),
            form.get("expiry", ""),
            form.get("cvc", ""),
            save=form.get("save") == "1",
        )
    except cards.CardError as exc:
        return render(store, invoice, form, {exc.field: exc.message}, portal=portal, status=400)
    except ApiError:
        return redirect(_self(invoice, portal))
    if outcome == cards.REQUIRES_3DS:
        return redirect(_self(invoice, portal, "/3ds"))
    if outcome == cards.DECLINED:
        form.pop("number", None)
        message = (payment or {}).get("failureMessage") or "The card was declined."
        alert = f"{_(message)} {_('Try another card.')}"
        return render(store, invoice, form, {}, alert, portal, 402)
    return redirect(_self(invoice, portal))


@pages.add("GET", "/i/<id>/3ds")
def three_ds(store: Store, request: Request):
    invoice = _invoice(store, request)
    portal = request.query.get("portal", "")
    if invoice["status"] not in invoices.UNPAID or not invoice.get("_3ds_card"):
        return redirect(_self(invoice, portal))
    amount = money(invoice["amountDue"], invoice["currency"])
    return three_ds_page(amount, store.merchant_name(), _self(invoice, portal, "/3ds"))


@pages.add("POST", "/i/<id>/3ds")
def three_ds_answer(store: Store, request: Request):
    invoice = _invoice(store, request)
    portal = request.query.get("portal", "")
    approve = request.form().get("action") == "approve"
    try:
        outcome, payment = invoices.finish_invoice_3ds(store, invoice["id"], approve)
    except ApiError:
        return redirect(_self(invoice, portal))
    if outcome == cards.SUCCESS:
        return redirect(_self(invoice, portal))
    message = (payment or {}).get("failureMessage") or "Authentication failed."
    return render(store, invoice, {}, {}, f"{_(message)} {_('Try another card.')}", portal, 402)


@pages.add("GET", "/i/<id>/invoice.pdf")
def public_pdf(store: Store, request: Request):
    return pdf_response(store, _invoice(store, request))


# ── documents ──────────────────────────────────────────────────────────────────


def document_rows(store: Store, invoice: dict[str, Any]) -> list[tuple[str, float, str, bool]]:
    """The invoice as text rows for the PDF: (text, size, align, bold)."""
    currency = invoice["currency"]
    customer = store.customers.get(invoice["customerId"]) or {}
    status, due = invoice["status"], day(invoice["dueAt"])
    billed = f"{customer.get('name') or ''} {customer.get('email') or ''}"
    rows: list[tuple[str, float, str, bool]] = [
        (store.merchant_name(), 11, "l", True),
        (_("Not Plugipay: a test document. No real money moves."), 9, "l", False),
        ("", 12, "l", False),
        (f"{_('Invoice')} {invoice['number']}", 22, "l", True),
        (
            _("Status: {status}", status=_(STATUS_LABELS.get(status, status))),
            11,
            "l",
            False,
        ),
        (
            _("Issued: {issued}    Due: {due}", issued=day(invoice["issuedAt"]), due=due),
            11,
            "l",
            False,
        ),
        (
            _("Billed to: {customer}", customer=billed).rstrip(),
            11,
            "l",
            False,
        ),
        ("", 12, "l", False),
    ]
    for line in invoice["lines"]:
        rows.append((line["description"], 11, "l", True))
        rows.append(
            (
                f"{line['quantity']} x {money(line['unitAmount'], currency)}   "
                f"{money(line['amount'], currency)}",
                10,
                "r",
                False,
            )
        )
    rows.append(("", 10, "l", False))
    for label, amount in _totals(invoice):
        rows.append((f"{_(label)}: {money(amount, currency)}", 11, "r", label == "Total"))
    if invoice.get("memo"):
        rows += [("", 10, "l", False), (invoice["memo"], 10, "l", False)]
    rows += [
        ("", 10, "l", False),
        (_("Pay online: {url}", url=invoice["hostedInvoiceUrl"] or "-"), 9, "l", False),
    ]
    return rows


def pdf_response(store: Store, invoice: dict[str, Any]) -> Response:
    body = pdf.one_page(document_rows(store, invoice))
    return Response(
        body,
        200,
        "application/pdf",
        {"Content-Disposition": f'inline; filename="{invoice["number"]}.pdf"'},
    )


def document_html(store: Store, invoice: dict[str, Any]) -> str:
    """The invoice as a printable HTML document (no payment form)."""
    response = page(
        f"{_('Invoice')} {invoice['number']}",
        f'<div class="wrap" style="grid-template-columns:1fr;max-width:640px">'
        f"{summary(store, invoice)}</div>",
    )
    return response.body.decode()
