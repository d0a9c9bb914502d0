"""A hand-made list cursor is read as Django reads a filter's time (a naive one in TIME_ZONE,
not the zone active now; an aware one refused without USE_TZ): a 404, never a 500 on SQLite."""

import base64
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from tests.factories import CustomerFactory, PaymentFactory
from tests.test_api import API, client_for, staff_with

pytestmark = pytest.mark.django_db


def cursor(position):
    return base64.b64encode(urlencode({"p": position, "r": "0"}).encode()).decode()


def payments_client():
    user = staff_with("view_payment")
    PaymentFactory(checkout_session__customer=CustomerFactory(user=user))
    client = client_for(user)
    client.raise_request_exception = False
    return client


@pytest.mark.parametrize("position", ["2026-01-01T00:00:00+01:00", "2026-01-01T00:00:00Z"])
def test_an_aware_cursor_without_use_tz_is_not_a_500(settings, position):
    settings.USE_TZ, settings.TIME_ZONE = False, "Asia/Jakarta"
    response = payments_client().get(API + "/payments/", {"cursor": cursor(position)})
    assert response.status_code < 500, response.status_code


def test_a_naive_cursor_under_an_activated_zone_is_not_a_500(settings):
    settings.TIME_ZONE = "Asia/Jakarta"  # +07:07 in year 1: no UTC year for 0001-01-01
    client = payments_client()
    with timezone.override("America/New_York"):  # a project's per-user zone
        response = client.get(API + "/payments/", {"cursor": cursor("0001-01-01T00:00:00")})
    assert response.status_code < 500, response.status_code
