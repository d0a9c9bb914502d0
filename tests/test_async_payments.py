"""Pending VA/QRIS/e-wallet payments and manual transfers, end to end over the sandbox."""

import datetime as dt
from importlib.util import find_spec

import pytest
from django.contrib.admin.models import LogEntry
from django.utils import translation

from django_plugipay import services
from django_plugipay.exceptions import PlugipayError
from django_plugipay.models import CheckoutSession, Payment, PaymentInstructions
from tests.test_admin import staff

METHODS = ["card", "va", "qris", "ewallet", "retail", "manual"]
SESSIONS = "/admin/django_plugipay/checkoutsession/"


def start(amount=250_000, **options):
    return services.create_checkout_session(
        **options,
        amount=amount,
        currency="IDR",
        success_url="https://shop.test/ok",
        cancel_url="https://shop.test/cancel",
        methods=METHODS,
    )


def count(log, name):
    return [n for n, _ in log].count(name)


ASYNC = [
    ("va", "BRI", "account_number"),
    ("qris", None, "qr_string"),
    ("ewallet", "OVO", "approval_url"),
]


@pytest.mark.parametrize(("method", "channel", "field"), ASYNC)
@pytest.mark.parametrize("route", ["webhook_first", "sync_first"])
def test_pending_then_settled_signals_once(
    plugipay_sandbox, signal_log, method, channel, field, route
):
    session = start()
    plugipay_sandbox.hold()
    started = plugipay_sandbox.start_async(session, method, channel=channel, deliver=False)
    if route == "sync_first":
        services.sync_checkout_session(session=session)
        plugipay_sandbox.release(duplicate=2)
    else:
        plugipay_sandbox.release(order="reverse", duplicate=2)
        services.sync_checkout_session(session=session)
    plugipay_sandbox.flush()
    session.refresh_from_db()
    assert session.status == "pending" and session.is_pending
    info = session.instructions
    assert isinstance(info, PaymentInstructions)
    assert info.method == method and getattr(info, field) and info.expires_at is not None
    assert info.channel == (channel or "")
    assert count(signal_log, "checkout_session_pending") == 1
    pending = Payment.objects.get(plugipay_id=started["payment"]["id"])
    assert pending.status == "pending" and pending.checkout_session == session

    plugipay_sandbox.hold()
    plugipay_sandbox.settle(started["payment"]["id"], deliver=False)
    if route == "sync_first":
        services.sync_checkout_session(session=session)
    plugipay_sandbox.release(order="shuffle", duplicate=2)
    plugipay_sandbox.flush()
    services.sync_checkout_session(session=session)
    session.refresh_from_db()
    pending.refresh_from_db()
    assert session.status == "completed" and pending.status == "succeeded"
    assert session.payment == pending
    assert count(signal_log, "payment_succeeded") == 1
    assert count(signal_log, "checkout_session_completed") == 1
    assert count(signal_log, "checkout_session_pending") == 1
    assert count(signal_log, "payment_failed") == 0


@pytest.mark.parametrize(("method", "channel", "field"), ASYNC)
def test_unpaid_pending_payment_fails_once_then_another_attempt_completes(
    plugipay_sandbox, signal_log, method, channel, field
):
    session = start(expires_in=3 * 24 * 3600)
    started = plugipay_sandbox.start_async(session, method, channel=channel)
    plugipay_sandbox.advance(24 * 3600 + 60 if method == "va" else 16 * 60)
    plugipay_sandbox.flush()
    services.sync_checkout_session(session=session)
    failed = Payment.objects.get(plugipay_id=started["payment"]["id"])
    assert failed.status == "failed" and failed.failure_code == "expired"
    assert count(signal_log, "payment_failed") == 1
    session.refresh_from_db()
    assert session.status == "open"
    plugipay_sandbox.pay(session)
    session.refresh_from_db()
    assert session.status == "completed" and session.payment.method == "card"
    assert count(signal_log, "payment_failed") == 1
    assert count(signal_log, "payment_succeeded") == 1
    assert count(signal_log, "checkout_session_pending") == 1


