"""Metadata rules: refused locally with the key named, and by the sandbox with ``field``."""

import pytest
from django.core.exceptions import ValidationError

from django_plugipay import services
from django_plugipay.client import PlugipayClient
from django_plugipay.exceptions import APIError
from django_plugipay.metadata import validate_metadata
from django_plugipay.models import Customer

FIFTY = {f"key{i}": f"value {i}" for i in range(50)}
LONG_KEY = "k" * 41


def checkout(metadata):
    return services.create_checkout_session(
        amount=10_000,
        currency="IDR",
        success_url="https://shop.test/ok",
        cancel_url="https://shop.test/cancel",
        metadata=metadata,
    )


BAD = {
    "51 pairs": ({**FIFTY, "key50": "one too many"}, None, "metadata"),
    "a non-string value": ({"order": 1042}, "order", "metadata.order"),
    "an over-long key": ({LONG_KEY: "x"}, LONG_KEY, f"metadata.{LONG_KEY}"),
    "an over-long value": ({"note": "x" * 501}, "note", "metadata.note"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_metadata_is_refused_before_calling_plugipay(name, plugipay_sandbox):
    metadata, key, _field = BAD[name]
    with pytest.raises(ValidationError) as caught:
        services.create_customer(email="ada@example.com", metadata=metadata)
    assert caught.value.params["key"] == key
    if key is not None:
        assert repr(key) in caught.value.messages[0]
    else:
        assert "50" in caught.value.messages[0]
    with pytest.raises(ValidationError):
        checkout(metadata)
    assert plugipay_sandbox.state()["customers"] == []  # nothing was sent
    assert plugipay_sandbox.state()["sessions"] == []


@pytest.mark.parametrize("name", sorted(BAD))
def test_the_sandbox_refuses_the_same_with_the_field(name, plugipay_sandbox):
    metadata, _key, field = BAD[name]
    api = PlugipayClient.from_settings()
    for create in (
        lambda: api.create_customer({"email": "ada@example.com", "metadata": metadata}),
        lambda: api.create_checkout_session(
            {
                "amount": 10_000,
                "currency": "IDR",
                "methods": ["card"],
                "successUrl": "https://shop.test/ok",
                "cancelUrl": "https://shop.test/cancel",
                "metadata": metadata,
            }
        ),
    ):
        with pytest.raises(APIError) as caught:
            create()
        assert caught.value.status == 400 and caught.value.code == "VALIDATION_ERROR"
        assert caught.value.field == field


def test_fifty_pairs_pass(plugipay_sandbox):
    customer = services.create_customer(email="ada@example.com", metadata=FIFTY)
    assert Customer.objects.get(pk=customer.pk).metadata == FIFTY
    session = services.create_checkout_session(
        amount=10_000,
        currency="IDR",
        success_url="https://shop.test/ok",
        cancel_url="https://shop.test/cancel",
        customer=customer,
        metadata=FIFTY,
    )
    assert session.metadata == FIFTY


def test_the_length_limits_are_settings(settings):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "METADATA_KEY_MAX_LENGTH": 50}
    validate_metadata({LONG_KEY: "x"})
    settings.PLUGIPAY = {**settings.PLUGIPAY, "METADATA_VALUE_MAX_LENGTH": 3}
    with pytest.raises(ValidationError) as caught:
        validate_metadata({"note": "four"})
    assert caught.value.params == {"key": "note", "max": 3, "type": "str"}


@pytest.mark.django_db
def test_the_api_answers_400_naming_the_key(settings):
    pytest.importorskip("rest_framework")
    from rest_framework.test import APIClient

    from tests.factories import UserFactory

    settings.PLUGIPAY = {**settings.PLUGIPAY, "API_CHECKOUT_PARAMS": "tests.test_api.pricing"}
    client = APIClient()
    client.force_authenticate(UserFactory())
    response = client.post(
        "/plugipay/api/checkout-sessions/",
        {"reference": "A1", "metadata": {"gift": True}},
        format="json",
    )
    assert response.status_code == 400
    assert "'gift'" in response.json()["metadata"][0]


@pytest.mark.parametrize("metadata", [{"order": "1\x00"}, {"or\x00der": "1"}])
def test_a_nul_character_is_refused_before_calling_plugipay(metadata, plugipay_sandbox):
    """No PostgreSQL text column holds one: refused before the session exists at Plugipay,
    not when its local copy is saved (a 500 then, the session made)."""
    with pytest.raises(ValidationError) as caught:
        checkout(metadata)
    assert "NUL" in caught.value.messages[0]
    assert plugipay_sandbox.state()["sessions"] == []
