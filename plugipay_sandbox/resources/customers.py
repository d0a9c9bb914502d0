"""Customers: create, get, list, update."""

from __future__ import annotations

from plugipay_sandbox.app import Request, api, envelope, paginate
from plugipay_sandbox.resources import created_between, metadata, present, string
from plugipay_sandbox.state import Store, customers


def _fields(body: dict) -> dict:
    return present(
        {
            "email": string(body, "email", max_length=320),
            "name": string(body, "name"),
            "phone": string(body, "phone", max_length=64),
            "externalId": string(body, "externalId"),
            "taxId": string(body, "taxId", max_length=64),
            "defaultPaymentTokenId": string(body, "defaultPaymentTokenId"),
            "metadata": metadata(body),
        }
    )


@api.add("POST", "/customers")
def create(store: Store, request: Request):
    customer = customers.create_customer(store, request.mode, _fields(request.json()))
    return envelope(store.public(customer), status=201, store=store)


@api.add("GET", "/customers/<id>")
def get(store: Store, request: Request):
    customer = store.get(store.customers, request.mode, request.params["id"], "customer")
    return envelope(store.public(customer), store=store)


@api.add("PATCH", "/customers/<id>")
def update(store: Store, request: Request):
    customer = customers.update_customer(
        store, request.mode, request.params["id"], _fields(request.json())
    )
    return envelope(store.public(customer), store=store)


@api.add("GET", "/customers")
def list_(store: Store, request: Request):
    query = request.query
    items = [
        c
        for c in store.customers.values()
        if c["mode"] == request.mode
        and ("email" not in query or c["email"] == query["email"])
        and ("externalId" not in query or c["externalId"] == query["externalId"])
    ]
    return paginate(store, request, created_between(items, query))
