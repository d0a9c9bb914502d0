"""The dashboard's money-out pages: Balance (bank account and a "Pay out" form), Payouts (with
the manual transitions), Ledger (filters, CSV) and Receipts (the PDF); the same store and
operations as the API routes.

Money belongs to one account: with "All accounts" chosen these pages show the sandbox's own.
"""

from __future__ import annotations

import functools
from html import escape
from typing import Any
from urllib.parse import urlencode

from plugipay_sandbox.app import Handler, Request, Response, pages, redirect
from plugipay_sandbox.hosted import receipt as documents
from plugipay_sandbox.hosted.dashboard import (
    Translate,
    badge,
    facts,
    frame,
    link,
    newest,
    not_found_page,
    notice_box,
    same_site,
    table,
    translator,
    when,
)
from plugipay_sandbox.hosted.dashboard_billing import customer_cell, status_filter
from plugipay_sandbox.hosted.layout import money as amount_text
from plugipay_sandbox.resources.money import ledger_csv_text
from plugipay_sandbox.state import ApiError, Store, money
from plugipay_sandbox.state.core import ACCOUNT

METHOD_NAMES = {"manual": "Manual transfer", "xendit_disbursement": "Xendit disbursement"}
NOTICES = {
    "paid_out": "The payout was created.",
    "bank_saved": "The bank account was saved.",
    "in_transit": "The payout is marked in transit.",
    "paid": "The payout is marked paid.",
    "failed": "The payout is marked failed; its money is available again.",
    "cancelled": "The payout was cancelled; its money is available again.",
}
#: The dashboard's transition forms: action → (status, button label, field, field label).
ACTIONS = {
    "mark-in-transit": ("in_transit", "Mark in transit", "reference", "Bank reference"),
    "mark-paid": ("paid", "Mark paid", "reference", "Bank reference"),
    "mark-failed": ("failed", "Mark failed", "failureReason", "Why it failed"),
    "cancel": ("cancelled", "Cancel payout", "", ""),
}
CODE_LABELS = {
    "cash": "Cash",
    "revenue": "Revenue",
    "revenue_refund": "Refunds",
    "platform_fee": "Platform fees",
    "payout": "Payouts",
}
SOURCE_LABELS = {
    "checkout_session": "Checkout session",
    "invoice": "Invoice",
    "refund": "Refund",
    "payout": "Payout",
}


def one_account(handler: Handler) -> Handler:
    """Run the page for the chosen account, or the sandbox's own when all are shown."""

    @functools.wraps(handler)
    def scoped(store: Store, request: Request):
        with store.scope(ACCOUNT.get() or store.config.account_id):
            return handler(store, request)

    return scoped


def _notice(_: Translate, request: Request) -> str:
    done, error = request.query.get("done"), request.query.get("error")
    if error:
        return notice_box(error, bad=True)
    return notice_box(_(NOTICES[done])) if done in NOTICES else ""


# ── balance, bank account, pay out ──────────────────────────────────────────────


@pages.add("GET", "/dashboard/balance")
@one_account
def balance_page(store: Store, request: Request):
    _ = translator(request)
    with store.lock:
        figures = money.balance(store, "test", "IDR")
        bank = money.bank_account(store)
        method = money.settings(store)["payoutMethod"]
    cards = "".join(
        f'<div><div class="muted">{escape(_(label))}</div><div class="big" data-testid="{key}">'
        f"{escape(amount_text(figures[key], 'IDR'))}</div></div>"
        for key, label in (
            ("available", "Available"),
            ("locked", "In payouts"),
            ("ledgerBalance", "Ledger balance"),
        )
    )

    def field(name: str, label: str, value: str | None, required: bool = True) -> str:
        return (
            f'<div><label for="{name}">{escape(_(label))}</label><input id="{name}" '
            f'name="{name}" value="{escape(value or "")}"{" required" if required else ""}></div>'
        )

    methods = "".join(
        f'<option value="{key}"{" selected" if key == method else ""}>{escape(_(text))}</option>'
        for key, text in METHOD_NAMES.items()
    )
    destination = (
        escape(
            f"{bank['bankName']} ···{(bank['accountNumber'] or '')[-4:]} {bank['accountHolder']}"
        )
        if bank["configured"]
        else escape(_("No bank account yet: save one below first."))
    )
    body = f"""{_notice(_, request)}<div class="card"><h1>{escape(_("Balance"))}</h1>
<div class="form-grid">{cards}</div></div><div class="card"><h2>{escape(_("Pay out"))}</h2>
<p class="muted">{escape(_("To:"))} {destination}</p><form method="post"
action="/dashboard/payouts" class="form-grid"><div><label for="amount">{escape(_("Amount"))}
</label><input id="amount" name="amount" inputmode="numeric" required placeholder="100000">
<p class="hint">{
        escape(
            _(
                "In rupiah; at most {amount}.",
                amount=amount_text(figures["available"], "IDR"),
            )
        )
    }</p></div><div><label for="method">{escape(_("Method"))}</label><select id="method"
name="method">{methods}</select></div><div><label for="note">{escape(_("Note"))}</label><input
id="note" name="note"></div><div><button class="btn">{escape(_("Pay out"))}</button></div>
</form></div><div class="card"><h2>{escape(_("Bank account"))}</h2><form method="post"
action="/dashboard/balance/bank-account" class="form-grid">{
        field("bankCode", "Bank code", bank["bankCode"], required=False)
    }{field("bankName", "Bank", bank["bankName"])}{
        field("accountNumber", "Account number", bank["accountNumber"])
    }{field("accountHolder", "Account holder", bank["accountHolder"])}<div><button
class="btn alt">{escape(_("Save bank account"))}</button></div></form></div>"""
    return frame(_, "balance", _("Balance"), body)


