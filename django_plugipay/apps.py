"""AppConfig: registers the system checks, the resource specs and the Celery tasks."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PlugipayConfig(AppConfig):
    name = "django_plugipay"
    verbose_name = _("Plugipay")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_plugipay import (
            accounts,  # keeps the account rows and their cache in step
            checks,  # noqa: F401 - registers the checks
            tasks,  # noqa: F401 - registers the shared tasks with Celery
        )
        from django_plugipay.resources import discover

        discover()
        accounts.watch_user_deletions()
