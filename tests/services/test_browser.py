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
    assert "succeeded" in page.locator(".inline-group").inner_text()
    screenshot(page, "admin-refund-result")
    payment.refresh_from_db()
    assert payment.amount_refunded == 100_000