def _back(path: str, error: str) -> Response:
    return redirect(f"{path}?{urlencode({'error': error})}")


@pages.add("POST", "/dashboard/balance/bank-account")
@same_site
@one_account
def save_bank_account(store: Store, request: Request):
    form = request.form()
    body = {k: form.get(k, "").strip() or None for k in money.BANK_FIELDS}
    try:
        money.update_bank_account(store, body)
    except ApiError as exc:
        return _back("/dashboard/balance", exc.message)
    return redirect("/dashboard/balance?done=bank_saved")


@pages.add("POST", "/dashboard/payouts")
@same_site
@one_account
def create_payout(store: Store, request: Request):
    """What ``POST /api/v1/payouts`` does, from the Balance page's form."""
    _ = translator(request)
    form = request.form()
    amount = form.get("amount", "").strip().replace(".", "").replace(",", "")
    if not amount.isdigit() or int(amount) < 1:
        return _back("/dashboard/balance", _("Enter the amount as a whole number of rupiah."))
    method = form.get("method") if form.get("method") in money.PAYOUT_METHODS else None
    body = {"amount": int(amount), "currency": "IDR", "method": method}
    body["note"] = form.get("note", "").strip()[:500] or None
    try:
        payout = money.create_payout(store, "test", body)
    except ApiError as exc:
        return _back("/dashboard/balance", exc.message)
    return redirect(f"/dashboard/payouts/{payout['id']}?done=paid_out")


# ── payouts ─────────────────────────────────────────────────────────────────────

PAYOUT_HEADERS = [
    ("Amount", "num"),
    ("Status", ""),
    ("Method", "hide-s"),
    ("Bank", "hide-s"),
    ("Created", "hide-s"),
    ("Payout id", ""),
]


def payout_row(_: Translate, payout: dict[str, Any]) -> str:
    return (
        f'<tr><td class="num">{escape(amount_text(payout["amount"], payout["currency"]))}</td>'
        f"<td>{badge(_, payout['status'])}</td>"
        f'<td class="hide-s">{escape(_(METHOD_NAMES.get(payout["method"], payout["method"])))}</td>'
        f'<td class="hide-s">{escape(payout.get("bankName") or "—")}</td>'
        f'<td class="hide-s nw">{when(payout["createdAt"])}</td>'
        f"<td>{link('payouts', payout['id'])}</td></tr>"
    )


@pages.add("GET", "/dashboard/payouts")
@one_account
def payouts_list(store: Store, request: Request):
    _ = translator(request)
    status = request.query.get("status", "")
    with store.lock:
        rows = [
            payout_row(_, p)
            for p in newest(store.payouts.values())
            if not status or p["status"] == status
        ]
    create = f'<a class="btn small-btn" href="/dashboard/balance">{escape(_("Pay out"))}</a>'
    body = f"""{_notice(_, request)}<div class="card"><div class="head-row"><h1>{
        escape(_("Payouts"))
    }</h1>{create}</div>{status_filter(_, money.PAYOUT_STATUSES, status)}{
        table(_, PAYOUT_HEADERS, rows, "No payouts yet.")
    }</div>"""
    return frame(_, "payouts", _("Payouts"), body)


def transition_forms(_: Translate, payout: dict[str, Any]) -> str:
    """A form per move the payout may still make (manual payouts; cancel for any pending)."""
    allowed = money.TRANSITIONS.get(payout["status"], ())
    forms = []
    for action, (status, button, field, label) in ACTIONS.items():
        if status not in allowed or (payout["method"] != "manual" and action != "cancel"):
            continue
        required = " required" if field == "failureReason" else ""
        extra = (
            f'<label for="{action}-{field}">{escape(_(label))}</label><input '
            f'id="{action}-{field}" name="{field}"{required}>'
            if field
            else ""
        )
        style = "danger" if status in ("failed", "cancelled") else ""
        forms.append(
            f'<form method="post" action="/dashboard/payouts/{escape(payout["id"])}/{action}">'
            f'{extra}<button class="btn {style}">{escape(_(button))}</button></form>'
        )
    return f'<div class="form-grid">{"".join(forms)}</div>' if forms else ""


