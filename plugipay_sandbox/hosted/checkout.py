"""The hosted checkout page at ``/c/<cs_id>``: card form, 3-D Secure step, asynchronous
methods (VA, QRIS, e-wallet, retail: instructions, then a sandbox settle button) and manual
transfer (the merchant's accounts and a claim with an optional proof image)."""

from __future__ import annotations

import base64
import hashlib
from html import escape
from urllib.parse import urlencode

from plugipay_sandbox import cards
from plugipay_sandbox.app import Request, Response, pages, redirect
from plugipay_sandbox.hosted.i18n import gettext as _
from plugipay_sandbox.hosted.layout import (
    card_fields,
    minute,
    money,
    page,
    test_card_rows,
    three_ds_page,
)
from plugipay_sandbox.state import ApiError, Store
from plugipay_sandbox.state import checkout as sessions
from plugipay_sandbox.state.core import DEFAULT_MERCHANT_NAME

METHOD_LABELS = {
    "card": "Card",
    "va": "Bank transfer (VA)",
    "qris": "QRIS",
    "ewallet": "E-wallet",
    "retail": "Retail outlet",
    "paypal": "PayPal",
    "manual": "Manual transfer",
}
VA_TEXT = "Transfer exactly {amount} to this {bank} virtual account:"
QR_TEXT = "Scan this QRIS code with any bank or e-wallet app to pay {amount}:"
QR_NOTE = "Not a decodable QR code: the sandbox draws its string as a pattern."
WALLET_TEXT = "Open {wallet} to approve the payment of {amount}."
RETAIL_TEXT = "Pay {amount} at any {outlet} cashier with this payment code:"
ASKS_TEXT = "{merchant} asks you to pay {amount}."
REVIEW_TEXT = "The merchant confirms manual transfers by hand. You claimed your transfer at {time}."
PAY_LATER = "I will pay later: back to the shop"
CHOOSE = {"va": "Choose your bank", "ewallet": "Choose your e-wallet", "retail": "Choose an outlet"}


def label(method: str | None) -> str:
    return _(METHOD_LABELS.get(method or "", method or "—"))


def summary(session: dict) -> str:
    items = "".join(
        f"<tr><td>{escape(str(i['name']))} × {i['quantity']}</td>"
        f"<td class=r>{money(i['unitAmount'] * i['quantity'], session['currency'])}</td></tr>"
        for i in session.get("lineItems") or []
    )
    return f"""<div class="card"><div class="brand"><span class="logo"></span>
{escape(session.get("workspaceName") or DEFAULT_MERCHANT_NAME)}</div>
<div class="amount" data-testid="amount">{money(session["amount"], session["currency"])}</div>
<div class="muted">{_("Checkout session")} <code>{escape(session["id"])}</code></div>
<table style="margin-top:16px">{items}</table></div>"""


def method_buttons(session: dict) -> str:
    """One button per method; VA, e-wallet and retail open one per bank, wallet or outlet."""
    sid = escape(session["id"])
    html = ""
    plain = ""
    for method in session["methods"]:
        if method == "card":
            continue
        if method in sessions.CHANNELS:
            buttons = "".join(
                f'<button name="method" value="{method}:{c}">{escape(c)}</button>'
                for c in sessions.CHANNELS[method]
            )
            html += (
                f'<div class="muted" style="margin-top:10px">{label(method)} · '
                f'{_(CHOOSE[method])}</div><div class="methods">{buttons}</div>'
            )
        else:
            plain += f'<button name="method" value="{method}">{label(method)}</button>'
    if not html and not plain:
        return ""
    return (
        f'<label>{_("Or pay another way")}</label><form method="post" action="/c/{sid}/method">'
        f'<div class="methods">{plain}</div>{html}</form>'
    )


def card_form(session: dict, values: dict, errors: dict, alert: str = "") -> str:
    sid = escape(session["id"])
    rows = test_card_rows()
    card_html = ""
    if "card" in session["methods"]:
        alert_html = f'<div class="alert" role="alert">{escape(alert)}</div>' if alert else ""
        pay_label = _("Pay {amount}", amount=money(session["amount"], session["currency"]))
        card_html = f"""<h2 style="margin:0 0 4px">{_("Pay by card")}</h2>{alert_html}
<form method="post" action="/c/{sid}/pay">
{card_fields(values, errors)}
<button class="btn" type="submit">{pay_label}</button>
</form>"""
    elif alert:
        card_html = f'<div class="alert" role="alert">{escape(alert)}</div>'
    return f"""<div class="card">{card_html}{method_buttons(session)}
<form method="post" action="/c/{sid}/cancel"><button class="linkbtn" type="submit">
{_("Cancel and return to the shop")}</button></form>
<details style="margin-top:18px" open><summary class="muted">
{_("Sandbox test cards (any future expiry, any 3-digit CVC)")}</summary><table>{rows}</table>
</details></div>"""


