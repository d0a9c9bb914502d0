"""The dashboard's billing pages: Plans (with a form to create one), Subscriptions and Invoices,
each object with its Activity; the same store and operations as the API routes."""

from __future__ import annotations

from html import escape
from typing import Any

from plugipay_sandbox.app import Request, pages, redirect
from plugipay_sandbox.hosted.dashboard import (
    COLLECTION_LABELS,
    LABELS,
    Translate,
    activity,
    badge,
    facts,
    form_lists,
    frame,
    label,
    link,
    list_page,
    metadata_table,
    method_label,
    newest,
    not_found_page,
    notice_box,
    payment_status,
    same_site,
    table,
    translator,
    when,
)
from plugipay_sandbox.hosted.layout import money
from plugipay_sandbox.hosted.portal import INTERVAL_WORDS, price_label
from plugipay_sandbox.resources.plans import plan_fields
from plugipay_sandbox.state import CURRENCIES, ApiError, Store, plans

#: The portal features a plan made in the dashboard offers, each with its label.
FEATURE_LABELS = {
    "selfServeCancel": "Customers may cancel",
    "selfServePause": "Customers may pause",
    "selfServeUpgrade": "Customers may upgrade",
    "selfServeDowngrade": "Customers may downgrade",
    "updatePaymentMethod": "Customers may update their card",
}
NO_PLANS = "No plans yet. Create one here or with POST /api/v1/plans."
PLAN_NOTICES = {"created": "The plan was created. Subscribe customers to its price with the API."}


def customer_cell(store: Store, customer_id: str | None) -> str:
    """The customer's e-mail (or id), linked to the customer's page; never broken mid-word."""
    customer = store.customers.get(customer_id or "")
    if customer is None:
        return "—"
    text = customer.get("email") or customer["id"]
    return f'<a class="nw" href="/dashboard/customers/{escape(customer["id"])}">{escape(text)}</a>'


def plan_name(store: Store, plan_id: str | None) -> str:
    plan = store.plans.get(plan_id or "")
    if plan is None:
        return "—"
    name = escape(plan["name"] or plan["id"])
    return f'<a href="/dashboard/plans/{escape(plan["id"])}">{name}</a>'


def every(_: Translate, plan: dict[str, Any]) -> str:
    """``month`` / ``3 months`` in the page's language."""
    count, interval = plan.get("intervalCount") or 1, plan.get("interval") or ""
    one, many = INTERVAL_WORDS.get(interval, (interval, "{count} " + interval))
    return _(many, count=count) if count > 1 else _(one)


# ── plans ───────────────────────────────────────────────────────────────────────


@pages.add("GET", "/dashboard/plans")
def plans_list(store: Store, request: Request):
    _ = translator(request)
    with store.lock:
        rows = []
        for plan in newest(store.plans.values()):
            prices = "<br>".join(
                f'<span class="nw">{escape(price_label(store, p))}</span>'
                for p in plan["prices"]
                if p["active"]
            )
            subscribers = sum(1 for s in store.subscriptions.values() if s["planId"] == plan["id"])
            status = "archived" if plan["archivedAt"] else ("active" if plan["active"] else "")
            rows.append(
                f"<tr><td>{plan_name(store, plan['id'])}</td><td>{prices or '—'}</td>"
                f"<td>{badge(_, status or 'inactive')}</td>"
                f'<td class="num hide-s">{_("{count} days", count=plan["trialDays"] or 0)}</td>'
                f'<td class="num">{subscribers}</td>'
                f'<td class="hide-s">{link("plans", plan["id"])}</td></tr>'
            )
    headers = [
        ("Plan", ""),
        ("Prices", ""),
        ("Status", ""),
        ("Trial", "num hide-s"),
        ("Subscriptions", "num"),
        ("Plan id", "hide-s"),
    ]
    create = f'<a class="btn small-btn" href="/dashboard/plans/new">{escape(_("Create plan"))}</a>'
    body = f"""<div class="card"><div class="head-row"><h1>{escape(_("Plans"))}</h1>{create}
</div>{table(_, headers, rows, NO_PLANS)}</div>"""
    return frame(_, "plans", _("Plans"), body)


