"""Money out: payouts to the merchant's bank, receipts issued to buyers, and the ledger."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from django_plugipay.models.base import MirrorModel
from django_plugipay.models.querysets import owned_by
from django_plugipay.money import format_amount
from django_plugipay.specs import status_group


class PayoutStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    IN_TRANSIT = "in_transit", _("In transit")
    PAID = "paid", _("Paid")
    FAILED = "failed", _("Failed")
    CANCELED = "canceled", _("Canceled")


class PayoutMethod(models.TextChoices):
    MANUAL = "manual", _("Manual")
    XENDIT_DISBURSEMENT = "xendit_disbursement", _("Xendit disbursement")


class LedgerDirection(models.TextChoices):
    DEBIT = "debit", _("Debit")
    CREDIT = "credit", _("Credit")


class PayoutQuerySet(models.QuerySet):
    def locking(self) -> PayoutQuerySet:
        """Payouts still holding money (pending, in transit: the spec's ``locking`` group)."""
        return self.filter(status__in=status_group(self.model, "locking"))

    def for_user(self, user) -> PayoutQuerySet:
        """Payouts are the merchant's: no buyer owns one."""
        return self.none()


class ReceiptQuerySet(models.QuerySet):
    def for_user(self, user) -> ReceiptQuerySet:
        """The receipts of ``user``'s Plugipay customer, in the configured mode."""
        return owned_by(self, user)


class LedgerEntryQuerySet(models.QuerySet):
    def for_user(self, user) -> LedgerEntryQuerySet:
        """The ledger is the merchant's: no buyer owns an entry."""
        return self.none()


class Payout(MirrorModel):
    # Nullable like a refund's: the row is written (with its idempotency key) before the call.
    plugipay_id = models.CharField(  # type: ignore[assignment]
        _("Plugipay id"),
        max_length=64,
        unique=True,
        null=True,
        blank=True,
        help_text=_("Empty until Plugipay has created the payout."),
    )
    amount = models.BigIntegerField(_("amount"), help_text=_("In the currency's minor unit."))
    currency = models.CharField(_("currency"), max_length=3, default="IDR")
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=PayoutStatus.choices,
        default=PayoutStatus.PENDING,
        db_index=True,
    )
    method = models.CharField(
        _("method"), max_length=32, choices=PayoutMethod.choices, default=PayoutMethod.MANUAL
    )
    bank_code = models.CharField(_("bank code"), max_length=32, blank=True)
    bank_name = models.CharField(_("bank name"), max_length=100, blank=True)
    bank_account_last4 = models.CharField(
        _("account number (last 4)"),
        max_length=4,
        blank=True,
        help_text=_("Only the last four digits are kept."),
    )
    bank_account_holder = models.CharField(_("account holder"), max_length=100, blank=True)
    note = models.TextField(_("note"), blank=True)
    reference = models.CharField(_("reference"), max_length=255, blank=True)
    failure_reason = models.TextField(_("failure reason"), blank=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    idempotency_key = models.CharField(
        _("idempotency key"),
        max_length=64,
        null=True,
        blank=True,
        help_text=_("Sent with every attempt to create this payout, so Plugipay makes one."),
    )
    submitted_at = models.DateTimeField(
        _("submitted at"),
        null=True,
        blank=True,
        help_text=_("When this payout was last sent to Plugipay; empty when it never was."),
    )
    failure_code = models.CharField(
        _("failure code"),
        max_length=64,
        blank=True,
        help_text=_("Why the payout failed here without Plugipay saying so."),
    )
    one_off = models.BooleanField(
        _("one-off bank account"),
        default=False,
        help_text=_(
            "Sent to bank details given for this payout only; they are not kept, so a "
            "payout that never reached Plugipay cannot be sent again."
        ),
    )

    objects = PayoutQuerySet.as_manager()
    #: Not a column: ``create_payout`` sets it on the payout it returns, True when a call
    #: with an earlier call's idempotency key got back that call's payout.
    replayed: bool

    class Meta:
        verbose_name = _("payout")
        verbose_name_plural = _("payouts")
        ordering = ["-created_at"]
        permissions = [("manage_payout", _("Can create payouts and mark them"))]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="plugipay_payout_amount_gt_0"),
            models.CheckConstraint(
                condition=Q(status__in=PayoutStatus.values), name="plugipay_payout_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(method__in=PayoutMethod.values), name="plugipay_payout_method_valid"
            ),
            # Plugipay scopes a key to the workspace: two accounts may use the same one.
            models.UniqueConstraint(
                fields=["account", "idempotency_key"], name="plugipay_payout_key_per_account"
            ),
        ]

    def __str__(self) -> str:
        if self.plugipay_id:
            return self.plugipay_id
        return _("payout #%(pk)s (%(status)s)") % {
            "pk": self.pk,
            "status": self.get_status_display().lower(),
        }

    @property
    def masked_account(self) -> str:
        """The destination as staff see it: ``BCA ••••1234``."""
        last4 = f"••••{self.bank_account_last4}" if self.bank_account_last4 else ""
        return " ".join(part for part in (self.bank_name, last4) if part)


