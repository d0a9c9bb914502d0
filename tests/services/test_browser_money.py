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


# ── the sandbox dashboard's money pages, driven in the browser ───────────────────


def notice(tab, english, language):
    """The page's notice says ``english`` in the page's language."""
    from plugipay_sandbox.hosted import i18n

    expected = english if language == "en" else i18n.ID[english]
    assert tab.locator(".notice").first.inner_text() == expected


@pytest.mark.parametrize("language", ["en", "id"])
def test_sandbox_dashboard_pay_out_move_the_payout_ledger_and_receipts(new_page, language):
    """Balance → save the bank account → "Pay out" → the payout page's manual transitions →
    the ledger filtered to the payout → the receipts with their PDF, in one language."""
    import requests

    from plugipay_sandbox import SandboxConfig, SandboxServer
    from tests.sandbox.test_hosted_i18n import english_words

    with SandboxServer(SandboxConfig(port=0, merchant_name="Toko Batik Sari")) as server:
        base = server.base_url
        created = requests.post(
            f"{base}/api/v1/checkout-sessions",
            json={
                "amount": 500_000,
                "currency": "IDR",
                "methods": ["card"],
                "successUrl": "https://shop.test/ok",
                "cancelUrl": "https://shop.test/no",
            },
            headers={"Authorization": "Bearer pk_test_sandbox_bearer"},
            timeout=10,
        )
        assert created.status_code < 300, created.text
        session = created.json()["data"]
        requests.post(
            f"{base}/_sandbox/checkout-sessions/{session['id']}/pay",
            json={"card": "4242424242424242"},
            timeout=30,
        ).raise_for_status()
        tab = new_page(
            viewport={"width": 1280, "height": 900},
            locale="id-ID" if language == "id" else "en-US",
        )

        def check_language():
            if language == "id":
                assert english_words(tab.content()) == [], tab.url

        tab.goto(f"{base}/dashboard/balance?lang={language}")
        available_before = tab.locator("[data-testid=available]").inner_text()
        tab.fill("#bankName", "Bank Central Asia")
        tab.fill("#accountNumber", "8730012345")
        tab.fill("#accountHolder", "Toko Batik Sari")
        tab.click("form[action='/dashboard/balance/bank-account'] button")
        notice(tab, "The bank account was saved.", language)
        tab.fill("#amount", "100000")
        tab.select_option("#method", "manual")
        tab.fill("#note", "Mingguan")
        check_language()
        screenshot(tab, f"sandbox-pay-out-form-{language}")
        tab.click("form[action='/dashboard/payouts'] button")
        tab.wait_for_url("**/dashboard/payouts/po_*")
        notice(tab, "The payout was created.", language)
        payout_id = tab.url.split("/")[-1].split("?")[0]
        assert tab.locator("form[action$='/mark-paid']").count() == 0  # pending: not yet
        tab.fill("#mark-in-transit-reference", "TRF-20261205-001")
        tab.click("form[action$='/mark-in-transit'] button")
        notice(tab, "The payout is marked in transit.", language)
        assert "TRF-20261205-001" in tab.content()
        check_language()
        screenshot(tab, f"sandbox-payout-in-transit-{language}")
        tab.click("form[action$='/mark-paid'] button")
        notice(tab, "The payout is marked paid.", language)
        assert tab.locator("form[action*='/dashboard/payouts/po_']").count() == 0  # terminal
        screenshot(tab, f"sandbox-payout-paid-{language}")

        tab.goto(f"{base}/dashboard/balance")
        assert tab.locator("[data-testid=available]").inner_text() != available_before
        assert tab.locator("[data-testid=locked]").inner_text().endswith(" 0")
        tab.goto(f"{base}/dashboard/ledger")
        tab.select_option("select[name=sourceType]", "payout")
        tab.click("form.filters button")
        tab.wait_for_url("**sourceType=payout**")
        rows = tab.locator("table").first.locator("tr:has(td)")
        assert rows.count() == 2  # the payout's transaction: one debit, one credit
        assert payout_id in rows.first.inner_text() and payout_id in rows.last.inner_text()
        check_language()
        screenshot(tab, f"sandbox-ledger-payout-{language}")

        tab.goto(f"{base}/dashboard/receipts")
        link = tab.locator("a[href$='/receipt.pdf']")
        assert link.count() == 1
        check_language()
        screenshot(tab, f"sandbox-receipts-{language}")
        pdf = requests.get(base + link.get_attribute("href"), timeout=10)
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
