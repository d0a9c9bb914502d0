"""URLs: ``path("plugipay/", include("django_plugipay.urls"))``."""

from django.urls import path

from django_plugipay.views import WebhookView

app_name = "plugipay"

urlpatterns = [
    path("webhook/", WebhookView.as_view(), name="webhook"),
]
