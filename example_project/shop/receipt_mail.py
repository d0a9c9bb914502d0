"""The buyer's receipt by e-mail, with Plugipay's PDF attached.

Plugipay issues the receipt when the checkout session completes (or an invoice is paid); the
app mirrors it by itself and sends ``receipt_issued`` once. :func:`email_receipt_document`
listens as a durable receiver (connected in ``shop.receivers``): it runs after the receipt is
committed, is retried while the mail server fails, and never sends a succeeded mail again.
``delivery.key`` is stable across attempts: it is the message's ``Message-ID``, so a mail
server or inbox that already took the message (the process died before the delivery was
marked done) drops the repeat.

This module reads no shop model: the buyer's address is the receipt's Plugipay customer's.
"""

from django.core.mail import EmailMessage
from django.utils.translation import gettext as _

from django_plugipay import services
from django_plugipay.money import format_amount

#: the domain part of the ``Message-ID`` made from ``delivery.key``
MESSAGE_DOMAIN = "receipts.shop.example"


def receipt_message(receipt, *, key: str) -> EmailMessage | None:
    """The e-mail of ``receipt`` with its PDF attached, or None when it has no buyer address."""
    customer = receipt.customer
    if customer is None or not customer.email:
        return None
    response = services.receipt_document(receipt=receipt, format="pdf")
    with response:
        response.raise_for_status()
        pdf = response.content
    message = EmailMessage(
        _("Your receipt %(number)s") % {"number": receipt.number},
        _("Thank you for your payment of %(amount)s. Your receipt %(number)s is attached.")
        % {"amount": format_amount(receipt.amount, receipt.currency), "number": receipt.number},
        None,
        [customer.email],
        headers={"Message-ID": f"<{key}@{MESSAGE_DOMAIN}>"},
    )
    message.attach(f"{receipt.number or receipt.plugipay_id}.pdf", pdf, "application/pdf")
    return message


def email_receipt_document(sender, instance, event, delivery, **kwargs):
    """``receipt_issued``'s durable receiver: e-mail the buyer their receipt as a PDF (an
    exception — the mail server down — is retried with the same ``delivery.key``)."""
    message = receipt_message(instance, key=delivery.key)
    if message is not None:
        message.send()
