"""Customer: the mirror of a Plugipay customer, optionally linked to a user."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from django_plugipay.models.base import MirrorModel
from django_plugipay.models.querysets import CustomerQuerySet


class Customer(MirrorModel):
    email = models.CharField(_("email"), max_length=320, blank=True)
    name = models.CharField(_("name"), max_length=255, blank=True)
    phone = models.CharField(_("phone"), max_length=64, blank=True)
    external_id = models.CharField(
        _("external id"),
        max_length=255,
        null=True,
        blank=True,
        help_text=_("Your own reference for this customer (Plugipay's externalId)."),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="plugipay_customers",
        # no constraint: an account's rows may be kept in its own database (ACCOUNT_DATABASE),
        # where the project's users are not
        db_constraint=False,
    )
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)

    objects = CustomerQuerySet.as_manager()

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "user", "mode"],
                condition=models.Q(user__isnull=False),
                name="plugipay_customer_one_per_user_account_and_mode",
            ),
        ]

    def __str__(self) -> str:
        return self.email or self.name or self.plugipay_id
