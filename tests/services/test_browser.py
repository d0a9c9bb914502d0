"""Headless Chromium: the hosted checkout page and a staff refund in the admin.

Screenshots are written to ``artifacts/screenshots/``.
"""

import pytest

from django_plugipay import services
from django_plugipay.models import CheckoutSession, Payment, Refund
from django_plugipay.testing import DECLINE_CARD, SUCCESS_CARD, THREE_DS_CARD, wait_for
from tests.factories import UserFactory
from tests.services.conftest import screenshot


def start(live_server, amount=250_000):
    return services.create_checkout_session(
        amount=amount,
        currency="IDR",
        description="Batik shirt",
        success_url=live_server.url + "/admin/login/",
        cancel_url=live_server.url + "/admin/",
    )


def pay(page, card):
    page.fill("#name", "Ada Lovelace")
    page.fill("#number", card)
    page.fill("#expiry", "12/39")
    page.fill("#cvc", "123")
    page.click("button[type=submit]")


def test_hosted_checkout_with_4242(plugipay_sandbox, live_server, page, signal_log):
    session = start(live_server)
    page.goto(session.url)
    assert page.locator("[data-testid=amount]").inner_text() == "IDR 250,000"
    assert "not Plugipay" in page.content()
    screenshot(page, "hosted-checkout")
    pay(page, "4242 4242 4242 4242")
    page.wait_for_url(f"**/admin/login/?session_id={session.plugipay_id}")
    plugipay_sandbox.flush()
    session.refresh_from_db()
    assert session.status == "completed" and session.payment.status == "succeeded"
    assert [n for n, _ in signal_log].count("payment_succeeded") == 1


def test_decline_then_3ds_in_the_browser(plugipay_sandbox, live_server, page):
    session = start(live_server)
    page.goto(session.url)
    pay(page, DECLINE_CARD)
    assert page.locator("[role=alert]").inner_text().startswith("The card was declined.")
    screenshot(page, "hosted-checkout-declined")
    pay(page, THREE_DS_CARD)
    page.wait_for_url("**/3ds")
    screenshot(page, "hosted-checkout-3ds")
    page.click("button[value=approve]")
    page.wait_for_url("**session_id=*")
    plugipay_sandbox.flush()
    statuses = sorted(Payment.objects.values_list("status", flat=True))
    assert statuses == ["failed", "succeeded"]
    assert CheckoutSession.objects.get().status == "completed"


def test_hosted_checkout_fits_a_phone(plugipay_sandbox, live_server, new_page):
    session = start(live_server)
    phone = new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.goto(session.url)
    width = phone.evaluate("document.documentElement.scrollWidth")
    screenshot(phone, "hosted-checkout-phone")
    assert width <= 390


@pytest.mark.usefixtures("celery_worker")
def test_staff_refund_in_the_admin(plugipay_sandbox, live_server, page):
    plugipay_sandbox.configure(refundDelay=60)  # pending until the test moves the clock
    session = start(live_server)
    plugipay_sandbox.pay(session, SUCCESS_CARD)
    payment = Payment.objects.get(checkout_session=session, status="succeeded")
    UserFactory(username="staff", is_staff=True, is_superuser=True)
    page.goto(live_server.url + "/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/django_plugipay/payment/{payment.pk}/change/")
    page.click("a.plugipay-refund")
    assert page.input_value("#id_amount") == "250000"
    page.fill("#id_amount", "100000")
    page.select_option("#id_reason", "requested_by_customer")
    screenshot(page, "admin-refund-confirmation")
    page.click("input[value='Yes, refund']")
    assert "Requested 1 refund" in page.locator(".messagelist").inner_text()

    wait_for(
        lambda: Refund.objects.filter(status="pending").exists(),
        message="the worker to create the refund at the sandbox",
    )
    plugipay_sandbox.advance(60)  # the sandbox settles it now, refundDelay later

    def settled():
        plugipay_sandbox.flush()
        return Refund.objects.filter(status="succeeded").exists()

    wait_for(settled, message="the refund to settle")
    page.reload()
    assert "succeeded" in page.locator("#refunds-group").inner_text()
    screenshot(page, "admin-refund-result")
    payment.refresh_from_db()
    assert payment.amount_refunded == 100_000


# ── the sandbox dashboard at desktop and phone widths, in English and Indonesian ──


