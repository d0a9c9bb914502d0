"""Headless Chromium: a staff payout in the admin — new payout, in transit, paid — in English
and Indonesian. Screenshots are written to ``artifacts/screenshots/``."""

import pytest

from django_plugipay import services
from django_plugipay.models import Payout
from tests.factories import UserFactory
from tests.services.conftest import screenshot
from tests.test_money_out import save_bank_account

#: what the pages say, per language (the messages and buttons the test reads)
WORDS = {
    "en": {"created": "Payout of", "moved": "1 payout moved.", "available": "IDR "},
    "id": {"created": "Pencairan Rp", "moved": "1 pencairan diubah.", "available": "Rp "},
}


def act(page, action, text):
    """Run a payouts action on the one row, through its confirmation page."""
    page.check("input.action-select")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")
    page.fill("input[name=text]", text)
    return page


@pytest.mark.parametrize("language", ["en", "id"])
def test_new_payout_then_in_transit_then_paid_in_the_admin(
    plugipay_sandbox, live_server, page, settings, signal_log, language
):
    settings.LANGUAGE_CODE = language
    words = WORDS[language]
    plugipay_sandbox.paid_payment(amount=500_000)
    save_bank_account()
    available = services.balance().available
    UserFactory(username="staff", is_staff=True, is_superuser=True)
    page.goto(live_server.url + "/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")

    page.goto(live_server.url + "/admin/django_plugipay/payout/")
    assert page.locator(".plugipay-available").inner_text().startswith(words["available"])
    page.click("a.plugipay-new-payout")
    assert "••••4567" in page.locator(".plugipay-destination").inner_text()
    page.fill("#id_amount", str(available + 1))
    page.click("input[type=submit].default")
    assert page.locator(".errorlist").count() == 1 and not Payout.objects.exists()
    page.fill("#id_amount", "200000")
    page.fill("#id_note", "Mingguan")
    screenshot(page, f"admin-new-payout-{language}")
    page.click("input[type=submit].default")
    assert page.locator(".plugipay-confirm-question").count() == 1
    screenshot(page, f"admin-new-payout-confirm-{language}")
    page.click("input[type=submit].default")
    assert words["created"] in page.locator(".messagelist").inner_text()
    payout = Payout.objects.get()
    assert (payout.amount, payout.status) == (200_000, "pending")
    screenshot(page, f"admin-payouts-pending-{language}")

    act(page, "mark_in_transit", "TRF-0142")
    screenshot(page, f"admin-payout-mark-{language}")
    page.click("input[type=submit]")
    assert words["moved"] in page.locator(".messagelist").inner_text()
    act(page, "mark_paid", "")
    page.click("input[type=submit]")
    payout.refresh_from_db()
    assert (payout.status, payout.reference) == ("paid", "TRF-0142")
    assert [n for n, _ in signal_log].count("payout_paid") == 1
    page.goto(live_server.url + "/admin/django_plugipay/payout/")
    assert page.locator(".plugipay-locked").inner_text().endswith(" 0")
    screenshot(page, f"admin-payouts-paid-{language}")
