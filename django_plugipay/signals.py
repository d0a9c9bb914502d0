"""The public signals. Each is sent inside the transaction that records the change.

A receiver's database writes commit or roll back with that change; put email, HTTP and other
side effects in a ``django_plugipay.durable_receiver`` (recorded with the change, run after
commit, retried until it returns). Every signal is sent with ``sender`` (the model
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

# Recurring billing. "Once per transition", like the rest: whichever route brought the news.

#: sender=Subscription, instance=Subscription, event=WebhookEvent | None — the subscription is
#: first mirrored here (whatever its status: a first sight of an active one also sends
#: ``subscription_activated``).
subscription_created = Signal()
#: sender=Subscription, instance=Subscription, event=WebhookEvent | None — into ``active`` from
#: any other status (trial ended and paid, first invoice paid, past due recovered, resumed).
subscription_activated = Signal()
#: sender=Subscription, instance=Subscription, event=WebhookEvent | None — a new period began
#: while the subscription stayed active (renewal paid, or invoiced for ``send_invoice``).
subscription_renewed = Signal()
#: sender=Subscription, instance=Subscription, event=WebhookEvent | None — a renewal or an
#: invoice went unpaid; Plugipay retries (dunning) and cancels after the last retry.
subscription_past_due = Signal()
#: sender=Subscription, instance=Subscription, event=WebhookEvent | None
subscription_paused = Signal()
#: sender=Subscription, instance=Subscription, event=WebhookEvent | None — out of ``paused``.
subscription_resumed = Signal()
#: sender=Subscription, instance=Subscription, event=WebhookEvent | None — terminal; a cancel
#: scheduled for the period end sends it when the period ends, not when it is scheduled.
subscription_canceled = Signal()
#: sender=Subscription, instance=Subscription, event=WebhookEvent | None — the plan or price
#: changed.
subscription_updated = Signal()
#: sender=Invoice, instance=Invoice, event=WebhookEvent | None
invoice_paid = Signal()
#: sender=Invoice, instance=Invoice, event=WebhookEvent | None — once per failed collection
#: attempt (a declined charge), while the invoice is unpaid.
invoice_payment_failed = Signal()
#: sender=Invoice, instance=Invoice, event=WebhookEvent | None
invoice_voided = Signal()

# The account.

#: sender=WebhookEvent, instance=WebhookEvent, event=WebhookEvent, endpoint=dict — Plugipay
#: disabled a webhook endpoint (20 consecutive failed deliveries over 24 h); ``endpoint`` is
#: the endpoint object as the event carries it (``id``, ``url``, ``disabledReason``…). Sent
#: once per event, whichever route (a webhook to another endpoint, reconciliation) brought it.
webhook_endpoint_disabled = Signal()

# Money out. "Once per transition", like the rest: whichever route brought the news.

#: sender=Payout, instance=Payout, event=WebhookEvent | None — the money reached the bank.
payout_paid = Signal()
#: sender=Payout, instance=Payout, event=WebhookEvent | None — ``instance.failure_reason`` says
#: why; the money is back in the available balance.
payout_failed = Signal()
#: sender=Payout, instance=Payout, event=WebhookEvent | None — canceled before it left.
payout_canceled = Signal()
#: sender=Receipt, instance=Receipt, event=None — the receipt is first mirrored here (receipts
#: come by sync: ``services.sync_receipts``, or a buyer opening it).
receipt_issued = Signal()
