"""Concurrency on PostgreSQL: row locks, duplicate inserts, refunds racing, reconcile racing."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import IntegrityError, connection, connections, transaction

from django_plugipay import services
from django_plugipay.exceptions import RefundError
from django_plugipay.models import CheckoutSession, Payment, Refund, WebhookEvent
from django_plugipay.services import mirror
from django_plugipay.testing import build_event, signed_webhook
from tests.factories import PaymentFactory
from tests.services.conftest import wait_until


def in_threads(count, target):
    """Run ``target(i)`` in ``count`` threads released together; close their connections."""
    barrier = threading.Barrier(count)

    def run(i):
        barrier.wait()
        try:
            return target(i)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def completed_event():
    return build_event(
        "checkout_session.completed",
        {
            "id": "cs_race",
            "status": "completed",
            "amount": 5000,
            "currency": "IDR",
            "paymentId": "pay_race",
            "paymentMethod": "card",
            "mode": "test",
            "updatedAt": "2026-01-01T00:00:00Z",
        },
    )


def test_constraints_hold_on_postgres(postgres):
    payment = PaymentFactory(amount=1000)
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.filter(pk=payment.pk).update(amount_refunded=1001)
    with pytest.raises(IntegrityError), transaction.atomic():
        Refund.objects.create(payment=payment, amount=0, currency="IDR")


def test_same_event_eight_times_concurrently(postgres, live_server, signals_log):
    body, headers = signed_webhook(completed_event(), "whsec_plugipay_testing")
    url = live_server.url + "/plugipay/webhook/"
    codes = in_threads(
        8,
        lambda i: (
            requests.post(
                url, data=body, headers={**headers, "Content-Type": "application/json"}, timeout=30
            ).status_code
        ),
    )
    assert codes == [200] * 8
    assert WebhookEvent.objects.count() == 1
    assert WebhookEvent.objects.get().status == "processed"
    names = [n for n, _ in signals_log]
    assert names.count("checkout_session_completed") == 1
    assert names.count("payment_succeeded") == 1


def test_concurrent_upserts_of_one_transition_signal_once(postgres, signals_log):
    obj = completed_event()["data"]["object"]
    in_threads(6, lambda i: mirror.upsert_checkout_session(obj))
    assert CheckoutSession.objects.count() == 1 and Payment.objects.count() == 1
    assert [n for n, _ in signals_log] == ["checkout_session_completed", "payment_succeeded"]


def test_two_refunds_racing_past_the_remainder(postgres, django_capture_on_commit_callbacks):
    payment = PaymentFactory(amount=10_000)

    def attempt(i):
        try:
            services.refund_payment(payment=payment, amount=6_000, reason="duplicate")
            return "ok"
        except RefundError as exc:
            return exc.code

    with django_capture_on_commit_callbacks(execute=False):
        outcomes = in_threads(2, attempt)
    assert sorted(outcomes) == ["ok", "over_refund"]
    assert Refund.objects.filter(payment=payment).count() == 1
    assert services.refundable_amount(payment) == 4_000


def test_reconcile_racing_live_webhooks_signals_once(postgres, plugipay_sandbox, signals_log):
    plugipay_sandbox.hold()
    sessions = [
        services.create_checkout_session(
            amount=1000 + i,
            currency="IDR",
            success_url="https://a.test",
            cancel_url="https://b.test",
        )
        for i in range(10)
    ]
    for session in sessions:
        plugipay_sandbox.pay(session, deliver=False)

    def run(i):
        if i == 0:
            services.reconcile()
        else:
            plugipay_sandbox.release(order="shuffle", duplicate=2)

    in_threads(2, run)

    def settled():  # a delivery that failed is retried by the sandbox, as Plugipay would
        plugipay_sandbox.flush()
        return all(d["status"] != "pending" for d in plugipay_sandbox.state()["deliveries"])

    wait_until(settled, 20, 0.2, "every delivery to settle")
    errors = list(WebhookEvent.objects.exclude(last_error="").values_list("kind", "last_error"))
    names = [n for n, _ in signals_log]
    assert names.count("checkout_session_completed") == 10, errors
    assert names.count("payment_succeeded") == 10, errors
    assert CheckoutSession.objects.filter(status="completed").count() == 10
    assert connection.vendor == "postgresql"
