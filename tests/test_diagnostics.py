"""Errors and checks that name the fix: 401s, unreachable Plugipay, a forgotten include, a
customer Plugipay no longer has."""

from __future__ import annotations

import pytest
from django.urls import clear_url_caches

from django_plugipay import services
from django_plugipay.checks import check_webhook_url
from django_plugipay.client import get_client
from django_plugipay.exceptions import APIError, TransientError
from django_plugipay.models import Customer
from tests.test_doctor import closed_port


def test_a_401_names_the_settings_the_key_kind_and_the_url(plugipay_sandbox, settings):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "SECRET": "sk_test_wrong"}
    with pytest.raises(APIError) as caught:
        get_client().get_customer("cus_x")
    message = str(caught.value)
    assert "INVALID_SIGNATURE" in message and "['SECRET']" in message
    assert "'pk_test_sandbox' (a test key)" in message and plugipay_sandbox.base_url in message


def test_a_401_with_a_bearer_key_names_api_key(plugipay_sandbox, settings):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "API_KEY": "pk_live_nope"}
    with pytest.raises(APIError) as caught:
        get_client().get_customer("cus_x")
    assert "PLUGIPAY['API_KEY'] (a live key)" in caught.value.message


def test_an_unreachable_sandbox_names_the_url_and_the_command(settings):
    url = f"http://127.0.0.1:{closed_port()}"
    settings.PLUGIPAY = {**settings.PLUGIPAY, "BASE_URL": url, "MAX_RETRIES": 0}
    with pytest.raises(TransientError) as caught:
        get_client().get_customer("cus_x")
    message = caught.value.message
    assert url in message and "Connection refused" in message
    assert "manage.py plugipay_sandbox" in message


def test_an_unreachable_remote_host_does_not_suggest_the_sandbox(settings):
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "BASE_URL": "http://plugipay.invalid",
        "MAX_RETRIES": 0,
    }
    with pytest.raises(TransientError) as caught:
        get_client().get_customer("cus_x")
    assert "http://plugipay.invalid" in caught.value.message
    assert "plugipay_sandbox" not in caught.value.message


def test_the_webhook_include_check(settings):
    assert check_webhook_url() == []
    settings.ROOT_URLCONF = "tests.urls_without_plugipay"
    clear_url_caches()
    try:
        (warning,) = check_webhook_url()
    finally:
        clear_url_caches()
    assert warning.id == "django_plugipay.W006" and "include" in warning.hint


def test_a_customer_the_sandbox_lost_says_what_happened(plugipay_sandbox):
    customer = services.create_customer(email="ana@example.com")
    plugipay_sandbox.reset()  # what a restart with --fresh does
    with pytest.raises(APIError) as caught:
        services.create_checkout_session(
            amount=10_000,
            currency="IDR",
            success_url="https://shop.test/ok",
            cancel_url="https://shop.test/no",
            customer=Customer.objects.get(pk=customer.pk),
        )
    message = caught.value.message
    assert customer.plugipay_id in message and "--fresh" in message
    assert "delete that Customer row" in message and caught.value.status == 404