def plan_form(_: Translate, values: dict[str, Any], error: str = "", status: int = 200):
    """Name, one price (amount, currency, interval), trial days and the portal features."""

    def selected(field: str, value: str) -> str:
        return " selected" if values.get(field) == value else ""

    currencies = "".join(
        f'<option value="{c}"{selected("currency", c)}>{c}</option>' for c in CURRENCIES
    )
    intervals = "".join(
        f'<option value="{i}"{selected("interval", i)}>{escape(_(INTERVAL_WORDS[i][0]))}</option>'
        for i in plans.INTERVALS
    )
    ticked = values.get("features", list(FEATURE_LABELS))
    features = "".join(
        f'<label class="check"><input type="checkbox" name="features" value="{key}"'
        f"{' checked' if key in ticked else ''}>{escape(_(text))}</label>"
        for key, text in FEATURE_LABELS.items()
    )
    body = f"""<div class="card" style="max-width:760px">{notice_box(error, bad=True)}<h1>{
        escape(_("Create plan"))
    }</h1><form method="post" action="/dashboard/plans"><label for="name">{escape(_("Name"))}
</label><input id="name" name="name" value="{escape(values.get("name", ""))}" required
placeholder="{escape(_("Member"))}"><label for="description">{escape(_("Description"))}</label>
<input id="description" name="description" value="{escape(values.get("description", ""))}">
<div class="form-grid"><div><label for="amount">{escape(_("Price per period"))}</label><input
id="amount" name="amount" inputmode="numeric" value="{escape(values.get("amount", ""))}"
placeholder="99000" required><p class="hint">{
        escape(_("In the currency's smallest unit (rupiah, cents)."))
    }</p></div><div><label for="currency">{escape(_("Currency"))}</label><select id="currency"
name="currency">{currencies}</select></div><div><label for="interval">{escape(_("Billed every"))}
</label><select id="interval" name="interval">{intervals}</select></div><div><label
for="interval_count">{escape(_("Number of intervals"))}</label><input id="interval_count"
name="interval_count" inputmode="numeric" value="{escape(values.get("interval_count", "1"))}">
</div><div><label for="trial_days">{escape(_("Trial days"))}</label><input id="trial_days"
name="trial_days" inputmode="numeric" value="{escape(values.get("trial_days", "0"))}"></div>
</div><label>{escape(_("Billing portal"))}</label>{features}<button class="btn">{
        escape(_("Create plan"))
    }</button></form></div>"""
    return frame(_, "plans", _("Create plan"), body, status)


@pages.add("GET", "/dashboard/plans/new")
def new_plan(store: Store, request: Request):
    return plan_form(translator(request), {"currency": "IDR", "interval": "month"})


def _whole(text: str) -> int | None:
    """A whole number typed in a form (``99.000`` and ``99,000`` too), else None."""
    digits = text.strip().replace(".", "").replace(",", "").replace(" ", "")
    return int(digits) if digits.isdigit() else None


def _form_error(values: dict[str, Any]) -> str | None:
    """What the form got wrong, in words a person reads (the API's checks follow)."""
    if not values["name"].strip():
        return "Give the plan a name."
    if _whole(values["amount"]) is None:
        return "Enter the price as a whole number in the currency's smallest unit."
    if values["currency"] not in CURRENCIES or values["interval"] not in plans.INTERVALS:
        return "Choose the currency and how often the plan is billed."
    if (
        _whole(values["interval_count"] or "1") is None
        or _whole(values["trial_days"] or "0") is None
    ):
        return "The number of intervals and the trial days are whole numbers."
    return None


