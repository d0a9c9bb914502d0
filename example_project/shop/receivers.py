"""Fulfilment: the shop reacts to django_plugipay's signals.

Plain receivers run inside the transaction that records the payment: their database writes
commit with it. Emails go out from durable receivers: recorded with the change, run after it
commits, retried until they return, never sent twice. Each signal fires once per transition,
so the order is marked paid exactly once.
"""

from django.core.mail import send_mail
from django.db.models import F
from django.dispatch import receiver
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.timezone import localtime
from django.utils.translation import gettext as _

from django_plugipay import durable_receiver
from django_plugipay.signals import (
    checkout_session_canceled,
    checkout_session_expired,
    checkout_session_pending,
    payment_succeeded,
    receipt_issued,
    refund_succeeded,
)
from shop.models import Order
from shop.receipt_mail import email_receipt_document

# Plugipay's receipt (the PDF, with PPN when the tax setting is on), e-mailed once it is issued
durable_receiver(receipt_issued, name="shop.email_receipt_document")(email_receipt_document)


def order_id_for(session):
    return (session.metadata or {}).get("order") if session else None


def order_for(session):
    order_id = order_id_for(session)
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


@durable_receiver(payment_succeeded, name="shop.send_receipt")
def send_receipt(sender, instance, event, delivery, **kwargs):
    """After the payment committed: email the receipt (retried until the mail goes out)."""
    order_id = order_id_for(instance.checkout_session)
    if not order_id:
        return
    order = Order.objects.select_related("user", "product").filter(pk=order_id).first()
    if order is None or order.paid_at is None:
        return
    send_mail(
        _("Receipt for %(order)s") % {"order": order},
        _("Thank you! We received %(amount)s for %(product)s × %(quantity)d.")
        % {"amount": order.amount_display, "product": order.product, "quantity": order.quantity},
        None,
        [order.user.email or "buyer@example.com"],
    )
    Order.objects.filter(pk=order.pk).update(receipts_sent=F("receipts_sent") + 1)


@durable_receiver(checkout_session_pending, name="shop.send_payment_instructions")
def send_payment_instructions(sender, instance, event, delivery, **kwargs):
    """The buyer chose a bank transfer, QRIS, an e-wallet or a manual transfer: email what to
    do (once: the signal fires once per session), after the change commits."""
    order_id = order_id_for(instance)
    if order_id and Order.objects.filter(pk=order_id, status=Order.Status.PENDING).exists():
        send_instructions(order_id)


def instructions_text(order) -> str:
    """The instructions of an order's pending session as lines of text (email and page)."""
    info = order.checkout_session.instructions if order.checkout_session else None
    if info is None:
        return ""
    lines = []
    if info.method == "manual":
        lines.append(
            _("Transfer %(amount)s to one of these accounts:") % {"amount": order.amount_display}
        )
        lines += [
            f"  {a.bank_name} {a.account_number} ({a.account_holder})" for a in info.bank_accounts
        ]
        lines.append(_("We confirm your transfer as soon as it arrives."))
    else:
        lines.append(_("Amount: %(amount)s") % {"amount": order.amount_display})
        if info.channel:
            lines.append(_("Bank / provider: %(channel)s") % {"channel": info.channel})
        if info.account_number:
            lines.append(_("Virtual account number: %(number)s") % {"number": info.account_number})
        if info.payment_code:
            lines.append(_("Payment code: %(code)s") % {"code": info.payment_code})
        if info.approval_url:
            lines.append(_("Approve in your e-wallet: %(url)s") % {"url": info.approval_url})
        if info.qr_string:
            lines.append(_("QRIS: %(qr)s") % {"qr": info.qr_string})
        if info.expires_at:
            deadline = date_format(localtime(info.expires_at), "DATETIME_FORMAT")
            lines.append(_("Pay before: %(deadline)s") % {"deadline": deadline})
    return "\n".join(lines)


def send_instructions(order_id: int) -> None:
    order = Order.objects.select_related("user", "product", "checkout_session").get(pk=order_id)
    send_mail(
        _("Waiting for your transfer: %(order)s") % {"order": order},
        instructions_text(order),
        None,
        [order.user.email or "buyer@example.com"],
    )


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
