"""Fulfilment: the shop reacts to django_plugipay's signals.

Receivers run inside the transaction that records the payment: their database writes commit
with it, and the receipt email goes out in ``transaction.on_commit`` so a rollback never sends
one. Each signal fires once per transition, so the order is marked paid exactly once.
"""

from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.dispatch import receiver
from django.utils import timezone

from django_plugipay.signals import (
    checkout_session_canceled,
    checkout_session_expired,
    payment_succeeded,
    refund_succeeded,
)
from shop.models import Order


def order_for(session):
    order_id = (session.metadata or {}).get("order") if session else None
    if not order_id:
        return None
    return Order.objects.select_for_update().filter(pk=order_id).first()


@receiver(payment_succeeded)
def mark_paid(sender, instance, event, **kwargs):
    order = order_for(instance.checkout_session)
    if order is None or order.status != Order.Status.PENDING:
        return
    order.status = Order.Status.PAID
    order.paid_at = timezone.now()
    order.checkout_session = instance.checkout_session
    order.save(update_fields=["status", "paid_at", "checkout_session"])
    transaction.on_commit(lambda: send_receipt(order.pk))


def send_receipt(order_id: int) -> None:
    order = Order.objects.select_related("user", "product").get(pk=order_id)
    send_mail(
        f"Receipt for {order}",
        f"Thank you! We received {order.amount_display} for {order.product} × {order.quantity}.",
        None,
        [order.user.email or "buyer@example.com"],
    )
    Order.objects.filter(pk=order_id).update(receipts_sent=F("receipts_sent") + 1)


@receiver(refund_succeeded)
def mark_refunded(sender, instance, event, **kwargs):
    order = order_for(instance.payment.checkout_session)
    if order is None:
        return
    payment = type(instance.payment).objects.get(pk=instance.payment_id)  # fresh totals
    order.status = Order.Status.REFUNDED if payment.is_refunded else Order.Status.PARTIALLY_REFUNDED
    order.save(update_fields=["status"])


@receiver(checkout_session_expired)
@receiver(checkout_session_canceled)
def mark_canceled(sender, instance, event, **kwargs):
    order = order_for(instance)
    if order is not None and order.status == Order.Status.PENDING:
        order.status = Order.Status.CANCELED
        order.save(update_fields=["status"])