@pages.add("POST", "/dashboard/plans")
@same_site
def create_plan(store: Store, request: Request):
    """What ``POST /api/v1/plans`` does, with one flat price, from the dashboard's form."""
    _ = translator(request)
    form = request.form()
    values: dict[str, Any] = {
        k: form.get(k, "")
        for k in ("name", "description", "amount", "currency", "interval", "interval_count")
    }
    values["trial_days"] = form.get("trial_days", "")
    values["features"] = form_lists(request).get("features", [])
    error = _form_error(values)
    if error is not None:
        return plan_form(_, values, _(error), 400)
    body = {
        "name": values["name"].strip(),
        "description": values["description"].strip() or None,
        "interval": values["interval"],
        "intervalCount": _whole(values["interval_count"] or "1"),
        "trialDays": _whole(values["trial_days"] or "0"),
        "portalFeatures": {key: key in values["features"] for key in plans.PORTAL_FEATURES},
        "prices": [
            {
                "currency": values["currency"],
                "model": "flat",
                "unitAmount": _whole(values["amount"]),
            }
        ],
    }
    try:
        plan = plans.create_plan(store, "test", plan_fields(body, create=True))
    except ApiError as exc:
        return plan_form(_, values, exc.message, 400)
    return redirect(f"/dashboard/plans/{plan['id']}?done=created")


@pages.add("GET", "/dashboard/plans/<id>")
def plan_page(store: Store, request: Request):
    _ = translator(request)
    with store.lock:
        plan = store.plans.get(request.params["id"])
        if plan is None:
            return not_found_page(_, "plans", request.params["id"])
        price_rows = [
            f'<tr><td class="num">{escape(price_label(store, p))}</td>'
            f"<td>{badge(_, 'active' if p['active'] else 'inactive')}</td>"
            f'<td class="mono">{escape(p["id"])}</td></tr>'
            for p in plan["prices"]
        ]
        subscribed = [s for s in store.subscriptions.values() if s["planId"] == plan["id"]]
        sub_rows = [subscription_row(_, store, s) for s in newest(subscribed)]
        features = [FEATURE_LABELS[k] for k, on in (plan["portalFeatures"] or {}).items() if on]
        details = facts(
            _,
            [
                ("Plan id", f'<span class="mono">{escape(plan["id"])}</span>'),
                ("Description", escape(plan.get("description") or "—")),
                ("Billed every", escape(every(_, plan))),
                ("Trial", escape(_("{count} days", count=plan["trialDays"] or 0))),
                ("Billing portal", "<br>".join(escape(_(f)) for f in features) or "—"),
                ("Created", when(plan["createdAt"])),
            ],
        )
        ids = {plan["id"], *(p["id"] for p in plan["prices"])}
        timeline = activity(_, store, ids)
    notice = (
        _(PLAN_NOTICES[request.query["done"]]) if request.query.get("done") in PLAN_NOTICES else ""
    )
    status = "archived" if plan["archivedAt"] else ("active" if plan["active"] else "inactive")
    body = f"""{notice_box(notice)}<div class="card"><div class="head-row"><div><div class="muted">{
        escape(_("Plan"))
    }</div><h1>{escape(plan["name"] or plan["id"])} {badge(_, status)}</h1></div></div>{
        details
    }</div><div class="card"><h2>{escape(_("Prices"))}</h2>{
        table(_, [("Price", "num"), ("Status", ""), ("Price id", "")], price_rows, "No prices.")
    }</div><div class="card"><h2>{escape(_("Subscriptions"))}</h2>{
        table(_, SUBSCRIPTION_HEADERS, sub_rows, "No subscriptions.")
    }</div><div class="card"><h2>{escape(_("Metadata"))}</h2>{
        metadata_table(_, plan.get("metadata"))
    }</div><div class="card"><h2>{escape(_("Activity"))}</h2>{timeline}</div>"""
    return frame(_, "plans", _("Plan"), body)


def status_filter(_: Translate, statuses: tuple[str, ...], status: str) -> str:
    """A list page's status drop-down (``?status=``), the chosen one selected."""
    options = "".join(
        f'<option value="{s}"{" selected" if s == status else ""}>{escape(_(LABELS[s]))}</option>'
        for s in statuses
    )
    return f"""<form class="filters" method="get"><select name="status" aria-label="{
        escape(_("Status"))
    }"><option value="">{escape(_("All statuses"))}</option>{options}</select>
<button class="btn small-btn">{escape(_("Filter"))}</button></form>"""


# ── subscriptions ─────────────────────────────────────────────────────────────────

