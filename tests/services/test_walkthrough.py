"""Plugipay's "Your first payment" walkthrough, offline, in Chromium: the webhook endpoint is
added in the sandbox dashboard, its signing secret goes into the example shop's settings, the
buyer pays with 4242, staff refund part in the admin, and the dashboard shows the result."""

import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from django_plugipay.testing import wait_for
from example_project.run_demo import USERS
from tests.services.conftest import ROOT, screenshot
from tests.services.test_demo import example_copy, free_port, log_in, pay, query

FOUR_EVENTS = [
    "payment.succeeded",
    "payment.failed",
    "checkout_session.completed",
    "checkout_session.expired",
]
PHONE = {"width": 390, "height": 844}


class Process:
    """A child process with its output in a log file, stopped with SIGINT at the end."""

    def __init__(self, args, cwd, env, log_path):
        self.log_path = log_path
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_for_http(self, url, what):
        def answers():
            try:
                return requests.get(url, timeout=2).status_code < 500
            except requests.ConnectionError:
                assert self.proc.poll() is None, self.log_path.read_text()
                return False

        wait_for(answers, timeout=60, interval=0.3, message=what)

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


class FailsOnce:
    """A webhook receiver that answers 500 to its first delivery and 200 afterwards."""

    def __init__(self):
        self.calls = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls += 1
                status, body = (
                    (500, b"boom: the receiver crashed") if receiver.calls == 1 else (200, b"ok")
                )
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def shop(tmp_path):
    """The example project (a clean copy, migrated, products and users loaded) and a sandbox.

    The site itself starts later: its webhook secret comes from the dashboard."""
    copy, env = example_copy(tmp_path)
    web, sandbox_port = free_port(), free_port()
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEMO_DB=str(tmp_path / "shop.sqlite3"),
        PLUGIPAY_BASE_URL=f"http://127.0.0.1:{sandbox_port}",
        PYTHONUNBUFFERED="1",
    )
    for args in (["migrate", "--noinput", "-v", "0"], ["loaddata", "products", "-v", "0"]):
        subprocess.run([sys.executable, "manage.py", *args], cwd=copy, env=env, check=True)
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", USERS], cwd=copy, env=env, check=True
    )
    sandbox = Process(
        [sys.executable, "-m", "plugipay_sandbox", "--port", str(sandbox_port)],
        ROOT,
        env,
        tmp_path / "sandbox.log",
    )
    started = []

    def start_site(webhook_secret):
        site_env = {**env, "PLUGIPAY_WEBHOOK_SECRET": webhook_secret}
        site = Process(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{web}", "--noreload"],
            copy,
            site_env,
            tmp_path / "site.log",
        )
        started.append(site)
        site.wait_for_http(f"http://127.0.0.1:{web}/", "the shop to start")

    try:
        sandbox.wait_for_http(f"http://127.0.0.1:{sandbox_port}/", "the sandbox to start")
        yield {
            "url": f"http://127.0.0.1:{web}",
            "sandbox": f"http://127.0.0.1:{sandbox_port}",
            "db": tmp_path / "shop.sqlite3",
            "start_site": start_site,
        }
    finally:
        for process in (*started, sandbox):
            process.stop()


def flush(shop):
    requests.post(f"{shop['sandbox']}/_sandbox/deliveries/flush", timeout=60)


def dashboard_pages(page, shop):
    """Every dashboard page of this run: (name, path)."""
    page.goto(shop["sandbox"] + "/dashboard/payments")
    payment = page.locator("a[href^='/dashboard/payments/pay_']").first.get_attribute("href")
    page.goto(shop["sandbox"] + "/dashboard/customers")
    customer = page.locator("a[href^='/dashboard/customers/cus_']").first.get_attribute("href")
    page.goto(shop["sandbox"] + "/dashboard/checkout-sessions")
    session = page.locator("a[href^='/dashboard/checkout-sessions/cs_']").first.get_attribute(
        "href"
    )
    page.goto(shop["sandbox"] + "/dashboard/events?type=payment.succeeded")
    event = page.locator("a[href^='/dashboard/events/evt_']").first.get_attribute("href")
    page.goto(shop["sandbox"] + "/dashboard/webhooks")
    endpoint = page.locator("a[href^='/dashboard/webhooks/whep_']").last.get_attribute("href")
    return [
        ("payments", "/dashboard/payments"),
        ("payment", payment),
        ("customers", "/dashboard/customers"),
        ("customer", customer),
        ("checkout-sessions", "/dashboard/checkout-sessions"),
        ("checkout-session", session),
        ("events", "/dashboard/events"),
        ("event", event),
        ("webhooks", "/dashboard/webhooks"),
        ("webhook-endpoint", endpoint),
        ("add-endpoint", "/dashboard/webhooks/new"),
    ]


