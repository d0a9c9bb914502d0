"""The hosted checkout page at ``/c/<cs_id>``: card form, 3-D Secure step, async methods."""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from plugipay_sandbox import cards
from plugipay_sandbox.app import Request, html, pages, redirect
from plugipay_sandbox.state import ApiError, Store

DISPLAY_EXPONENTS = {"IDR": 0, "USD": 2, "JPY": 0, "KRW": 0}
METHOD_LABELS = {
    "card": "Card",
    "va": "Bank transfer (VA)",
    "qris": "QRIS",
    "ewallet": "E-wallet",
    "retail": "Retail outlet",
    "paypal": "PayPal",
    "manual": "Manual transfer",
}

STYLE = """
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
sans-serif;background:#f4f5fb;color:#1f2333}.ribbon{background:#fef3c7;color:#78350f;
text-align:center;font-size:13px;padding:6px 12px;border-bottom:1px solid #fcd34d}
.wrap{max-width:960px;margin:32px auto;padding:0 16px;display:grid;gap:24px;
grid-template-columns:1fr 1fr}@media(max-width:760px){.wrap{grid-template-columns:1fr;
margin:16px auto}}.card{background:#fff;border-radius:14px;box-shadow:0 1px 3px #0001,
0 8px 24px #4f46e512;padding:28px}.brand{display:flex;align-items:center;gap:10px;
font-weight:600;color:#4f46e5}.logo{width:28px;height:28px;border-radius:8px;
background:linear-gradient(135deg,#6366f1,#22d3ee)}.amount{font-size:34px;font-weight:700;
margin:12px 0 4px}.muted{color:#6b7280;font-size:14px}table{width:100%;border-collapse:collapse;
font-size:14px}td{padding:6px 0;border-bottom:1px solid #eef0f6}td.r{text-align:right}
label{display:block;font-size:13px;font-weight:600;margin:14px 0 4px}input{width:100%;
padding:11px 12px;border:1px solid #d1d5db;border-radius:8px;font-size:16px}
input:focus{outline:2px solid #6366f1;border-color:#6366f1}.row{display:grid;
grid-template-columns:1fr 1fr;gap:12px}.btn{display:block;width:100%;margin-top:18px;
padding:13px;border:0;border-radius:9px;background:#4f46e5;color:#fff;font-size:16px;
font-weight:600;cursor:pointer;text-align:center;text-decoration:none}.btn:hover{
background:#4338ca}.btn.alt{background:#fff;color:#374151;border:1px solid #d1d5db}
.btn.danger{background:#dc2626}.err{color:#b91c1c;font-size:13px;margin-top:4px}
.alert{background:#fee2e2;color:#991b1b;border-radius:8px;padding:10px 12px;margin:12px 0}
.methods{display:flex;flex-wrap:wrap;gap:8px;margin-top:8px}.methods button{flex:1 1 40%;
padding:10px;border:1px solid #d1d5db;background:#fff;border-radius:8px;cursor:pointer}
.status{font-size:22px;font-weight:700;margin:8px 0}.ok{color:#047857}.bad{color:#b91c1c}
code{background:#f3f4f6;padding:1px 5px;border-radius:4px}.linkbtn{background:none;border:0;
color:#4f46e5;cursor:pointer;padding:0;font-size:14px;margin-top:14px}
"""


def money(amount: int, currency: str) -> str:
    exponent = DISPLAY_EXPONENTS.get(currency, 2)
    value = amount / (10**exponent) if exponent else amount
    return f"{currency} {value:,.{exponent}f}"


