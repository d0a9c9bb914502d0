"""Webhook endpoints: create, enable, disable (deliveries themselves are in the core)."""

from __future__ import annotations

import secrets
from typing import Any

from plugipay_sandbox.state.core import Family, Store, iso, new_id, register

AUTO_DISABLE_AFTER = 20


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
        disabledAt=None,
        disabledReason=None,
    )


def disable_endpoint(store: Store, endpoint: dict[str, Any], reason: str, status: str) -> None:
    endpoint.update(active=False, status=status, disabledAt=iso(store.now()), disabledReason=reason)
    for delivery in store.deliveries.values():
        if delivery["endpointId"] == endpoint["id"] and delivery["status"] == "pending":
            delivery.update(status="failed", lastError=f"endpoint disabled: {reason}")


def _keep(store: Store) -> dict[str, dict[str, dict[str, Any]]]:
    """A reset keeps the endpoint given on the command line, enabled again."""
    kept = {k: v for k, v in store.endpoints.items() if v.get("_origin") == "cli"}
    for endpoint in kept.values():
        enable_endpoint(endpoint)
    return {"endpoints": kept}


def _start(store: Store) -> None:
    config = store.config
    if config.forward_to:
        create_endpoint(
            store,
            "test",
            url=config.forward_to,
            events=None,
            description="--forward-to",
            secret=config.webhook_secret,
            origin="cli",
        )


FAMILY = register(Family("webhooks", stores=("endpoints",), keep=_keep, start=_start))
