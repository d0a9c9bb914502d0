"""Headless Chromium on the sandbox's hosted invoice page and billing portal, desktop and phone.

Screenshots are written to ``artifacts/screenshots/``.
"""

import plugipay
import pytest

from plugipay_sandbox import SandboxConfig, SandboxServer
from tests.services.conftest import screenshot

PHONE = {"width": 390, "height": 844}
FEATURES = {
    "selfServeCancel": True,
    "selfServePause": True,
    "selfServeUpgrade": True,
    "selfServeDowngrade": True,
    "updatePaymentMethod": True,
}


@pytest.fixture
def billed():
    """A sandbox with a customer on a plan: one paid invoice and one open invoice."""
    server = SandboxServer(SandboxConfig(port=0)).start()
    sdk = plugipay.PlugipayClient(
        key_id="pk_test_sandbox", secret="sk_test_sandbox", base_url=server.base_url
    )
    customer = sdk.customers.create(email="siti@example.test", name="Siti Rahma")
    plan = sdk.plans.create(
        name="Kopi Club Monthly",
        interval="month",
        currency="IDR",
        amount=149_000,
        portal_features=FEATURES,
    )
    sdk.plans.create(
        name="Kopi Club Yearly",
        interval="year",
        currency="IDR",
        amount=1_490_000,
        portal_features=FEATURES,
    )
    auto = sdk.subscriptions.create(
        customer_id=customer["id"],
        plan_id=plan["id"],
        price_id=plan["prices"][0]["id"],
        payment_token_id="ptok_test_success",
    )
    invoice = sdk.invoices.create(
        customer_id=customer["id"],
        currency="IDR",
        lines=[
            {
                "description": "Espresso machine rental, November",
                "quantity": 1,
                "unitAmount": 350_000,
            },
            {"description": "Single-origin beans 250 g", "quantity": 3, "unitAmount": 85_000},
        ],
        discount=25_000,
        status="open",
        memo="Thank you for brewing with us.",
    )
    portal = sdk.portal_sessions.create(
        customer_id=customer["id"], return_url="https://shop.example/account"
    )
    yield {"invoice": invoice, "portal": portal, "subscription": auto}
    server.stop()


def fits(page):
    """Nothing wider than the viewport (no sideways scrolling on a phone)."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize(("viewport", "suffix"), [(None, ""), (PHONE, "-phone")])
def test_hosted_invoice_page(new_page, billed, viewport, suffix):
    page = new_page(viewport=viewport or {"width": 1280, "height": 900})
    page.goto(billed["invoice"]["hostedInvoiceUrl"])
    assert page.locator("[data-testid=amount]").inner_text() == "IDR 580,000"
    assert "not Plugipay" in page.content() and fits(page)
    screenshot(page, f"sandbox-invoice{suffix}")
    page.fill("#name", "Siti Rahma")
    page.fill("#number", "4242 4242 4242 4242")
    page.fill("#expiry", "12/39")
    page.fill("#cvc", "123")
    page.check("input[name=save]")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Payment received")
    screenshot(page, f"sandbox-invoice-paid{suffix}")


@pytest.mark.parametrize(("viewport", "suffix"), [(None, ""), (PHONE, "-phone")])
def test_billing_portal(new_page, billed, viewport, suffix):
    page = new_page(viewport=viewport or {"width": 1280, "height": 900})
    page.goto(billed["portal"]["url"])
    assert page.locator("[data-testid=subscription]").count() == 1
    assert "Kopi Club Monthly" in page.content() and fits(page)
    screenshot(page, f"sandbox-portal{suffix}")
    page.click('a.pill:text-is("Pay")')
    page.wait_for_url("**/i/*?portal=*")
