"""Numbers a frontend sends are read as written, or refused: never as another number, and an
empty or null refund amount never means "everything that is left"."""

import pytest

from django_plugipay.models import CheckoutSession, Refund
from tests.factories import UserFactory
from tests.test_api import API, client_for, staff_with

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("body", "as_json"),
    [
        ({"reason": "requested_by_customer", "amount": None}, True),  # JSON.stringify(NaN)
        ({"reason": "requested_by_customer", "amount": ""}, False),  # a form's empty field
        ({"reason": "requested_by_customer", "amount": ""}, True),
    ],
)
def test_a_null_or_empty_refund_amount_is_refused_not_a_full_refund(
    plugipay_sandbox, body, as_json
):
    payment = plugipay_sandbox.paid_payment(95_000)
    client = client_for(staff_with("refund_payment"))
    url = f"{API}/payments/{payment.plugipay_id}/refunds/"
    response = client.post(url, body, format="json") if as_json else client.post(url, body)
    assert response.status_code == 400 and "amount" in response.json(), response.json()
    assert not Refund.objects.exists()
    # left out, it refunds what is left, as documented
    response = client.post(url, {"reason": "requested_by_customer"}, format="json")
    assert response.status_code == 201 and response.json()["amount"] == 95_000


@pytest.mark.parametrize("quantity", ["1_000", "1.000", "2.0", ""])
def test_a_quantity_in_a_locales_notation_is_refused(plugipay_sandbox, settings, quantity):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "API_CHECKOUT_PARAMS": "tests.test_api.pricing"}
    response = client_for(UserFactory()).post(
        f"{API}/checkout-sessions/", {"reference": "kopi", "quantity": quantity}, format="json"
    )
    assert response.status_code == 400 and "quantity" in response.json(), response.json()
    assert not CheckoutSession.objects.exists()


@pytest.mark.parametrize("amount", [2.0, 1e3, "+100", " 100 ", "100\n", "1e3"])
def test_a_refund_amount_is_a_json_integer_or_digits_alone(plugipay_sandbox, amount):
    """drf-api.md: a JSON integer or a string of digits; ``2.0`` or ``1e3`` is a 400."""
    payment = plugipay_sandbox.paid_payment(95_000)
    response = client_for(staff_with("refund_payment")).post(
        f"{API}/payments/{payment.plugipay_id}/refunds/",
        {"reason": "requested_by_customer", "amount": amount},
        format="json",
    )
    assert response.status_code == 400 and "amount" in response.json(), response.json()
    assert not Refund.objects.exists()
