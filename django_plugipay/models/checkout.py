"""CheckoutSession: the mirror of a Plugipay checkout session."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from django_plugipay.models.base import MirrorModel
from django_plugipay.models.enums import PaymentStatus, SessionStatus
from django_plugipay.models.querysets import CheckoutSessionQuerySet


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

    objects = CheckoutSessionQuerySet.as_manager()

    class Meta:
        verbose_name = _("checkout session")
        verbose_name_plural = _("checkout sessions")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount__gte=0), name="plugipay_checkoutsession_amount_gte_0"
            ),
        ]

    @property
    def is_open(self) -> bool:
        return self.status in SessionStatus.open_states()

    @property
    def is_paid(self) -> bool:
        return self.status == SessionStatus.COMPLETED

    @property
    def payment(self):
        """The session's successful payment, if any (failed attempts are kept apart)."""
        return self.payments.filter(status=PaymentStatus.SUCCEEDED).first()