def test_first_payment_walkthrough_with_the_dashboard(shop, new_page):
    dash = new_page(viewport={"width": 1280, "height": 900})
    dash.set_default_timeout(15_000)

    # Step 4: Settings → Webhooks → Add endpoint, the four events ticked; save the secret.
    dash.goto(shop["sandbox"] + "/dashboard/")
    assert dash.locator(".sandbox-tag").inner_text().strip().lower() == "sandbox"
    dash.click("text=Settings → Webhooks")
    dash.click("text=Add endpoint")
    dash.fill("#url", shop["url"] + "/plugipay/webhook/")
    dash.fill("#description", "Warung Demo")
    for kind in FOUR_EVENTS:
        dash.check(f"input[name=events][value='{kind}']")
    dash.click("button:has-text('Add endpoint')")
    secret = dash.locator("#signing-secret").inner_text().strip()
    assert secret.startswith("whsec_")
    screenshot(dash, "dashboard-endpoint-secret")
    shop["start_site"](secret)  # the secret copied into the shop's settings

    # Step 5: the buyer pays with 4242; the signed webhook marks the order paid.
    buyer = new_page()
    log_in(buyer, shop["url"], "buyer")
    art = buyer.locator("svg.art")
    assert art.count() == 3 and [a.bounding_box()["width"] for a in art.all()] == [64, 64, 64]
    screenshot(buyer, "shop-products")
    buyer.click("button[data-product=batik-shirt]")
    buyer.wait_for_url("**/c/cs_*")
    pay(buyer, "4242 4242 4242 4242")
    buyer.wait_for_url("**/thanks/**")
    flush(shop)
    wait_for(
        lambda: query(shop["db"], "select status from shop_order") == [("paid",)],
        timeout=30,
        interval=0.3,
        message="the order to be paid",
    )
    processed = query(
        shop["db"], "select kind from django_plugipay_webhookevent where status = 'processed'"
    )
    assert {"checkout_session.completed", "payment.succeeded"} <= {k for (k,) in processed}

    # Staff refund part of it in the Django admin.
    staff = new_page()
    staff.goto(shop["url"] + "/admin/login/")
    staff.fill("#id_username", "admin")
    staff.fill("#id_password", "admin")
    staff.click("input[type=submit]")
    staff.goto(shop["url"] + "/admin/django_plugipay/payment/")
    staff.locator("#result_list tbody a").first.click()
    staff.click("a.plugipay-refund")
    staff.fill("#id_amount", "100000")
    staff.select_option("#id_reason", "requested_by_customer")
    staff.click("input[value='Yes, refund']")
    assert "Requested 1 refund" in staff.locator(".messagelist").inner_text()
    flush(shop)
    staff.reload()
    activity = staff.locator(".plugipay-activity").inner_text()
    assert "payment.succeeded" in activity and "requested" in activity and "admin" in activity
    screenshot(staff, "admin-payment-activity")

    # Step 6: Dashboard → Payments.
    dash.click("text=Payments")
    row = dash.locator("table tr", has_text="IDR 250,000").first
    assert "Partially refunded" in row.inner_text()
    row.locator("a").first.click()
    refunds = dash.locator("tr.child")
    assert refunds.count() == 1 and "IDR 100,000" in refunds.inner_text()
    kinds = dash.locator(".timeline li a").all_inner_texts()
    expected = [
        "checkout_session.created",
        "checkout_session.completed",
        "payment.succeeded",
        "refund.created",
        "refund.succeeded",
    ]
    assert [k for k in kinds if k in expected] == expected

    # A delivery that failed once: its attempts, then Retry succeeds. Added on a phone.
    receiver = FailsOnce()
    requests.post(f"{shop['sandbox']}/_sandbox/config", json={"retrySchedule": []}, timeout=10)
    phone = new_page(viewport=PHONE, is_mobile=True)
    phone.goto(shop["sandbox"] + "/dashboard/webhooks/new")
    phone.fill("#url", receiver.url)
    phone.fill("#description", "Flaky receiver")
    phone.check("input[name=events][value='*']")
    phone.click("button:has-text('Add endpoint')")
    screenshot(phone, "dashboard-endpoint-secret-phone")
    phone.click("text=Done")
    requests.post(
        f"{shop['sandbox']}/api/v1/customers",
        json={"email": "siti@example.com", "metadata": {"source": "walkthrough"}},
        headers={"Authorization": "Bearer pk_test_sandbox_bearer"},
        timeout=10,
    ).raise_for_status()
    flush(shop)
    dash.goto(phone.url)
    delivery = dash.locator(".delivery").first
    assert "Failed" in delivery.inner_text()
    attempt = delivery.locator(".attempt").first.inner_text()
    assert "500" in attempt and "boom" in attempt and " ms" in attempt
    screenshot(dash, "dashboard-delivery-failed")
    delivery.locator("button:has-text('Retry')").click()
    assert "queued for another attempt" in dash.locator(".notice").inner_text()
    flush(shop)
    dash.reload()
    delivery = dash.locator(".delivery").first
    assert "Succeeded" in delivery.inner_text()
    second = delivery.locator(".attempt").nth(1).inner_text()
    assert "#2" in second and "HTTP 200" in second and "ok" in second
    assert receiver.calls == 2

    # Screenshots of every page, desktop and phone.
    for name, path in dashboard_pages(dash, shop):
        for view, tab in (("", dash), ("-phone", phone)):
            tab.goto(shop["sandbox"] + path)
            screenshot(tab, f"dashboard-{name}{view}")
    receiver.server.shutdown()
