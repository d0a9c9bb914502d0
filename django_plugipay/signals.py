"""The public signals. Each is sent inside the transaction that records the change.

A receiver's database writes commit or roll back with that change; put email, HTTP and other
side effects in ``transaction.on_commit``. Every signal is sent with ``sender`` (the model
class), ``instance`` and ``event`` (the WebhookEvent, or None when a sync brought the news).
"""

from django.dispatch import Signal

#: sender=CheckoutSession, instance=CheckoutSession, event=WebhookEvent | None
checkout_session_completed = Signal()
#: sender=CheckoutSession, instance=CheckoutSession, event=WebhookEvent | None — once per
#: session, on its first entry into ``pending`` or ``pending_review`` (VA, QRIS, e-wallet,
#: retail or manual transfer chosen); ``instance.instructions`` says what the buyer must do.
checkout_session_pending = Signal()
#: sender=CheckoutSession, instance=CheckoutSession, event=WebhookEvent | None
checkout_session_expired = Signal()
#: sender=CheckoutSession, instance=CheckoutSession, event=WebhookEvent | None
checkout_session_canceled = Signal()
#: sender=Payment, instance=Payment, event=WebhookEvent | None
payment_succeeded = Signal()
#: sender=Payment, instance=Payment, event=WebhookEvent | None
payment_failed = Signal()
#: sender=Refund, instance=Refund, event=WebhookEvent | None
refund_succeeded = Signal()
#: sender=Refund, instance=Refund, event=WebhookEvent | None
refund_failed = Signal()
#: sender=WebhookEvent, instance=WebhookEvent, event=WebhookEvent — every verified event,
#: handled or not, sent once when it is first applied.
webhook_received = Signal()
