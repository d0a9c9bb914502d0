"""AppConfig: registers the system checks and discovers the resource specs."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PlugipayConfig(AppConfig):
    name = "django_plugipay"
    verbose_name = _("Plugipay")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_plugipay import checks  # noqa: F401 - registers the checks
        from django_plugipay.resources import discover

        discover()
