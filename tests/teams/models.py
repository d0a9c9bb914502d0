"""Team: a billing owner that is not a user (``plugipay_customer`` relation)."""

from django.conf import settings
from django.db import models


class Team(models.Model):
    name = models.CharField(max_length=100)
    plugipay_customer = models.OneToOneField(
        "django_plugipay.Customer", null=True, blank=True, on_delete=models.SET_NULL
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="teams", blank=True)

    class Meta:
        app_label = "teams"

    def __str__(self) -> str:
        return self.name