def test_second_pending_entry_after_a_failure_does_not_signal_again(plugipay_sandbox, signal_log):
    session = start()
    first = plugipay_sandbox.start_async(session, "qris")
    plugipay_sandbox.settle(first["payment"]["id"], "failed")
    second = plugipay_sandbox.start_async(session, "va")
    services.sync_checkout_session(session=session)
    session.refresh_from_db()
    assert session.status == "pending" and session.instructions.method == "va"
    assert count(signal_log, "checkout_session_pending") == 1
    assert count(signal_log, "payment_failed") == 1
    plugipay_sandbox.settle(second["payment"]["id"])
    assert count(signal_log, "payment_succeeded") == 1


def test_session_expiry_with_a_pending_payment_fails_it_once(plugipay_sandbox, signal_log):
    session = services.create_checkout_session(
        amount=10_000,
        currency="IDR",
        success_url="https://shop.test/ok",
        cancel_url="https://shop.test/no",
        methods=["va"],
        expires_in=3600,
    )
    plugipay_sandbox.start_async(session, "va")
    plugipay_sandbox.advance(3601)
    plugipay_sandbox.flush()
    services.sync_checkout_session(session=session)
    session.refresh_from_db()
    assert session.status == "expired"
    assert count(signal_log, "payment_failed") == 1
    assert count(signal_log, "checkout_session_expired") == 1


def test_docs_dialect_instructions(plugipay_sandbox, signal_log):
    plugipay_sandbox.configure(eventStyle="docs")
    session = start()
    plugipay_sandbox.start_async(session, "va", channel="Permata")
    session.refresh_from_db()
    assert session.status == "pending" and session.instructions.channel == "Permata"
    assert count(signal_log, "checkout_session_pending") == 1


def test_instructions_read_both_naming_styles():
    camel = PaymentInstructions.from_data(
        {"instructions": {"method": "va", "channel": "BCA", "accountNumber": "3935812345"}}
    )
    snake = PaymentInstructions.from_data(
        {"payment_instructions": {"method": "va", "bank": "BCA", "va_number": "3935812345"}}
    )
    assert camel == snake and camel.account_number == "3935812345"
    assert PaymentInstructions.from_data({"instructions": None}) is None
    assert PaymentInstructions.from_data(None) is None


def test_manual_transfer_confirmed_by_staff_in_the_admin(plugipay_sandbox, signal_log, client):
    session = start()
    plugipay_sandbox.claim(session, proof_url="https://proof.test/p.png")
    session.refresh_from_db()
    assert session.status == "pending_review"
    assert count(signal_log, "checkout_session_pending") == 1
    assert session.instructions.proof_url == "https://proof.test/p.png"

    client.force_login(staff("view_checkoutsession"))
    assert client.get(f"{SESSIONS}{session.pk}/confirm/").status_code == 403
    page = client.get(f"{SESSIONS}{session.pk}/change/").content.decode()
    assert "Confirm transfer received" not in page

    user = staff("confirm_payment")
    client.force_login(user)
    page = client.get(f"{SESSIONS}{session.pk}/change/").content.decode()
    assert f"{session.pk}/confirm/" in page
    confirm = client.get(f"{SESSIONS}{session.pk}/confirm/").content.decode()
    assert "IDR 250,000" in confirm and "https://proof.test/p.png" in confirm
    done = client.post(f"{SESSIONS}{session.pk}/confirm/", {"post": "yes"})
    assert done.status_code == 302
    session.refresh_from_db()
    assert session.status == "completed" and session.confirmed_by == user
    assert session.payment.plugipay_id == session.plugipay_id
    assert count(signal_log, "payment_succeeded") == 1
    assert LogEntry.objects.filter(object_id=str(session.pk)).count() == 1
    plugipay_sandbox.flush()
    assert count(signal_log, "payment_succeeded") == 1
    # The same page submitted again: its first outcome, nothing sent or logged twice.
    again = client.post(f"{SESSIONS}{session.pk}/confirm/", {"post": "yes"}, follow=True)
    assert "was already confirmed" in again.content.decode()
    assert LogEntry.objects.filter(object_id=str(session.pk)).count() == 1
    assert count(signal_log, "payment_succeeded") == 1