SUBSCRIPTION_HEADERS = [
    ("Plan", ""),
    ("Status", ""),
    ("Customer", ""),
    ("Collection", "hide-s"),
    ("Current period ends", "hide-s"),
    ("Subscription id", "hide-s"),
]
SUBSCRIPTION_FILTERS = ("trialing", "active", "incomplete", "past_due", "paused", "canceled")


def subscription_row(_: Translate, store: Store, subscription: dict[str, Any]) -> str:
    sid = escape(subscription["id"])
    collection = label(_, COLLECTION_LABELS, subscription["collectionMethod"])
    return (
        f"<tr><td>{plan_name(store, subscription['planId'])}</td>"
        f'<td><a href="/dashboard/subscriptions/{sid}">{badge(_, subscription["status"])}</a></td>'
        f"<td>{customer_cell(store, subscription['customerId'])}</td>"
        f'<td class="hide-s">{escape(collection)}</td>'
        f'<td class="hide-s nw">{when(subscription["currentPeriodEnd"])}</td>'
        f'<td class="hide-s">{link("subscriptions", subscription["id"])}</td></tr>'
    )


@pages.add("GET", "/dashboard/subscriptions")
def subscriptions_list(store: Store, request: Request):
    _ = translator(request)
    status = request.query.get("status", "")
    with store.lock:
        rows = [
            subscription_row(_, store, s)
            for s in newest(store.subscriptions.values())
            if not status or s["status"] == status
        ]
    filters = status_filter(_, SUBSCRIPTION_FILTERS, status)
    return list_page(
        _,
        "subscriptions",
        "Subscriptions",
        SUBSCRIPTION_HEADERS,
        rows,
        "No subscriptions.",
        filters,
    )


@pages.add("GET", "/dashboard/subscriptions/<id>")
def subscription_page(store: Store, request: Request):
    _ = translator(request)
    with store.lock:
        subscription = store.subscriptions.get(request.params["id"])
        if subscription is None:
            return not_found_page(_, "subscriptions", request.params["id"])
        price = store.prices.get(subscription["priceId"])
        billed = [i for i in store.invoices.values() if i["subscriptionId"] == subscription["id"]]
        period = (
            f'<span class="nw">{when(subscription["currentPeriodStart"])}</span> → '
            f'<span class="nw">{when(subscription["currentPeriodEnd"])}</span>'
        )
        details = facts(
            _,
            [
                ("Subscription id", f'<span class="mono">{escape(subscription["id"])}</span>'),
                ("Customer", customer_cell(store, subscription["customerId"])),
                ("Plan", plan_name(store, subscription["planId"])),
                ("Price", escape(price_label(store, price)) if price else "—"),
                (
                    "Collection",
                    escape(label(_, COLLECTION_LABELS, subscription["collectionMethod"])),
                ),
                ("Current period", period),
                ("Trial ends", when(subscription.get("trialEnd"))),
                ("Cancels at", when(subscription.get("cancelAt"))),
                ("Canceled at", when(subscription.get("canceledAt"))),
                ("Created", when(subscription["createdAt"])),
            ],
        )
        rows = [invoice_row(_, store, i) for i in newest(billed)]
        ids = {subscription["id"], *(i["id"] for i in billed)}
        timeline = activity(_, store, ids)
    body = f"""<div class="card"><div class="head-row"><div><div class="muted">{
        escape(_("Subscription"))
    }</div><h1>{plan_name(store, subscription["planId"])} {badge(_, subscription["status"])}</h1>
</div></div>{details}</div><div class="card"><h2>{escape(_("Invoices"))}</h2>{
        table(_, INVOICE_HEADERS, rows, "No invoices yet.")
    }</div><div class="card"><h2>{escape(_("Metadata"))}</h2>{
        metadata_table(_, subscription.get("metadata"))
    }</div><div class="card"><h2>{escape(_("Activity"))}</h2>{timeline}</div>"""
    return frame(_, "subscriptions", _("Subscription"), body)


# ── invoices ─────────────────────────────────────────────────────────────────────

INVOICE_HEADERS = [
    ("Amount", "num"),
    ("Status", ""),
    ("Number", ""),
    ("Customer", ""),
    ("Due", "hide-s"),
    ("Invoice id", "hide-s"),
]
INVOICE_FILTERS = ("draft", "open", "past_due", "paid", "void", "uncollectible")


