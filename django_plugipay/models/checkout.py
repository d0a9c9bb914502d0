"""CheckoutSession: the mirror of a Plugipay checkout session."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from django_plugipay import datetimes
from django_plugipay.models.base import MirrorModel
from django_plugipay.models.enums import PaymentStatus, SessionStatus
from django_plugipay.models.querysets import CheckoutSessionQuerySet
from django_plugipay.specs import status_group


@dataclasses.dataclass(frozen=True)
class BankAccount:
    bank_name: str
    account_number: str
    account_holder: str


@dataclasses.dataclass(frozen=True)
class PaymentInstructions:
    """What the buyer of a pending session must do (read from the mirrored object).

    ``method`` is ``va``, ``qris``, ``ewallet``, ``retail`` or ``manual``; ``channel`` the bank,
    e-wallet or outlet; ``account_number`` the virtual account; ``qr_string`` the QRIS payload
    (render it with any QR library); ``approval_url`` the e-wallet's page; ``payment_code`` the
    retail code; ``bank_accounts`` the merchant's accounts for a manual transfer;
    ``claimed_at``/``proof_url`` the buyer's claim of a manual transfer.
    """

    method: str
    channel: str = ""
    account_number: str = ""
    qr_string: str = ""
    qr_image_url: str = ""
    approval_url: str = ""
    payment_code: str = ""
    bank_accounts: tuple[BankAccount, ...] = ()
    amount: int | None = None
    currency: str = ""
    expires_at: dt.datetime | None = None
    payment_id: str = ""
    claimed_at: dt.datetime | None = None
    proof_url: str = ""
    heading: str = ""
    note: str = ""

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None) -> PaymentInstructions | None:
        """Read the ``instructions`` of a session or charge object, in either naming style
        (camelCase or snake_case keys; ``paymentInstructions`` also accepted)."""
        if not isinstance(data, Mapping):
            return None
        raw = next(
            (
                data[key]
                for key in ("instructions", "paymentInstructions", "payment_instructions")
                if isinstance(data.get(key), Mapping)
            ),
            None,
        )
        if raw is None:
            return None

        def text(*keys: str) -> str:
            value = next((raw[k] for k in keys if raw.get(k) not in (None, "")), "")
            return value if isinstance(value, str) else str(value)

        accounts = raw.get("bankAccounts") or raw.get("bank_accounts") or []
        amount = raw.get("amount")
        return cls(
            method=text("method", "paymentMethod") or str(data.get("paymentMethod") or ""),
            channel=text("channel", "bank", "bankCode", "bank_code"),
            account_number=text("accountNumber", "account_number", "vaNumber", "va_number"),
            qr_string=text("qrString", "qr_string"),
            qr_image_url=text("qrImageUrl", "qr_image_url"),
            approval_url=text("approvalUrl", "approval_url"),
            payment_code=text("paymentCode", "payment_code"),
            bank_accounts=tuple(
                BankAccount(
                    bank_name=str(a.get("bankName") or a.get("bank_name") or ""),
                    account_number=str(a.get("accountNumber") or a.get("account_number") or ""),
                    account_holder=str(a.get("accountHolder") or a.get("account_holder") or ""),
                )
                for a in accounts
                if isinstance(a, Mapping)
            ),
            amount=amount if isinstance(amount, int) and not isinstance(amount, bool) else None,
            currency=text("currency"),
            expires_at=_moment(text("expiresAt", "expires_at")),
            payment_id=text("paymentId", "payment_id", "chargeId"),
            claimed_at=_moment(text("claimedAt", "claimed_at")),
            proof_url=text("proofUrl", "proof_url"),
            heading=text("heading"),
            note=text("note"),
        )


def _moment(value: str) -> dt.datetime | None:
    return datetimes.parse(value)


class CheckoutSession(MirrorModel):
    customer = models.ForeignKey(
        "django_plugipay.Customer",
        verbose_name=_("customer"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="checkout_sessions",
    )
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=SessionStatus.choices,
        default=SessionStatus.OPEN,
        db_index=True,
    )
    amount = models.BigIntegerField(_("amount"), help_text=_("In the currency's minor unit."))
    currency = models.CharField(_("currency"), max_length=3)
    url = models.URLField(_("hosted URL"), max_length=2048, blank=True)
    success_url = models.URLField(_("success URL"), max_length=2048, blank=True)
    cancel_url = models.URLField(_("cancel URL"), max_length=2048, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    payment_method = models.CharField(_("payment method"), max_length=32, blank=True)
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    pending_at = models.DateTimeField(
        _("pending since"),
        null=True,
        blank=True,
        help_text=_("When the buyer first started a VA, QRIS, e-wallet or manual payment."),
    )
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("confirmed by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("The member of staff who confirmed a manual transfer."),
        # no constraint: an account's rows may be kept in its own database (ACCOUNT_DATABASE),
        # where the project's users are not
        db_constraint=False,
    )
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)

    objects = CheckoutSessionQuerySet.as_manager()

    class Meta:
        verbose_name = _("checkout session")
        verbose_name_plural = _("checkout sessions")
        ordering = ["-created_at"]
        permissions = [("confirm_payment", _("Can confirm manual transfers"))]
        # the sweeper looks for the receipts of sessions completed in the last day
        indexes = [models.Index(fields=["completed_at"], name="plugipay_cs_completed_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount__gte=0), name="plugipay_checkoutsession_amount_gte_0"
            ),
        ]

    @property
    def is_open(self) -> bool:
        return self.status in status_group(type(self), "open")

    @property
    def is_paid(self) -> bool:
        return self.status == SessionStatus.COMPLETED

    @property
    def is_pending(self) -> bool:
        return self.status in (SessionStatus.PENDING, SessionStatus.PENDING_REVIEW)

    @property
    def instructions(self) -> PaymentInstructions | None:
        """What the buyer must do to pay a pending session (VA number, QR, e-wallet approval,
        retail code, the merchant's accounts), read from the mirrored session object or, when
        only a ``payment.*`` event brought it, from the session's pending payment."""
        found = PaymentInstructions.from_data(self.data)
        if found is None and self.pk is not None:
            pending = self.payments.filter(status=PaymentStatus.PENDING).order_by("-pk").first()
            found = PaymentInstructions.from_data(pending.data if pending else None)
        return found

    @property
    def payment(self):
        """The session's successful payment, if any (failed attempts are kept apart)."""
        return self.payments.filter(status=PaymentStatus.SUCCEEDED).first()