def sandbox_with_history(server):
    """A shop's day in the sandbox: card and VA payments, a refund, a member's subscription with
    its paid invoice, a plan, and the clock moved on."""
    import requests

    def api(method, path, body=None):
        response = requests.request(
            method,
            f"{server.base_url}/api/v1{path}",
            json=body,
            headers={"Authorization": "Bearer pk_test_sandbox_bearer"},
            timeout=10,
        )
        assert response.status_code < 300, response.text
        return response.json()["data"]

    def control(path, body=None):
        response = requests.post(f"{server.base_url}/_sandbox/{path}", json=body, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    control("money/settings", {"taxEnabled": True, "taxId": "01.234.567.8-901.000"})
    customer = api(
        "POST",
        "/customers",
        {"email": "siti.rahayu.wulandari@contoh-perusahaan.co.id", "name": "Siti Rahayu"},
    )
    sessions = [
        api(
            "POST",
            "/checkout-sessions",
            {
                "amount": amount,
                "currency": "IDR",
                "methods": ["card", "va"],
                "customerId": customer["id"],
                "description": "Batik tulis",
                "successUrl": "https://shop.test/ok",
                "cancelUrl": "https://shop.test/no",
            },
        )
        for amount in (250_000, 175_000)
    ]
    paid = control(f"checkout-sessions/{sessions[0]['id']}/pay", {"card": SUCCESS_CARD})
    api(
        "POST",
        "/refunds",
        {"chargeId": paid["payment"]["id"], "amount": 50_000, "reason": "requested_by_customer"},
    )
    control(f"checkout-sessions/{sessions[1]['id']}/pay", {"method": "va", "settle": False})
    plan = api(
        "POST",
        "/plans",
        {
            "name": "Member",
            "interval": "month",
            "trialDays": 7,
            "portalFeatures": {"selfServeCancel": True, "updatePaymentMethod": True},
            "prices": [{"currency": "IDR", "model": "flat", "unitAmount": 99_000}],
        },
    )
    subscription = api(
        "POST",
        "/subscriptions",
        {
            "customerId": customer["id"],
            "planId": plan["id"],
            "priceId": plan["prices"][0]["id"],
            "collectionMethod": "send_invoice",
        },
    )
    control("clock/advance", {"seconds": 8 * 86400})
    state = requests.get(f"{server.base_url}/_sandbox/state", timeout=10).json()["data"]
    invoice = next(i for i in state["invoices"] if i["subscriptionId"] == subscription["id"])
    control(f"invoices/{invoice['id']}/pay", {"card": SUCCESS_CARD})
    api(
        "PATCH",
        "/payouts/bank-account",
        {
            "bankCode": "BCA",
            "bankName": "Bank Central Asia",
            "accountNumber": "8730012345",
            "accountHolder": "Toko Batik Sari",
        },
    )
    payout = api("POST", "/payouts", {"amount": 100_000, "currency": "IDR", "note": "Mingguan"})
    api("POST", f"/payouts/{payout['id']}/mark-in-transit", {"reference": "TRF-20261204-001"})
    unpaid = api(
        "POST",
        "/checkout-sessions",
        {
            "amount": 1_250_000,
            "currency": "IDR",
            "methods": ["card", "va", "qris"],
            "successUrl": "https://shop.test/ok",
            "cancelUrl": "https://shop.test/no",
        },
    )
    return {
        "payments": "/dashboard/payments",
        "payment": f"/dashboard/payments/{paid['payment']['id']}",
        "customers": "/dashboard/customers",
        "customer": f"/dashboard/customers/{customer['id']}",
        "checkout-sessions": "/dashboard/checkout-sessions",
        "subscriptions": "/dashboard/subscriptions",
        "subscription": f"/dashboard/subscriptions/{subscription['id']}",
        "invoices": "/dashboard/invoices",
        "invoice": f"/dashboard/invoices/{invoice['id']}",
        "plans": "/dashboard/plans",
        "plan": f"/dashboard/plans/{plan['id']}",
        "new-plan": "/dashboard/plans/new",
        "events": "/dashboard/events",
        "webhooks": "/dashboard/webhooks",
        "balance": "/dashboard/balance",
        "payouts": "/dashboard/payouts",
        "payout": f"/dashboard/payouts/{payout['id']}",
        "ledger": "/dashboard/ledger",
        "receipts": "/dashboard/receipts",
        "checkout": f"/c/{unpaid['id']}",
    }


#: Elements that must stay on one line: ids, e-mails, money, dates, test card numbers.
ONE_LINE = "td .mono, td.mono, td.email, td.nw, td .nw, td.num, td code"
LAYOUT_PROBLEMS = """([width, oneLine]) => {
    const problems = [];
    if (document.documentElement.scrollWidth > width)
        problems.push(`page is ${document.documentElement.scrollWidth}px wide`);
    for (const tab of document.querySelectorAll('.nav a')) {
        const box = tab.getBoundingClientRect();
        if (box.left < 0 || box.right > width) problems.push(`tab ${tab.textContent} is cut`);
    }
    for (const el of document.querySelectorAll(oneLine)) {
        // The text's own boxes (a cell's box is one however many lines it holds): taller than
        // one line and a bit means it wrapped.
        const range = document.createRange();
        range.selectNodeContents(el);
        const boxes = [...range.getClientRects()];
        if (!boxes.length) continue;
        const style = getComputedStyle(el);
        const line = parseFloat(style.lineHeight) || parseFloat(style.fontSize) * 1.3;
        const tall = Math.max(...boxes.map((b) => b.bottom)) - Math.min(...boxes.map((b) => b.top));
        if (tall > line * 1.7) problems.push(`wraps: ${el.textContent}`);
    }
    return problems;
}"""


def test_sandbox_dashboard_at_desktop_and_phone_in_both_languages(new_page):
    from plugipay_sandbox import SandboxConfig, SandboxServer
    from plugipay_sandbox.hosted import i18n
    from tests.sandbox.test_hosted_i18n import english_words

    config = SandboxConfig(port=0, merchant_name="Toko Batik Sari")
    with SandboxServer(config) as server, i18n.recording_misses() as misses:
        paths = sandbox_with_history(server)
        for width, height in ((1280, 900), (390, 844)):
            for language in ("en", "id"):
                tab = new_page(
                    viewport={"width": width, "height": height},
                    is_mobile=width < 500,
                    locale="id-ID" if language == "id" else "en-US",
                )
                for name, path in paths.items():
                    tab.goto(f"{server.base_url}{path}?lang={language}")
                    assert tab.evaluate(LAYOUT_PROBLEMS, [width, ONE_LINE]) == [], (
                        name,
                        width,
                        language,
                    )
                    if name == "checkout":
                        assert "Toko Batik Sari" in tab.locator(".brand").first.inner_text()
                    else:
                        offset = tab.locator("[data-testid=clock-offset]").inner_text()
                        assert offset.startswith("+8 "), offset
                    if language == "id":
                        assert english_words(tab.content()) == [], (name, width)
                    screenshot(tab, f"sandbox-{name}-{width}-{language}")
                tab.context.close()
    assert sorted(misses) == [], "add these to plugipay_sandbox.hosted.i18n.ID"


def test_sandbox_dashboard_refund_and_clock_in_the_browser(new_page):
    from plugipay_sandbox import SandboxConfig, SandboxServer

    with SandboxServer(SandboxConfig(port=0)) as server:
        paths = sandbox_with_history(server)
        tab = new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        tab.goto(server.base_url + paths["payment"])
        tab.fill("#refund-amount", "25000")
        tab.select_option("#refund-reason", "duplicate")
        tab.click("button:has-text('Refund')")
        assert "The refund was created." in tab.locator(".notice").inner_text()
        assert "IDR 25,000" in tab.locator("table").first.inner_text()
        screenshot(tab, "sandbox-payment-refunded-390")
        tab.goto(server.base_url + paths["subscriptions"])
        tab.select_option("select[name=seconds]", str(31 * 86400))
        tab.click("button:has-text('Advance the clock')")
        tab.wait_for_url("**/dashboard/subscriptions")
        assert tab.locator("[data-testid=clock-offset]").inner_text().startswith("+39 d")
        tab.goto(server.base_url + "/dashboard/plans/new")
        tab.fill("#name", "Gold")
        tab.fill("#amount", "250000")
        tab.click("button:has-text('Create plan')")
        assert "The plan was created" in tab.locator(".notice").inner_text()
        screenshot(tab, "sandbox-plan-created-390")
