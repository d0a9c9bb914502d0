"""The mirror models of Plugipay objects, and the webhook event log."""

from django_plugipay.models.checkout import BankAccount, CheckoutSession, PaymentInstructions
from django_plugipay.models.customers import Customer
from django_plugipay.models.enums import (
    EventSource,
    EventStatus,
    Mode,
    PaymentStatus,
    RefundReason,
    RefundStatus,
    SessionStatus,
)
from django_plugipay.models.events import SyncCursor, WebhookEvent
from django_plugipay.models.payments import Payment
from django_plugipay.models.refunds import Refund

__all__ = [
    "BankAccount",
    "CheckoutSession",
    "PaymentInstructions",
    "Customer",
    "EventSource",
    "EventStatus",
    "Mode",
    "Payment",
    "PaymentStatus",
    "Refund",
    "RefundReason",
    "RefundStatus",
    "SessionStatus",
    "SyncCursor",
    "WebhookEvent",
]
