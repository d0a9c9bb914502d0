"""A webhook answered with a redirect (login middleware) is a failed delivery, never followed."""

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests


class BehindLogin:
    """A site whose webhook URL redirects to a login page that answers 200 to anything."""

    def __init__(self):
        self.posts = 0
        self.login_hits = 0
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.startswith("/accounts/login/"):
                    return self.do_GET()
                site.posts += 1
                self.send_response(302)
                self.send_header("Location", "/accounts/login/?next=/plugipay/webhook/")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                site.login_hits += 1
                body = b"<form>Log in</form>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/plugipay/webhook/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def behind_login():
    site = BehindLogin()
    yield site
    site.server.shutdown()


def test_a_redirect_is_a_failed_delivery_with_the_reason(
    sandbox, sdk, control, behind_login, caplog
):
    endpoint = sdk.webhook_endpoints.create(url=behind_login.url, events=["customer.created"])
    caplog.set_level(logging.WARNING, logger="plugipay_sandbox")
    sdk.customers.create(email="ada@example.com")
    control("POST", "deliveries/flush")

    assert behind_login.posts == 1 and behind_login.login_hits == 0  # not followed
    mine = [
        d
        for d in control("GET", "state")[1]["data"]["deliveries"]
        if d["endpointId"] == endpoint["id"]
    ]
    assert len(mine) == 1
    delivery = mine[0]
    assert delivery["status"] == "pending" and delivery["deliveredAt"] is None
    assert delivery["responseCode"] == 302
    expected = (
        "answered 302 to /accounts/login/?next=/plugipay/webhook/"
        " — is the webhook URL behind a login?"
    )
    assert delivery["lastError"] == expected
    assert delivery["attemptLog"][0]["redirectTo"] == "/accounts/login/?next=/plugipay/webhook/"

    # Printed on the console…
    line = next(r.getMessage() for r in caplog.records if delivery["id"] in r.getMessage())
    assert "answered 302 to /accounts/login/?next=/plugipay/webhook/" in line
    assert line.endswith("is the webhook URL behind a login?")

    # …and shown on the dashboard's delivery, in both languages.
    page = requests.get(f"{sandbox.base_url}/dashboard/webhooks/{endpoint['id']}", timeout=10)
    assert "answered 302 to /accounts/login/?next=/plugipay/webhook/" in page.text
    assert "is the webhook URL behind a login?" in page.text
    indonesian = requests.get(
        f"{sandbox.base_url}/dashboard/webhooks/{endpoint['id']}?lang=id", timeout=10
    )
    assert "apakah URL webhook berada di balik login?" in indonesian.text
