"""The billing portal at ``/portal/<id>``: a customer's subscriptions and invoices, with the
self-service actions the plan's ``portalFeatures`` allow."""

from __future__ import annotations

from html import escape
from typing import Any

from plugipay_sandbox import cards
from plugipay_sandbox.app import Request, pages, redirect
from plugipay_sandbox.hosted.i18n import gettext as _
from plugipay_sandbox.hosted.invoice import badge, day
from plugipay_sandbox.hosted.layout import card_fields, money, page
from plugipay_sandbox.state import ApiError, Store, invoices, plans, subscriptions

NOTICES = {
    "canceled": "Your subscription will end at the close of the current period.",
    "paused": "Your subscription is paused: no renewals until you resume it.",
    "resumed": "Your subscription is running again.",
    "switched": "Your new plan is billed from the next period.",
    "card": "Your card is saved: renewals are charged to it.",
}
SUB_STATUS = {
    "trialing": "Trial",
    "active": "Active",
    "past_due": "Past due",
    "paused": "Paused",
    "canceled": "Canceled",
    "incomplete": "Awaiting payment",
}
#: Each billing interval once, and ``{count}`` of them.
INTERVAL_WORDS = {
    "day": ("day", "{count} days"),
    "week": ("week", "{count} weeks"),
    "month": ("month", "{count} months"),
    "year": ("year", "{count} years"),
}
EXPIRED_TEXT = (
    "Billing portal links work for 15 minutes. Go back to the shop and open the portal again "
    "for a new link."
)
NO_SAVED_CARD = "No saved payment method: tick “save this card” when you pay an invoice."


def _portal(store: Store, request: Request) -> dict[str, Any]:
    session = store.portal_sessions.get(request.params["id"])
    if session is None:
        raise ApiError(404, "not_found", "No such billing portal session.")
    return session


def _expired(store: Store, session: dict[str, Any]) -> bool:
    return session["_expiresTs"] <= store.now()


def expired_page(session: dict[str, Any]):
    body = f"""<div class="wrap narrow"><div class="card"><div class="brand"><span class="logo">
</span>{_("Billing portal")}</div><div class="status bad">{_("This link has expired")}</div>
<p class="muted">{_(EXPIRED_TEXT)}</p><a class="btn" href="{escape(session["returnUrl"])}">{
        _("Return to the shop")
    }</a></div></div>"""
    return page(_("Link expired"), body, 410)


def price_label(store: Store, price: dict[str, Any]) -> str:
    plan = store.plans.get(price["planId"]) or {}
    count, interval = plan.get("intervalCount") or 1, plan.get("interval") or ""
    one, many = INTERVAL_WORDS.get(interval, (interval, "{count} " + interval))
    every = _(many, count=count) if count > 1 else _(one)
    return f"{money(plans.price_amount(price), price['currency'])} / {every}"


def _switch_options(store: Store, subscription: dict[str, Any]) -> list[dict[str, Any]]:
    """The prices this subscription may move to, as its plan's portalFeatures allow."""
    features = store.plans[subscription["planId"]]["portalFeatures"]
    current = store.prices[subscription["priceId"]]
    amount = plans.price_amount(current)
    options = []
    for price in store.prices.values():
        plan = store.plans.get(price["planId"]) or {}
        if (
            price["id"] == current["id"]
            or not price["active"]
            or not plan.get("active")
            or price["mode"] != current["mode"]
            or price["currency"] != current["currency"]
        ):
            continue
        higher = plans.price_amount(price) >= amount
        if features.get("selfServeUpgrade" if higher else "selfServeDowngrade"):
            options.append(price)
    return sorted(options, key=plans.price_amount)