def deadline(info: dict) -> str:
    return escape(minute(info["expiresAt"]))


def instructions_html(session: dict, info: dict) -> str:
    """What the buyer does for a pending VA, QRIS, e-wallet or retail payment."""
    amount = f"<b>{money(session['amount'], session['currency'])}</b>"
    method, channel = info["method"], escape(info.get("channel") or "")
    if method == "va":
        return (
            f"<p>{_(VA_TEXT, amount=amount, bank=channel)}</p>"
            f'<div class="muted">{_("Virtual account number")}</div>'
            f'<div class="amount" data-testid="va-number">{escape(info["accountNumber"])}</div>'
        )
    if method == "qris":
        return (
            f"<p>{_(QR_TEXT, amount=amount)}</p>"
            f'<img src="/c/{escape(session["id"])}/qr.svg" alt="QRIS" width="220" height="220">'
            f'<div class="muted">{_("QR string")}</div><code data-testid="qr-string" '
            f'style="word-break:break-all">{escape(info["qrString"])}</code>'
            f'<p class="muted small">{_(QR_NOTE)}</p>'
        )
    if method == "ewallet":
        return (
            f"<p>{_(WALLET_TEXT, wallet=channel, amount=amount)}</p>"
            f'<a class="btn alt" href="/c/{escape(session["id"])}/ewallet">'
            f"{_('Open the {wallet} approval page', wallet=channel)}</a>"
        )
    return (
        f"<p>{_(RETAIL_TEXT, amount=amount, outlet=channel)}</p>"
        f'<div class="muted">{_("Payment code")}</div>'
        f'<div class="amount" data-testid="payment-code">{escape(info["paymentCode"] or "")}</div>'
    )


def settle_buttons(sid: str) -> str:
    return f"""<p class="muted">{_("In the sandbox no money moves: settle the payment below.")}</p>
<form method="post" action="/c/{sid}/simulate"><button class="btn" type="submit" name="outcome"
value="succeeded">{_("Simulate payment")}</button><button class="btn alt" type="submit"
name="outcome" value="failed">{_("Simulate failure")}</button></form>
<form method="post" action="/c/{sid}/cancel"><button class="linkbtn">{_("Cancel")}</button>
</form>"""


def status_page(session: dict) -> str:
    status = session["status"]
    sid = escape(session["id"])
    info = session.get("instructions") or {}
    if status == "completed":
        target = escape(success_target(session))
        body = (
            f'<div class="status ok">{_("Payment received")}</div><p class="muted">'
            f"{_('Paid with {method}.', method=escape(label(session['paymentMethod'])))}</p>"
            f'<a class="btn" href="{target}">{_("Return to the shop")}</a>'
        )
    elif status == "pending_review":
        claimed = escape(minute(info.get("claimedAt")))
        proof = (
            f'<p><a href="{escape(info["proofUrl"])}">{_("Proof of transfer")}</a></p>'
            if info.get("proofUrl")
            else ""
        )
        body = (
            f'<div class="status">{_("Waiting for the merchant")}</div><p class="muted">'
            f"{_(REVIEW_TEXT, time=claimed)}"
            f"</p>{proof}"
        )
    elif status == "pending" and info:
        method = escape(label(info["method"]))
        body = f"""<div class="status">{_("Complete your {method} payment", method=method)}</div>
<p class="muted" data-testid="deadline">{_("Pay before {deadline}", deadline=deadline(info))}</p>
{instructions_html(session, info)}{settle_buttons(sid)}
<a class="linkbtn" href="{escape(success_target(session))}">{_(PAY_LATER)}</a>"""
    else:
        title = {
            "expired": _("This checkout has expired"),
            "canceled": _("This checkout was canceled"),
        }.get(status) or _("This checkout is {status}", status=status)
        body = (
            f'<div class="status bad">{title}</div><p class="muted">'
            f'{_("Start again from the shop.")}</p><a class="btn alt" '
            f'href="{escape(session["cancelUrl"])}">{_("Back to the shop")}</a>'
        )
    return f'<div class="card">{body}</div>'