def page(title: str, body: str, status: int = 200):
    return html(
        f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{escape(title)} · Plugipay Sandbox</title><style>{STYLE}</style></head><body>
<div class="ribbon">Plugipay <b>Sandbox</b> — this is not Plugipay. No real money moves;
only the test cards below work.</div>{body}</body></html>""",
        status,
    )


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

    def field(name: str, label: str, placeholder: str, mode: str = "text") -> str:
        error = f'<div class="err">{escape(errors[name])}</div>' if name in errors else ""
        return (
            f'<label for="{name}">{label}</label><input id="{name}" name="{name}" '
            f'inputmode="{mode}" placeholder="{placeholder}" '
            f'value="{escape(values.get(name, ""))}" autocomplete="off">{error}'
        )

    rows = "".join(
        f"<tr><td><code>{c.display}</code></td><td class=r>{escape(c.description)}</td></tr>"
        for c in cards.TEST_CARDS
    )
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
{field("name", "Name on card", "Ada Lovelace")}
{field("number", "Card number", "4242 4242 4242 4242", "numeric")}
<div class="row"><div>{field("expiry", "Expiry", "MM/YY", "numeric")}</div>
<div>{field("cvc", "CVC", "123", "numeric")}</div></div>
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
        outcome, payment = store.pay_card(
            session["id"], form.get("number", ""), form.get("expiry", ""), form.get("cvc", "")
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
    sid = escape(session["id"])
    body = f"""<div class="wrap"><div class="card" style="grid-column:1/-1;max-width:480px;
margin:auto"><div class="brand"><span class="logo"></span>Sandbox Bank · 3-D Secure</div>
<div class="status">Approve this payment?</div>
<p>{money(session["amount"], session["currency"])} to
{escape(session.get("workspaceName") or "")}. A real bank would ask for a one-time code.</p>
<form method="post" action="/c/{sid}/3ds"><button class="btn" name="action" value="approve">
Approve</button><button class="btn danger" name="action" value="fail">Fail authentication
</button></form></div></div>"""
    return page("3-D Secure", body)


@pages.add("POST", "/c/<id>/3ds")
def three_ds_answer(store: Store, request: Request):
    session = _session(store, request)
    approve = request.form().get("action") == "approve"
    try:
        outcome, payment = store.finish_3ds(session["id"], approve)
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
        store.start_async(session["id"], method)
    return redirect(f"/c/{session['id']}")


@pages.add("POST", "/c/<id>/simulate")
def simulate(store: Store, request: Request):
    session = _session(store, request)
    if session["status"] == "pending" and session.get("paymentMethod"):
        store.pay_async(session["id"], session["paymentMethod"])
        return redirect(success_target(session))
    return redirect(f"/c/{session['id']}")


@pages.add("POST", "/c/<id>/cancel")
def cancel(store: Store, request: Request):
    session = _session(store, request)
    if session["status"] in ("open", "pending", "pending_review"):
        store.cancel_session(session["id"])
    return redirect(session["cancelUrl"])


@pages.add("GET", "/")
def home(store: Store, request: Request):
    cfg = store.config
    rows = "".join(
        f"<tr><td><code>{c.display}</code></td><td class=r>{escape(c.description)}</td></tr>"
        for c in cards.TEST_CARDS
    )
    body = f"""<div class="wrap"><div class="card"><div class="brand"><span class="logo"></span>
plugipay_sandbox</div><p>An offline, stateful stand-in for the Plugipay API, for development and
tests. It is not Plugipay.</p><table><tr><td>API</td><td class=r><code>{escape(store.base_url())}
/api/v1</code></td></tr><tr><td>Key id</td><td class=r><code>{escape(cfg.key_id)}</code></td></tr>
<tr><td>Event style</td><td class=r>{escape(cfg.event_style)}</td></tr></table></div>
<div class="card"><b>Test cards</b><table>{rows}</table><p class="muted">Control routes live
under <code>/_sandbox/</code>; state at <a href="/_sandbox/state">/_sandbox/state</a>.</p>
</div></div>"""
    return page("Sandbox", body)


def _session(store: Store, request: Request) -> dict:
    session = store.sessions.get(request.params["id"])
    if session is None:
        raise ApiError(404, "not_found", "No such checkout session.")
    return session
