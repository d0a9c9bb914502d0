"""Webhook endpoints: create, enable, disable, rotate the secret (deliveries are in the core)."""

from __future__ import annotations

import secrets
from typing import Any

from plugipay_sandbox.state.core import ApiError, Family, Store, iso, new_id, not_found, register

#: Plugipay disables an endpoint after this many consecutive failed deliveries ...
AUTO_DISABLE_AFTER = 20
#: ... spanning at least this share of its retry schedule (24 h of the real 72 h); the sandbox
#: compresses the span with the schedule, so its endpoints survive a burst of failures as
#: Plugipay's do.
AUTO_DISABLE_SPAN = 24 / 72


def auto_disable_window(schedule: tuple[float, ...]) -> float:
    """Seconds of sandbox time a failure streak must span before the endpoint is disabled."""
    return sum(schedule) * AUTO_DISABLE_SPAN


def create_endpoint(
    store: Store,
    mode: str,
    *,
    url: str,
    events: list[str] | None,
    description: str | None,
    secret: str | None = None,
    origin: str = "api",
) -> dict[str, Any]:
    with store.lock:
        endpoint: dict[str, Any] = {
            "id": new_id("whep_"),
            "url": url,
            "events": events or ["*"],
            "description": description,
            "active": True,
            "status": "active",
            "consecutiveFailures": 0,
            "failingSince": None,
            "disabledAt": None,
            "disabledReason": None,
            "lastDelivery": None,
            "previousSecretExpiresAt": None,
            "_secret": secret or "whsec_" + secrets.token_hex(16),
            "_origin": origin,
        }
        store.stamp(endpoint, mode)
        store.endpoints[endpoint["id"]] = endpoint
        store.changed.notify_all()
        return endpoint


def enable_endpoint(endpoint: dict[str, Any]) -> None:
    """Active again, with the failure streak cleared."""
    endpoint.update(
        active=True,
        status="active",
        consecutiveFailures=0,
        failingSince=None,
        _failingSinceAt=None,
        disabledAt=None,
        disabledReason=None,
    )


def disable_endpoint(store: Store, endpoint: dict[str, Any], reason: str, status: str) -> None:
    endpoint.update(active=False, status=status, disabledAt=iso(store.now()), disabledReason=reason)
    for delivery in store.deliveries.values():
        if delivery["endpointId"] == endpoint["id"] and delivery["status"] == "pending":
            delivery.update(status="failed", lastError=f"endpoint disabled: {reason}")


def update_endpoint(
    store: Store,
    endpoint: dict[str, Any],
    fields: dict[str, Any],
    *,
    reason: str = "paused through the API",
) -> None:
    """Change url, events, description and ``active`` (False pauses: queued deliveries fail;
    True re-enables and clears the failure streak)."""
    with store.lock:
        for name in ("url", "events", "description"):
            if name in fields:
                endpoint[name] = fields[name]
        if "active" in fields:
            if fields["active"]:
                enable_endpoint(endpoint)
            else:
                disable_endpoint(store, endpoint, reason, "disabled")
        store.touch(endpoint)
        store.changed.notify_all()


#: The longest overlap a rotation may keep the previous secret signing deliveries (7 days).
MAX_ROTATION_OVERLAP = 7 * 86400


def rotate_secret(store: Store, endpoint: dict[str, Any], *, expires_in: int) -> str:
    """A new signing secret for ``endpoint``; for ``expires_in`` seconds deliveries carry a
    signature with the previous secret too (0: the previous secret stops signing now)."""
    with store.lock:
        previous = endpoint["_secret"]
        endpoint["_secret"] = "whsec_" + secrets.token_hex(16)
        if expires_in > 0:
            expires = store.now() + expires_in
            endpoint.update(_previous_secret=previous, _previous_expires=expires)
            endpoint["previousSecretExpiresAt"] = iso(expires)
        else:
            endpoint.update(_previous_secret=None, _previous_expires=None)
            endpoint["previousSecretExpiresAt"] = None
        store.touch(endpoint)
        store.changed.notify_all()
        return endpoint["_secret"]


def signing_secrets(store: Store, endpoint: dict[str, Any]) -> list[str]:
    """The secrets a delivery to ``endpoint`` is signed with now: the current one, and the
    previous one while a rotation's overlap lasts (by the sandbox clock)."""
    found = [endpoint["_secret"]]
    previous, expires = endpoint.get("_previous_secret"), endpoint.get("_previous_expires")
    if previous and expires is not None and store.now() < expires:
        found.append(previous)
    return found


def delete_endpoint(store: Store, endpoint: dict[str, Any]) -> None:
    with store.lock:
        store.endpoints.pop(endpoint["id"], None)
        store.changed.notify_all()


def get_delivery(store: Store, mode: str | None, delivery_id: str) -> dict[str, Any]:
    """A delivery of one of ``mode``'s endpoints (any mode when None)."""
    delivery = store.deliveries.get(delivery_id)
    endpoint = store.endpoints.get(delivery["endpointId"]) if delivery else None
    if delivery is None or endpoint is None or (mode is not None and endpoint["mode"] != mode):
        raise not_found("delivery", delivery_id)
    return delivery


def retry_delivery(store: Store, delivery: dict[str, Any]) -> dict[str, Any]:
    """Queue one more attempt now (also for a succeeded delivery); 409 when already queued or
    the endpoint is disabled."""
    with store.lock:
        endpoint = store.endpoints[delivery["endpointId"]]
        if not endpoint["active"]:
            raise ApiError(
                409,
                "endpoint_disabled",
                f"Endpoint {endpoint['id']} is disabled; "
                "re-enable it with PATCH active=true first.",
            )
        if delivery["status"] == "pending":
            raise ApiError(409, "already_queued", f"Delivery {delivery['id']} is already queued.")
        delivery.update(status="pending", _due=store.now())
        store.changed.notify_all()
        return delivery


#: The description of the endpoint the sandbox adds at start-up (``--forward-to``).
CLI_DESCRIPTION = "Added when the sandbox started: your project's webhook URL"


def _keep(store: Store) -> dict[str, dict[str, dict[str, Any]]]:
    """A reset keeps the endpoint given on the command line, enabled again, subscribed to
    every event and signing with the secret it started with (a test may have changed them)."""
    kept = {k: v for k, v in store.endpoints.items() if v.get("_origin") == "cli"}
    for endpoint in kept.values():
        enable_endpoint(endpoint)
        endpoint["events"] = ["*"]
        if store.config.webhook_secret:
            endpoint["_secret"] = store.config.webhook_secret
        endpoint.update(_previous_secret=None, _previous_expires=None)
        endpoint["previousSecretExpiresAt"] = None
    return {"endpoints": kept}


def _start(store: Store) -> None:
    """The ``--forward-to`` endpoint, unless a reset kept it."""
    config = store.config
    kept = any(e.get("_origin") == "cli" for e in store.endpoints.values())
    if config.forward_to and not kept:
        create_endpoint(
            store,
            "test",
            url=config.forward_to,
            events=None,
            description=CLI_DESCRIPTION,
            secret=config.webhook_secret,
            origin="cli",
        )


FAMILY = register(
    Family(
        "webhooks",
        stores=("endpoints",),
        event_kinds=("webhook_endpoint.disabled",),
        keep=_keep,
        start=_start,
    )
)
