"""Delivery: one durable receiver's run for one transition of one object (the outbox)."""

from __future__ import annotations

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from django_plugipay.models.enums import DeliveryStatus
from django_plugipay.models.fields import AccountField
from django_plugipay.models.querysets import DeliveryQuerySet


class Delivery(models.Model):
    account = AccountField()
    signal = models.CharField(_("signal"), max_length=64, help_text=_("The signal sent."))
    receiver = models.CharField(
        _("receiver"), max_length=255, help_text=_("The durable receiver's name.")
    )
    content_type = models.ForeignKey(
        ContentType, on_delete=models.CASCADE, verbose_name=_("object type")
    )
    object_id = models.BigIntegerField(_("object id"))
    instance = GenericForeignKey("content_type", "object_id")
    event = models.ForeignKey(
        "django_plugipay.WebhookEvent",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="deliveries",
        verbose_name=_("event"),
        help_text=_("The event that brought the change; empty when a sync did."),
    )
    key = models.CharField(
        _("key"),
        max_length=64,
        unique=True,
        help_text=_(
            "Stable across attempts: the idempotency key to give the services the receiver calls."
        ),
    )
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=DeliveryStatus.choices,
        default=DeliveryStatus.PENDING,
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(
        _("next attempt at"),
        null=True,
        blank=True,
        help_text=_("When a pending or failed delivery runs (again)."),
    )
    leased_until = models.DateTimeField(
        _("leased until"),
        null=True,
        blank=True,
        help_text=_("A running delivery whose process died is taken over after this."),
    )
    last_error = models.TextField(_("last error"), blank=True)
    last_traceback = models.TextField(_("last traceback"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    succeeded_at = models.DateTimeField(_("succeeded at"), null=True, blank=True)
    resolved_at = models.DateTimeField(
        _("resolved at"),
        null=True,
        blank=True,
        help_text=_("Staff marked it as resolved: it is never run again."),
    )

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        ordering = ["-created_at"]
        permissions = [("manage_delivery", _("Can run deliveries again or mark them resolved"))]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="plugipay_delivery_due"),
            models.Index(fields=["content_type", "object_id"], name="plugipay_delivery_object"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status=DeliveryStatus.SUCCEEDED) | Q(succeeded_at__isnull=False),
                name="plugipay_delivery_succeeded_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.receiver} ← {self.signal} #{self.object_id}"

    @property
    def attempt(self) -> int:
        """The attempt running now, counted from 1."""
        return self.attempts