@pages.add("GET", "/dashboard/payouts/<id>")
def payout_page(store: Store, request: Request):
    _ = translator(request)
    with store.lock:
        payout = store.payouts.get(request.params["id"])
        if payout is None:
            return not_found_page(_, "payouts", request.params["id"])
        number = payout.get("accountNumber") or ""
        details = facts(
            _,
            [
                ("Payout id", f'<span class="mono">{escape(payout["id"])}</span>'),
                ("Method", escape(_(METHOD_NAMES.get(payout["method"], payout["method"])))),
                ("Bank", escape(f"{payout.get('bankName') or '—'} ···{number[-4:]}")),
                ("Account holder", escape(payout.get("accountHolder") or "—")),
                ("Note", escape(payout.get("note") or "—")),
                ("Reference", escape(payout.get("reference") or "—")),
                ("Failure reason", escape(payout.get("failureReason") or "—")),
                ("Ledger transaction", escape(payout.get("ledgerTransactionId") or "—")),
                ("Created", when(payout["createdAt"])),
                ("Processed", when(payout.get("processedAt"))),
                ("Completed", when(payout.get("completedAt"))),
            ],
        )
    body = f"""{_notice(_, request)}<div class="card"><div class="muted">{escape(_("Payout"))}
</div><div class="big">{escape(amount_text(payout["amount"], payout["currency"]))} {
        badge(_, payout["status"])
    }</div>{details}{transition_forms(_, payout)}</div>"""
    return frame(_, "payouts", _("Payout"), body)


@pages.add("POST", "/dashboard/payouts/<id>/<action>")
@same_site
def move_payout(store: Store, request: Request):
    """The ``mark-*`` and ``cancel`` API calls, from the payout page's buttons."""
    _ = translator(request)
    action = request.params["action"]
    payout = store.payouts.get(request.params["id"])
    if payout is None or action not in ACTIONS:
        return not_found_page(_, "payouts", request.params["id"])
    status, _button, field, _label = ACTIONS[action]
    value = request.form().get(field, "").strip()[:500] if field else ""
    back = f"/dashboard/payouts/{payout['id']}"
    try:
        if action == "cancel":
            money.move_payout(store, payout, status)
        elif field == "failureReason":
            if not value:
                return _back(back, _("Say why the payout failed."))
            money.mark_payout(store, "test", payout["id"], status, failure_reason=value)
        else:
            money.mark_payout(store, "test", payout["id"], status, reference=value or None)
    except ApiError as exc:
        return _back(back, exc.message)
    return redirect(f"{back}?done={status}")


# ── ledger ──────────────────────────────────────────────────────────────────────

LEDGER_HEADERS = [
    ("Posted", "hide-s"),
    ("Account", ""),
    ("Debit", "num"),
    ("Credit", "num"),
    ("Source", "hide-s"),
    ("Transaction", "hide-s"),
]
LEDGER_FILTERS = ("code", "sourceType", "txId", "sourceId")


def _ledger_rows(store: Store, request: Request) -> list[dict[str, Any]]:
    query = request.query
    return [
        e
        for e in money.entries(store, "test")
        if all(not query.get(name) or e[name] == query[name] for name in LEDGER_FILTERS)
    ]


def _select(_: Translate, name: str, labels: dict[str, str], chosen: str, every: str) -> str:
    options = "".join(
        f'<option value="{key}"{" selected" if key == chosen else ""}>{escape(_(text))}</option>'
        for key, text in labels.items()
    )
    return (
        f'<select name="{name}" aria-label="{escape(_(every))}"><option value="">'
        f"{escape(_(every))}</option>{options}</select>"
    )


