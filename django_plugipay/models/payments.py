"""Payment: a Plugipay charge, born when a session completes or from a ``payment.*`` event."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.db.models.fields.json import KeyTransform
from django.utils.translation import gettext_lazy as _

from django_plugipay.models.base import MirrorModel
from django_plugipay.models.enums import PaymentStatus
from django_plugipay.models.querysets import PaymentQuerySet


class Payment(MirrorModel):
    checkout_session = models.ForeignKey(
        "django_plugipay.CheckoutSession",
        verbose_name=_("checkout session"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="payments",
    )
    invoice = models.ForeignKey(
        "django_plugipay.Invoice",
        verbose_name=_("invoice"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="payments",
        help_text=_("The invoice this charge paid (subscription payments)."),
    )
    customer = models.ForeignKey(
        "django_plugipay.Customer",
        verbose_name=_("customer"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="payments",
    )
    amount = models.BigIntegerField(_("amount"), help_text=_("In the currency's minor unit."))
    amount_refunded = models.BigIntegerField(
        _("amount refunded"), default=0, help_text=_("The sum of succeeded refunds.")
    )
    currency = models.CharField(_("currency"), max_length=3)
    status = models.CharField(
        _("status"),
        max_length=20,
        choices=PaymentStatus.choices,
        default=PaymentStatus.PENDING,
        db_index=True,
    )
    method = models.CharField(_("method"), max_length=32, blank=True)
    failure_code = models.CharField(_("failure code"), max_length=64, blank=True)
    failure_message = models.TextField(_("failure message"), blank=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)

    objects = PaymentQuerySet.as_manager()

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["-created_at"]
        permissions = [("refund_payment", _("Can refund payments"))]
        indexes = [
            # a paid invoice links the payments heard of before it by their invoiceId: one
            # index lookup, not a scan of every checkout payment
            models.Index(
                KeyTransform("invoiceId", "data"),
                condition=Q(invoice__isnull=True),
                name="plugipay_payment_invoice_ref",
            )
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gte=0), name="plugipay_payment_amount_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(amount_refunded__gte=0) & Q(amount_refunded__lte=F("amount")),
                name="plugipay_payment_refunded_within_amount",
            ),
            models.UniqueConstraint(
                fields=["checkout_session"],
                condition=Q(status="succeeded"),
                name="plugipay_payment_one_success_per_session",
            ),
        ]

    def remaining_to_refund(self) -> int:
        """What may still be refunded: amount − refunded (succeeded) − in flight (requested or
        pending refunds). The one definition: services, admin and API all read it.

        Uses the queryset's ``amount_in_flight`` annotation (``with_refund_totals()``) or an
        ``in_flight_refunds`` prefetch when present, else one query. Exact only while the
        payment row is locked (``refund_payment`` locks it).
        """
        in_flight = getattr(self, "amount_in_flight", None)
        if in_flight is None:
            prefetched = getattr(self, "in_flight_refunds", None)
            if prefetched is not None:
                in_flight = sum(refund.amount for refund in prefetched)
            else:
                in_flight = self.refunds.in_flight().total()
        return self.amount - self.amount_refunded - in_flight

    @property
    def is_refunded(self) -> bool:
        return self.amount > 0 and self.amount_refunded >= self.amount

    @property
    def is_partially_refunded(self) -> bool:
        return 0 < self.amount_refunded < self.amount

    @property
    def refund_state(self) -> str:
        if self.is_refunded:
            return "refunded"
        return "partially_refunded" if self.is_partially_refunded else ""
