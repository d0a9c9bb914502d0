"""Webhook endpoints (list, create, update, delete, rotate the secret) and the delivery log
(list, get, retry)."""

from __future__ import annotations

from plugipay_sandbox.app import Request, Response, api, envelope, paginate
from plugipay_sandbox.resources import MISSING, invalid, string, url
from plugipay_sandbox.state import Store
from plugipay_sandbox.state import webhooks as endpoints


def _events(body: dict):
    events = body.get("events", MISSING)
    if events is MISSING or events is None:
        return None
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events) or not events:
        raise invalid("events", "events must be a non-empty array of event types (or ['*']).")
    return events


def _description(body: dict):
    value = string(body, "description", max_length=500)
    return None if value is MISSING else value


def _endpoint(store: Store, request: Request) -> dict:
    return store.get(store.endpoints, request.mode, request.params["id"], "webhook endpoint")


@api.add("GET", "/webhooks")
def list_(store: Store, request: Request):
    items = sorted(
        (e for e in store.endpoints.values() if e["mode"] == request.mode), key=lambda e: e["_seq"]
    )
    return envelope([store.public(e) for e in items], store=store)


@api.add("POST", "/webhooks")
def create(store: Store, request: Request):
    endpoint = endpoints.create_endpoint(
        store, request.mode, **endpoint_fields(request.json(), create=True)
    )
    data = store.public(endpoint)
    data["secret"] = data["signingSecret"] = endpoint["_secret"]
    return envelope(data, status=201, store=store)


def endpoint_fields(body: dict, *, create: bool) -> dict:
    """The checked url, events and description of a create (all) or update (those given)."""
    fields: dict = {}
    if create or "url" in body:
        fields["url"] = url(body, "url")
    if create or "events" in body:
        fields["events"] = _events(body) or ["*"]
    if create or "description" in body:
        fields["description"] = _description(body)
    if not create and "active" in body:
        if not isinstance(body["active"], bool):
            raise invalid("active", "active must be true or false.")
        fields["active"] = body["active"]
    return fields


@api.add("PATCH", "/webhooks/<id>")
def update(store: Store, request: Request):
    fields = endpoint_fields(request.json(), create=False)
    with store.lock:
        endpoint = _endpoint(store, request)
        endpoints.update_endpoint(store, endpoint, fields)
        return envelope(store.public(endpoint), store=store)


@api.add("POST", "/webhooks/<id>/rotate-secret")
def rotate_secret(store: Store, request: Request):
    """A new signing secret, returned once; ``expiresIn`` (seconds, default 0, at most 7
    days) keeps the previous secret signing deliveries alongside it meanwhile. Plugipay's docs
    name the operation without its path; this path is the sandbox's reading."""
    body = request.json()
    expires_in = body.get("expiresIn", 0)
    if (
        not isinstance(expires_in, int)
        or isinstance(expires_in, bool)
        or not 0 <= expires_in <= endpoints.MAX_ROTATION_OVERLAP
    ):
        raise invalid(
            "expiresIn",
            f"expiresIn must be a whole number of seconds, 0 to {endpoints.MAX_ROTATION_OVERLAP}.",
        )
    with store.lock:
        endpoint = _endpoint(store, request)
        secret = endpoints.rotate_secret(store, endpoint, expires_in=expires_in)
        data = store.public(endpoint)
    data["secret"] = data["signingSecret"] = secret
    return envelope(data, store=store)


@api.add("DELETE", "/webhooks/<id>")
def delete(store: Store, request: Request):
    with store.lock:
        endpoints.delete_endpoint(store, _endpoint(store, request))
    return Response(b"", 204)


@api.add("GET", "/webhooks/deliveries")
def deliveries(store: Store, request: Request):
    query = request.query
    endpoints = {e["id"] for e in store.endpoints.values() if e["mode"] == request.mode}
    items = [
        d
        for d in store.deliveries.values()
        if d["endpointId"] in endpoints
        and ("endpointId" not in query or d["endpointId"] == query["endpointId"])
        and ("status" not in query or d["status"] == query["status"])
        and ("type" not in query or d["type"] == query["type"])
    ]
    return paginate(store, request, items)


@api.add("GET", "/webhooks/deliveries/<id>")
def delivery(store: Store, request: Request):
    found = endpoints.get_delivery(store, request.mode, request.params["id"])
    return envelope(store.public(found), store=store)


@api.add("POST", "/webhooks/deliveries/<id>/retry")
def retry(store: Store, request: Request):
    found = endpoints.get_delivery(store, request.mode, request.params["id"])
    return envelope(store.public(endpoints.retry_delivery(store, found)), store=store)
