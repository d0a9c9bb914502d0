"""A throwaway resource, ``widget``: its model, its client endpoint and its spec, in one module
and named nowhere else (the sandbox serves widgets as customers)."""

from __future__ import annotations

from django_plugipay.client import endpoint, get_client
from django_plugipay.models import Customer
from django_plugipay.specs import ResourceSpec, Text, Timestamp, field


class Widget(Customer):
    """Kept in the customers table (a proxy: no migration)."""

    class Meta:
        proxy = True
        app_label = "django_plugipay"


endpoint("widget", "/customers", "create", "get", "list")


class WidgetSpec(ResourceSpec):
    name = "widget"
    model = Widget
    lock_rank = 50
    fields = {"email": field(Text(), "email"), "name": field(Text(), "label", "name")}
    refs = {"updated_at": field(Timestamp(), "updatedAt")}

    def fetch(self, plugipay_id):
        return get_client().get_widget(plugipay_id)
