"""Refund: requested here, created at Plugipay by a task, settled by webhook or sync."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_plugipay.models.base import MirrorModel
from django_plugipay.models.enums import RefundReason, RefundStatus
from django_plugipay.models.querysets import RefundQuerySet
from django_plugipay.specs import status_group


class Refund(MirrorModel):
    # Overrides the abstract parent's field with a nullable one, as Django allows; the stubs
    # type that as an incompatible override of ``str``.
    plugipay_id = models.CharField(  # type: ignore[assignment]
        _("Plugipay id"),
        max_length=64,
        unique=True,
        null=True,
        blank=True,
        help_text=_("Empty until Plugipay has created the refund."),
    )
    payment = models.ForeignKey(
        "django_plugipay.Payment",
        verbose_name=_("payment"),
        on_delete=models.PROTECT,
        related_name="refunds",
    )
    amount = models.BigIntegerField(_("amount"), help_text=_("In the currency's minor unit."))
    currency = models.CharField(_("currency"), max_length=3)
    reason = models.CharField(_("reason"), max_length=32, choices=RefundReason.choices, blank=True)
    description = models.TextField(_("description"), blank=True)
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=RefundStatus.choices,
        default=RefundStatus.REQUESTED,
        db_index=True,
    )
    failure_code = models.CharField(_("failure code"), max_length=64, blank=True)
    failure_message = models.TextField(_("failure message"), blank=True)
    idempotency_key = models.CharField(
        _("idempotency key"),
        max_length=64,
        null=True,
        blank=True,
        help_text=_("Sent with every attempt to create this refund, so Plugipay makes one."),
    )
    submitting_until = models.DateTimeField(
        _("being sent until"),
        null=True,
        blank=True,
        editable=False,
        help_text=_(
            "Set while a process looks for this refund at Plugipay and sends it, past "
            "the time Plugipay keeps its idempotency key: no other process sends it "
            "meanwhile."
        ),
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("requested by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        # no constraint: an account's rows may be kept in its own database (ACCOUNT_DATABASE),
        # where the project's users are not
        db_constraint=False,
    )

    objects = RefundQuerySet.as_manager()
    #: Not a column: ``refund_payment`` sets it on the refund it returns, True when an
    #: idempotent retry got back the refund an earlier call created.
    replayed: bool

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="plugipay_refund_amount_gt_0"),
            # Plugipay scopes a key to the workspace: two accounts may use the same one.
            models.UniqueConstraint(
                fields=["account", "idempotency_key"], name="plugipay_refund_key_per_account"
            ),
        ]

    def __str__(self) -> str:
        return self.plugipay_id or f"refund #{self.pk} ({self.status})"

    @property
    def pending_for(self) -> dt.timedelta | None:
        """How long a refund not yet settled has waited (VA and e-wallet refunds can take
        days, plugipay-api.md §10.4); None once it succeeded, failed or was canceled."""
        if self.status not in status_group(type(self), "in_flight") or not self.created_at:
            return None
        return timezone.now() - self.created_at