def _subscription_card(store: Store, session: dict, subscription: dict[str, Any]) -> str:
    plan = store.plans[subscription["planId"]]
    price = store.prices[subscription["priceId"]]
    features = plan["portalFeatures"]
    status = subscription["status"]
    base = f"/portal/{escape(session['id'])}/subscriptions/{escape(subscription['id'])}"
    if status == "canceled":
        when = _("Ended {date}", date=day(subscription["canceledAt"]))
    elif subscription["cancelAt"]:
        when = _("Ends {date}", date=day(subscription["cancelAt"]))
    elif status == "trialing":
        when = _("Trial ends {date}", date=day(subscription["trialEnd"]))
    elif status == "paused":
        resume = subscription.get("resumeAt")
        when = _("Resumes {date}", date=day(resume)) if resume else _("Paused until you resume it")
    else:
        when = _("Renews {date}", date=day(subscription["currentPeriodEnd"]))
    actions = []
    live = status not in ("canceled", "incomplete")
    if features.get("selfServePause") and status in ("trialing", "active", "past_due"):
        actions.append(
            f'<form method="post" action="{base}/pause"><button class="btn alt">'
            f"{_('Pause')}</button></form>"
        )
    if features.get("selfServePause") and status == "paused":
        actions.append(
            f'<form method="post" action="{base}/resume"><button class="btn alt">'
            f"{_('Resume')}</button></form>"
        )
    if features.get("selfServeCancel") and live and not subscription["cancelAt"]:
        actions.append(
            f'<form method="post" action="{base}/cancel"><button class="btn alt '
            f'danger-text">{_("Cancel subscription")}</button></form>'
        )
    options = _switch_options(store, subscription) if live else []
    switch = ""
    if options:
        choices = "".join(
            f'<option value="{escape(p["id"])}">{escape(store.plans[p["planId"]]["name"])} · '
            f"{price_label(store, p)}</option>"
            for p in options
        )
        switch = f"""<form method="post" action="{base}/switch" class="switch">
<label for="price-{escape(subscription["id"])}">{_("Switch plan")}</label><div class="inline">
<select id="price-{escape(subscription["id"])}" name="price_id">{choices}</select>
<button class="btn alt">{_("Switch")}</button></div></form>"""
    return f"""<div class="sub" data-testid="subscription"><div class="sub-head"><div>
<div class="plan">{escape(plan["name"])}</div><div class="muted">{price_label(store, price)}
· {when}</div></div><span class="badge {escape(status)}">{_(SUB_STATUS.get(status, status))}</span>
</div><div class="actions">{"".join(actions)}</div>{switch}</div>"""


def _invoice_rows(store: Store, session: dict, issued: list[dict[str, Any]]) -> str:
    rows = []
    for invoice in issued:
        iid = escape(invoice["id"])
        if invoice["status"] in invoices.UNPAID:
            action = (
                f'<a class="pill" href="/i/{iid}?portal={escape(session["id"])}">{_("Pay")}</a>'
            )
        else:
            action = f'<a class="pill alt" href="/i/{iid}/invoice.pdf">{_("PDF")}</a>'
        rows.append(
            f"<tr><td><b>{escape(invoice['number'])}</b><div class=muted>"
            f"{day(invoice['issuedAt'])}</div></td><td>{badge(invoice['status'])}</td>"
            f"<td class='r nw'>{money(invoice['total'], invoice['currency'])}</td>"
            f"<td class=r>{action}</td></tr>"
        )
    return "".join(rows) or f'<tr><td class="muted">{_("No invoices yet.")}</td></tr>'


def _may_update_card(store: Store, customer_id: str) -> bool:
    """Whether a plan the customer subscribes to has ``updatePaymentMethod``."""
    return any(
        store.plans[s["planId"]]["portalFeatures"].get("updatePaymentMethod")
        for s in store.subscriptions.values()
        if s["customerId"] == customer_id
    )


def _card_form(session: dict[str, Any], errors: dict[str, str]) -> str:
    opened = " open" if errors else ""
    return f"""<details class="update"{opened}><summary>{_("Update the card")}</summary>
<form method="post" action="/portal/{escape(session["id"])}/payment-method">
{card_fields({}, errors)}<button class="btn" type="submit">{_("Save card")}</button></form>
<p class="muted small">{_("Sandbox test cards only; nothing is charged.")}</p></details>"""


@pages.add("GET", "/portal/<id>")
def show(store: Store, request: Request):
    return _render(store, request)


