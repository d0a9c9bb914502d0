"""``AccountRouter``: each account's rows in the database ``PLUGIPAY["ACCOUNT_DATABASE"]`` names.

Add it to ``DATABASE_ROUTERS``; the hook ``(alias) -> database alias | None`` is asked for the
account acting (a webhook's, a service's ``account=``, a row's own), so an account's events,
mirror rows, cursors and deliveries are read and written there. The ``Account`` rows stay in the
default database (and are copied, with the same pks, to every database the hook names).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models, router

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
        if _is_user_model(model) and _ours(hints.get("instance")):
            # a row's user (a customer's, a refund's requester): where the project keeps its
            # users, not in the account's database the row was read from
            return router.db_for_read(model)
        return self._route(model, hints)

    def db_for_write(self, model: type[models.Model], **hints: Any) -> str | None:
        return self._route(model, hints)

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        """An account row (kept in every account database) may be related to any row, and a
        row of the app to a user of the project (its user foreign keys have no constraint)."""
        names = {obj1._meta.model_name, obj2._meta.model_name}
        labels = {obj1._meta.app_label, obj2._meta.app_label}
        if labels == {APP_LABEL} and "account" in names:
            return True
        if (_ours(obj1) and _is_user_model(obj2)) or (_ours(obj2) and _is_user_model(obj1)):
            return True
        return None


def _ours(instance: Any) -> bool:
    return isinstance(instance, models.Model) and instance._meta.app_label == APP_LABEL


def _is_user_model(model: Any) -> bool:
    """Is ``model`` (a model, or an instance: a request's lazy user too) the user model?"""
    return model._meta.label_lower == settings.AUTH_USER_MODEL.lower()
