"""The abstract base every mirror of a Plugipay object shares."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from django_plugipay.models.enums import Mode
from django_plugipay.models.fields import AccountField


class MirrorModel(models.Model):
    account = AccountField()
    plugipay_id = models.CharField(
        _("Plugipay id"), max_length=64, unique=True, help_text=_("The object's id at Plugipay.")
    )
    mode = models.CharField(_("mode"), max_length=4, choices=Mode.choices, default=Mode.TEST)
    data = models.JSONField(
        _("data"), default=dict, blank=True, help_text=_("The last object Plugipay sent.")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    synced_at = models.DateTimeField(
        _("synced at"),
        null=True,
        blank=True,
        help_text=_("When this row last took in Plugipay's state."),
    )

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.plugipay_id or f"{type(self).__name__} #{self.pk}"
