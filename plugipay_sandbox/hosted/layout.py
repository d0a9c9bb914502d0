"""What every hosted page shares: the stylesheet, the sandbox ribbon, money formatting."""

from __future__ import annotations

import datetime as dt
from html import escape

from plugipay_sandbox import cards
from plugipay_sandbox.app import html
from plugipay_sandbox.hosted import i18n
from plugipay_sandbox.hosted.i18n import gettext as _

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
a.linkbtn{display:inline-block;text-decoration:none}.nw,.pill,.badge{white-space:nowrap}
.badge{display:inline-block;font-size:12px;font-weight:600;padding:2px 9px;border-radius:99px;
background:#e5e7eb;color:#374151;vertical-align:middle;white-space:nowrap}
.badge.paid,.badge.active{background:#d1fae5;color:#065f46}.badge.open,.badge.trialing{
background:#e0e7ff;color:#3730a3}.badge.past_due,.badge.incomplete{background:#fef3c7;
color:#92400e}.badge.void,.badge.canceled,.badge.uncollectible{background:#fee2e2;
color:#991b1b}tr.total td{font-weight:600;border-bottom:0;padding:3px 0}
tr.total:last-child td{font-size:16px}label.check{display:flex;gap:8px;align-items:flex-start;
font-weight:400;font-size:14px;margin-top:16px}label.check input{width:auto;margin-top:4px}
.wrap.narrow{grid-template-columns:minmax(0,1fr);max-width:760px}.card.head{display:flex;
justify-content:space-between;align-items:center;gap:16px;flex-wrap:wrap}.card.head .btn{
width:auto;margin:0;padding:10px 18px}h1{font-size:26px;margin:10px 0 2px}h2{font-size:18px;
margin:0 0 12px}.sub{border:1px solid #eef0f6;border-radius:12px;padding:16px;margin-top:12px}
.sub-head{display:flex;justify-content:space-between;gap:12px;align-items:flex-start}
.plan{font-weight:600;font-size:17px}.actions{display:flex;flex-wrap:wrap;gap:8px}
.actions .btn{width:auto;margin-top:12px;padding:8px 16px;font-size:14px}
.btn.danger-text{color:#b91c1c}.inline{display:flex;gap:8px}.inline .btn{width:auto;
margin:0;padding:8px 16px;font-size:14px}select{flex:1;min-width:0;max-width:100%;padding:9px 10px;
border:1px solid #d1d5db;border-radius:8px;font-size:15px;background:#fff}
.pill{display:inline-block;padding:5px 14px;border-radius:99px;background:#4f46e5;
color:#fff;font-size:13px;font-weight:600;text-decoration:none}.pill.alt{background:#fff;
color:#374151;border:1px solid #d1d5db}.notice{background:#ecfdf5;color:#065f46;
border-radius:10px;padding:12px 16px}.small{font-size:13px;margin:14px 0 0}
table.invoices td{padding:10px 4px;vertical-align:middle}
details.update{margin-top:12px}details.update summary{cursor:pointer;color:#4f46e5;
font-size:14px;font-weight:600}details.update form{max-width:420px}
@media(max-width:520px){.card{padding:20px}.amount{font-size:28px}.sub{padding:14px}
table.invoices td{padding:10px 2px}}
"""


def money(amount: int, currency: str) -> str:
    """The amount in the active page language (``IDR 250,000`` / ``Rp 250.000``)."""
    return i18n.money(amount, currency)


RIBBON = (
    "Plugipay <b>Sandbox</b> — this is not Plugipay. No real money moves; only the sandbox "
    "test cards work."
)


def page(title: str, body: str, status: int = 200):
    return html(
        f"""<!doctype html><html lang="{i18n.current()}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{escape(title)} · Plugipay Sandbox</title><style>{STYLE}</style></head><body>
<div class="ribbon">{_(RIBBON)}</div>{body}</body></html>""",
        status,
    )


def test_card_rows() -> str:
    """The test-card table rows every payment page shows."""
    return "".join(
        f"<tr><td class=nw><code>{c.display}</code></td>"
        f"<td class=r>{escape(_(c.description))}</td></tr>"
        for c in cards.TEST_CARDS
    )


def card_fields(values: dict, errors: dict) -> str:
    """Name, number, expiry and CVC inputs, each with its error under it."""

    def field(name: str, label: str, placeholder: str, mode: str = "text") -> str:
        error = f'<div class="err">{escape(_(errors[name]))}</div>' if name in errors else ""
        return (
            f'<label for="{name}">{_(label)}</label><input id="{name}" name="{name}" '
            f'inputmode="{mode}" placeholder="{placeholder}" '
            f'value="{escape(values.get(name, ""))}" autocomplete="off">{error}'
        )

    return f"""{field("name", "Name on card", "Ada Lovelace")}
{field("number", "Card number", "4242 4242 4242 4242", "numeric")}
<div class="row"><div>{field("expiry", "Expiry", "MM/YY", "numeric")}</div>
<div>{field("cvc", "CVC", "123", "numeric")}</div></div>"""


def three_ds_page(amount: str, merchant: str, action: str):
    """The sandbox bank's 3-D Secure step: approve or fail, posted to ``action``."""
    body = f"""<div class="wrap"><div class="card" style="grid-column:1/-1;max-width:480px;
margin:auto"><div class="brand"><span class="logo"></span>{_("Sandbox Bank · 3-D Secure")}</div>
<div class="status">{_("Approve this payment?")}</div>
<p>{
        _(
            "{amount} to {merchant}. A real bank would ask for a one-time code.",
            amount=amount,
            merchant=escape(merchant),
        )
    }</p>
<form method="post" action="{escape(action)}"><button class="btn" name="action" value="approve">
{_("Approve")}</button><button class="btn danger" name="action" value="fail">
{_("Fail authentication")}</button></form></div></div>"""
    return page("3-D Secure", body)


#: the time the hosted pages are written in: Western Indonesia's (Jakarta), as Plugipay's
WIB = dt.timezone(dt.timedelta(hours=7), "WIB")


def minute(value: str | None) -> str:
    """An ISO time as Jakarta's ``2026-12-08 00:15 WIB``."""
    if not value:
        return "—"
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(WIB)
    return moment.strftime("%Y-%m-%d %H:%M WIB")