class Receipt(MirrorModel):
    number = models.CharField(_("number"), max_length=64, blank=True)
    source_type = models.CharField(_("source type"), max_length=32, blank=True)
    source_id = models.CharField(_("source id"), max_length=64, blank=True, db_index=True)
    payment = models.ForeignKey(
        "django_plugipay.Payment",
        verbose_name=_("payment"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="receipts",
    )
    invoice = models.ForeignKey(
        "django_plugipay.Invoice",
        verbose_name=_("invoice"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="receipts",
    )
    customer = models.ForeignKey(
        "django_plugipay.Customer",
        verbose_name=_("customer"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="receipts",
    )
    amount = models.BigIntegerField(_("amount"), help_text=_("The total, tax included."))
    currency = models.CharField(_("currency"), max_length=3)
    method = models.CharField(_("method"), max_length=32, blank=True)
    subtotal = models.BigIntegerField(_("subtotal"), default=0)
    tax_amount = models.BigIntegerField(
        _("tax amount"), default=0, help_text=_("The PPN inside the total (0 without PPN).")
    )
    issued_at = models.DateTimeField(_("issued at"), null=True, blank=True)
    emailed_at = models.DateTimeField(_("emailed at"), null=True, blank=True)

    objects = ReceiptQuerySet.as_manager()

    class Meta:
        verbose_name = _("receipt")
        verbose_name_plural = _("receipts")
        ordering = ["-issued_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gte=0) & Q(subtotal__gte=0) & Q(tax_amount__gte=0),
                name="plugipay_receipt_amounts_gte_0",
            ),
        ]

    def __str__(self) -> str:
        return self.number or self.plugipay_id


class LedgerEntry(MirrorModel):
    tx_id = models.CharField(_("transaction id"), max_length=64, db_index=True)
    code = models.CharField(_("code"), max_length=64, db_index=True)
    direction = models.CharField(_("direction"), max_length=6, choices=LedgerDirection.choices)
    amount = models.BigIntegerField(_("amount"), help_text=_("In the currency's minor unit."))
    currency = models.CharField(_("currency"), max_length=3)
    source_type = models.CharField(_("source type"), max_length=32, blank=True)
    source_id = models.CharField(_("source id"), max_length=64, blank=True)
    memo = models.TextField(_("memo"), blank=True)
    posted_at = models.DateTimeField(_("posted at"), null=True, blank=True, db_index=True)

    objects = LedgerEntryQuerySet.as_manager()

    class Meta:
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger entries")
        ordering = ["-posted_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gte=0), name="plugipay_ledgerentry_amount_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(direction__in=LedgerDirection.values),
                name="plugipay_ledgerentry_direction_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tx_id} {self.code} {self.get_direction_display().lower()} " + format_amount(
            self.amount, self.currency
        )
