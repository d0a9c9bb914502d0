"""A thousand payments through the webhook with a receiver that fails 30 % of the time."""

import collections
import random

import pytest
from django.urls import reverse

from django_plugipay import services, signals
from django_plugipay.models import Delivery
from django_plugipay.services import deliveries
from django_plugipay.testing import build_event, signed_webhook

PAYMENTS = 1_000
FAILURE_RATE = 0.3


@pytest.fixture
def flaky_receiver(settings):
    # In-process after each commit, as on a project without Celery (the suite's app has no
    # worker in this test).
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "DELIVERY_BACKOFF": 0,
        "DELIVERY_MAX_ATTEMPTS": 20,
        "TASKS": "inline",
    }
    rng = random.Random(2026)
    calls, successes, first_failures = (collections.Counter() for _ in range(3))

    def ship(sender, instance, event, delivery, **kwargs):
        calls[instance.plugipay_id] += 1
        if rng.random() < FAILURE_RATE:
            if delivery.attempt == 1:
                first_failures[instance.plugipay_id] += 1
            raise ConnectionError("warehouse API timed out")
        successes[instance.plugipay_id] += 1

    deliveries.durable_receiver(signals.payment_succeeded, name="tests.ship")(ship)
    yield calls, successes, first_failures
    deliveries.disconnect(signals.payment_succeeded, name="tests.ship")


def test_every_payment_is_shipped_exactly_once(transactional_db, client, flaky_receiver):
    calls, successes, failed_first = flaky_receiver
    secret = services.events.app_settings.WEBHOOK_SECRETS[0]
    codes = collections.Counter()
    for n in range(PAYMENTS):
        obj = {"id": f"pay_{n:05d}", "status": "succeeded", "amount": 10_000 + n, "currency": "IDR"}
        body, headers = signed_webhook(build_event("payment.succeeded", obj), secret)
        response = client.post(
            reverse("plugipay:webhook"), body, content_type="application/json", headers=headers
        )
        codes[response.status_code] += 1
    assert codes == {200: PAYMENTS}  # a failing receiver never turns the answer into a 5xx
    # (the view's own sweep may already have retried some of them, as time passed)
    first_failures = sum(failed_first.values())
    assert 0.25 * PAYMENTS < first_failures < 0.35 * PAYMENTS

    rounds = 0
    while services.run_deliveries():
        rounds += 1
    assert services.run_deliveries(force=True) == 0
    assert len(successes) == PAYMENTS and set(successes.values()) == {1}
    assert Delivery.objects.filter(status="succeeded").count() == PAYMENTS
    retries = sum(calls.values()) - PAYMENTS
    assert retries > first_failures and rounds < 20
