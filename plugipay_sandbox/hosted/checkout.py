"""The hosted checkout page at ``/c/<cs_id>``: card form, 3-D Secure step, async methods."""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from plugipay_sandbox import cards
from plugipay_sandbox.app import Request, pages, redirect
from plugipay_sandbox.hosted.layout import card_fields, money, page, test_card_rows, three_ds_page
from plugipay_sandbox.state import ApiError, Store
from plugipay_sandbox.state import checkout as sessions

METHOD_LABELS = {
    "card": "Card",
    "va": "Bank transfer (VA)",
    "qris": "QRIS",
    "ewallet": "E-wallet",
    "retail": "Retail outlet",
    "paypal": "PayPal",
    "manual": "Manual transfer",
}


def summary(session: dict) -> str:
    items = "".join(
        f"<tr><td>{escape(str(i['name']))} × {i['quantity']}</td>"
        f"<td class=r>{money(i['unitAmount'] * i['quantity'], session['currency'])}</td></tr>"
        for i in session.get("lineItems") or []
    )
    return f"""<div class="card"><div class="brand"><span class="logo"></span>
{escape(session.get("workspaceName") or "Plugipay Sandbox")}</div>
<div class="amount" data-testid="amount">{money(session["amount"], session["currency"])}</div>
<div class="muted">Checkout session <code>{escape(session["id"])}</code></div>
<table style="margin-top:16px">{items}</table></div>"""


def card_form(session: dict, values: dict, errors: dict, alert: str = "") -> str:
    sid = escape(session["id"])
    rows = test_card_rows()
    others = [m for m in session["methods"] if m != "card"]
    other_buttons = "".join(
        f'<button name="method" value="{m}">{METHOD_LABELS.get(m, m)}</button>' for m in others
    )
    other_html = (
        f'<label>Or pay another way</label><form method="post" '
        f'action="/c/{sid}/method" class="methods">{other_buttons}</form>'
        if others
        else ""
    )
    card_html = ""
    if "card" in session["methods"]:
        alert_html = f'<div class="alert" role="alert">{escape(alert)}</div>' if alert else ""
        card_html = f"""<h2 style="margin:0 0 4px">Pay by card</h2>{alert_html}
<form method="post" action="/c/{sid}/pay">
{card_fields(values, errors)}
<button class="btn" type="submit">Pay {money(session["amount"], session["currency"])}</button>
</form>"""
    return f"""<div class="card">{card_html}{other_html}
<form method="post" action="/c/{sid}/cancel"><button class="linkbtn" type="submit">
Cancel and return to the shop</button></form>
<details style="margin-top:18px" open><summary class="muted">Sandbox test cards (any future
expiry, any 3-digit CVC)</summary><table>{rows}</table></details></div>"""


def status_page(session: dict) -> str:
    status = session["status"]
    sid = escape(session["id"])
    if status == "completed":
        target = escape(success_target(session))
        body = (
            f'<div class="status ok">Payment received</div><p class="muted">Paid with '
            f"{escape(METHOD_LABELS.get(session['paymentMethod'] or '', '—'))}.</p>"
            f'<a class="btn" href="{target}">Return to the shop</a>'
        )
    elif status == "pending_review":
        body = (
            '<div class="status">Waiting for the merchant</div><p class="muted">The '
            "merchant confirms manual transfers by hand.</p>"
        )
    elif status == "pending" and session.get("paymentMethod") not in (None, "card"):
        method = METHOD_LABELS.get(session["paymentMethod"], session["paymentMethod"])
        body = f"""<div class="status">Complete your {escape(method)} payment</div>
<p>Transfer exactly <b>{money(session["amount"], session["currency"])}</b> to virtual account
<code>8808 {sid[-8:]}</code> (sandbox), or scan the QR code in your e-wallet app.</p>
<p class="muted">In the sandbox no money moves: simulate the bank's confirmation below.</p>
<form method="post" action="/c/{sid}/simulate"><button class="btn" type="submit">
Simulate payment</button></form>
<form method="post" action="/c/{sid}/cancel"><button class="linkbtn">Cancel</button></form>"""
    else:
        title = {
            "expired": "This checkout has expired",
            "canceled": "This checkout was canceled",
        }.get(status, f"This checkout is {status}")
        body = (
            f'<div class="status bad">{title}</div><p class="muted">Start again from the '
            f'shop.</p><a class="btn alt" href="{escape(session["cancelUrl"])}">Back to the '
            "shop</a>"
        )
    return f'<div class="card">{body}</div>'


def success_target(session: dict) -> str:
    url = session["successUrl"]
    return url + ("&" if "?" in url else "?") + urlencode({"session_id": session["id"]})


def render(store: Store, session: dict, values=None, errors=None, alert="", status=200):
    if session["status"] == "open":
        side = card_form(session, values or {}, errors or {}, alert)
    else:
        side = status_page(session)
    return page("Checkout", f'<div class="wrap">{summary(session)}{side}</div>', status)


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
        message = (payment or {}).get("failureMessage") or "The card was declined."
        return render(store, session, form, {}, f"{message} Try another card.", status=402)
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
    return render(store, session, {}, {}, f"{message} Try another card.", status=402)


@pages.add("POST", "/c/<id>/method")
def choose_method(store: Store, request: Request):
    session = _session(store, request)
    method = request.form().get("method", "")
    if method in session["methods"] and method != "card" and session["status"] == "open":
        sessions.start_async(store, session["id"], method)
    return redirect(f"/c/{session['id']}")


@pages.add("POST", "/c/<id>/simulate")
def simulate(store: Store, request: Request):
    session = _session(store, request)
    if session["status"] == "pending" and session.get("paymentMethod"):
        sessions.pay_async(store, session["id"], session["paymentMethod"])
        return redirect(success_target(session))
    return redirect(f"/c/{session['id']}")


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
