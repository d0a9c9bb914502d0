"""What an API client sends never makes a 5xx: NUL characters, times out of range."""

import pytest

pytest.importorskip("rest_framework")

from rest_framework.test import APIClient

from tests.factories import CustomerFactory, PaymentFactory, UserFactory

pytestmark = pytest.mark.django_db
API = "/plugipay/api"


def buyer_client():
    user = UserFactory()
    PaymentFactory(checkout_session__customer=CustomerFactory(user=user))
    client = APIClient()
    client.force_authenticate(user)
    client.raise_request_exception = False  # see the answer a real client gets
    return client


@pytest.mark.parametrize(
    "path",
    [
        "/checkout-sessions/%00/",
        "/payments/%00/",
        "/refunds/%00/",
        "/subscriptions/%00/",
        "/receipts/%00/",
    ],
)
def test_a_nul_in_a_path_id_is_not_a_500(path):
    """PostgreSQL: DataError "PostgreSQL text fields cannot contain NUL (0x00) bytes"."""
    assert buyer_client().get(API + path).status_code < 500


@pytest.mark.parametrize("value", ["\x00", "succeeded\x00"])
def test_a_nul_in_the_status_filter_is_not_a_500(value):
    assert buyer_client().get(API + "/payments/", {"status": value}).status_code < 500


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"])
@pytest.mark.parametrize("name", ["created_after", "created_before"])
def test_an_out_of_range_time_filter_is_not_a_500(name, value):
    assert buyer_client().get(API + "/payments/", {name: value}).status_code < 500
