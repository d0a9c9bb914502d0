"""`make demo`'s steps, headless, from a clean copy of example_project, driven by Chromium."""

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys

import pytest

from django_plugipay.testing import wait_for
from tests.services.conftest import ROOT, screenshot


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def example_copy(tmp_path):
    """A clean copy of example_project and an environment without the suite's services."""
    copy = tmp_path / "example_project"
    shutil.copytree(
        ROOT / "example_project", copy, ignore=shutil.ignore_patterns("db.sqlite3", "__pycache__")
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")
    }
    return copy, env


@pytest.fixture
def demo(tmp_path):
    copy, env = example_copy(tmp_path)
    web, sandbox = free_port(), free_port()
    env.update(
        DEMO_PORT=str(web), SANDBOX_PORT=str(sandbox), DEMO_DB=str(tmp_path / "demo.sqlite3")
    )
    log = open(tmp_path / "demo.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "run_demo.py"],
        cwd=copy,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: b"Demo is up." in (tmp_path / "demo.log").read_bytes(),
            timeout=120,
            interval=0.3,
            message="the demo to start",
        )
        yield {
            "url": f"http://127.0.0.1:{web}",
            "sandbox": f"http://127.0.0.1:{sandbox}",
            "db": tmp_path / "demo.sqlite3",
            "log": tmp_path / "demo.log",
        }
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def query(db, sql):
    with sqlite3.connect(db, timeout=10) as conn:
        return conn.execute(sql).fetchall()


