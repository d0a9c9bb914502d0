"""The sandbox's home page: where the API is, which key to use, the test cards."""

from __future__ import annotations

from html import escape

from plugipay_sandbox.app import Request, pages
from plugipay_sandbox.hosted.layout import page, test_card_rows
from plugipay_sandbox.state import Store


@pages.add("GET", "/")
def home(store: Store, request: Request):
    cfg = store.config
    rows = test_card_rows()
    body = f"""<div class="wrap"><div class="card"><div class="brand"><span class="logo"></span>
plugipay_sandbox</div><p>An offline, stateful stand-in for the Plugipay API, for development and
tests. It is not Plugipay.</p><table><tr><td>API</td><td class=r><code>{escape(store.base_url())}
/api/v1</code></td></tr><tr><td>Key id</td><td class=r><code>{escape(cfg.key_id)}</code></td></tr>
<tr><td>Dashboard</td><td class=r><a href="/dashboard/">/dashboard/</a></td></tr>
<tr><td>Event style</td><td class=r>{escape(cfg.event_style)}</td></tr></table></div>
<div class="card"><b>Test cards</b><table>{rows}</table><p class="muted">Control routes live
under <code>/_sandbox/</code>; state at <a href="/_sandbox/state">/_sandbox/state</a>.</p>
</div></div>"""
    return page("Sandbox", body)
