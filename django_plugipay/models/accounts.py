"""Account: one Plugipay account (workspace) the project takes payments for."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from django_plugipay.models.enums import Mode


class Account(models.Model):
    alias = models.CharField(
        _("alias"),
        max_length=64,
        unique=True,
        help_text=_('Its key in PLUGIPAY["ACCOUNTS"]; "default" for the top-level credentials.'),
    )
    plugipay_id = models.CharField(
        _("Plugipay id"),
        max_length=64,
        unique=True,
        null=True,
        blank=True,
        help_text=_("The account's id at Plugipay (acc_…); empty until known."),
    )
    name = models.CharField(_("name"), max_length=255, blank=True)
    mode = models.CharField(_("mode"), max_length=4, choices=Mode.choices, default=Mode.TEST)
    platform = models.BooleanField(
        _("reached on behalf of"),
        default=False,
        help_text=_("Called with a platform key on behalf of this account."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("account")
        verbose_name_plural = _("accounts")
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.name or self.alias