def invoice_row(_: Translate, store: Store, invoice: dict[str, Any]) -> str:
    iid = escape(invoice["id"])
    return (
        f'<tr><td class="num"><a href="/dashboard/invoices/{iid}">'
        f"{escape(money(invoice['total'], invoice['currency']))}</a></td>"
        f"<td>{badge(_, invoice['status'])}</td>"
        f'<td class="nw"><a href="/dashboard/invoices/{iid}">{escape(invoice["number"])}</a></td>'
        f"<td>{customer_cell(store, invoice['customerId'])}</td>"
        f'<td class="hide-s nw">{when(invoice.get("dueAt"))}</td>'
        f'<td class="hide-s">{link("invoices", invoice["id"])}</td></tr>'
    )


@pages.add("GET", "/dashboard/invoices")
def invoices_list(store: Store, request: Request):
    _ = translator(request)
    status = request.query.get("status", "")
    with store.lock:
        rows = [
            invoice_row(_, store, i)
            for i in newest(store.invoices.values())
            if not status or i["status"] == status
        ]
    filters = status_filter(_, INVOICE_FILTERS, status)
    return list_page(_, "invoices", "Invoices", INVOICE_HEADERS, rows, "No invoices yet.", filters)


@pages.add("GET", "/dashboard/invoices/<id>")
def invoice_page(store: Store, request: Request):
    _ = translator(request)
    with store.lock:
        invoice = store.invoices.get(request.params["id"])
        if invoice is None:
            return not_found_page(_, "invoices", request.params["id"])
        currency = invoice["currency"]
        line_rows = [
            f"<tr><td>{escape(line['description'])}</td><td class=num>{line['quantity']}</td>"
            f'<td class="num">{escape(money(line["amount"], currency))}</td></tr>'
            for line in invoice["lines"]
        ]
        charged = [p for p in store.payments.values() if p.get("_sourceId") == invoice["id"]]
        payment_rows = [
            f'<tr><td class="num">{escape(money(p["amount"], p["currency"]))}</td>'
            f"<td>{badge(_, payment_status(store, p))}</td>"
            f"<td>{escape(method_label(_, p['method']))}</td>"
            f"<td>{link('payments', p['id'])}</td></tr>"
            for p in newest(charged)
        ]
        hosted = f"/i/{escape(invoice['id'])}"
        details = facts(
            _,
            [
                ("Invoice id", f'<span class="mono">{escape(invoice["id"])}</span>'),
                ("Customer", customer_cell(store, invoice["customerId"])),
                ("Subscription", link("subscriptions", invoice.get("subscriptionId"))),
                ("Amount due", escape(money(invoice["amountDue"], currency))),
                ("Amount paid", escape(money(invoice["amountPaid"], currency))),
                ("Due", when(invoice.get("dueAt"))),
                ("Paid at", when(invoice.get("paidAt"))),
                ("Hosted page", f'<a href="{hosted}">{hosted}</a>'),
            ],
        )
        ids = {invoice["id"], *(p["id"] for p in charged)}
        timeline = activity(_, store, ids)
    payments_headers = [("Amount", "num"), ("Status", ""), ("Method", ""), ("Payment id", "")]
    body = f"""<div class="card"><div class="head-row"><div><div class="muted">{
        escape(_("Invoice"))
    } <span class="nw">{escape(invoice["number"])}</span></div><div class="big">{
        escape(money(invoice["total"], currency))
    } {badge(_, invoice["status"])}</div></div></div>{details}</div><div class="card"><h2>{
        escape(_("Lines"))
    }</h2>{
        table(
            _, [("Description", ""), ("Quantity", "num"), ("Amount", "num")], line_rows, "No lines."
        )
    }</div><div class="card"><h2>{escape(_("Payments"))}</h2>{
        table(_, payments_headers, payment_rows, "No payments.")
    }</div><div class="card"><h2>{escape(_("Activity"))}</h2>{timeline}</div>"""
    return frame(_, "invoices", _("Invoice"), body)