def manual_page(session: dict, error: str = "", status: int = 200):
    sid = escape(session["id"])
    rows = "".join(
        f"<tr><td>{escape(a['bankName'])}</td><td><code>{escape(a['accountNumber'])}</code></td>"
        f"<td class=r>{escape(a['accountHolder'])}</td></tr>"
        for a in sessions.MERCHANT_ACCOUNTS
    )
    alert = f'<div class="alert" role="alert">{escape(error)}</div>' if error else ""
    amount = f"<b>{money(session['amount'], session['currency'])}</b>"
    side = f"""<div class="card"><h2>{_("Pay by manual transfer")}</h2>{alert}
<p>{_("Transfer {amount} to one of the merchant's bank accounts:", amount=amount)}</p>
<table><tr><th align=left>{_("Bank")}</th><th align=left>{_("Account number")}</th>
<th align=right>{_("Account holder")}</th></tr>{rows}</table>
<form method="post" action="/c/{sid}/claim" enctype="multipart/form-data">
<label for="proof">{_("Proof of transfer (optional; PNG, JPEG or WEBP up to 4 MB)")}</label>
<input id="proof" type="file" name="proof" accept="image/png,image/jpeg,image/webp">
<button class="btn" type="submit">{_("I have transferred the money")}</button></form>
<form method="post" action="/c/{sid}/cancel"><button class="linkbtn">{_("Cancel")}</button></form>
</div>"""
    return page(_("Checkout"), f'<div class="wrap">{summary(session)}{side}</div>', status)


def success_target(session: dict) -> str:
    url = session["successUrl"]
    return url + ("&" if "?" in url else "?") + urlencode({"session_id": session["id"]})


def render(store: Store, session: dict, values=None, errors=None, alert="", status=200):
    if session["status"] == "open":
        side = card_form(session, values or {}, errors or {}, alert)
    else:
        side = status_page(session)
    return page(_("Checkout"), f'<div class="wrap">{summary(session)}{side}</div>', status)


@pages.add("GET", "/c/<id>")
def checkout(store: Store, request: Request):
    session = _session(store, request)
    if session["status"] == "pending" and session.get("_3ds_card"):
        return redirect(f"/c/{session['id']}/3ds")
    return render(store, session)


@pages.add("POST", "/c/<id>/pay")
def pay(store: Store, request: Request):
    session = _session(store, request)
    form = request.form()
    try:
        outcome, payment = sessions.pay_card(
            store,
            session["id"],
            form.get("number", ""),
            form.get("expiry", ""),
            form.get("cvc", ""),
        )
    except cards.CardError as exc:
        return render(store, session, form, {exc.field: exc.message}, status=400)
    except ApiError:
        return redirect(f"/c/{session['id']}")
    if outcome == cards.REQUIRES_3DS:
        return redirect(f"/c/{session['id']}/3ds")
    if outcome == cards.DECLINED:
        form.pop("number", None)
        message = (payment or {}).get("failureMessage") or "Your card was declined."
        alert = f"{_(message)} {_('Try another card.')}"  # the test card's message, translated
        return render(store, session, form, {}, alert, status=402)
    return redirect(success_target(session))


@pages.add("GET", "/c/<id>/3ds")
def three_ds(store: Store, request: Request):
    session = _session(store, request)
    if session["status"] != "pending" or not session.get("_3ds_card"):
        return redirect(f"/c/{session['id']}")
    amount = money(session["amount"], session["currency"])
    return three_ds_page(amount, session.get("workspaceName") or "", f"/c/{session['id']}/3ds")


@pages.add("POST", "/c/<id>/3ds")
def three_ds_answer(store: Store, request: Request):
    session = _session(store, request)
    approve = request.form().get("action") == "approve"
    try:
        outcome, payment = sessions.finish_3ds(store, session["id"], approve)
    except ApiError:
        return redirect(f"/c/{session['id']}")
    if outcome == cards.SUCCESS:
        return redirect(success_target(session))
    message = (payment or {}).get("failureMessage") or "Authentication failed."
    return render(store, session, {}, {}, f"{_(message)} {_('Try another card.')}", status=402)


@pages.add("POST", "/c/<id>/method")
def choose_method(store: Store, request: Request):
    session = _session(store, request)
    method, _sep, channel = request.form().get("method", "").partition(":")
    if method in session["methods"] and method != "card" and session["status"] == "open":
        if method == "manual":
            return redirect(f"/c/{session['id']}/manual")
        if method in sessions.ASYNC_METHODS:
            sessions.start_async(store, session["id"], method, channel or None)
        else:
            sessions.pay_async(store, session["id"], method)
            return redirect(success_target(session))
    return redirect(f"/c/{session['id']}")