@pages.add("GET", "/dashboard/ledger")
@one_account
def ledger_page(store: Store, request: Request):
    _ = translator(request)
    query = request.query
    with store.lock:
        entries = newest(_ledger_rows(store, request))
        sums = money.ledger_balances(store, "test")
    rows = []
    for e in entries[:200]:
        cash = amount_text(e["amount"], e["currency"])
        debit, credit = (cash, "") if e["direction"] == "debit" else ("", cash)
        source = f"{_(SOURCE_LABELS.get(e['sourceType'], e['sourceType']))} {e['sourceId']}"
        rows.append(
            f'<tr><td class="hide-s nw">{when(e["postedAt"])}</td>'
            f"<td>{escape(_(CODE_LABELS.get(e['code'], e['code'])))}</td>"
            f'<td class="num">{escape(debit)}</td><td class="num">{escape(credit)}</td>'
            f'<td class="hide-s">{escape(source)}</td>'
            f'<td class="hide-s mono"><a href="/dashboard/ledger?txId={escape(e["txId"])}">'
            f"{escape(e['txId'])}</a></td></tr>"
        )
    balance_rows = [
        f"<tr><td>{escape(_(CODE_LABELS.get(r['code'], r['code'])))}</td>"
        f'<td class="num">{escape(amount_text(r["debits"], r["currency"]))}</td>'
        f'<td class="num">{escape(amount_text(r["credits"], r["currency"]))}</td>'
        f'<td class="num">{escape(amount_text(r["balance"], r["currency"]))}</td></tr>'
        for r in sums
    ]
    kept = {k: query[k] for k in LEDGER_FILTERS if query.get(k)}
    csv_href = "/dashboard/ledger.csv" + (f"?{urlencode(kept)}" if kept else "")
    filters = f"""<form class="filters" method="get">{
        _select(_, "code", CODE_LABELS, query.get("code", ""), "All accounts")
    }{_select(_, "sourceType", SOURCE_LABELS, query.get("sourceType", ""), "All sources")}
<button class="btn small-btn">{escape(_("Filter"))}</button></form>"""
    body = f"""<div class="card"><div class="head-row"><h1>{escape(_("Ledger"))}</h1><a
class="btn small-btn alt" href="{escape(csv_href)}">{escape(_("Download CSV"))}</a></div>{filters}{
        table(_, LEDGER_HEADERS, rows, "No ledger entries.")
    }</div><div class="card"><h2>{escape(_("Totals"))}</h2>{
        table(
            _,
            [("Account", ""), ("Debits", "num"), ("Credits", "num"), ("Balance", "num")],
            balance_rows,
            "No ledger entries.",
        )
    }</div>"""
    return frame(_, "ledger", _("Ledger"), body)


@pages.add("GET", "/dashboard/ledger.csv")
@one_account
def ledger_csv(store: Store, request: Request):
    with store.lock:
        rows = sorted(_ledger_rows(store, request), key=lambda e: e["_seq"])
    return Response(
        ledger_csv_text(rows),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="ledger.csv"'},
    )


# ── receipts ────────────────────────────────────────────────────────────────────

RECEIPT_HEADERS = [
    ("Number", ""),
    ("Amount", "num"),
    ("incl. PPN", "num hide-s"),
    ("Customer", "hide-s"),
    ("Source", "hide-s"),
    ("Issued", "hide-s"),
    ("Document", ""),
]


@pages.add("GET", "/dashboard/receipts")
@one_account
def receipts_list(store: Store, request: Request):
    _ = translator(request)
    with store.lock:
        rows = []
        for r in newest(store.receipts.values()):
            rid = escape(r["id"])
            tax = amount_text(r["taxAmount"], r["currency"]) if r["taxAmount"] else "—"
            rows.append(
                f'<tr><td class="nw">{escape(r["number"])}</td>'
                f'<td class="num">{escape(amount_text(r["amount"], r["currency"]))}</td>'
                f'<td class="num hide-s">{escape(tax)}</td>'
                f'<td class="hide-s">{customer_cell(store, r["customerId"])}</td>'
                f'<td class="hide-s">{escape(_(SOURCE_LABELS[r["sourceType"]]))}</td>'
                f'<td class="hide-s nw">{when(r["issuedAt"])}</td>'
                f'<td class="nw"><a href="/dashboard/receipts/{rid}/receipt.pdf">PDF</a> · '
                f'<a href="/dashboard/receipts/{rid}/receipt.html">HTML</a></td></tr>'
            )
    body = f"""<div class="card"><div class="head-row"><h1>{escape(_("Receipts"))}</h1></div>{
        table(_, RECEIPT_HEADERS, rows, "No receipts yet: one is issued for each payment.")
    }</div>"""
    return frame(_, "receipts", _("Receipts"), body)


def _receipt(store: Store, request: Request, make) -> Response:
    found = store.receipts.get(request.params["id"])
    if found is None:
        return not_found_page(translator(request), "receipts", request.params["id"])
    return make(found)


@pages.add("GET", "/dashboard/receipts/<id>/receipt.pdf")
def receipt_pdf(store: Store, request: Request):
    return _receipt(store, request, documents.pdf_response)


@pages.add("GET", "/dashboard/receipts/<id>/receipt.html")
def receipt_html(store: Store, request: Request):
    return _receipt(store, request, documents.html_document)
