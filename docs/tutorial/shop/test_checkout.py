import pytest
from django.urls import reverse

from django_plugipay.testing import DECLINE_CARD
from shop.models import Order


@pytest.fixture
def buyer(django_user_model):
    return django_user_model.objects.create_user(
        username="ayu", email="ayu@example.com", password="not-a-real-password"
    )


@pytest.fixture
def buyer_client(client, buyer):
    client.force_login(buyer)
    return client


def press_buy(client, item="batik"):
    """Press "Buy" as the buyer: returns the new order, already sent to Plugipay's page."""
    response = client.post(reverse("shop:buy", args=[item]))
    order = Order.objects.latest("pk")
    assert response.status_code == 302
    assert response.url == order.checkout_session.url  # the sandbox's hosted checkout
    return order


def test_paying_marks_the_order_paid_once(plugipay_sandbox, buyer_client, mailoutbox):
    order = press_buy(buyer_client)
    plugipay_sandbox.pay(order.checkout_session)  # card 4242…, then delivers the webhooks
    order.refresh_from_db()
    assert order.status == "paid" and order.paid_at is not None
    assert [m.subject for m in mailoutbox] == [f"Receipt for order #{order.pk}"]


def test_thanks_page_shows_paid_before_the_webhook(plugipay_sandbox, buyer_client, mailoutbox):
    order = press_buy(buyer_client)
    plugipay_sandbox.pay(order.checkout_session, deliver=False)  # the webhook is late
    page = buyer_client.get(reverse("shop:thanks", args=[order.pk]))
    assert f"{order} is paid" in page.content.decode()
    plugipay_sandbox.flush()  # the webhook arrives after all and changes nothing
    assert len(mailoutbox) == 1


def test_declined_card_leaves_the_order_awaiting_payment(plugipay_sandbox, buyer_client):
    order = press_buy(buyer_client)
    plugipay_sandbox.pay(order.checkout_session, DECLINE_CARD)
    page = buyer_client.get(reverse("shop:thanks", args=[order.pk]))
    order.refresh_from_db()
    assert order.status == "pending"
    assert "payment processing" in page.content.decode()


def test_payments_that_are_not_orders_are_left_alone(plugipay_sandbox, mailoutbox):
    plugipay_sandbox.paid_payment()  # a session without "order" in its metadata
    assert not Order.objects.exists() and mailoutbox == []


def test_a_buyer_is_told_when_payments_are_unavailable(plugipay_sandbox, buyer_client):
    plugipay_sandbox.fault("http_500", count=10, path_prefix="/api/v1/checkout-sessions")
    response = buyer_client.post(reverse("shop:buy", args=["kopi"]), follow=True)
    assert "Payments are not available right now" in response.content.decode()
    assert not Order.objects.exists()
