"""The mirror models of Plugipay objects, and the webhook event log.

Every module of this package is imported (below), so a new model module registers its models
without an entry here; the names imported here are the package's public ones.
"""

import importlib
import pkgutil

from django_plugipay.models.accounts import Account
from django_plugipay.models.billing import Invoice, Plan, Price, Subscription
from django_plugipay.models.checkout import BankAccount, CheckoutSession, PaymentInstructions
from django_plugipay.models.customers import Customer
from django_plugipay.models.deliveries import Delivery
from django_plugipay.models.enums import (
    CollectionMethod,
    DeliveryStatus,
    EventSource,
    EventStatus,
    InvoiceStatus,
    Mode,
    PaymentMethod,
    PaymentStatus,
    PlanInterval,
    PriceModel,
    RefundReason,
    RefundStatus,
    SessionStatus,
    SubscriptionStatus,
    TaxMode,
)
from django_plugipay.models.events import SyncCursor, WebhookEvent
from django_plugipay.models.money import (
    LedgerDirection,
    LedgerEntry,
    Payout,
    PayoutMethod,
    PayoutStatus,
    Receipt,
)
from django_plugipay.models.payments import Payment
from django_plugipay.models.refunds import Refund

__all__ = [
    "Account",
    "BankAccount",
    "CheckoutSession",
    "CollectionMethod",
    "PaymentInstructions",
    "Customer",
    "Delivery",
    "DeliveryStatus",
    "EventSource",
    "EventStatus",
    "Invoice",
    "LedgerDirection",
    "LedgerEntry",
    "InvoiceStatus",
    "Mode",
    "Payment",
    "Payout",
    "PayoutMethod",
    "PayoutStatus",
    "PaymentMethod",
    "PaymentStatus",
    "Plan",
    "PlanInterval",
    "Price",
    "PriceModel",
    "Receipt",
    "Refund",
    "RefundReason",
    "RefundStatus",
    "SessionStatus",
    "Subscription",
    "SubscriptionStatus",
    "SyncCursor",
    "TaxMode",
    "WebhookEvent",
]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
