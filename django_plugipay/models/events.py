"""WebhookEvent (one row per Plugipay event id) and SyncCursor (where reconciliation stopped)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from django_plugipay.models.enums import EventSource, EventStatus, Mode
from django_plugipay.models.fields import AccountField
from django_plugipay.models.querysets import WebhookEventQuerySet


class WebhookEvent(models.Model):
    account = AccountField()
    event_id = models.CharField(_("event id"), max_length=64, unique=True)
    type = models.CharField(_("type"), max_length=128, help_text=_("As Plugipay sent it."))
    kind = models.CharField(
        _("kind"),
        max_length=128,
        db_index=True,
        help_text=_("The normalised type, e.g. checkout_session.completed."),
    )
    mode = models.CharField(_("mode"), max_length=4, choices=Mode.choices, blank=True)
    object_id = models.CharField(_("object id"), max_length=64, blank=True, db_index=True)
    payload = models.JSONField(_("payload"))
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=EventStatus.choices,
        default=EventStatus.RECEIVED,
        db_index=True,
    )
    source = models.CharField(
        _("source"), max_length=16, choices=EventSource.choices, default=EventSource.WEBHOOK
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    occurred_at = models.DateTimeField(_("occurred at"), null=True, blank=True)
    received_at = models.DateTimeField(_("received at"), auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    queued_at = models.DateTimeField(
        _("queued at"),
        null=True,
        blank=True,
        help_text=_(
            "When its task was last sent; empty on a received event whose task could not be "
            "sent (the sweeper sends it again)."
        ),
    )

    objects = WebhookEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.event_id} ({self.kind})"


class SyncCursor(models.Model):
    account = AccountField()
    name = models.CharField(_("name"), max_length=64)
    occurred_at = models.DateTimeField(_("occurred at"), null=True, blank=True)
    last_event_id = models.CharField(_("last event id"), max_length=64, blank=True)
    locked_until = models.DateTimeField(
        _("locked until"),
        null=True,
        blank=True,
        help_text=_("A running reconciliation holds this lease; others skip until it ends."),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("sync cursor")
        verbose_name_plural = _("sync cursors")
        constraints = [
            models.UniqueConstraint(
                fields=["account", "name"], name="plugipay_synccursor_account_name"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} @ {self.occurred_at}"
