"""Plans and their prices: create, list, get, update, archive; add and update a price."""

from __future__ import annotations

from typing import Any

from plugipay_sandbox.app import Request, Response, api, envelope, paginate
from plugipay_sandbox.resources import (
    MISSING,
    boolean,
    choice,
    created_between,
    integer,
    invalid,
    metadata,
    nested,
    present,
    query_flag,
    string,
)
from plugipay_sandbox.state import CURRENCIES, Store, plans

#: the longest period a plan may have: five years (each renewal stays within the clock's reach)
MAX_PERIOD_DAYS = 5 * 366


def price_fields(body: dict[str, Any]) -> dict[str, Any]:
    """A price as the API takes it: currency, model, unitAmount or tiers, taxMode, active."""
    model = choice(body, "model", plans.PRICE_MODELS) or "flat"
    fields = present(
        {
            "currency": choice(body, "currency", CURRENCIES, required=True),
            "model": model,
            "unitAmount": integer(body, "unitAmount", required=model in ("flat", "usage")),
            "tiers": _tiers(body) if model in ("tiered", "volume") else MISSING,
            "taxMode": choice(body, "taxMode", plans.TAX_MODES),
            "active": boolean(body, "active"),
        }
    )
    return {k: v for k, v in fields.items() if v is not None}


def _tiers(body: dict[str, Any]) -> list[dict[str, Any]]:
    tiers = body.get("tiers")
    if not isinstance(tiers, list) or not tiers:
        raise invalid("tiers", "tiers must be a non-empty array for tiered and volume prices.")
    for index, tier in enumerate(tiers):
        if not isinstance(tier, dict):
            raise invalid(f"tiers[{index}]", f"tiers[{index}] must be an object.")
        nested(f"tiers[{index}]", integer, tier, "unitAmount", required=True)
        nested(f"tiers[{index}]", integer, tier, "flatAmount")
        nested(f"tiers[{index}]", integer, tier, "upTo", minimum=1)
    return tiers


def _portal_features(body: dict[str, Any]) -> dict[str, bool]:
    features = body.get("portalFeatures", MISSING)
    if features is MISSING or features is None:
        raise invalid("portalFeatures", "portalFeatures is required (an object of booleans).")
    if not isinstance(features, dict):
        raise invalid("portalFeatures", "portalFeatures must be an object of booleans.")
    for key, value in features.items():
        if key not in plans.PORTAL_FEATURES:
            raise invalid(
                f"portalFeatures.{key}",
                f"portalFeatures.{key} is unknown; use {', '.join(plans.PORTAL_FEATURES)}.",
            )
        if not isinstance(value, bool):
            raise invalid(f"portalFeatures.{key}", f"portalFeatures.{key} must be true or false.")
    return {key: bool(features.get(key, False)) for key in plans.PORTAL_FEATURES}


def plan_fields(body: dict[str, Any], *, create: bool) -> dict[str, Any]:
    fields = {
        "name": string(body, "name", required=create, nullable=False),
        "description": string(body, "description", max_length=2000),
        "trialDays": integer(body, "trialDays", maximum=730),
        "active": boolean(body, "active"),
        "dunningPolicyId": string(body, "dunningPolicyId"),
        "metadata": metadata(body),
    }
    if create or "portalFeatures" in body:
        fields["portalFeatures"] = _portal_features(body)
    if create:
        prices = body.get("prices", MISSING)
        if not isinstance(prices, list) or not prices:
            raise invalid("prices", "prices must be a non-empty array of prices.")
        for index, price in enumerate(prices):
            if not isinstance(price, dict):
                raise invalid(f"prices[{index}]", f"prices[{index}] must be an object.")
        fields.update(
            interval=choice(body, "interval", plans.INTERVALS, required=True),
            intervalCount=integer(body, "intervalCount", minimum=1, maximum=365),
            usageAggregate=choice(body, "usageAggregate", ("sum", "max", "last")),
            meteredUnit=string(body, "meteredUnit"),
            prices=[nested(f"prices[{i}]", price_fields, p) for i, p in enumerate(prices)],
        )
        count = fields["intervalCount"]
        days = {"day": 1, "week": 7, "month": 31, "year": 366}[fields["interval"]]
        if days * (1 if count in (MISSING, None) else count) > MAX_PERIOD_DAYS:
            raise invalid("intervalCount", "A plan's period is at most five years.")
    nullable = () if create else ("description", "dunningPolicyId", "metadata")
    return {k: v for k, v in present(fields).items() if v is not None or k in nullable}


@api.add("POST", "/plans")
def create(store: Store, request: Request):
    plan = plans.create_plan(store, request.mode, plan_fields(request.json(), create=True))
    return envelope(store.public(plan), status=201, store=store)


@api.add("GET", "/plans")
def list_(store: Store, request: Request):
    active = query_flag(request.query, "active")
    items = [
        p
        for p in store.plans.values()
        if p["mode"] == request.mode and (active is None or p["active"] == active)
    ]
    return paginate(store, request, created_between(items, request.query))


@api.add("GET", "/plans/<id>")
def get(store: Store, request: Request):
    plan = store.get(store.plans, request.mode, request.params["id"], "plan")
    return envelope(store.public(plan), store=store)


@api.add("PATCH", "/plans/<id>")
def update(store: Store, request: Request):
    fields = plan_fields(request.json(), create=False)
    plan = plans.update_plan(store, request.mode, request.params["id"], fields)
    return envelope(store.public(plan), store=store)


@api.add("POST", "/plans/<id>/archive")
def archive(store: Store, request: Request):
    request.json()
    plan = plans.archive_plan(store, request.mode, request.params["id"])
    return envelope(store.public(plan), store=store)


@api.add("POST", "/plans/<id>/prices")
def add_price(store: Store, request: Request):
    fields = price_fields(request.json())
    price = plans.add_price(store, request.mode, request.params["id"], fields)
    return envelope(store.public(price), status=201, store=store)


@api.add("PATCH", "/prices/<id>")
def update_price(store: Store, request: Request):
    body = request.json()
    active = boolean(body, "active")
    if active is MISSING or active is None:
        raise invalid("active", "active is required (true or false).")
    price = plans.update_price(store, request.mode, request.params["id"], {"active": active})
    return envelope(store.public(price), store=store)


@api.add("DELETE", "/prices/<id>")
def delete_price(store: Store, request: Request):
    plans.delete_price(store, request.mode, request.params["id"])
    return Response(b"", 204)
