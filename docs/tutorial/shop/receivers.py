from django.core.mail import send_mail
from django.dispatch import receiver

from django_plugipay import durable_receiver
from django_plugipay.signals import payment_succeeded
from shop.models import Order


def order_id_of(payment):
    # Not every payment is for an order of this shop (an invoice payment has no session, a
    # session created elsewhere has no "order" in its metadata): leave those alone.
    session = payment.checkout_session
    return session.metadata.get("order") if session is not None else None


@receiver(payment_succeeded)
def fulfil_order(sender, instance, event, **kwargs):
    order_id = order_id_of(instance)
    if order_id is None:
        return
    order = Order.objects.select_for_update().filter(pk=order_id).first()
    if order is None:  # deleted meanwhile: the payment is recorded all the same
        return
    order.mark_paid()  # commits, or rolls back, with the payment itself


@durable_receiver(payment_succeeded)
def send_receipt(sender, instance, event, delivery, **kwargs):
    # Runs once the payment is committed; retried until it returns, never again after.
    order_id = order_id_of(instance)
    if order_id is None:
        return
    order = Order.objects.select_related("user").filter(pk=order_id).first()
    if order is None:
        return
    send_mail(
        f"Receipt for order #{order.pk}",
        f"Thank you! We received IDR {order.amount:,} for {order.item}.",
        None,
        [order.user.email],
    )
