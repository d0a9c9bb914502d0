from django.core.mail import send_mail
from django.db import transaction
from django.dispatch import receiver

from django_plugipay.signals import payment_succeeded
from shop.models import Order


@receiver(payment_succeeded)
def fulfil_order(sender, instance, event, **kwargs):
    session = instance.checkout_session
    # Not every payment is for an order of this shop (an invoice payment has no session, a
    # session created elsewhere has no "order" in its metadata): leave those alone.
    order_id = session.metadata.get("order") if session is not None else None
    if order_id is None:
        return
    order = Order.objects.select_for_update().get(pk=order_id)
    order.mark_paid()  # commits, or rolls back, with the payment itself
    # Side effects outside the database run only once the payment is committed.
    transaction.on_commit(lambda: send_receipt(order))


def send_receipt(order):
    send_mail(
        f"Receipt for order #{order.pk}",
        f"Thank you! We received IDR {order.amount:,} for {order.item}.",
        None,
        [order.user.email],
    )
