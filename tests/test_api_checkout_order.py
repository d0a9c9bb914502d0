"""An API checkout refuses what its pricing callable answered (an amount beyond the limit,
metadata breaking Plugipay's rules) before the buyer's customer is made at Plugipay."""

import pytest

from tests.factories import UserFactory
from tests.test_api import API, client_for

pytestmark = pytest.mark.django_db


def pricing_with_the_clients_metadata(request, data):
    """A project passing the client's metadata on, with its own order key."""
    return {
        "amount": 75_000 * data["quantity"],
        "currency": "IDR",
        "metadata": {"order": data["reference"], **data["metadata"]},
        "success_url": "https://shop.test/ok",
        "cancel_url": "https://shop.test/no",
    }


def test_a_checkout_whose_metadata_is_refused_makes_no_customer(plugipay_sandbox, settings):
    from django_plugipay.models import Customer

    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "API_CHECKOUT_PARAMS": "tests.test_api_checkout_order.pricing_with_the_clients_metadata",
    }
    fifty = {f"k{i}": "v" for i in range(50)}  # the serializer's limit; the order key is the 51st
    response = client_for(UserFactory()).post(
        f"{API}/checkout-sessions/", {"reference": "A1", "metadata": fifty}, format="json"
    )
    assert response.status_code == 400 and "metadata" in response.json()
    assert not Customer.objects.exists() and not plugipay_sandbox.state()["customers"]
