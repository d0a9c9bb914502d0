"""Webhook endpoints (list, create, update, delete) and the delivery log (list, get, retry)."""

from __future__ import annotations

from plugipay_sandbox.app import Request, Response, api, envelope, paginate
from plugipay_sandbox.resources import MISSING, invalid, string, url
from plugipay_sandbox.state import ApiError, Store, not_found
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
    body = request.json()
    endpoint = endpoints.create_endpoint(
        store,
        request.mode,
        url=url(body, "url"),
        events=_events(body),
        description=_description(body),
    )
    data = store.public(endpoint)
    data["secret"] = data["signingSecret"] = endpoint["_secret"]
    return envelope(data, status=201, store=store)


@api.add("PATCH", "/webhooks/<id>")
def update(store: Store, request: Request):
    body = request.json()
    with store.lock:
        endpoint = _endpoint(store, request)
        if "url" in body:
            endpoint["url"] = url(body, "url")
        if "events" in body:
            endpoint["events"] = _events(body) or ["*"]
        if "description" in body:
            endpoint["description"] = _description(body)
        if "active" in body:
            if not isinstance(body["active"], bool):
                raise invalid("active", "active must be true or false.")
            if body["active"]:
                endpoints.enable_endpoint(endpoint)
            else:
                endpoints.disable_endpoint(store, endpoint, "paused through the API", "disabled")
        store.touch(endpoint)
        store.changed.notify_all()
        return envelope(store.public(endpoint), store=store)


@api.add("DELETE", "/webhooks/<id>")
def delete(store: Store, request: Request):
    with store.lock:
        endpoint = _endpoint(store, request)
        del store.endpoints[endpoint["id"]]
        store.changed.notify_all()
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


def _delivery(store: Store, request: Request) -> dict:
    delivery = store.deliveries.get(request.params["id"])
    endpoint = store.endpoints.get(delivery["endpointId"]) if delivery else None
    if delivery is None or endpoint is None or endpoint["mode"] != request.mode:
        raise not_found("delivery", request.params["id"])
    return delivery


@api.add("GET", "/webhooks/deliveries/<id>")
def delivery(store: Store, request: Request):
    return envelope(store.public(_delivery(store, request)), store=store)


@api.add("POST", "/webhooks/deliveries/<id>/retry")
def retry(store: Store, request: Request):
    with store.lock:
        found = _delivery(store, request)
        endpoint = store.endpoints[found["endpointId"]]
        if not endpoint["active"]:
            raise ApiError(
                409,
                "endpoint_disabled",
                f"Endpoint {endpoint['id']} is disabled; "
                "re-enable it with PATCH active=true first.",
            )
        if found["status"] == "pending":
            raise ApiError(409, "already_queued", f"Delivery {found['id']} is already queued.")
        found.update(status="pending", _due=store.now())
        store.changed.notify_all()
        return envelope(store.public(found), store=store)
