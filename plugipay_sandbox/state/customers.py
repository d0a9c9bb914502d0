"""Customers: create and update (the one resource the other families point at)."""

from __future__ import annotations

from typing import Any

from plugipay_sandbox.state.core import ApiError, Family, Store, new_id, register


def create_customer(store: Store, mode: str, fields: dict[str, Any]) -> dict[str, Any]:
    with store.lock:
        external_id = fields.get("externalId")
        if external_id and any(
            c["externalId"] == external_id and c["mode"] == mode for c in store.customers.values()
        ):
            raise ApiError(
                409,
                "conflict",
                f"A customer with externalId {external_id!r} already exists.",
                field="externalId",
            )
        customer: dict[str, Any] = {
            "id": new_id("cus_"),
            "externalId": None,
            "email": None,
            "name": None,
            "phone": None,
            "taxId": None,
            "defaultPaymentTokenId": None,
            "metadata": None,
        }
        customer.update(fields)
        store.stamp(customer, mode)
        store.customers[customer["id"]] = customer
        store.emit("customer.created", customer)
        return customer


def update_customer(store: Store, mode: str, customer_id: str, fields: dict[str, Any]):
    with store.lock:
        customer = store.get(store.customers, mode, customer_id, "customer")
        store.change(customer, "customer.updated", **fields)
        return customer


FAMILY = register(
    Family("customers", stores=("customers",), event_kinds=("customer.created", "customer.updated"))
)
