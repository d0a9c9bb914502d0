"""``AccountField``: the account a row belongs to, filled when the row is first saved."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from django_plugipay.context import current_account_pk


class AccountField(models.ForeignKey):
    """A protected foreign key to ``Account``; a row saved without one gets the account acting
    then (the default account outside ``acting_for``), so building a row reads nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("to", "django_plugipay.Account")
        kwargs.setdefault("on_delete", models.PROTECT)
        kwargs.setdefault("related_name", "+")
        kwargs.setdefault("blank", True)  # forms and serializers never ask for it
        kwargs.setdefault("verbose_name", _("account"))
        kwargs.setdefault("help_text", _("The Plugipay account this belongs to."))
        super().__init__(*args, **kwargs)

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        if add and getattr(model_instance, self.attname) is None:
            setattr(model_instance, self.attname, current_account_pk())
        return super().pre_save(model_instance, add)
