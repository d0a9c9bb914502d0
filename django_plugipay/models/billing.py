"""Recurring billing: the mirrors of Plugipay plans, prices, subscriptions and invoices."""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_plugipay.models.base import MirrorModel
from django_plugipay.models.enums import (
    CollectionMethod,
    InvoiceStatus,
    PlanInterval,
    PriceModel,
    SubscriptionStatus,
    TaxMode,
)
from django_plugipay.models.querysets import (
    InvoiceQuerySet,
    PlanQuerySet,
    PriceQuerySet,
    SubscriptionQuerySet,
)
from django_plugipay.specs import status_group

#: Room for a status Plugipay adds later: it is stored as sent (see the resources reference).
STATUS_LENGTH = 32


class Plan(MirrorModel):
    name = models.CharField(_("name"), max_length=255, blank=True)
    description = models.TextField(_("description"), blank=True)
    interval = models.CharField(
        _("interval"), max_length=16, choices=PlanInterval.choices, default=PlanInterval.MONTH
    )
    interval_count = models.PositiveIntegerField(
        _("interval count"), default=1, help_text=_("Intervals per billing period.")
    )
    trial_days = models.PositiveIntegerField(
        _("trial days"), default=0, help_text=_("Days of free trial a new subscription gets.")
    )
    active = models.BooleanField(
        _("active"), default=True, help_text=_("Archived plans take no new subscriptions.")
    )
    portal_features = models.JSONField(
        _("portal features"),
        default=dict,
        blank=True,
        help_text=_("What a customer may do in the billing portal (cancel, pause, …)."),
    )
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)

    objects = PlanQuerySet.as_manager()

    class Meta:
        verbose_name = _("plan")
        verbose_name_plural = _("plans")
        ordering = ["name", "-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(interval_count__gte=1), name="plugipay_plan_interval_count_gte_1"
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.plugipay_id


class Price(MirrorModel):
    plan = models.ForeignKey(
        Plan, verbose_name=_("plan"), on_delete=models.CASCADE, related_name="prices"
    )
    currency = models.CharField(_("currency"), max_length=3)
    model = models.CharField(
        _("pricing model"), max_length=16, choices=PriceModel.choices, default=PriceModel.FLAT
    )
    unit_amount = models.BigIntegerField(
        _("unit amount"),
        null=True,
        blank=True,
        help_text=_("In the currency's minor unit; set for flat prices only."),
    )
    tiers = models.JSONField(
        _("tiers"), default=list, blank=True, help_text=_("The tiers of a tiered or volume price.")
    )
    tax_mode = models.CharField(
        _("tax mode"), max_length=16, choices=TaxMode.choices, default=TaxMode.EXCLUSIVE
    )
    active = models.BooleanField(_("active"), default=True)

    objects = PriceQuerySet.as_manager()

    class Meta:
        verbose_name = _("price")
        verbose_name_plural = _("prices")
        ordering = ["plan", "created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(unit_amount__isnull=True) | Q(unit_amount__gte=0),
                name="plugipay_price_unit_amount_gte_0",
            ),
            models.CheckConstraint(
                condition=Q(unit_amount__isnull=True) | Q(model=PriceModel.FLAT),
                name="plugipay_price_unit_amount_only_flat",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan} ({self.currency} {self.model})"


class Subscription(MirrorModel):
    customer = models.ForeignKey(
        "django_plugipay.Customer",
        verbose_name=_("customer"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="subscriptions",
    )
    plan = models.ForeignKey(
        Plan,
        verbose_name=_("plan"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="subscriptions",
    )
    price = models.ForeignKey(
        Price,
        verbose_name=_("price"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="subscriptions",
    )
    status = models.CharField(
        _("status"),
        max_length=STATUS_LENGTH,
        choices=SubscriptionStatus.choices,
        default=SubscriptionStatus.INCOMPLETE,
        db_index=True,
    )
    current_period_start = models.DateTimeField(_("current period start"), null=True, blank=True)
    current_period_end = models.DateTimeField(_("current period end"), null=True, blank=True)
    trial_end = models.DateTimeField(_("trial end"), null=True, blank=True)
    cancel_at = models.DateTimeField(
        _("cancel at"),
        null=True,
        blank=True,
        help_text=_("When a cancel scheduled for the end of the period takes effect."),
    )
    canceled_at = models.DateTimeField(_("canceled at"), null=True, blank=True)
    canceled_reason = models.CharField(_("cancel reason"), max_length=64, blank=True)
    paused_at = models.DateTimeField(_("paused at"), null=True, blank=True)
    resume_at = models.DateTimeField(
        _("resume at"), null=True, blank=True, help_text=_("When a paused subscription resumes.")
    )
    collection_method = models.CharField(
        _("collection method"),
        max_length=32,
        choices=CollectionMethod.choices,
        default=CollectionMethod.CHARGE_AUTOMATICALLY,
    )
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    read_synced_at = models.DateTimeField(
        _("synced on read at"),
        null=True,
        blank=True,
        editable=False,
        help_text=_(
            "When a read through django_plugipay.billing last fetched it from Plugipay: the "
            "rate limit of sync on read (webhooks do not count, so a webhook that lands while "
            "the buyer pays cannot make the buyer's next read skip its sync)."
        ),
    )

    objects = SubscriptionQuerySet.as_manager()

    class Meta:
        verbose_name = _("subscription")
        verbose_name_plural = _("subscriptions")
        ordering = ["-created_at"]
        permissions = [("manage_subscription", _("Can cancel, pause and resume subscriptions"))]
        constraints = [
            models.CheckConstraint(
                condition=Q(current_period_start__isnull=True)
                | Q(current_period_end__isnull=True)
                | Q(current_period_end__gte=F("current_period_start")),
                name="plugipay_subscription_period_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plugipay_id} ({self.status})"

    @property
    def is_canceled(self) -> bool:
        return self.status == SubscriptionStatus.CANCELED

    @property
    def is_entitled(self) -> bool:
        """Gives access now (the rule is ``SubscriptionQuerySet.entitled``; one query)."""
        if self.pk is None or self.status not in status_group(type(self), "entitled"):
            return False
        return type(self)._default_manager.filter(pk=self.pk).entitled(timezone.now()).exists()

    @property
    def on_trial(self) -> bool:
        return (
            self.is_entitled
            and self.status == SubscriptionStatus.TRIALING
            and (self.trial_end is None or self.trial_end > timezone.now())
        )

    @property
    def on_grace_period(self) -> bool:
        """Canceled at the end of the period, which is not over yet."""
        return self.is_entitled and self.cancel_at is not None


class Invoice(MirrorModel):
    customer = models.ForeignKey(
        "django_plugipay.Customer",
        verbose_name=_("customer"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="invoices",
    )
    subscription = models.ForeignKey(
        Subscription,
        verbose_name=_("subscription"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="invoices",
    )
    number = models.CharField(_("number"), max_length=64, blank=True)
    status = models.CharField(
        _("status"),
        max_length=STATUS_LENGTH,
        choices=InvoiceStatus.choices,
        default=InvoiceStatus.DRAFT,
        db_index=True,
    )
    currency = models.CharField(_("currency"), max_length=3)
    subtotal = models.BigIntegerField(
        _("subtotal"), default=0, help_text=_("In the currency's minor unit.")
    )
    discount = models.BigIntegerField(_("discount"), default=0)
    tax = models.BigIntegerField(_("tax"), default=0)
    total = models.BigIntegerField(_("total"), default=0)
    amount_due = models.BigIntegerField(_("amount due"), default=0)
    amount_paid = models.BigIntegerField(_("amount paid"), default=0)
    collection_attempts = models.PositiveIntegerField(
        _("collection attempts"), default=0, help_text=_("Failed and successful charge attempts.")
    )
    due_at = models.DateTimeField(_("due at"), null=True, blank=True)
    issued_at = models.DateTimeField(_("issued at"), null=True, blank=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    voided_at = models.DateTimeField(_("voided at"), null=True, blank=True)
    hosted_url = models.URLField(
        _("hosted URL"),
        max_length=2048,
        blank=True,
        help_text=_("Plugipay's page where the customer pays this invoice."),
    )
    lines = models.JSONField(_("lines"), default=list, blank=True)
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        ordering = ["-created_at"]
        permissions = [("manage_invoice", _("Can void and send invoices"))]
        # the sweeper looks for the receipts of invoices paid in the last day
        indexes = [models.Index(fields=["paid_at"], name="plugipay_invoice_paid_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(subtotal__gte=0)
                & Q(discount__gte=0)
                & Q(tax__gte=0)
                & Q(total__gte=0)
                & Q(amount_due__gte=0)
                & Q(amount_paid__gte=0),
                name="plugipay_invoice_amounts_gte_0",
            ),
        ]

    def __str__(self) -> str:
        return self.number or self.plugipay_id

    @property
    def is_paid(self) -> bool:
        return self.status == InvoiceStatus.PAID

    @property
    def is_unpaid(self) -> bool:
        return self.status in status_group(type(self), "unpaid")
