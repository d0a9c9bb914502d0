"""`make demo`'s steps, headless, from a clean copy of example_project, driven by Chromium."""

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys

import pytest

from tests.services.conftest import ROOT, screenshot, wait_until


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def demo(tmp_path):
    copy = tmp_path / "example_project"
    shutil.copytree(
        ROOT / "example_project", copy, ignore=shutil.ignore_patterns("db.sqlite3", "__pycache__")
    )
    web, sandbox = free_port(), free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")
    }
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
        wait_until(
            lambda: b"Demo is up." in (tmp_path / "demo.log").read_bytes(),
            120,
            0.3,
            "the demo to start",
        )
        yield {
            "url": f"http://127.0.0.1:{web}",
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


def pay(page, card):
    page.fill("#number", card)
    page.fill("#expiry", "12/39")
    page.fill("#cvc", "123")
    page.click("button[type=submit]")


def test_buy_pay_refund_in_the_demo(demo, browser):
    url = demo["url"]
    buyer = browser.new_context().new_page()
    log_in(buyer, url, "buyer")
    buyer.click("button[data-product=batik-shirt]")
    buyer.wait_for_url("**/c/cs_*")
    pay(buyer, "4242 4242 4242 4242")
    buyer.wait_for_url("**/thanks/**")
    assert "paid" in buyer.locator("[data-testid=order-status]").inner_text()
    screenshot(buyer, "demo-success")

    def paid_once():
        return query(demo["db"], "select status, receipts_sent from shop_order") == [("paid", 1)]

    wait_until(paid_once, 20, 0.3, "the order to be paid exactly once")

    staff = browser.new_context().new_page()
    staff.goto(url + "/admin/login/")
    staff.fill("#id_username", "admin")
    staff.fill("#id_password", "admin")
    staff.click("input[type=submit]")
    staff.goto(url + "/admin/django_plugipay/payment/")
    staff.locator("#result_list tbody a").first.click()
    staff.click("a.plugipay-refund")
    staff.select_option("#id_reason", "requested_by_customer")
    staff.click("input[value='Yes, refund']")
    assert "Requested 1 refund" in staff.locator(".messagelist").inner_text()

    def refunded():
        buyer.goto(url + "/orders/")
        return buyer.locator("[data-testid=order-status]").first.inner_text() == "Refunded"

    wait_until(refunded, 30, 0.5, "the buyer's order to show refunded")
    screenshot(buyer, "demo-orders-refunded")
    assert query(demo["db"], "select receipts_sent from shop_order") == [(1,)]


def test_decline_then_3ds_in_the_demo(demo, browser):
    page = browser.new_context().new_page()
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


def test_membership_in_the_demo(demo, browser):
    """Subscribe, pay the first invoice, reach the members' page, cancel at period end in the
    portal and see the grace period; staff cancel another subscription in the admin."""
    url = demo["url"]
    buyer = browser.new_context().new_page()
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
        # Not always the first request: a webhook that lands while the buyer pays marks the
        # subscription freshly synced, so the read skips its sync (API_SYNC_INTERVAL).
        buyer.goto(url + "/members/")
        return buyer.locator("[data-testid=members-only]").count() == 1

    wait_until(members_page, 10, 0.5, "the members' page")
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

    wait_until(grace_notice, 20, 0.5, "the grace-period notice")
    assert "You keep access until then" in buyer.locator("[data-testid=grace-period]").inner_text()
    screenshot(buyer, "demo-grace-period")

    staff = browser.new_context().new_page()
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

    wait_until(past_due_banner, 20, 0.5, "the past-due banner")
    screenshot(staff, "demo-past-due")
