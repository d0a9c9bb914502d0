"""Invariants enforced by the database itself."""

import pytest
from django.db import IntegrityError, transaction

from django_plugipay.models import Payment, Refund
from tests.factories import CheckoutSessionFactory, PaymentFactory, RefundFactory

pytestmark = pytest.mark.django_db


def test_amount_refunded_above_amount_is_rejected():
    payment = PaymentFactory(amount=1000)
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.filter(pk=payment.pk).update(amount_refunded=1001)


def test_negative_amount_refunded_is_rejected():
    payment = PaymentFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.filter(pk=payment.pk).update(amount_refunded=-1)


@pytest.mark.parametrize("amount", [0, -5])
def test_refund_amount_must_be_positive(amount):
    payment = PaymentFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Refund.objects.create(payment=payment, amount=amount, currency="IDR")


def test_plugipay_id_is_unique():
    session = CheckoutSessionFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        CheckoutSessionFactory(plugipay_id=session.plugipay_id)


def test_one_successful_payment_per_session_but_many_failed_attempts():
    first = PaymentFactory(status="failed")
    PaymentFactory(checkout_session=first.checkout_session, status="failed")
    PaymentFactory(checkout_session=first.checkout_session, status="succeeded")
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentFactory(checkout_session=first.checkout_session, status="succeeded")


def test_local_refunds_may_wait_without_a_plugipay_id():
    payment = PaymentFactory()
    RefundFactory(payment=payment, plugipay_id=None, status="requested")
    RefundFactory(payment=payment, plugipay_id=None, status="requested")
    assert payment.refunds.in_flight().count() == 2


def test_properties_and_querysets():
    payment = PaymentFactory(amount=1000, amount_refunded=400)
    assert payment.is_partially_refunded and payment.refund_state == "partially_refunded"
    assert list(Payment.objects.refundable()) == [payment]
    Payment.objects.filter(pk=payment.pk).update(amount_refunded=1000)
    payment.refresh_from_db()
    assert payment.is_refunded and not Payment.objects.refundable().exists()
    assert payment.checkout_session.payment == payment
    assert str(payment) == payment.plugipay_id
