"""The customer resource."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django_plugipay.client import endpoint, get_client
from django_plugipay.models import Customer
from django_plugipay.resources.common import UPDATED_AT
from django_plugipay.specs import Object, OptionalText, ResourceSpec, Text, field, registered

endpoint("customer", "/customers", "create", "get", "update", "list")


class CustomerSpec(ResourceSpec):
    name = "customer"
    events = ("created", "updated")
    model = Customer
    lock_rank = 0
    fields = {
        "email": field(Text(), "email"),
        "name": field(Text(), "name"),
        "phone": field(Text(), "phone"),
        "external_id": field(OptionalText(), "externalId"),
        "metadata": field(Object(), "metadata"),
    }
    refs = {"updated_at": UPDATED_AT}
    example = {"id": "cus_v", "email": "a@example.com", "name": "A", "externalId": "user:1"}

    def fetch(self, plugipay_id: str) -> Mapping[str, Any]:
        return get_client().get_customer(plugipay_id)


CUSTOMER = registered("customer")
