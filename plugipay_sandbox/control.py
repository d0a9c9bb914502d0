"""The ``/_sandbox/`` control routes: reset, clock, settle, faults and delivery control.

These are sandbox conventions for tests and demos, not part of Plugipay's API. No auth.
"""

from __future__ import annotations

import json
from typing import Any

from plugipay_sandbox import cards
from plugipay_sandbox.app import Request, envelope, pages
from plugipay_sandbox.state import FAULT_KINDS, ApiError, Fault, Store, checkout, refunds
from plugipay_sandbox.state.core import CLOCK_LIMIT

#: how far one call may move the clock on: a hundred years
CLOCK_REACH = 100 * 366 * 24 * 3600


def _body(request: Request) -> dict[str, Any]:
    return request.json()


def _number(
    body: dict[str, Any], field: str, default: float, minimum: float = 0, maximum: float = 3600
) -> float:
    value = body.get(field, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not minimum <= value <= maximum  # NaN too
    ):
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            f"{field} must be a number from {minimum:g} to {maximum:g}.",
            field=field,
        )
    return value


def _deliverer(store: Store):
    return store.deliverer  # type: ignore[attr-defined]


@pages.add("POST", "/_sandbox/reset")
def reset(store: Store, request: Request):
    store.reset(keep_endpoints=True)
    return envelope({"reset": True}, store=store)


@pages.add("GET", "/_sandbox/state")
def state(store: Store, request: Request):
    return envelope(store.dump(), store=store)


@pages.add("GET", "/_sandbox/config")
def config(store: Store, request: Request):
    cfg = store.config
    return envelope(
        {
            "baseUrl": store.base_url(),
            "keyId": cfg.key_id,
            "liveKeyId": cfg.live_key_id,
            "apiKey": cfg.api_key,
            "accountId": cfg.account_id,
            "workspaceId": cfg.workspace_id,
            "platformKeyIds": sorted(cfg.platform_keys),
            "eventStyle": cfg.event_style,
            "retrySchedule": list(cfg.retry_schedule),
            "refundDelay": cfg.refund_delay,
            "testCards": [
                {
                    "number": c.number,
                    "outcome": c.outcome,
                    "failureCode": c.failure_code,
                    "description": c.description,
                }
                for c in cards.TEST_CARDS
            ],
        },
        store=store,
    )


@pages.add("POST", "/_sandbox/config")
def set_config(store: Store, request: Request):
    """Change event style, refund delay or retry schedule at run time (tests use this)."""
    body = _body(request)
    with store.lock:
        if "eventStyle" in body:
            if body["eventStyle"] not in ("sdk", "docs"):
                raise ApiError(
                    400, "VALIDATION_ERROR", "eventStyle is sdk or docs.", field="eventStyle"
                )
            store.config.event_style = body["eventStyle"]
        if "refundDelay" in body:
            store.config.refund_delay = _number(
                body, "refundDelay", 0, minimum=-1, maximum=CLOCK_REACH
            )
        if "retrySchedule" in body:
            schedule = body["retrySchedule"]
            if not isinstance(schedule, list) or not all(
                isinstance(s, (int, float)) and s >= 0 for s in schedule
            ):
                raise ApiError(
                    400,
                    "VALIDATION_ERROR",
                    "retrySchedule is a list of seconds.",
                    field="retrySchedule",
                )
            store.config.retry_schedule = tuple(schedule)
    return config(store, request)


@pages.add("POST", "/_sandbox/clock/advance")
def advance(store: Store, request: Request):
    seconds = _number(_body(request), "seconds", 0, maximum=CLOCK_REACH)
    if store.now() + seconds > CLOCK_LIMIT:
        raise ApiError(
            400, "VALIDATION_ERROR", "The clock cannot go past year 9989.", field="seconds"
        )
    store.advance(seconds)
    return envelope(store.dump()["clock"], store=store)


@pages.add("POST", "/_sandbox/checkout-sessions/<id>/pay")
def pay(store: Store, request: Request):
    body = _body(request)
    session_id = request.params["id"]
    payment = None
    if "card" in body:
        three_ds = body.get("three_ds")
        if three_ds not in (None, "approve", "fail"):
            raise ApiError(
                400, "VALIDATION_ERROR", "three_ds is approve or fail.", field="three_ds"
            )
        try:
            outcome, payment = checkout.pay_card(
                store, session_id, str(body["card"]), three_ds=three_ds
            )
        except cards.CardError as exc:
            raise ApiError(400, "VALIDATION_ERROR", exc.message, field="card") from exc
    elif body.get("method") in ("va", "qris", "ewallet", "retail", "paypal", "manual"):
        settle = body.get("settle", True)
        if not isinstance(settle, bool):
            raise ApiError(400, "VALIDATION_ERROR", "settle is true or false.", field="settle")
        channel = body.get("channel")
        if channel is not None and not isinstance(channel, str):
            raise ApiError(400, "VALIDATION_ERROR", "channel is a string.", field="channel")
        if settle or body["method"] in ("manual", "paypal"):
            checkout.pay_async(store, session_id, body["method"], channel)
        else:
            checkout.start_async(store, session_id, body["method"], channel)
        session = checkout.get_session(store, session_id)
        outcome = "succeeded" if session["status"] == "completed" else session["status"]
        payment_id = session.get("paymentId") or (session.get("instructions") or {}).get(
            "paymentId"
        )
        payment = store.payments.get(payment_id or "")
    else:
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            'Send {"card": number} or {"method": "va"|"qris"|"ewallet"|"manual"}.',
            field="card",
        )
    return envelope(
        {
            "outcome": outcome,
            "session": store.public(checkout.get_session(store, session_id)),
            "payment": store.public(payment),
        },
        store=store,
    )


