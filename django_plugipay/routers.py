"""``AccountRouter``: each account's rows in the database ``PLUGIPAY["ACCOUNT_DATABASE"]`` names.

Add it to ``DATABASE_ROUTERS``; the hook ``(alias) -> database alias | None`` is asked for the
account acting (a webhook's, a service's ``account=``, a row's own), so an account's events,
mirror rows, cursors and deliveries are read and written there. The ``Account`` rows stay in the
default database (and are copied, with the same pks, to every database the hook names).
"""

from __future__ import annotations

from typing import Any

from django.db import models

from django_plugipay.context import acting_database

APP_LABEL = "django_plugipay"


class AccountRouter:
    """Routes the app's rows (not ``Account``) to the acting account's database."""

    def _route(self, model: type[models.Model], hints: dict[str, Any]) -> str | None:
        if model._meta.app_label != APP_LABEL or model._meta.model_name == "account":
            return None
        routed = acting_database()
        if routed is not None:
            return routed
        instance = hints.get("instance")
        return getattr(getattr(instance, "_state", None), "db", None)

    def db_for_read(self, model: type[models.Model], **hints: Any) -> str | None:
        return self._route(model, hints)

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str | None:
        return self._route(model, hints)

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        """An account row (kept in every account database) may be related to any row."""
        names = {obj1._meta.model_name, obj2._meta.model_name}
        labels = {obj1._meta.app_label, obj2._meta.app_label}
        return True if labels == {APP_LABEL} and "account" in names else None
