"""The whole loop over loopback HTTP: services → sandbox → signed webhooks → models → signals."""

import pytest
import requests

from django_plugipay import services, signals
from django_plugipay.exceptions import APIError, RefundError
from django_plugipay.models import CheckoutSession, Payment, Refund, WebhookEvent
from django_plugipay.testing import DECLINE_CARD, INSUFFICIENT_FUNDS_CARD, THREE_DS_CARD
from tests.factories import UserFactory


def start(amount=250_000, **kwargs):
    return services.create_checkout_session(
        amount=amount,
        currency="IDR",
        success_url="https://shop.test/ok",
        cancel_url="https://shop.test/cancel",
        description="Batik shirt",
        **kwargs,
    )


def counts(log):
    return {name: [n for n, _ in log].count(name) for name, _ in log}


def test_pay_on_the_hosted_page_fires_each_signal_once(plugipay_sandbox, signal_log):
    session = start()
    assert session.url.startswith(plugipay_sandbox.base_url) and session.status == "open"
    assert session.data["lineItems"] == [
        {"name": "Batik shirt", "quantity": 1, "unitAmount": 250_000}
    ]
    response = requests.post(
        f"{session.url}/pay",
        allow_redirects=False,
        data={"number": "4242 4242 4242 4242", "expiry": "12/39", "cvc": "123"},
    )
    assert response.headers["Location"].endswith(f"?session_id={session.plugipay_id}")
    plugipay_sandbox.flush()
    session.refresh_from_db()
    payment = session.payment
    assert session.status == "completed" and payment.status == "succeeded"
    assert payment.amount == 250_000 and payment.method == "card"
    assert counts(signal_log)["checkout_session_completed"] == 1
    assert counts(signal_log)["payment_succeeded"] == 1
    assert WebhookEvent.objects.filter(status="processed").count() == len(plugipay_sandbox.events())


@pytest.mark.parametrize("card", [DECLINE_CARD, INSUFFICIENT_FUNDS_CARD])
def test_declines_fire_payment_failed_and_leave_the_session_open(
    plugipay_sandbox, signal_log, card
):
    session = start()
    plugipay_sandbox.pay(session, card)
    session.refresh_from_db()
    failed = Payment.objects.get()
    assert session.status == "open" and failed.status == "failed"
    assert failed.failure_code in ("card_declined", "insufficient_funds")
    assert counts(signal_log).get("payment_failed") == 1
    assert "checkout_session_completed" not in counts(signal_log)


def test_three_ds_then_success(plugipay_sandbox, signal_log):
    session = start()
    plugipay_sandbox.pay(session, THREE_DS_CARD)
    assert services.sync_checkout_session(session=session).status == "pending"
    plugipay_sandbox.pay(session, THREE_DS_CARD, three_ds="approve")
    session.refresh_from_db()
    assert session.status == "completed"


def test_success_redirect_race_sync_first_then_webhook_is_a_no_op(plugipay_sandbox, signal_log):
    session = start()
    plugipay_sandbox.hold()  # the buyer is back before any webhook
    plugipay_sandbox.pay(session, deliver=False)
    synced = services.sync_checkout_session(session=session)
    assert synced.status == "completed" and synced.payment.status == "succeeded"
    assert not WebhookEvent.objects.filter(kind="checkout_session.completed").exists()
    plugipay_sandbox.release()  # …then the webhooks arrive, and change nothing
    assert WebhookEvent.objects.get(kind="checkout_session.completed").status == "processed"
    assert counts(signal_log)["checkout_session_completed"] == 1
    assert counts(signal_log)["payment_succeeded"] == 1


def test_expiry_and_cancel(plugipay_sandbox, signal_log):
    expiring, canceled = start(), start()
    plugipay_sandbox.expire(expiring)
    services.cancel_checkout_session(session=canceled)
    plugipay_sandbox.flush()
    statuses = dict(CheckoutSession.objects.values_list("plugipay_id", "status"))
    assert statuses == {expiring.plugipay_id: "expired", canceled.plugipay_id: "canceled"}
    assert counts(signal_log)["checkout_session_expired"] == 1
    assert counts(signal_log)["checkout_session_canceled"] == 1


def test_docs_event_style_gives_the_same_result(plugipay_sandbox, signal_log):
    plugipay_sandbox.configure(eventStyle="docs")
    session = start()
    plugipay_sandbox.pay(session)
    session.refresh_from_db()
    assert session.status == "completed" and session.payment.status == "succeeded"
    assert WebhookEvent.objects.filter(type="payment.succeeded").count() == 1
    assert counts(signal_log)["payment_succeeded"] == 1


def test_a_receiver_that_raises_once_is_retried_by_the_sandbox(plugipay_sandbox):
    shipped = []

    def ship(sender, instance, **kwargs):
        if not ship.failed:
            ship.failed = True
            raise RuntimeError("printer jammed")
        shipped.append(instance.pk)

    ship.failed = False
    plugipay_sandbox.configure(retrySchedule=[60])  # the retry waits for the sandbox clock
    signals.payment_succeeded.connect(ship)
    try:
        plugipay_sandbox.pay(start())
        assert WebhookEvent.objects.filter(status="failed").count() == 1
        assert plugipay_sandbox.retry_deliveries() == 1  # the clock moves to the retry
    finally:
        signals.payment_succeeded.disconnect(ship)
    assert len(shipped) == 1 and not WebhookEvent.objects.failed().exists()


