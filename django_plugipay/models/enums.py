"""Status and reason choices, named as the Plugipay API names them."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Mode(models.TextChoices):
    TEST = "test", _("Test")
    LIVE = "live", _("Live")


class SessionStatus(models.TextChoices):
    OPEN = "open", _("Open")
    PENDING = "pending", _("Pending")
    PENDING_REVIEW = "pending_review", _("Pending review")
    COMPLETED = "completed", _("Completed")
    EXPIRED = "expired", _("Expired")
    CANCELED = "canceled", _("Canceled")
    FAILED = "failed", _("Failed")


class PaymentStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")


class PaymentMethod(models.TextChoices):
    """The payment methods Plugipay names (``Payment.method``, a session's
    ``payment_method``, a receipt's ``method``). Not the fields' choices: a method Plugipay
    adds is stored as it comes, and shown by its code (:meth:`label_of`)."""

    CARD = "card", _("Card")
    VA = "va", _("Bank transfer (VA)")
    QRIS = "qris", "QRIS"
    EWALLET = "ewallet", _("E-wallet")
    RETAIL = "retail", _("Retail outlet")
    PAYPAL = "paypal", "PayPal"
    MANUAL = "manual", _("Manual transfer")

    @classmethod
    def label_of(cls, code: str | None) -> str:
        """What staff read for ``code``: its label, an unknown code as it is, none as a dash."""
        if not code:
            return "—"
        return str(cls(code).label) if code in cls.values else code


class RefundStatus(models.TextChoices):
    REQUESTED = "requested", _("Requested")
    PENDING = "pending", _("Pending")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELED = "canceled", _("Canceled")


class RefundReason(models.TextChoices):
    DUPLICATE = "duplicate", _("Duplicate")
    FRAUDULENT = "fraudulent", _("Fraudulent")
    REQUESTED_BY_CUSTOMER = "requested_by_customer", _("Requested by customer")
    OTHER = "other", _("Other")


class EventStatus(models.TextChoices):
    RECEIVED = "received", _("Received")
    PROCESSED = "processed", _("Processed")
    FAILED = "failed", _("Failed")
    IGNORED = "ignored", _("Ignored")


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    DEAD = "dead", _("Dead")
    RESOLVED = "resolved", _("Resolved")

    @classmethod
    def finished_states(cls) -> tuple[str, ...]:
        """Never run again: returned, or marked as resolved by staff."""
        return (cls.SUCCEEDED, cls.RESOLVED)


class EventSource(models.TextChoices):
    WEBHOOK = "webhook", _("Webhook")
    RECONCILE = "reconcile", _("Reconciliation")


class PlanInterval(models.TextChoices):
    DAY = "day", _("Day")
    WEEK = "week", _("Week")
    MONTH = "month", _("Month")
    YEAR = "year", _("Year")


class PriceModel(models.TextChoices):
    FLAT = "flat", _("Flat")
    TIERED = "tiered", _("Tiered")
    VOLUME = "volume", _("Volume")
    USAGE = "usage", _("Usage")


class TaxMode(models.TextChoices):
    INCLUSIVE = "inclusive", _("Inclusive")
    EXCLUSIVE = "exclusive", _("Exclusive")


class SubscriptionStatus(models.TextChoices):
    INCOMPLETE = "incomplete", _("Incomplete")
    TRIALING = "trialing", _("Trialing")
    ACTIVE = "active", _("Active")
    PAST_DUE = "past_due", _("Past due")
    PAUSED = "paused", _("Paused")
    CANCELED = "canceled", _("Canceled")


class CollectionMethod(models.TextChoices):
    CHARGE_AUTOMATICALLY = "charge_automatically", _("Charge automatically")
    SEND_INVOICE = "send_invoice", _("Send invoice")


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    OPEN = "open", _("Open")
    PAST_DUE = "past_due", _("Past due")
    UNCOLLECTIBLE = "uncollectible", _("Uncollectible")
    PAID = "paid", _("Paid")
    VOID = "void", _("Void")
