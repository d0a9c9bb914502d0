"""Events: list with filters, get, types, replay and trigger."""

from __future__ import annotations

from plugipay_sandbox.app import Request, api, envelope, paginate
from plugipay_sandbox.resources import created_between, invalid, string
from plugipay_sandbox.state import Store, event_kinds, not_found


def short_kind(event_type: str) -> str:
    kind = event_type.removeprefix("plugipay.")
    head, _, tail = kind.rpartition(".")
    if head and tail[:1] == "v" and tail[1:].isdigit():
        kind = head
    # "cancelled" is the British spelling of a "canceled" kind, except where the kind itself
    # is spelled so (payout.cancelled).
    return kind if kind in event_kinds() else kind.replace("cancelled", "canceled")


class _Rendered(dict):
    """A rendered event that keeps its sequence number for ordering and paging."""


def _rendered(store: Store, event: dict) -> _Rendered:
    rendered = _Rendered(store.render_event(event))
    rendered["_seq"] = event["_seq"]
    return rendered


@api.add("GET", "/events")
def list_(store: Store, request: Request):
    query = request.query
    wanted = short_kind(query["type"]) if query.get("type") else None
    items = [
        e
        for e in store.events.values()
        if e["mode"] == request.mode and (wanted is None or e["kind"] == wanted)
    ]
    chosen = created_between(
        items,
        query,
        after=("occurredAfter", "since"),
        before=("occurredBefore", "until"),
        field="occurredAt",
    )
    return paginate(store, request, chosen, render=lambda e: store.public(_rendered(store, e)))


@api.add("GET", "/events/types")
def types(store: Store, request: Request):
    return envelope([f"plugipay.{k}.v1" for k in event_kinds()], store=store)


@api.add("GET", "/events/<id>")
def get(store: Store, request: Request):
    event = store.events.get(request.params["id"])
    if event is None or event["mode"] != request.mode:
        raise not_found("event", request.params["id"])
    return envelope(store.public(_rendered(store, event)), store=store)


@api.add("POST", "/events/replay")
def replay(store: Store, request: Request):
    ids = request.json().get("eventIds")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise invalid("eventIds", "eventIds must be a non-empty array of event ids.")
    with store.lock:
        events = []
        for event_id in ids:
            event = store.events.get(event_id)
            if event is None or event["mode"] != request.mode:
                raise not_found("event", event_id)
            events.append(event)
        queued = [d["id"] for e in events for d in store.queue_deliveries(e, force=True)]
    return envelope({"replayed": len(events), "deliveryIds": queued}, store=store)


@api.add("POST", "/events/trigger")
def trigger(store: Store, request: Request):
    if request.mode != "test":
        raise invalid("type", "Synthetic events can only be triggered in test mode.")
    body = request.json()
    kind = short_kind(string(body, "type", required=True))
    aggregate_id = string(body, "aggregateId", required=True)
    data = body.get("data")
    if data is not None and not isinstance(data, dict):
        raise invalid("data", "data must be an object.")
    with store.lock:
        obj = None
        for name in store.STORES:
            pool = getattr(store, name)
            if name not in ("events", "deliveries") and aggregate_id in pool:
                obj = dict(pool[aggregate_id])
        obj = {**(obj or {"id": aggregate_id, "mode": "test"}), **(data or {})}
        event = store.emit(kind, obj)
    return envelope(store.public(_rendered(store, event)), status=201, store=store)