@pages.add("POST", "/_sandbox/payments/<id>/settle")
def settle(store: Store, request: Request):
    payment = checkout.settle_payment(
        store, request.params["id"], _body(request).get("outcome", "succeeded")
    )
    session = checkout.get_session(store, payment["checkoutSessionId"])
    return envelope(
        {"payment": store.public(payment), "session": store.public(session)}, store=store
    )


@pages.add("POST", "/_sandbox/checkout-sessions/<id>/claim")
def claim(store: Store, request: Request):
    proof_url = _body(request).get("proof_url")
    if proof_url is not None and not isinstance(proof_url, str):
        raise ApiError(400, "VALIDATION_ERROR", "proof_url is a string.", field="proof_url")
    session = checkout.claim_transfer(store, request.params["id"], proof_url)
    return envelope(store.public(session), store=store)


@pages.add("POST", "/_sandbox/checkout-sessions/<id>/expire")
def expire(store: Store, request: Request):
    return envelope(store.public(checkout.expire_session(store, request.params["id"])), store=store)


@pages.add("POST", "/_sandbox/refunds/<id>/succeed")
def refund_succeed(store: Store, request: Request):
    return envelope(
        store.public(refunds.settle_refund(store, request.params["id"], succeed=True)), store=store
    )


@pages.add("POST", "/_sandbox/refunds/<id>/fail")
def refund_fail(store: Store, request: Request):
    body = _body(request)
    refund = refunds.settle_refund(
        store,
        request.params["id"],
        succeed=False,
        code=body.get("code"),
        message=body.get("message"),
    )
    return envelope(store.public(refund), store=store)


@pages.add("GET", "/_sandbox/faults")
def list_faults(store: Store, request: Request):
    return envelope([f.as_dict() for f in store.faults], store=store)


@pages.add("POST", "/_sandbox/faults")
def add_fault(store: Store, request: Request):
    body = _body(request)
    kind = body.get("kind")
    if kind not in FAULT_KINDS:
        raise ApiError(
            400, "VALIDATION_ERROR", f"kind is one of {', '.join(FAULT_KINDS)}.", field="kind"
        )
    fault = Fault(
        kind=kind,
        count=int(_number(body, "count", 1, minimum=1, maximum=10**6)),
        path_prefix=str(body.get("path_prefix") or "/api/v1"),
        retry_after=int(_number(body, "retry_after", 1)),
        delay=float(_number(body, "delay", 5)),
    )
    store.add_fault(fault)
    return envelope(fault.as_dict(), status=201, store=store)


@pages.add("DELETE", "/_sandbox/faults")
def clear_faults(store: Store, request: Request):
    with store.lock:
        store.faults.clear()
    return envelope([], store=store)


@pages.add("POST", "/_sandbox/deliveries/hold")
def hold(store: Store, request: Request):
    with store.lock:
        store.held = True
    return envelope({"held": True}, store=store)


@pages.add("POST", "/_sandbox/deliveries/release")
def release(store: Store, request: Request):
    body = _body(request)
    order = body.get("order", "fifo")
    if order not in ("fifo", "reverse", "shuffle"):
        raise ApiError(400, "VALIDATION_ERROR", "order is fifo, reverse or shuffle.", field="order")
    duplicate = int(_number(body, "duplicate", 1, minimum=1, maximum=100))
    released = _deliverer(store).release(order, duplicate)
    return envelope({"released": released, "order": order, "duplicate": duplicate}, store=store)


@pages.add("POST", "/_sandbox/deliveries/flush")
def flush(store: Store, request: Request):
    return envelope({"sent": _deliverer(store).flush()}, store=store)


@pages.add("POST", "/_sandbox/deliveries/<id>/redeliver")
def redeliver(store: Store, request: Request):
    if request.params["id"] not in store.deliveries:
        raise ApiError(404, "not_found", f"No delivery {request.params['id']!r}.")
    delivery = _deliverer(store).send(request.params["id"], force=True)
    return envelope(store.public(delivery), store=store)


@pages.add("GET", "/_sandbox/events/<id>/body")
def event_body(store: Store, request: Request):
    """The exact JSON the sandbox would deliver for an event, for replay tests."""
    event = store.events.get(request.params["id"])
    if event is None:
        raise ApiError(404, "not_found", f"No event {request.params['id']!r}.")
    return envelope(json.dumps(store.render_event(event), separators=(",", ":")), store=store)
