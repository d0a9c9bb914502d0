"""The sandbox dashboard at ``/dashboard/``: payments, customers, checkout sessions, events and
Settings → Webhooks (endpoints, deliveries, retry), read from the same store as the API.

Forms call the same state operations and field checks as the API routes; every string people
read goes through :func:`translator`, i.e. :func:`plugipay_sandbox.hosted.i18n.gettext` (its
table ``i18n.ID`` holds the Indonesian, keyed by the English).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html import escape
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from plugipay_sandbox import safety
from plugipay_sandbox.app import CHOSEN_ACCOUNT, SERVING, Handler, Request, pages, redirect
from plugipay_sandbox.hosted import i18n
from plugipay_sandbox.hosted.checkout import METHOD_LABELS
from plugipay_sandbox.hosted.layout import money, page
from plugipay_sandbox.resources.webhooks import endpoint_fields
from plugipay_sandbox.state import ApiError, Store, event_kinds, iso, refunds
from plugipay_sandbox.state import webhooks as endpoints
from plugipay_sandbox.state.core import ACCOUNT
from plugipay_sandbox.state.webhooks import AUTO_DISABLE_AFTER, auto_disable_window

Translate = Callable[..., str]


def translator(request: Request) -> Translate:
    """``_("Refund of {amount}", amount=…)``: the text in the request's language (activated by
    ``SandboxApp`` from ``?lang=`` / ``Accept-Language``), filled in."""
    return i18n.gettext


def same_site(handler: Handler) -> Handler:
    """Refuse a form posted from another site (no auth here, so no cross-site writes either):
    a foreign ``Origin`` or a ``Sec-Fetch-Site`` other than same-origin (see ``safety``)."""

    def guarded(store: Store, request: Request):
        if safety.cross_site_reason(store.config, request.headers) is not None:
            _ = translator(request)
            refused = _("Refused: this form came from another site.")
            body = f'<div class="card"><h1>{escape(refused)}</h1></div>'
            return frame(_, "", _("Refused"), body, 403)
        return handler(store, request)

    return guarded


# ── the frame ───────────────────────────────────────────────────────────────────

STYLE = """
.dash{max-width:1100px;margin:0 auto;padding:0 16px 40px}.topbar{display:flex;align-items:center;
justify-content:space-between;gap:12px;flex-wrap:wrap;padding:18px 0 10px}.sandbox-tag{
font-size:11px;font-weight:700;letter-spacing:.06em;text-transform:uppercase;background:#f59e0b;
color:#fff;border-radius:6px;padding:2px 7px}.nav{display:flex;gap:4px;flex-wrap:wrap;
border-bottom:1px solid #e5e7eb;margin-bottom:20px}.nav a{padding:9px 12px;color:#4b5563;
text-decoration:none;font-size:14px;font-weight:600;border-bottom:2px solid transparent;
margin-bottom:-1px}.nav a.on{color:#4f46e5;border-color:#4f46e5}.dash .card{padding:22px;
margin-bottom:18px}.dash h1{font-size:22px;margin:0}.dash h2{font-size:16px;margin:0 0 10px}
.tbl{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%}.tbl table{min-width:100%}
.dash td .mono,.dash td.mono,.dash td.nw,.dash td .nw,td.email{white-space:nowrap;
overflow-wrap:normal}
.clock{display:flex;align-items:center;gap:6px 8px;flex-wrap:wrap;font-size:13px}
.clock select{flex:0 0 auto;padding:5px 8px;font-size:13px}.clock .btn{width:auto;margin:0;
padding:5px 12px;font-size:13px}.badge.ahead{background:#fde68a;color:#78350f}
.refund-form{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr) auto;gap:8px 12px;
align-items:end}.refund-form label{margin:0 0 4px}.refund-form .btn{margin:0;width:auto}
.refund-form select{width:100%;padding:11px 10px}.form-grid{display:grid;
grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:4px 16px}.form-grid select{
width:100%;padding:11px 10px}.hint{font-size:13px;color:#6b7280;margin:4px 0 0}
.dash table td,.dash table th{padding:9px 8px;border-bottom:1px solid #eef0f6;
text-align:left;vertical-align:top}.dash table th{font-size:12px;color:#6b7280;font-weight:600;
text-transform:uppercase;letter-spacing:.03em}
.dash a:not(.btn){color:#4f46e5;text-decoration:none}.dash a:not(.btn):hover{
text-decoration:underline}.dash .nav a{color:#4b5563;text-decoration:none}.dash .nav a.on{
color:#4f46e5}.filters select{flex:0 1 220px}
.mono,.dash code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12.5px;
overflow-wrap:anywhere}
.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}.filters{display:flex;
gap:8px;flex-wrap:wrap;align-items:center;margin-bottom:14px}.filters input,.filters select{
width:auto;flex:1 1 180px;padding:8px 10px;font-size:14px;border:1px solid #d1d5db;
border-radius:8px;background:#fff}.filters .btn,.dash .small-btn{width:auto;margin:0;
padding:8px 14px;font-size:14px;display:inline-block}.badge.succeeded,.badge.completed{
background:#d1fae5;color:#065f46}.badge.failed,.badge.errored,.badge.expired{background:#fee2e2;
color:#991b1b}.badge.pending,.badge.pending_review,.badge.partially_refunded{background:#fef3c7;
color:#92400e}.badge.refunded,.badge.disabled,.badge.archived,.badge.inactive{background:#e5e7eb;color:#374151}.badge.live{
background:#1f2937;color:#fff}dl.facts{display:grid;grid-template-columns:max-content 1fr;
gap:6px 18px;margin:0;font-size:14px}dl.facts dt{color:#6b7280}dl.facts dd{margin:0;
overflow-wrap:anywhere}.head-row{display:flex;justify-content:space-between;align-items:center;
gap:12px;flex-wrap:wrap;margin-bottom:14px}.big{font-size:28px;font-weight:700}
.child td:first-child{padding-left:22px}.timeline{list-style:none;margin:0;padding:0}
.timeline li{display:flex;gap:12px;padding:8px 0;border-bottom:1px solid #eef0f6;font-size:14px;
align-items:baseline;flex-wrap:wrap}.timeline .when{color:#6b7280;min-width:170px}
pre.json{background:#0f172a;color:#e2e8f0;padding:14px;border-radius:10px;overflow-x:auto;
font-size:12.5px;line-height:1.45;margin:0}.secret{display:block;background:#fef3c7;
border:1px dashed #f59e0b;padding:12px;border-radius:8px;font-size:15px;overflow-wrap:anywhere;
user-select:all}.events-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,
1fr));gap:4px 16px}.events-grid label.check{margin-top:6px}
.delivery{border-top:1px solid #eef0f6;padding:12px 0}.delivery-head{display:flex;
flex-wrap:wrap;gap:6px 12px;align-items:center;font-size:14px}.grow{flex:1}ol.attempts{
list-style:none;margin:8px 0 0;padding:0}.attempt{display:flex;flex-wrap:wrap;gap:4px 14px;
background:#f9fafb;border-radius:8px;padding:7px 10px;margin-top:4px;font-size:13px;
align-items:baseline}.attempt .code{font-weight:600}.attempt .resp{flex:1 1 220px;
overflow-wrap:anywhere;color:#374151;background:none;padding:0}.empty{color:#6b7280;padding:18px 0}
.notice.bad{background:#fee2e2;color:#991b1b}.inline-form{display:inline}.row-actions{
display:flex;gap:8px;flex-wrap:wrap}@media(max-width:640px){.hide-s{display:none}
.dash .card{padding:16px;border-radius:12px}.timeline .when{min-width:0}
.big{font-size:24px}.dash table td,.dash table th{padding:8px 5px}
.nav{flex-wrap:wrap;row-gap:2px}.nav a{padding:7px 8px;font-size:13px;
white-space:nowrap}.dash h1{font-size:19px}.topbar .muted{display:none}
dl.facts{grid-template-columns:minmax(0,1fr);gap:0}dl.facts dd{margin-bottom:8px}
.refund-form{grid-template-columns:minmax(0,1fr)}}
"""

NAV = (
    ("payments", "/dashboard/payments", "Payments"),
    ("customers", "/dashboard/customers", "Customers"),
    ("sessions", "/dashboard/checkout-sessions", "Checkout sessions"),
    ("subscriptions", "/dashboard/subscriptions", "Subscriptions"),
    ("invoices", "/dashboard/invoices", "Invoices"),
    ("plans", "/dashboard/plans", "Plans"),
    ("balance", "/dashboard/balance", "Balance"),
    ("payouts", "/dashboard/payouts", "Payouts"),
    ("ledger", "/dashboard/ledger", "Ledger"),
    ("receipts", "/dashboard/receipts", "Receipts"),
    ("events", "/dashboard/events", "Events"),
    ("webhooks", "/dashboard/webhooks", "Settings → Webhooks"),
)


def frame(_: Translate, section: str, title: str, body: str, status: int = 200):
    links = "".join(
        f'<a href="{href}" class="{"on" if key == section else ""}">{escape(_(label))}</a>'
        for key, href, label in NAV
    )
    here = next((href for key, href, _label in NAV if key == section), NAV[0][1])
    return page(
        f"{title} · {_('Dashboard')}",
        keep_account(
            f"""<style>{STYLE}</style><div class="dash"><div class="topbar"><div class="brand">
<span class="logo"></span>{escape(_("Plugipay dashboard"))} <span class="sandbox-tag">
{escape(_("Sandbox"))}</span></div>{account_switcher(_, here)}{clock_bar(_)}</div>
<nav class="nav">{links}</nav>{body}</div>"""
        ),
        status,
    )


def account_switcher(_: Translate, action: str) -> str:
    """Which account's objects the dashboard shows: all of them, or one (``?account=``)."""
    store = SERVING.get()
    if store is None:
        return ""
    shown = ACCOUNT.get()  # the chosen account; on an object's own page, the object's
    with store.lock, store.scope(None):
        accounts = sorted(store.accounts.values(), key=lambda a: a["_seq"])
    options = [f'<option value="">{escape(_("All accounts"))}</option>']
    for account in accounts:
        name = account["brandName"] or account["id"]
        selected = " selected" if account["id"] == shown else ""
        options.append(
            f'<option value="{escape(account["id"])}"{selected}>'
            f"{escape(name)} · {escape(account['id'])}</option>"
        )
    return f"""<form class="clock" method="get" action="{action}" data-testid="account-switcher">
<select name="account" aria-label="{escape(_("Account"))}">{"".join(options)}</select>
<button class="btn alt">{escape(_("Show"))}</button></form>"""


DASHBOARD_TARGET = re.compile(r'(href|action)="(/dashboard[^"?#]*)"')


def keep_account(body: str) -> str:
    """Every dashboard link and form of the page carries the chosen account on."""
    chosen = CHOSEN_ACCOUNT.get()
    if chosen is None:
        return body
    return DASHBOARD_TARGET.sub(
        lambda m: f'{m.group(1)}="{m.group(2)}?{urlencode({"account": chosen})}"', body
    )


#: The steps the dashboard's clock control offers, in seconds.
CLOCK_STEPS = (
    (3600, "1 hour"),
    (86400, "1 day"),
    (7 * 86400, "7 days"),
    (31 * 86400, "31 days"),
)


def offset_text(_: Translate, seconds: float) -> str:
    """How far the sandbox clock is ahead: ``+31 d 2 h`` (``real time`` when it is not)."""
    if abs(seconds) < 60:
        return _("real time")
    total = int(abs(seconds)) // 60
    days, hours, minutes = total // 1440, total % 1440 // 60, total % 60
    parts = [
        _(unit, n=n) for n, unit in ((days, "{n} d"), (hours, "{n} h"), (minutes, "{n} min")) if n
    ]
    sign = "+" if seconds > 0 else "−"
    return _("{offset} ahead of real time", offset=sign + " ".join(parts))


def clock_bar(_: Translate) -> str:
    """The sandbox clock (its time and offset) and a control to move it on, on every page."""
    store = SERVING.get()
    if store is None:
        return ""
    with store.lock:
        now, offset = store.now(), store.clock_offset
    steps = "".join(
        f'<option value="{seconds}">{escape(_(label))}</option>' for seconds, label in CLOCK_STEPS
    )
    ahead = " ahead" if abs(offset) >= 60 else ""
    return f"""<form class="clock" method="post" action="/dashboard/clock/advance"><span
class="muted">{escape(_("Sandbox clock"))}</span><span class="nw" data-testid="clock-now">{
        when(iso(now))
    }</span><span class="badge{ahead}" data-testid="clock-offset">{
        escape(offset_text(_, offset))
    }</span><select name="seconds" aria-label="{escape(_("Advance the clock by"))}">{steps}
</select><button class="btn alt">{escape(_("Advance the clock"))}</button></form>"""


def when(value: str | None) -> str:
    """An ISO time as ``2026-11-30 13:05:09 UTC``."""
    if not value:
        return "—"
    return escape(value[:19].replace("T", " ") + " UTC")


def badge(_: Translate, status: str) -> str:
    return f'<span class="badge {escape(status)}">{escape(_(LABELS.get(status, status)))}</span>'


def mode_badge(_: Translate, obj: dict[str, Any]) -> str:
    return f' <span class="badge live">{escape(_("live"))}</span>' if obj["mode"] == "live" else ""


def link(kind: str, object_id: str | None) -> str:
    if not object_id:
        return "—"
    return f'<a class="mono" href="/dashboard/{kind}/{escape(object_id)}">{escape(object_id)}</a>'


def empty(_: Translate, text: str) -> str:
    return f'<div class="empty">{escape(_(text))}</div>'


def table(_: Translate, headers: list[tuple[str, str]], rows: list[str], nothing: str) -> str:
    if not rows:
        return empty(_, nothing)
    head = "".join(f'<th class="{cls}">{escape(_(text))}</th>' for text, cls in headers)
    return f'<div class="tbl"><table><tr>{head}</tr>{"".join(rows)}</table></div>'


def list_page(
    _: Translate,
    section: str,
    title: str,
    headers: list[tuple[str, str]],
    rows: list[str],
    empty: str,
    filters: str = "",
):
    body = (
        f'<div class="card"><div class="head-row"><h1>{escape(_(title))}</h1></div>'
        f"{filters}{table(_, headers, rows, empty)}</div>"
    )
    return frame(_, section, _(title), body)


def facts(_: Translate, pairs: list[tuple[str, str]]) -> str:
    """A definition list; values are HTML already escaped by the caller."""
    items = "".join(f"<dt>{escape(_(label))}</dt><dd>{value}</dd>" for label, value in pairs)
    return f'<dl class="facts">{items}</dl>'


def metadata_table(_: Translate, metadata: dict[str, str] | None) -> str:
    rows = [
        f'<tr><td class="mono">{escape(k)}</td><td>{escape(str(v))}</td></tr>'
        for k, v in (metadata or {}).items()
    ]
    return table(_, [("Key", ""), ("Value", "")], rows, "No metadata.")


def newest(items) -> list[dict[str, Any]]:
    return sorted(items, key=lambda o: o["_seq"], reverse=True)


LABELS = {
    "succeeded": "Succeeded",
    "failed": "Failed",
    "pending": "Pending",
    "pending_review": "Pending review",
    "refunded": "Refunded",
    "partially_refunded": "Partially refunded",
    "open": "Open",
    "completed": "Completed",
    "expired": "Expired",
    "canceled": "Canceled",
    "active": "Active",
    "disabled": "Paused",
    "errored": "Disabled after failures",
    "trialing": "Trial",
    "past_due": "Past due",
    "paused": "Paused",
    "incomplete": "Incomplete",
    "draft": "Draft",
    "paid": "Paid",
    "void": "Void",
    "uncollectible": "Uncollectible",
    "archived": "Archived",
    "inactive": "Inactive",
    "in_transit": "In transit",
    "cancelled": "Cancelled",
}

#: Human labels for the codes the API uses (statuses are in ``LABELS``).
REASON_LABELS = {
    "duplicate": "Duplicate",
    "fraudulent": "Fraudulent",
    "requested_by_customer": "Requested by customer",
    "other": "Other",
}
MODE_LABELS = {"test": "Test mode", "live": "Live mode"}
COLLECTION_LABELS = {
    "charge_automatically": "Charge automatically",
    "send_invoice": "Send an invoice",
}


def label(_: Translate, labels: dict[str, str], code: str | None) -> str:
    """A code's human label in the page's language (an unknown code as it is, none as —)."""
    if not code:
        return "—"
    return _(labels[code]) if code in labels else code


def method_label(_: Translate, method: str | None) -> str:
    return label(_, METHOD_LABELS, method)


# ── payments ────────────────────────────────────────────────────────────────────


def payment_status(store: Store, payment: dict[str, Any]) -> str:
    """``refunded`` / ``partially_refunded`` for a succeeded payment with succeeded refunds."""
    if payment["status"] != "succeeded":
        return payment["status"]
    given_back = refunds.refunded(store, payment)
    if given_back >= payment["amount"]:
        return "refunded"
    return "partially_refunded" if given_back else "succeeded"


def customer_email(store: Store, obj: dict[str, Any]) -> str:
    customer = store.customers.get(obj.get("customerId") or "")
    if customer:
        return customer.get("email") or customer["id"]
    session = store.sessions.get(obj.get("checkoutSessionId") or "")
    if session and session.get("customer"):
        return session["customer"].get("email") or ""
    return ""


PAYMENT_FILTERS = ("succeeded", "partially_refunded", "refunded", "pending", "failed")


@pages.add("GET", "/dashboard/")
@pages.add("GET", "/dashboard")
def home(store: Store, request: Request):
    return redirect("/dashboard/payments")


@pages.add("GET", "/dashboard/payments")
def payments(store: Store, request: Request):
    _ = translator(request)
    status, query = request.query.get("status", ""), request.query.get("q", "").strip()
    rows = []
    with store.lock:
        for payment in newest(store.payments.values()):
            shown, email = payment_status(store, payment), customer_email(store, payment)
            if status and shown != status:
                continue
            ids = (payment["id"], payment.get("checkoutSessionId") or "", payment["_sourceId"])
            if query and query not in ids and query.lower() not in email.lower():
                continue
            rows.append(
                f'<tr><td class="num"><a href="/dashboard/payments/{escape(payment["id"])}">'
                f"{escape(money(payment['amount'], payment['currency']))}</a></td>"
                f"<td>{badge(_, shown)}{mode_badge(_, payment)}</td>"
                f'<td class="hide-s">{escape(method_label(_, payment["method"]))}</td>'
                f'<td class="email">{escape(email) or "—"}</td>'
                f'<td class="hide-s">{link("payments", payment["id"])}</td>'
                f'<td class="hide-s">{when(payment["createdAt"])}</td></tr>'
            )
    options = "".join(
        f'<option value="{s}"{" selected" if s == status else ""}>{escape(_(LABELS[s]))}</option>'
        for s in PAYMENT_FILTERS
    )
    filters = f"""<form class="filters" method="get" action="/dashboard/payments">
<select name="status" aria-label="{escape(_("Status"))}"><option value="">{
        escape(_("All statuses"))
    }
</option>{options}</select><input name="q" value="{escape(query)}" placeholder="{
        escape(_("Search by id or email"))
    }" aria-label="{escape(_("Search"))}"><button class="btn small-btn">{escape(_("Filter"))}
</button></form>"""
    headers = [
        ("Amount", "num"),
        ("Status", ""),
        ("Method", "hide-s"),
        ("Customer", ""),
        ("Payment id", "hide-s"),
        ("Created", "hide-s"),
    ]
    return list_page(_, "payments", "Payments", headers, rows, "No payments match.", filters)


def activity(_: Translate, store: Store, ids: set[str]) -> str:
    """Every event about these objects, oldest first."""
    events = sorted(
        (e for e in store.events.values() if (e["object"] or {}).get("id") in ids),
        key=lambda e: e["_seq"],
    )
    items = "".join(
        f'<li><span class="when">{when(e["occurredAt"])}</span><a class="mono" '
        f'href="/dashboard/events/{escape(e["id"])}">{escape(e["kind"])}</a>'
        f'<span class="muted mono hide-s">{escape(e["object"]["id"])}</span></li>'
        for e in events
    )
    if not items:
        return f'<div class="empty">{escape(_("No events yet."))}</div>'
    return f'<ol class="timeline">{items}</ol>'


@pages.add("GET", "/dashboard/payments/<id>")
def payment_page(store: Store, request: Request):
    _ = translator(request)
    with store.lock:
        payment = store.payments.get(request.params["id"])
        if payment is None:
            return not_found_page(_, "payments", request.params["id"])
        children = sorted(
            (r for r in store.refunds.values() if r["chargeId"] == payment["id"]),
            key=lambda r: r["_seq"],
        )
        refund_rows = [
            f'<tr class="child"><td class="num">↳ {escape(money(r["amount"], r["currency"]))}</td>'
            f'<td>{badge(_, r["status"])}</td><td class="mono">{escape(r["id"])}</td>'
            f'<td class="hide-s">{escape(label(_, REASON_LABELS, r.get("reason")))}</td>'
            f'<td class="hide-s">{when(r["createdAt"])}</td></tr>'
            for r in children
        ]
        given_back = refunds.refunded(store, payment)
        session_id = payment.get("checkoutSessionId")
        details = facts(
            _,
            [
                ("Payment id", f'<span class="mono">{escape(payment["id"])}</span>'),
                ("Method", escape(method_label(_, payment["method"]))),
                ("Customer", escape(customer_email(store, payment)) or "—"),
                ("Checkout session", link("checkout-sessions", session_id)),
                ("Refunded", escape(money(given_back, payment["currency"]))),
                ("Paid at", when(payment.get("paidAt"))),
                ("Failure", escape(payment.get("failureMessage") or "—")),
                ("Mode", escape(label(_, MODE_LABELS, payment["mode"]))),
            ],
        )
        ids = {payment["id"], *(r["id"] for r in children)}
        if session_id:
            ids.add(session_id)
        timeline = activity(_, store, ids)
        shown = payment_status(store, payment)
        refund_box = refund_form(_, store, payment)
    headers = [
        ("Amount", "num"),
        ("Status", ""),
        ("Refund id", ""),
        ("Reason", "hide-s"),
        ("Created", "hide-s"),
    ]
    notice = _(NOTICES[request.query["done"]]) if request.query.get("done") in NOTICES else ""
    body = f"""{notice_box(notice)}{notice_box(request.query.get("error", ""), bad=True)}<div
class="card"><div class="head-row"><div><div class="muted">{
        escape(_("Payment"))
    }</div><div class="big">{escape(money(payment["amount"], payment["currency"]))} {
        badge(_, shown)
    }</div></div></div>{details}</div><div class="card"><h2>{escape(_("Refunds"))}</h2>{
        table(_, headers, refund_rows, "No refunds.")
    }{refund_box}</div><div class="card"><h2>{escape(_("Activity"))}</h2>{timeline}</div>"""
    return frame(_, "payments", _("Payment"), body)


def refund_form(_: Translate, store: Store, payment: dict[str, Any]) -> str:
    """Amount (the refundable remainder by default) and a required reason; none when nothing
    can be refunded."""
    remaining = refunds.refundable(store, payment) if payment["status"] == "succeeded" else 0
    if remaining <= 0:
        return ""
    reasons = "".join(
        f'<option value="{code}">{escape(_(text))}</option>' for code, text in REASON_LABELS.items()
    )
    most = escape(money(remaining, payment["currency"]))
    return f"""<form class="refund-form" method="post" action="/dashboard/payments/{
        escape(payment["id"])
    }/refund" style="margin-top:16px"><div><label for="refund-amount">{
        escape(_("Amount to refund"))
    }</label><input id="refund-amount" name="amount" inputmode="numeric" value="{remaining}"
required><p class="hint">{
        escape(
            _(
                "In the smallest unit of {currency}; at most {amount}.",
                currency=payment["currency"],
                amount=most,
            )
        )
    }</p></div><div><label for="refund-reason">{escape(_("Reason"))}</label><select
id="refund-reason" name="reason" required><option value="">{escape(_("Choose a reason"))}
</option>{reasons}</select><p class="hint">&nbsp;</p></div><div><button class="btn danger">{
        escape(_("Refund"))
    }</button><p class="hint">&nbsp;</p></div></form>"""


@pages.add("POST", "/dashboard/payments/<id>/refund")
@same_site
def refund_payment(store: Store, request: Request):
    """What ``POST /api/v1/refunds`` does for this payment, from the dashboard's form."""
    _ = translator(request)
    payment = store.payments.get(request.params["id"])
    if payment is None:
        return not_found_page(_, "payments", request.params["id"])
    back = f"/dashboard/payments/{payment['id']}"
    form = request.form()
    amount, reason = form.get("amount", "").strip(), form.get("reason", "")
    if not amount.isdigit() or int(amount) < 1:
        error = _("Enter the amount as a whole number in the currency's smallest unit.")
    elif reason not in REASON_LABELS:
        error = _("Choose a reason for the refund.")
    else:
        try:
            refunds.create_refund(
                store,
                payment["mode"],
                {"chargeId": payment["id"], "amount": int(amount), "reason": reason},
            )
        except ApiError as exc:
            error = exc.message
        else:
            return redirect(f"{back}?done=refunded")
    return redirect(f"{back}?{urlencode({'error': error})}")


@pages.add("POST", "/dashboard/clock/advance")
@same_site
def advance_clock(store: Store, request: Request):
    """Move the sandbox clock on by one of ``CLOCK_STEPS``, as ``/_sandbox/clock/advance`` does,
    and go back to the page the form was on."""
    seconds = request.form().get("seconds", "")
    if seconds in {str(step) for step, _label in CLOCK_STEPS}:
        store.advance(int(seconds))
    back = urlsplit(request.headers.get("referer", ""))
    if back.path.startswith("/dashboard/") and back.netloc == request.headers.get("host"):
        return redirect(back.path + (f"?{back.query}" if back.query else ""))
    return redirect("/dashboard/")


def not_found_page(_: Translate, section: str, object_id: str):
    body = (
        f'<div class="card"><h1>{escape(_("Not found"))}</h1><p class="muted">'
        f"{escape(_('Nothing with id {id} is in the sandbox.', id=object_id))}</p></div>"
    )
    return frame(_, section, _("Not found"), body, 404)


# ── customers and checkout sessions ───────────────────────────────────────────────


@pages.add("GET", "/dashboard/customers")
def customers(store: Store, request: Request):
    _ = translator(request)
    query = request.query.get("q", "").strip().lower()
    with store.lock:
        rows = [
            f"<tr><td>{link('customers', c['id'])}{mode_badge(_, c)}</td>"
            f'<td class="email">{escape(c.get("email") or "—")}</td>'
            f'<td class="hide-s">{escape(c.get("name") or "—")}</td>'
            f'<td class="num">{len(c.get("metadata") or {})}</td>'
            f'<td class="hide-s">{when(c["createdAt"])}</td></tr>'
            for c in newest(store.customers.values())
            if not query or query in (c["id"].lower(), (c.get("email") or "").lower())
        ]
    filters = f"""<form class="filters" method="get"><input name="q" value="{escape(query)}"
placeholder="{escape(_("Search by id or email"))}" aria-label="{escape(_("Search"))}">
<button class="btn small-btn">{escape(_("Search"))}</button></form>"""
    headers = [
        ("Customer", ""),
        ("Email", ""),
        ("Name", "hide-s"),
        ("Metadata", "num"),
        ("Created", "hide-s"),
    ]
    return list_page(_, "customers", "Customers", headers, rows, "No customers yet.", filters)


@pages.add("GET", "/dashboard/customers/<id>")
def customer_page(store: Store, request: Request):
    _ = translator(request)
    with store.lock:
        customer = store.customers.get(request.params["id"])
        if customer is None:
            return not_found_page(_, "customers", request.params["id"])
        details = facts(
            _,
            [
                ("Customer id", f'<span class="mono">{escape(customer["id"])}</span>'),
                ("Email", escape(customer.get("email") or "—")),
                ("Name", escape(customer.get("name") or "—")),
                ("Phone", escape(customer.get("phone") or "—")),
                ("External id", escape(customer.get("externalId") or "—")),
                ("Created", when(customer["createdAt"])),
            ],
        )
        rows = [
            f'<tr><td class="num">{escape(money(p["amount"], p["currency"]))}</td>'
            f"<td>{badge(_, payment_status(store, p))}</td><td>{link('payments', p['id'])}</td>"
            f'<td class="hide-s">{when(p["createdAt"])}</td></tr>'
            for p in newest(store.payments.values())
            if p.get("customerId") == customer["id"]
        ]
        timeline = activity(_, store, {customer["id"]})
    headers = [("Amount", "num"), ("Status", ""), ("Payment id", ""), ("Created", "hide-s")]
    body = f"""<div class="card"><div class="head-row"><h1>{
        escape(customer.get("email") or customer["id"])
    }</h1></div>{details}</div><div class="card"><h2>{escape(_("Metadata"))}</h2>{
        metadata_table(_, customer.get("metadata"))
    }</div><div class="card"><h2>{escape(_("Payments"))}</h2>{
        table(_, headers, rows, "No payments.")
    }</div><div class="card"><h2>{escape(_("Activity"))}</h2>{timeline}</div>"""
    return frame(_, "customers", _("Customer"), body)


@pages.add("GET", "/dashboard/checkout-sessions")
def sessions(store: Store, request: Request):
    _ = translator(request)
    with store.lock:
        rows = [
            f'<tr><td class="num"><a href="/dashboard/checkout-sessions/{escape(s["id"])}">'
            f"{escape(money(s['amount'], s['currency']))}</a></td>"
            f"<td>{badge(_, s['status'])}{mode_badge(_, s)}</td>"
            f'<td class="hide-s">{escape(method_label(_, s.get("paymentMethod")))}</td>'
            f'<td class="email">{escape((s.get("customer") or {}).get("email") or "—")}</td>'
            f'<td class="hide-s">{link("checkout-sessions", s["id"])}</td>'
            f'<td class="hide-s">{when(s["createdAt"])}</td></tr>'
            for s in newest(store.sessions.values())
        ]
    headers = [
        ("Amount", "num"),
        ("Status", ""),
        ("Method", "hide-s"),
        ("Customer", ""),
        ("Session id", "hide-s"),
        ("Created", "hide-s"),
    ]
    return list_page(_, "sessions", "Checkout sessions", headers, rows, "No checkout sessions yet.")


@pages.add("GET", "/dashboard/checkout-sessions/<id>")
def session_page(store: Store, request: Request):
    _ = translator(request)
    with store.lock:
        session = store.sessions.get(request.params["id"])
        if session is None:
            return not_found_page(_, "sessions", request.params["id"])
        attempts = [
            p for p in store.payments.values() if p.get("checkoutSessionId") == session["id"]
        ]
        rows = [
            f"<tr><td>{link('payments', p['id'])}</td><td>{badge(_, payment_status(store, p))}"
            f"</td><td>{escape(method_label(_, p['method']))}</td>"
            f'<td class="hide-s">{when(p["createdAt"])}</td></tr>'
            for p in newest(attempts)
        ]
        details = facts(
            _,
            [
                ("Session id", f'<span class="mono">{escape(session["id"])}</span>'),
                ("Description", escape(session.get("description") or "—")),
                ("Customer", link("customers", session.get("customerId"))),
                ("Method", escape(method_label(_, session.get("paymentMethod")))),
                (
                    "Hosted page",
                    f'<a href="/c/{escape(session["id"])}">/c/{escape(session["id"])}</a>',
                ),
                ("Expires", when(session.get("expiresAt"))),
                ("Completed", when(session.get("completedAt"))),
            ],
        )
        timeline = activity(_, store, {session["id"], *(p["id"] for p in attempts)})
    headers = [("Payment", ""), ("Status", ""), ("Method", ""), ("Created", "hide-s")]
    body = f"""<div class="card"><div class="head-row"><div><div class="muted">{
        escape(_("Checkout session"))
    }</div><div class="big">{escape(money(session["amount"], session["currency"]))} {
        badge(_, session["status"])
    }</div></div></div>{details}</div><div class="card"><h2>{escape(_("Payments"))}</h2>{
        table(_, headers, rows, "No payment attempts.")
    }</div><div class="card"><h2>{escape(_("Metadata"))}</h2>{
        metadata_table(_, session.get("metadata"))
    }</div><div class="card"><h2>{escape(_("Activity"))}</h2>{timeline}</div>"""
    return frame(_, "sessions", _("Checkout session"), body)


# ── events ──────────────────────────────────────────────────────────────────────


@pages.add("GET", "/dashboard/events")
def events(store: Store, request: Request):
    _ = translator(request)
    kind = request.query.get("type", "")
    with store.lock:
        rows = [
            f'<tr><td><a class="mono" href="/dashboard/events/{escape(e["id"])}">'
            f"{escape(e['kind'])}</a>{mode_badge(_, e)}</td>"
            f'<td class="mono hide-s">{escape((e["object"] or {}).get("id") or "")}</td>'
            f"<td>{when(e['occurredAt'])}</td></tr>"
            for e in newest(store.events.values())
            if not kind or e["kind"] == kind
        ]
    options = "".join(
        f'<option value="{escape(k)}"{" selected" if k == kind else ""}>{escape(k)}</option>'
        for k in event_kinds()
    )
    filters = f"""<form class="filters" method="get"><select name="type" aria-label="{
        escape(_("Event type"))
    }"><option value="">{escape(_("All event types"))}</option>{options}</select>
<button class="btn small-btn">{escape(_("Filter"))}</button></form>"""
    headers = [("Type", ""), ("Object", "hide-s"), ("Time", "")]
    return list_page(_, "events", "Events", headers, rows, "No events match.", filters)


@pages.add("GET", "/dashboard/events/<id>")
def event_page(store: Store, request: Request):
    _ = translator(request)
    with store.lock:
        event = store.events.get(request.params["id"])
        if event is None:
            return not_found_page(_, "events", request.params["id"])
        body_json = json.dumps(store.render_event(event), indent=2, ensure_ascii=False)
        sent = [d for d in store.deliveries.values() if d["eventId"] == event["id"]]
        rows = [
            f'<tr><td><a class="mono" href="/dashboard/webhooks/{escape(d["endpointId"])}">'
            f"{escape(store.endpoints.get(d['endpointId'], {}).get('url', d['endpointId']))}</a>"
            f"</td><td>{badge(_, d['status'])}</td><td class=num>{d['attempts']}</td></tr>"
            for d in newest(sent)
        ]
    details = facts(
        _,
        [
            ("Event id", f'<span class="mono">{escape(event["id"])}</span>'),
            ("Type", f'<span class="mono">{escape(event["kind"])}</span>'),
            ("Time", when(event["occurredAt"])),
        ],
    )
    headers = [("Endpoint", ""), ("Status", ""), ("Attempts", "num")]
    body = f"""<div class="card"><div class="head-row"><h1 class="mono">{escape(event["kind"])}</h1>
</div>{details}</div><div class="card"><h2>{escape(_("Deliveries"))}</h2>{
        table(_, headers, rows, "Not sent to any endpoint.")
    }</div><div class="card"><h2>{escape(_("Event data (the JSON the endpoints receive)"))}</h2>
<pre class="json">{escape(body_json)}</pre></div>"""
    return frame(_, "events", _("Event"), body)


# ── settings → webhooks ─────────────────────────────────────────────────────────


@pages.add("GET", "/dashboard/webhooks")
def webhooks(store: Store, request: Request):
    _ = translator(request)
    notice = {"deleted": _("The endpoint was deleted.")}.get(request.query.get("done", ""), "")
    with store.lock:
        rows = [
            f'<tr><td><a href="/dashboard/webhooks/{escape(e["id"])}">{escape(e["url"])}</a>'
            f'<div class="muted">{escape(description(_, e))}</div></td>'
            f"<td>{badge(_, e['status'])}{mode_badge(_, e)}</td>"
            f'<td class="hide-s">{events_summary(_, e)}</td></tr>'
            for e in newest(store.endpoints.values())
        ]
    headers = [("URL", ""), ("Status", ""), ("Events", "hide-s")]
    body = f"""{notice_box(notice)}<div class="card"><div class="head-row"><h1>{
        escape(_("Webhooks"))
    }</h1><a class="btn small-btn" href="/dashboard/webhooks/new">{escape(_("Add endpoint"))}</a>
</div>{table(_, headers, rows, "No endpoints yet. Add one to receive events.")}</div>"""
    return frame(_, "webhooks", _("Webhooks"), body)


def notice_box(text: str, bad: bool = False) -> str:
    if not text:
        return ""
    kind = "notice bad" if bad else "notice"
    return f'<div class="{kind}" style="margin-bottom:18px">{escape(text)}</div>'


def description(_: Translate, endpoint: dict[str, Any]) -> str:
    """The endpoint's description; the one the sandbox gave its start-up endpoint, translated."""
    text = endpoint.get("description") or ""
    return _(text) if text == endpoints.CLI_DESCRIPTION else text


def events_summary(_: Translate, endpoint: dict[str, Any]) -> str:
    wanted = endpoint.get("events") or ["*"]
    if "*" in wanted:
        return escape(_("All events"))
    return "<br>".join(f'<span class="mono">{escape(k)}</span>' for k in wanted)


def endpoint_form(_: Translate, values: dict[str, Any], error: str = "", status: int = 200):
    ticked = set(values.get("events") or [])
    boxes = "".join(
        f'<label class="check"><input type="checkbox" name="events" value="{escape(k)}"'
        f'{" checked" if k in ticked else ""}><span class="mono">{escape(k)}</span></label>'
        for k in event_kinds()
    )
    everything = " checked" if "*" in ticked else ""
    body = f"""<div class="card" style="max-width:760px">{notice_box(error, bad=True)}<h1>{
        escape(_("Add endpoint"))
    }</h1><form method="post" action="/dashboard/webhooks"><label for="url">{
        escape(_("Endpoint URL"))
    }</label><input id="url" name="url" value="{escape(values.get("url", ""))}"
placeholder="https://example.com/plugipay/webhook/" autocomplete="off"><label for="description">{
        escape(_("Description"))
    }</label><input id="description" name="description" value="{
        escape(values.get("description", ""))
    }"><label>{escape(_("Events to send"))}</label><label class="check"><input type="checkbox"
name="events" value="*"{everything}><b>{escape(_("Send me everything"))}</b></label>
<div class="events-grid">{boxes}</div><button class="btn">{escape(_("Add endpoint"))}</button>
</form></div>"""
    return frame(_, "webhooks", _("Add endpoint"), body, status)


@pages.add("GET", "/dashboard/webhooks/new")
def new_endpoint(store: Store, request: Request):
    return endpoint_form(translator(request), {})


def form_lists(request: Request) -> dict[str, list[str]]:
    """Every value of each field of a urlencoded form (checkboxes repeat their name)."""
    return parse_qs(request.body.decode("utf-8", "replace"))


@pages.add("POST", "/dashboard/webhooks")
@same_site
def add_endpoint(store: Store, request: Request):
    _ = translator(request)
    form = form_lists(request)
    ticked = form.get("events", [])
    body: dict[str, Any] = {
        "url": (form.get("url") or [""])[0].strip(),
        "description": (form.get("description") or [""])[0].strip() or None,
        "events": ["*"] if "*" in ticked else ticked,
    }
    values = {**body, "description": body["description"] or ""}
    if not ticked:
        return endpoint_form(_, values, _("Tick the events to send, or everything."), 400)
    try:
        endpoint = endpoints.create_endpoint(store, "test", **endpoint_fields(body, create=True))
    except ApiError as exc:
        return endpoint_form(_, values, exc.message, 400)
    secret = endpoint["_secret"]
    page_body = f"""<div class="card" style="max-width:760px"><h1>{escape(_("Endpoint added"))}</h1>
<p>{escape(endpoint["url"])}</p><h2>{escape(_("Signing secret"))}</h2><code class="secret"
id="signing-secret">{escape(secret)}</code><p class="muted">{
        escape(
            _(
                "Copy it now into your settings (PLUGIPAY['WEBHOOK_SECRETS']): "
                "it is shown only this once."
            )
        )
    }</p><a class="btn small-btn" href="/dashboard/webhooks/{escape(endpoint["id"])}">{
        escape(_("Done"))
    }</a></div>"""
    return frame(_, "webhooks", _("Endpoint added"), page_body, 201)


NOTICES = {
    "refunded": "The refund was created.",
    "paused": "The endpoint is paused: new events are not sent to it.",
    "enabled": "The endpoint is enabled again.",
    "retried": "The delivery is queued for another attempt.",
}


@pages.add("GET", "/dashboard/webhooks/<id>")
def endpoint_page(store: Store, request: Request):
    _ = translator(request)
    error = request.query.get("error", "")
    notice = _(NOTICES[request.query["done"]]) if request.query.get("done") in NOTICES else ""
    with store.lock:
        endpoint = store.endpoints.get(request.params["id"])
        if endpoint is None:
            return not_found_page(_, "webhooks", request.params["id"])
        rows = [
            delivery_block(_, store, d)
            for d in newest(
                d for d in store.deliveries.values() if d["endpointId"] == endpoint["id"]
            )
        ]
        details = facts(
            _,
            [
                ("Endpoint id", f'<span class="mono">{escape(endpoint["id"])}</span>'),
                ("Description", escape(description(_, endpoint) or "—")),
                ("Events", events_summary(_, endpoint)),
                ("Failures in a row", str(endpoint["consecutiveFailures"])),
                ("Disabled automatically", escape(auto_disable_rule(_, store))),
                ("Disabled because", escape(disabled_reason(_, endpoint.get("disabledReason")))),
                ("Created", when(endpoint["createdAt"])),
            ],
        )
    base = f"/dashboard/webhooks/{escape(endpoint['id'])}"
    toggle = (
        f'<form class="inline-form" method="post" action="{base}/pause"><button class="btn alt '
        f'small-btn">{escape(_("Pause"))}</button></form>'
        if endpoint["active"]
        else f'<form class="inline-form" method="post" action="{base}/enable"><button class="btn '
        f'small-btn">{escape(_("Enable"))}</button></form>'
    )
    delete = (
        f'<form class="inline-form" method="post" action="{base}/delete"><button class="btn '
        f'danger small-btn">{escape(_("Delete"))}</button></form>'
    )
    body = f"""{notice_box(notice)}{notice_box(error, bad=True)}<div class="card"><div
class="head-row"><div><div class="muted">{escape(_("Webhook endpoint"))}</div><h1
style="overflow-wrap:anywhere">{escape(endpoint["url"])} {badge(_, endpoint["status"])}</h1></div>
<div class="row-actions">{toggle}{delete}</div></div>{details}</div><div class="card"><h2>{
        escape(_("Deliveries"))
    }</h2>{"".join(rows) or empty(_, "Nothing delivered yet.")}</div>"""
    return frame(_, "webhooks", _("Webhook endpoint"), body)


def auto_disable_rule(_: Translate, store: Store) -> str:
    """Plugipay's auto-disable rule, with the span this sandbox's compressed schedule gives it."""
    return _(
        "after {n} consecutive failed deliveries spanning 24 hours of Plugipay's retry "
        "schedule ({seconds} s of this sandbox's schedule)",
        n=AUTO_DISABLE_AFTER,
        seconds=f"{auto_disable_window(store.config.retry_schedule):g}",
    )


def disabled_reason(_: Translate, reason: str | None) -> str:
    """The sandbox's own reasons for disabling an endpoint, in the page's language."""
    if not reason:
        return "—"
    count, _sep, rest = reason.partition(" ")
    if count.isdigit() and rest == "consecutive failed deliveries":
        return _("{n} consecutive failed deliveries", n=count)
    return _(reason)


def delivery_block(_: Translate, store: Store, delivery: dict[str, Any]) -> str:
    """One delivery: event, status, next retry and Retry, then each attempt on its own line."""
    attempts = "".join(
        f'<li class="attempt"><b>#{a["attempt"]}</b><span class="muted">{when(a["at"])}</span>'
        f'<span class="code">{escape(attempt_outcome(_, a))}</span>'
        f'<span class="muted">{a["durationMs"]} ms</span>'
        f'<code class="resp">{escape((a.get("responseBody") or "")[:200]) or "—"}</code></li>'
        for a in delivery["attemptLog"]
    )
    retry = (
        ""
        if delivery["status"] == "pending"
        else f'<form method="post" action="/dashboard/deliveries/{escape(delivery["id"])}/retry">'
        f'<button class="btn alt small-btn">{escape(_("Retry"))}</button></form>'
    )
    kind = store.events.get(delivery["eventId"], {}).get("kind", delivery["type"])
    next_retry = (
        f'<span class="muted">{escape(_("Next retry"))} {when(delivery["nextRetryAt"])}</span>'
        if delivery.get("nextRetryAt") and delivery["status"] == "pending"
        else ""
    )
    n = delivery["attempts"]
    count = _("1 attempt") if n == 1 else _("{n} attempts", n=n)
    return (
        f'<div id="{escape(delivery["id"])}" class="delivery"><div class="delivery-head">'
        f'<a class="mono" href="/dashboard/events/{escape(delivery["eventId"])}">{escape(kind)}'
        f'</a>{badge(_, delivery["status"])}<span class="muted">{escape(count)}</span>'
        f'{next_retry}<span class="grow"></span>{retry}</div>'
        f'<ol class="attempts">{attempts}</ol></div>'
    )


def attempt_outcome(_: Translate, attempt: dict[str, Any]) -> str:
    if attempt.get("redirectTo") is not None:
        return _(
            "HTTP {code}: answered {code} to {location} — is the webhook URL behind a login?",
            code=attempt["responseCode"],
            location=attempt["redirectTo"] or "—",
        )
    if attempt["responseCode"] is not None:
        return _("HTTP {code}", code=attempt["responseCode"])
    return attempt.get("error") or _("no answer")


def _endpoint_action(store: Store, request: Request, fields: dict[str, Any], done: str):
    endpoint = store.endpoints.get(request.params["id"])
    if endpoint is None:
        return not_found_page(translator(request), "webhooks", request.params["id"])
    endpoints.update_endpoint(store, endpoint, fields, reason="paused in the dashboard")
    return redirect(f"/dashboard/webhooks/{endpoint['id']}?done={done}")


@pages.add("POST", "/dashboard/webhooks/<id>/pause")
@same_site
def pause_endpoint(store: Store, request: Request):
    return _endpoint_action(store, request, {"active": False}, "paused")


@pages.add("POST", "/dashboard/webhooks/<id>/enable")
@same_site
def enable_endpoint(store: Store, request: Request):
    return _endpoint_action(store, request, {"active": True}, "enabled")


@pages.add("POST", "/dashboard/webhooks/<id>/delete")
@same_site
def delete_endpoint(store: Store, request: Request):
    endpoint = store.endpoints.get(request.params["id"])
    if endpoint is not None:
        endpoints.delete_endpoint(store, endpoint)
    return redirect("/dashboard/webhooks?done=deleted")


@pages.add("POST", "/dashboard/deliveries/<id>/retry")
@same_site
def retry_delivery(store: Store, request: Request):
    try:
        delivery = endpoints.get_delivery(store, None, request.params["id"])
    except ApiError:
        return not_found_page(translator(request), "webhooks", request.params["id"])
    back = f"/dashboard/webhooks/{delivery['endpointId']}"
    try:
        endpoints.retry_delivery(store, delivery)
    except ApiError as exc:
        return redirect(f"{back}?{urlencode({'error': exc.message})}#{delivery['id']}")
    return redirect(f"{back}?done=retried#{delivery['id']}")