def log_in(page, url, username):
    page.goto(url + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", username)
    page.click("button[type=submit]")


def admin_log_in(page, url):
    page.goto(url + "/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin")
    page.click("input[type=submit]")


def pay(page, card):
    page.fill("#number", card)
    page.fill("#expiry", "12/39")
    page.fill("#cvc", "123")
    page.click("button[type=submit]")


def test_start_up_prints_each_check_message_once(demo):
    """runserver prints the system checks; the set-up commands and the sandbox skip them (the
    W004/I001 block was printed four times) and the set-up's shells are quiet."""
    output = demo["log"].read_text()
    assert output.count("Performing system checks") == 1, output
    for message in ("(django_plugipay.W004)", "(django_plugipay.I001)"):
        assert output.count(message) == 1, output
    assert "objects imported automatically" not in output


def test_buy_pay_refund_in_the_demo(demo, new_page):
    url = demo["url"]
    buyer = new_page()
    log_in(buyer, url, "buyer")
    buyer.click("button[data-product=batik-shirt]")
    buyer.wait_for_url("**/c/cs_*")
    pay(buyer, "4242 4242 4242 4242")
    buyer.wait_for_url("**/thanks/**")
    assert "paid" in buyer.locator("[data-testid=order-status]").inner_text()
    screenshot(buyer, "demo-success")

    def paid_once():
        return query(demo["db"], "select status, receipts_sent from shop_order") == [("paid", 1)]

    wait_for(paid_once, timeout=20, interval=0.3, message="the order to be paid exactly once")

    staff = new_page()
    admin_log_in(staff, url)
    staff.goto(url + "/admin/django_plugipay/payment/")
    staff.locator("#result_list tbody a").first.click()
    staff.click("a.plugipay-refund")
    staff.select_option("#id_reason", "requested_by_customer")
    staff.click("input[value='Yes, refund']")
    assert "Requested 1 refund" in staff.locator(".messagelist").inner_text()

    def refunded():
        buyer.goto(url + "/orders/")
        return buyer.locator("[data-testid=order-status]").first.inner_text() == "Refunded"

    wait_for(refunded, timeout=30, interval=0.5, message="the buyer's order to show refunded")
    screenshot(buyer, "demo-orders-refunded")
    assert query(demo["db"], "select receipts_sent from shop_order") == [(1,)]


def test_decline_then_3ds_in_the_demo(demo, new_page):
    page = new_page()
    log_in(page, demo["url"], "buyer")
    page.click("button[data-product=kopi-luwak]")
    page.wait_for_url("**/c/cs_*")
    pay(page, "4000 0000 0000 9995")
    assert "insufficient funds" in page.locator("[role=alert]").inner_text()
    pay(page, "4000 0027 6000 3184")
    page.wait_for_url("**/3ds")
    page.click("button[value=approve]")
    page.wait_for_url("**/thanks/**")
    assert "paid" in page.locator("[data-testid=order-status]").inner_text()


def test_pay_by_va_then_staff_confirm_a_manual_transfer_in_indonesian(demo, new_page):
    url = demo["url"]
    buyer = new_page(locale="en-US")
    log_in(buyer, url, "buyer")
    buyer.click("button[data-product=batik-shirt]")
    buyer.wait_for_url("**/c/cs_*")
    buyer.click("button[value='va:BCA']")
    va = buyer.locator("[data-testid=va-number]").inner_text()
    screenshot(buyer, "async-hosted-va")
    buyer.click("text=I will pay later: back to the shop")
    buyer.wait_for_url("**/thanks/**")
    assert buyer.locator("[data-testid=order-status]").inner_text() == "Waiting for your transfer"
    assert buyer.locator("[data-testid=va-number]").inner_text() == va
    assert buyer.locator("[data-testid=bank]").inner_text() == "BCA"
    assert buyer.locator("[data-testid=deadline]").inner_text()
    screenshot(buyer, "async-shop-waiting-for-transfer")

    (session_id,) = query(demo["db"], "select plugipay_id from django_plugipay_checkoutsession")[0]
    sandbox = buyer.context.request
    state = sandbox.get(f"{demo['sandbox']}/_sandbox/state").json()["data"]
    (payment,) = [p for p in state["payments"] if p["checkoutSessionId"] == session_id]
    sandbox.post(
        f"{demo['sandbox']}/_sandbox/payments/{payment['id']}/settle",
        data={"outcome": "succeeded"},
    )

    def paid():
        buyer.reload()
        return "paid" in buyer.locator("[data-testid=order-status]").inner_text()

    wait_for(paid, timeout=30, interval=0.5, message="the shop's page to say paid")
    screenshot(buyer, "async-shop-paid")
    log = demo["log"].read_bytes().decode()
    assert log.count("Subject: Waiting for your transfer") == 1
    assert log.count("Subject: Receipt for") == 1

    # A manual transfer: the buyer claims it, staff confirm it in the admin in Indonesian.
    buyer.goto(url + "/")
    buyer.click("button[data-product=kopi-luwak]")
    buyer.wait_for_url("**/c/cs_*")
    buyer.click("button[value=manual]")
    buyer.wait_for_url("**/manual")
    buyer.click("button[type=submit]")
    buyer.wait_for_url("**/thanks/**")
    assert "confirm your transfer" in buyer.locator("[data-testid=order-status]").inner_text()

    page = new_page(locale="id-ID", extra_http_headers={"Accept-Language": "id"})
    admin_log_in(page, url)
    page.goto(url + "/admin/django_plugipay/checkoutsession/?status__exact=pending_review")
    page.locator("#result_list tbody a").first.click()
    page.click("a.plugipay-confirm")
    assert "Konfirmasi transfer diterima" in page.content()
    assert "Rp " in page.locator(".plugipay-confirm-table").inner_text()
    screenshot(page, "admin-confirm-transfer-id")
    page.click("input[value='Ya, uangnya sudah masuk']")
    assert "dikonfirmasi" in page.locator(".messagelist").inner_text()
    screenshot(page, "admin-confirm-transfer-done-id")

    def manual_paid():
        rows = query(demo["db"], "select status from shop_order order by id")
        return rows == [("paid",), ("paid",)]

    wait_for(manual_paid, timeout=30, interval=0.5, message="the manual-transfer order to be paid")


def test_membership_in_the_demo(demo, new_page):
    """Subscribe, pay the first invoice, reach the members' page, cancel at period end in the
    portal and see the grace period; staff cancel another subscription in the admin."""
    url = demo["url"]
    buyer = new_page()
    log_in(buyer, url, "buyer")
    buyer.goto(url + "/members/")
    buyer.wait_for_url("**/membership/")
    assert buyer.locator("[data-testid=plan-price]").inner_text() == "IDR 99,000"
    screenshot(buyer, "demo-membership")
    buyer.click("[data-testid=pay-now]")
    buyer.wait_for_url("**/i/*")
    screenshot(buyer, "demo-first-invoice")
    pay(buyer, "4242 4242 4242 4242")
    buyer.wait_for_selector("text=Paid")

    def members_page():
        # Polled: sync on read is rate-limited (API_SYNC_INTERVAL, 2 s) and this browser pays
        # faster than a person; tests/test_billing.py checks the first read after paying.
        buyer.goto(url + "/members/")
        return buyer.locator("[data-testid=members-only]").count() == 1

    wait_for(members_page, timeout=10, interval=0.5, message="the members' page")
    screenshot(buyer, "demo-members-page")

    buyer.click("[data-testid=manage-billing]")
    buyer.wait_for_url("**/portal/*")
    screenshot(buyer, "demo-portal")
    buyer.click("text=Cancel subscription")
    buyer.wait_for_selector("text=will end at the close of the current period")
    buyer.click("text=Return to the shop")
    buyer.wait_for_url("**/members/")

    def grace_notice():
        buyer.reload()
        return buyer.locator("[data-testid=grace-period]").count() == 1

    wait_for(grace_notice, timeout=20, interval=0.5, message="the grace-period notice")
    assert "You keep access until then" in buyer.locator("[data-testid=grace-period]").inner_text()
    screenshot(buyer, "demo-grace-period")

    staff = new_page()
    log_in(staff, url, "admin")
    staff.goto(url + "/membership/")
    staff.click("[data-testid=pay-now]")
    staff.wait_for_url("**/i/*")
    pay(staff, "4242 4242 4242 4242")
    staff.wait_for_selector("text=Paid")
    staff.goto(url + "/members/")

    staff.goto(url + "/admin/django_plugipay/subscription/?q=buyer@example.com")
    staff.locator("#result_list tbody input.action-select").first.check()
    staff.select_option("select[name=action]", "cancel_now")
    staff.click("button[name=index]")
    screenshot(staff, "demo-admin-cancel-confirmation")
    staff.click("input[type=submit]")
    assert "1 subscription canceled." in staff.locator(".messagelist").inner_text()
    staff.goto(url + "/admin/django_plugipay/subscription/")
    screenshot(staff, "demo-admin-subscriptions")
    rows = query(
        demo["db"],
        "select u.username, s.status from django_plugipay_subscription s"
        " join django_plugipay_customer c on s.customer_id = c.id"
        " join auth_user u on c.user_id = u.id order by u.username",
    )
    assert rows == [("admin", "active"), ("buyer", "canceled")]

    # The demo's clock: a month on, the renewal invoice is open; unpaid, the next month on the
    # subscription is past due and the shop says so.
    staff.goto(url + "/membership/")
    for _ in range(2):
        staff.click("[data-testid=advance-clock]")
        staff.wait_for_url("**/membership/")

    def past_due_banner():
        staff.reload()
        return staff.locator("[data-testid=past-due]").count() == 1

    wait_for(past_due_banner, timeout=20, interval=0.5, message="the past-due banner")
    screenshot(staff, "demo-past-due")