@pages.add("POST", "/c/<id>/simulate")
def simulate(store: Store, request: Request):
    session = _session(store, request)
    info = session.get("instructions") or {}
    outcome = request.form().get("outcome", "succeeded")
    if session["status"] == "pending" and info.get("paymentId"):
        try:
            sessions.settle_payment(store, info["paymentId"], outcome)
        except ApiError:
            return redirect(f"/c/{session['id']}")
        if outcome == "succeeded":
            return redirect(success_target(session))
    return redirect(f"/c/{session['id']}")


@pages.add("GET", "/c/<id>/qr.svg")
def qr_svg(store: Store, request: Request):
    session = _session(store, request)
    text = (session.get("instructions") or {}).get("qrString") or session["id"]
    return Response(qr_picture(text), content_type="image/svg+xml")


def qr_picture(text: str, size: int = 29) -> str:
    """A QR-looking SVG drawn from ``text``: the three finder squares and a pattern from its
    SHA-256. Not a decodable QR code (a sandbox convention; the string is shown beside it)."""
    bits = "".join(
        f"{b:08b}" for i in range(8) for b in hashlib.sha256(f"{i}:{text}".encode()).digest()
    )
    cells = []

    def finder(x0: int, y0: int) -> None:
        for y in range(7):
            for x in range(7):
                if x in (0, 6) or y in (0, 6) or (2 <= x <= 4 and 2 <= y <= 4):
                    cells.append((x0 + x, y0 + y))

    for x0, y0 in ((0, 0), (size - 7, 0), (0, size - 7)):
        finder(x0, y0)
    index = 0
    for y in range(size):
        for x in range(size):
            in_finder = (x < 8 and y < 8) or (x >= size - 8 and y < 8) or (x < 8 and y >= size - 8)
            if not in_finder:
                if bits[index % len(bits)] == "1":
                    cells.append((x, y))
                index += 1
    rects = "".join(f'<rect x="{x + 2}" y="{y + 2}" width="1" height="1"/>' for x, y in cells)
    box = size + 4
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {box} {box}" '
        f'shape-rendering="crispEdges"><rect width="{box}" height="{box}" fill="#fff"/>'
        f'<g fill="#111">{rects}</g></svg>'
    )


@pages.add("GET", "/c/<id>/ewallet")
def ewallet(store: Store, request: Request):
    session = _session(store, request)
    info = session.get("instructions") or {}
    if session["status"] != "pending" or info.get("method") != "ewallet":
        return redirect(f"/c/{session['id']}")
    wallet = escape(info.get("channel") or "")
    amount = money(session["amount"], session["currency"])
    merchant = escape(session.get("workspaceName") or "")
    body = f"""<div class="wrap narrow"><div class="card"><div class="brand"><span class="logo">
</span>{_("{wallet} · approve payment", wallet=wallet)}</div>
<div class="amount">{amount}</div><p>{_(ASKS_TEXT, merchant=merchant, amount=amount)}</p>
<form method="post" action="/c/{escape(session["id"])}/simulate"><button class="btn" name="outcome"
value="succeeded">{_("Approve")}</button><button class="btn danger" name="outcome" value="failed">
{_("Decline")}</button></form></div></div>"""
    return page(wallet, body)


@pages.add("GET", "/c/<id>/manual")
def manual(store: Store, request: Request):
    session = _session(store, request)
    if session["status"] != "open" or "manual" not in session["methods"]:
        return redirect(f"/c/{session['id']}")
    return manual_page(session)


@pages.add("POST", "/c/<id>/claim")
def claim(store: Store, request: Request):
    session = _session(store, request)
    if session["status"] != "open":
        return redirect(f"/c/{session['id']}")
    data = request.file("proof")
    proof_url = None
    if data:
        try:
            proof_url = sessions.store_proof(store, session["id"], data)
        except ApiError as exc:
            return manual_page(session, _(exc.message), status=exc.status)
    sessions.claim_transfer(store, session["id"], proof_url)
    # Plugipay's page navigates to successUrl after a manual claim (plugipay-api.md §10.2).
    return redirect(success_target(session))


@pages.add("GET", "/c/<id>/proof/<proof_id>")
def proof(store: Store, request: Request):
    item = store.proofs.get(request.params["proof_id"])
    if item is None:
        raise ApiError(404, "not_found", "No such proof.")
    return Response(base64.b64decode(item["_data"]), content_type=item["contentType"])


@pages.add("POST", "/c/<id>/cancel")
def cancel(store: Store, request: Request):
    session = _session(store, request)
    if session["status"] in ("open", "pending", "pending_review"):
        sessions.cancel_session(store, session["id"])
    return redirect(session["cancelUrl"])


def _session(store: Store, request: Request) -> dict:
    session = store.sessions.get(request.params["id"])
    if session is None:
        raise ApiError(404, "not_found", "No such checkout session.")
    return session