def test_confirm_action_lists_refused_rows(plugipay_sandbox, client):
    waiting, other = start(), start()
    plugipay_sandbox.claim(waiting)
    client.force_login(staff("confirm_payment"))
    selected = {"action": "confirm_transfers", "_selected_action": [waiting.pk, other.pk]}
    page = client.post(SESSIONS, selected).content.decode()
    assert "not waiting for review" in page
    client.post(SESSIONS, {**selected, "post": "yes"})
    assert CheckoutSession.objects.get(pk=waiting.pk).status == "completed"
    assert CheckoutSession.objects.get(pk=other.pk).status == "open"


def test_confirm_service_refuses_a_session_not_in_review(plugipay_sandbox):
    session = start()
    with pytest.raises(PlugipayError) as info:
        services.confirm_checkout_session(session=session)
    assert info.value.code == "not_pending_review"


def test_confirm_page_in_indonesian(plugipay_sandbox, client):
    session = start()
    plugipay_sandbox.claim(session)
    client.force_login(staff("confirm_payment"))
    with translation.override("id"):
        page = client.get(
            f"{SESSIONS}{session.pk}/confirm/", HTTP_ACCEPT_LANGUAGE="id"
        ).content.decode()
    assert "Rp 250.000" in page and "Ya, uangnya sudah masuk" in page


def test_a_pending_refund_shows_its_age_and_reconcile_keeps_polling_it(
    plugipay_sandbox, client, signal_log
):
    from django_plugipay.models import Refund

    plugipay_sandbox.configure(refundDelay=-1)  # stays pending until settled, like a VA refund
    payment = plugipay_sandbox.paid_payment(100_000)
    services.refund_payment(payment=payment, reason="requested_by_customer")
    refund = Refund.objects.get()
    assert refund.status == "pending" and refund.pending_for is not None
    Refund.objects.filter(pk=refund.pk).update(created_at=refund.created_at - dt.timedelta(days=2))
    client.force_login(staff("view_refund"))
    page = client.get("/admin/django_plugipay/refund/").content.decode()
    assert "2\xa0days" in page
    if find_spec("rest_framework"):  # the API is the `drf` extra
        api = client.get(f"/plugipay/api/refunds/{refund.plugipay_id}/").json()
        assert api["status"] == "pending" and api["pending_seconds"] >= 2 * 24 * 3600
    for _ in range(2):  # days go by: each reconciliation asks again
        services.reconcile()
        refund.refresh_from_db()
        assert refund.status == "pending"
    plugipay_sandbox.hold()  # the settling webhook is lost
    plugipay_sandbox.settle_refund(refund, deliver=False)
    services.reconcile()
    refund.refresh_from_db()
    assert refund.status == "succeeded" and refund.pending_for is None
    assert count(signal_log, "refund_succeeded") == 1


def test_the_api_shows_a_pending_sessions_instructions(plugipay_sandbox, client):
    pytest.importorskip("rest_framework")
    user = staff("view_checkoutsession")
    session = start()
    plugipay_sandbox.start_async(session, "va", channel="Mandiri")
    client.force_login(user)
    data = client.get(f"/plugipay/api/checkout-sessions/{session.plugipay_id}/").json()
    assert data["status"] == "pending"
    assert data["instructions"]["channel"] == "Mandiri"
    assert data["instructions"]["account_number"] and data["instructions"]["expires_at"]