def test_partial_and_full_refunds(plugipay_sandbox, signal_log):
    payment = plugipay_sandbox.paid_payment()
    staff = UserFactory()
    partial = services.refund_payment(
        payment=payment, amount=30_000, reason="duplicate", requested_by=staff
    )
    plugipay_sandbox.flush()
    partial.refresh_from_db()
    assert partial.status == "succeeded" and partial.plugipay_id.startswith("rfd_")
    assert partial.requested_by == staff
    rest = services.refund_payment(payment=payment, reason="requested_by_customer")
    plugipay_sandbox.flush()
    rest.refresh_from_db()
    payment.refresh_from_db()
    assert rest.amount == 70_000 and payment.amount_refunded == 100_000 and payment.is_refunded
    assert counts(signal_log)["refund_succeeded"] == 2
    assert len(plugipay_sandbox.state()["refunds"]) == 2 and Refund.objects.count() == 2


def test_refund_validation(plugipay_sandbox):
    payment = plugipay_sandbox.paid_payment(10_000)
    with pytest.raises(RefundError, match="more than the IDR 10,000 left"):
        services.refund_payment(payment=payment, amount=10_001, reason="duplicate")
    with pytest.raises(RefundError, match="Describe"):
        services.refund_payment(payment=payment, reason="other")
    with pytest.raises(RefundError, match="reason"):
        services.refund_payment(payment=payment, reason="because")
    with pytest.raises(RefundError, match="IDR, not USD"):
        services.refund_payment(payment=payment, reason="duplicate", currency="USD")
    session = start()
    plugipay_sandbox.pay(session, DECLINE_CARD)
    with pytest.raises(RefundError, match="only succeeded"):
        services.refund_payment(payment=Payment.objects.get(status="failed"), reason="duplicate")
    assert not Refund.objects.exists()


def test_refused_refund_is_failed_with_the_api_message(plugipay_sandbox, signal_log):
    payment = plugipay_sandbox.paid_payment()
    plugipay_sandbox.fault("refund_refused")
    refund = services.refund_payment(payment=payment, reason="fraudulent")
    plugipay_sandbox.flush()
    refund.refresh_from_db()
    assert refund.status == "failed" and "refused" in refund.failure_message
    assert counts(signal_log)["refund_failed"] == 1
    payment.refresh_from_db()
    assert payment.amount_refunded == 0
    assert services.refundable_amount(payment) == payment.amount


def test_refund_survives_a_dropped_connection(plugipay_sandbox):
    payment = plugipay_sandbox.paid_payment()
    plugipay_sandbox.fault("drop_after_commit", path_prefix="/api/v1/refunds")
    refund = services.refund_payment(payment=payment, amount=5_000, reason="duplicate")
    plugipay_sandbox.flush()
    refund.refresh_from_db()
    assert refund.status == "succeeded"
    assert len(plugipay_sandbox.state()["refunds"]) == 1


def test_pending_refund_settles_later(plugipay_sandbox, signal_log):
    plugipay_sandbox.configure(refundDelay=-1)
    payment = plugipay_sandbox.paid_payment()
    refund = services.refund_payment(payment=payment, amount=1_000, reason="duplicate")
    refund.refresh_from_db()
    assert refund.status == "pending"
    plugipay_sandbox.settle_refund(refund)
    refund.refresh_from_db()
    assert refund.status == "succeeded" and counts(signal_log)["refund_succeeded"] == 1
    assert services.sync_refund(refund=refund).status == "succeeded"


def test_customers_for_users(plugipay_sandbox):
    user = UserFactory(first_name="Ada", last_name="Lovelace")
    customer = services.get_or_create_customer_for_user(user=user)
    assert customer.user == user and customer.name == "Ada Lovelace"
    assert services.get_or_create_customer_for_user(user=user) == customer
    assert plugipay_sandbox.state()["customers"][0]["externalId"] == f"user:{user.pk}"
    session = start(customer=customer)
    assert session.customer == customer


def test_reconcile_heals_missed_webhooks_once(plugipay_sandbox, signal_log):
    endpoint = plugipay_sandbox.state()["endpoints"][0]
    from django_plugipay.client import get_client

    get_client().request("PATCH", f"/webhooks/{endpoint['id']}", json_body={"active": False})
    sessions = [start(10_000 + i) for i in range(10)]
    for session in sessions:
        plugipay_sandbox.pay(session)
    assert CheckoutSession.objects.filter(status="open").count() == 10
    for session in sessions[:3]:  # known here only from the sync on the refund's path
        services.sync_checkout_session(session=session)
        services.refund_payment(payment=session.payment, amount=1_000, reason="duplicate")
    first = services.reconcile()
    assert first.events_applied > 0 and first.events_failed == 0
    assert CheckoutSession.objects.filter(status="completed").count() == 10
    assert counts(signal_log)["payment_succeeded"] == 10
    assert counts(signal_log)["refund_succeeded"] == 3
    assert Payment.objects.filter(amount_refunded=1_000).count() == 3
    second = services.reconcile()
    assert second.events_applied == 0 and second.changed == 0
    assert counts(signal_log)["payment_succeeded"] == 10
    assert counts(signal_log)["refund_succeeded"] == 3


def test_plugipay_sync_command(plugipay_sandbox, capsys):
    from django.core.management import call_command

    plugipay_sandbox.hold()
    plugipay_sandbox.pay(start(), deliver=False)
    call_command("plugipay_sync", "--dry-run")
    assert "would apply" in capsys.readouterr().out
    assert CheckoutSession.objects.get().status == "open"
    call_command("plugipay_sync")
    assert "Events:" in capsys.readouterr().out
    assert CheckoutSession.objects.get().status == "completed"


def test_api_errors_surface_with_request_id(plugipay_sandbox):
    with pytest.raises(APIError) as info:
        services.create_checkout_session(
            amount=100, currency="EUR", success_url="https://a", cancel_url="https://b"
        )
    assert info.value.field == "currency" and info.value.request_id
