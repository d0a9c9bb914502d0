"""An Idempotency-Key stored readable by earlier versions (``api_<pk>_<header>``, whatever it
held) is still found after keys no header carries became digests: a retry across the
upgrade gets back its refund or payout, never a second one."""

import pytest

from tests.test_api import API, client_for, staff_with

pytestmark = pytest.mark.django_db


def test_a_refund_retried_across_the_upgrade_with_a_non_ascii_key_is_made_once(plugipay_sandbox):
    from django.utils import timezone

    from django_plugipay import services
    from django_plugipay.models import Refund
    from django_plugipay.services.refunds import NOT_SUBMITTED

    payment = plugipay_sandbox.paid_payment(amount=100_000)
    user = staff_with("refund_payment")
    # what earlier versions stored for the header "é": the readable key, the refund left requested
    # (its send refused) for the sweeper, which now sends it (its key digested as a header)
    Refund.objects.create(
        account_id=payment.account_id,
        payment=payment,
        amount=1000,
        currency="IDR",
        reason="duplicate",
        description="",
        mode=payment.mode,
        requested_by=user,
        idempotency_key=f"api_{user.pk}_é",
        failure_code=NOT_SUBMITTED,
    )
    Refund.objects.update(created_at=timezone.now() - timezone.timedelta(hours=2))
    client = client_for(user)
    url = f"{API}/payments/{payment.plugipay_id}/refunds/"
    again = client.post(
        url, {"amount": 1000, "reason": "duplicate"}, format="json", HTTP_IDEMPOTENCY_KEY="é"
    )
    services.submit_stranded_refunds()
    made = [(r["amount"], r["status"]) for r in plugipay_sandbox.state()["refunds"]]
    # the client's retry is the same request: one refund at Plugipay, the first one answered
    assert len(made) == 1, made
    assert again.status_code == 200 and Refund.objects.count() == 1


def test_a_payout_retried_across_the_upgrade_with_a_non_ascii_key_settles_the_first(
    plugipay_sandbox,
):
    from django.utils import timezone

    from django_plugipay.context import current_account_pk
    from django_plugipay.models import Payout
    from django_plugipay.services.payouts import NO_ANSWER
    from tests.test_money_out import save_bank_account

    plugipay_sandbox.paid_payment(amount=300_000)
    save_bank_account()
    user = staff_with("manage_payout", "view_payout")
    # what earlier versions left for the header "é": the row stored, its send a 500, no answer
    Payout.objects.create(
        account_id=current_account_pk(),
        amount=1000,
        currency="IDR",
        status="pending",
        idempotency_key=f"api_{user.pk}_é",
        submitted_at=timezone.now() - timezone.timedelta(minutes=1),
        failure_code=NO_ANSWER,
    )
    again = client_for(user).post(
        f"{API}/payouts/", {"amount": 1000}, format="json", HTTP_IDEMPOTENCY_KEY="é"
    )
    # the retry settles the stuck payout with its key; it never starts a second one
    assert Payout.objects.count() == 1, list(Payout.objects.values("idempotency_key"))
    assert again.status_code in (200, 201)
