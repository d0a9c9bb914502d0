"""The single apply path: every allowed and refused transition, each signal once."""

import pytest

from django_plugipay.resources.refunds import REFUND_REFERENCE_KEY
from django_plugipay.services import apply as engine
from django_plugipay.specs import UnresolvedReference
from tests.factories import PaymentFactory

pytestmark = pytest.mark.django_db

T0, T1, T2 = "2026-01-01T00:00:00.000Z", "2026-01-01T00:01:00.000Z", "2026-01-01T00:02:00.000Z"


def session(status, updated=T1, **extra):
    obj = {
        "id": "cs_1",
        "status": status,
        "amount": 5000,
        "currency": "IDR",
        "mode": "test",
        "updatedAt": updated,
        "hostedUrl": "https://pay.test/c/cs_1",
    }
    if status == "completed":
        obj.update(paymentId="pay_1", paymentMethod="card", completedAt=updated)
    return {**obj, **extra}


SESSION_SIGNAL = {
    "completed": "checkout_session_completed",
    "expired": "checkout_session_expired",
    "canceled": "checkout_session_canceled",
}


@pytest.mark.parametrize("start", ["open", "pending", "pending_review"])
@pytest.mark.parametrize("end", ["completed", "expired", "canceled"])
def test_open_states_move_to_every_terminal_state(signal_log, start, end):
    engine.upsert_checkout_session(session(start, T0))
    row = engine.upsert_checkout_session(session(end, T1))
    assert row.status == end
    names = [name for name, _ in signal_log]
    assert names.count(SESSION_SIGNAL[end]) == 1


@pytest.mark.parametrize("terminal", ["completed", "expired", "canceled"])
@pytest.mark.parametrize("late", ["open", "pending", "completed", "expired", "canceled"])
def test_terminal_sessions_never_move(signal_log, terminal, late):
    engine.upsert_checkout_session(session(terminal, T1))
    before = list(signal_log)
    row = engine.upsert_checkout_session(session(late, T2))
    assert row.status == terminal
    assert [n for n, _ in signal_log if n.startswith("checkout")] == [
        n for n, _ in before if n.startswith("checkout")
    ]


def test_stale_non_terminal_update_is_ignored():
    engine.upsert_checkout_session(session("pending", T1))
    assert engine.upsert_checkout_session(session("open", T0)).status == "pending"
    assert engine.upsert_checkout_session(session("open", T2)).status == "open"


def test_completion_creates_the_payment_once(signal_log):
    for _ in range(3):
        engine.upsert_checkout_session(session("completed"))
    row = engine.upsert_checkout_session(session("completed"))
    payment = row.payment
    assert payment.plugipay_id == "pay_1" and payment.amount == 5000
    assert payment.status == "succeeded" and payment.method == "card"
    assert signal_log == [("checkout_session_completed", "cs_1"), ("payment_succeeded", "pay_1")]


def payment(status, pid="pay_1", **extra):
    return {
        "id": pid,
        "status": status,
        "amount": 5000,
        "currency": "IDR",
        "checkoutSessionId": "cs_1",
        "mode": "test",
        **extra,
    }


@pytest.mark.parametrize(
    ("first", "then", "final", "signals"),
    [
        ("pending", "succeeded", "succeeded", ["payment_succeeded"]),
        ("pending", "failed", "failed", ["payment_failed"]),
        ("succeeded", "failed", "succeeded", ["payment_succeeded"]),
        ("failed", "succeeded", "failed", ["payment_failed"]),
        ("succeeded", "pending", "succeeded", ["payment_succeeded"]),
        ("succeeded", "succeeded", "succeeded", ["payment_succeeded"]),
    ],
)
def test_payment_transitions(signal_log, first, then, final, signals):
    engine.upsert_checkout_session(session("open", T0))  # the session it names, heard of first
    engine.upsert_payment(payment(first))
    row = engine.upsert_payment(payment(then))
    assert row.status == final
    assert [n for n, _ in signal_log if n.startswith("payment")] == signals


def refund(status, updated=T1, rid="rfd_1", **extra):
    return {
        "id": rid,
        "status": status,
        "amount": 1000,
        "currency": "IDR",
        "chargeId": "pay_x",
        "mode": "test",
        "updatedAt": updated,
        **extra,
    }


@pytest.mark.parametrize(
    ("first", "then", "final", "signals"),
    [
        ("pending", "succeeded", "succeeded", ["refund_succeeded"]),
        ("pending", "failed", "failed", ["refund_failed"]),
        ("pending", "canceled", "canceled", []),
        ("succeeded", "pending", "succeeded", ["refund_succeeded"]),
        ("succeeded", "failed", "succeeded", ["refund_succeeded"]),
        ("failed", "succeeded", "failed", ["refund_failed"]),
    ],
)
def test_refund_transitions_and_amount_refunded(signal_log, first, then, final, signals):
    paid = PaymentFactory(plugipay_id="pay_x", amount=5000)
    engine.upsert_refund(refund(first, T0))
    row = engine.upsert_refund(refund(then, T1))
    paid.refresh_from_db()
    assert row.status == final
    assert paid.amount_refunded == (1000 if final == "succeeded" else 0)
    assert [n for n, _ in signal_log] == signals


def test_requested_local_refund_is_matched_by_reference(signal_log):
    paid = PaymentFactory(plugipay_id="pay_x", amount=5000)
    local = paid.refunds.create(
        amount=1000, currency="IDR", idempotency_key="idem_ref", status="requested"
    )
    ref = {"metadata": {REFUND_REFERENCE_KEY: "idem_ref"}}
    engine.upsert_refund(refund("succeeded", **ref))
    engine.upsert_refund(refund("pending", T0, **ref))
    local.refresh_from_db()
    assert local.plugipay_id == "rfd_1" and local.status == "succeeded"
    assert paid.refunds.count() == 1 and signal_log == [("refund_succeeded", "rfd_1")]


def test_refund_for_an_unknown_payment_is_unresolved():
    with pytest.raises(UnresolvedReference):
        engine.upsert_refund(refund("succeeded"))