def _render(store: Store, request: Request, errors: dict[str, str] | None = None, status=200):
    session = _portal(store, request)
    if _expired(store, session):
        return expired_page(session)
    customer = store.customers[session["customerId"]]
    mine = [s for s in store.subscriptions.values() if s["customerId"] == customer["id"]]
    issued = [
        i
        for i in store.invoices.values()
        if i["customerId"] == customer["id"] and i["status"] != "draft"
    ]
    subscription_cards = (
        "".join(
            _subscription_card(store, session, s) for s in sorted(mine, key=lambda s: -s["_seq"])
        )
        or f'<p class="muted">{_("No subscriptions.")}</p>'
    )
    notice = NOTICES.get(request.query.get("done", ""))
    notice_html = f'<div class="notice" role="status">{_(notice)}</div>' if notice else ""
    token = customer.get("defaultPaymentTokenId")
    method = (
        _("Default payment method: {token}", token=f"<code>{escape(token)}</code>")
        if token
        else _(NO_SAVED_CARD)
    )
    if _may_update_card(store, customer["id"]):
        method += _card_form(session, errors or {})
    who = escape(customer.get("name") or customer.get("email") or customer["id"])
    email = escape(customer.get("email") or "")
    body = f"""<div class="wrap narrow"><div class="card head"><div><div class="brand">
<span class="logo"></span>{escape(store.merchant_name())}</div><h1>{_("Billing portal")}</h1>
<div class="muted">{who}{" · " + email if email and email != who else ""}</div></div>
<a class="btn alt" href="{escape(session["returnUrl"])}">{_("Return to the shop")}</a></div>
{notice_html}<div class="card"><h2>{_("Subscriptions")}</h2>{subscription_cards}</div>
<div class="card"><h2>{_("Invoices")}</h2><table class="invoices">
{_invoice_rows(store, session, sorted(issued, key=lambda i: -i["_seq"]))}</table>
<p class="muted small">{method}</p></div></div>"""
    return page(_("Billing portal"), body, status)


def _act(action: str):
    def handler(store: Store, request: Request):
        session = _portal(store, request)
        if _expired(store, session):
            return expired_page(session)
        subscription = store.subscriptions.get(request.params["sub"])
        if subscription is None or subscription["customerId"] != session["customerId"]:
            raise ApiError(404, "not_found", "No such subscription.")
        features = store.plans[subscription["planId"]]["portalFeatures"]
        mode, sid = subscription["mode"], subscription["id"]
        try:
            if action == "cancel" and features.get("selfServeCancel"):
                subscriptions.cancel_subscription(
                    store, mode, sid, at="period_end", reason="customer_portal"
                )
            elif action == "pause" and features.get("selfServePause"):
                subscriptions.pause_subscription(store, mode, sid, None)
            elif action == "resume" and features.get("selfServePause"):
                subscriptions.resume_subscription(store, mode, sid)
            elif action == "switch":
                price_id = request.form().get("price_id", "")
                if price_id not in {p["id"] for p in _switch_options(store, subscription)}:
                    raise ApiError(403, "forbidden", "This plan does not allow that switch.")
                subscriptions.update_subscription(store, mode, sid, {"priceId": price_id})
            else:
                raise ApiError(403, "forbidden", "This plan does not allow that here.")
        except ApiError as exc:
            if exc.status != 409:
                raise
        done = {"cancel": "canceled", "pause": "paused", "resume": "resumed"}.get(
            action, "switched"
        )
        return redirect(f"/portal/{session['id']}?done={done}")

    return handler


for _action in ("cancel", "pause", "resume", "switch"):
    pages.add("POST", f"/portal/<id>/subscriptions/<sub>/{_action}")(_act(_action))


@pages.add("POST", "/portal/<id>/payment-method")
def payment_method(store: Store, request: Request):
    session = _portal(store, request)
    if _expired(store, session):
        return expired_page(session)
    if not _may_update_card(store, session["customerId"]):
        raise ApiError(403, "forbidden", "No plan here allows updating the payment method.")
    form = request.form()
    try:
        invoices.update_payment_method(
            store,
            session["customerId"],
            form.get("number", ""),
            form.get("expiry", ""),
            form.get("cvc", ""),
        )
    except cards.CardError as exc:
        return _render(store, request, {exc.field: exc.message}, 400)
    return redirect(f"/portal/{session['id']}?done=card")
