"""The "Refund selected payments…" action offers the amount when one payment is selected."""

import pytest
from django.utils import translation

from django_plugipay.models import Refund
from tests.factories import PaymentFactory
from tests.test_admin import CHANGELIST, staff
from tests.test_tasks_mode import DOWN_BROKER

ACTION = {"action": "refund_payments"}


def test_one_selected_payment_gets_the_amount_field_and_a_partial_refund(plugipay_sandbox, client):
    payment = plugipay_sandbox.paid_payment(250_000)
    client.force_login(staff("refund_payment"))
    selected = {**ACTION, "_selected_action": [payment.pk]}
    confirm = client.post(CHANGELIST, selected).content.decode()
    assert 'name="amount"' in confirm and 'value="250000"' in confirm
    assert "choose how much to refund" in confirm
    assert 'name="action" value="refund_payments"' in confirm  # still posts back to the action

    done = client.post(
        CHANGELIST,
        {**selected, "post": "yes", "amount": "100,000", "reason": "requested_by_customer"},
    )
    assert done.status_code == 302
    refund = Refund.objects.get()
    assert refund.amount == 100_000 and refund.status == "succeeded"
    payment.refresh_from_db()
    assert payment.amount_refunded == 100_000 and not payment.is_refunded


def test_one_selected_payment_rejects_too_much(plugipay_sandbox, client):
    payment = plugipay_sandbox.paid_payment(50_000)
    client.force_login(staff("refund_payment"))
    page = client.post(
        CHANGELIST,
        {
            **ACTION,
            "_selected_action": [payment.pk],
            "post": "yes",
            "amount": "60000",
            "reason": "duplicate",
        },
    ).content.decode()
    assert "more than the IDR 50,000 left to refund" in page and not Refund.objects.exists()


def test_several_selected_payments_are_refunded_in_full_without_an_amount(plugipay_sandbox, client):
    payments = [plugipay_sandbox.paid_payment(10_000), plugipay_sandbox.paid_payment(20_000)]
    client.force_login(staff("refund_payment"))
    confirm = client.post(
        CHANGELIST, {**ACTION, "_selected_action": [p.pk for p in payments]}
    ).content.decode()
    assert 'name="amount"' not in confirm and "refunded in full" in confirm


def test_a_failed_payment_selected_shows_nothing_remaining_as_the_list_does(
    plugipay_sandbox, client
):
    paid = plugipay_sandbox.paid_payment(10_000)
    failed = PaymentFactory(status="failed", amount=95_000)
    client.force_login(staff("refund_payment"))
    listed = client.get(CHANGELIST).content.decode()
    assert "95,000" in listed  # its amount, not a remainder
    confirm = client.post(
        CHANGELIST, {**ACTION, "_selected_action": [paid.pk, failed.pk]}
    ).content.decode()
    assert confirm.count("IDR 95,000") == 1, confirm  # the amount column alone


@pytest.mark.plugipay_worker  # the project's Celery app, not in-process
def test_why_a_refund_waits_is_stored_in_the_project_s_language_not_the_clerk_s(
    plugipay_sandbox, client, make_celery_app
):
    """An Indonesian-speaking clerk refunds while the broker is down: the note on the refund
    is in the project's language (English here), as every colleague reads it."""
    payment = plugipay_sandbox.paid_payment(40_000)
    make_celery_app(broker_url=DOWN_BROKER, broker_connection_timeout=1)
    client.force_login(staff("refund_payment"))
    data = {
        **ACTION,
        "_selected_action": [payment.pk],
        "amount": "40000",
        "reason": "duplicate",
        "post": "yes",
    }
    with translation.override("id"):
        page = client.post(CHANGELIST, data, follow=True)
    refund = Refund.objects.get()
    assert refund.failure_message.startswith("Not sent to Plugipay yet (")
    # the clerk is told in theirs, without the stored note's English
    [told] = [str(m) for m in page.context["messages"]]
    assert "Belum dikirim ke Plugipay" in told and "Not sent" not in told, told


def test_a_refund_plugipay_refuses_at_once_is_reported_refused_in_the_clerks_language(
    plugipay_sandbox, admin_client
):
    """A refusal in the request itself marks the refund failed: staff are told so (an
    error, in their language, without Plugipay's English developer message), never that it
    "is sent to Plugipay now"."""
    from django.urls import reverse

    from django_plugipay.models import Payment

    plugipay_sandbox.paid_payment(amount=100_000)
    payment = Payment.objects.get()
    plugipay_sandbox.fault("refund_refused")
    url = reverse("admin:django_plugipay_payment_refund", args=[payment.pk])
    with translation.override("id"):
        response = admin_client.post(
            url,
            {"post": "yes", "amount": "40000", "reason": "requested_by_customer"},
            follow=True,
            headers={"accept-language": "id"},
        )
    assert payment.refunds.get().status == "failed"
    shown = [(m.level_tag, str(m)) for m in response.context["messages"]]
    assert [tag for tag, _text in shown] == ["error"], shown
    assert shown[0][1].startswith("Plugipay menolak pengembalian dana"), shown
    # Plugipay's own message is a developer's, in English: the refund's page shows it
    assert "The provider refused the refund" not in shown[0][1], shown
