"""Plans and their prices: create, update, archive; add, update and delete a price."""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

from plugipay_sandbox.state.core import ApiError, Family, Store, iso, new_id, register

DAY = 86400
INTERVALS = ("day", "week", "month", "year")
PRICE_MODELS = ("flat", "tiered", "volume", "usage")
TAX_MODES = ("inclusive", "exclusive")
PORTAL_FEATURES = (
    "selfServeCancel",
    "selfServePause",
    "selfServeUpgrade",
    "selfServeDowngrade",
    "updatePaymentMethod",
)
#: Days after a failed charge_automatically invoice when the sandbox retries it; after the last


def add_interval(start: float, interval: str, count: int) -> float:
    """``start`` plus ``count`` intervals; months and years keep the day of month (clamped)."""
    if interval in ("day", "week"):
        return start + count * DAY * (7 if interval == "week" else 1)
    moment = dt.datetime.fromtimestamp(start, tz=dt.timezone.utc)
    months = moment.month - 1 + count * (12 if interval == "year" else 1)
    year, month = moment.year + months // 12, months % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day).timestamp()


def create_plan(store: Store, mode: str, fields: dict[str, Any]) -> dict[str, Any]:
    with store.lock:
        prices = fields.pop("prices")
        plan: dict[str, Any] = {
            "id": new_id("plan_"),
            "name": None,
            "description": None,
            "interval": "month",
            "intervalCount": 1,
            "trialDays": 0,
            "active": True,
            "portalFeatures": {},
            "dunningPolicyId": None,
            "usageAggregate": None,
            "meteredUnit": None,
            "prices": [],
            "archivedAt": None,
            "metadata": None,
        }
        plan.update(fields)
        store.stamp(plan, mode)
        store.plans[plan["id"]] = plan
        for price in prices:
            _new_price(store, plan, price)
        store.emit("plan.created", plan)
        return plan


def _new_price(store: Store, plan: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    price: dict[str, Any] = {
        "id": new_id("price_"),
        "planId": plan["id"],
        "currency": None,
        "model": "flat",
        "unitAmount": None,
        "tiers": None,
        "taxMode": "exclusive",
        "active": True,
    }
    price.update(fields)
    store.stamp(price, plan["mode"])
    store.prices[price["id"]] = price
    _sync_prices(store, plan)
    return price


def _sync_prices(store: Store, plan: dict[str, Any]) -> None:
    """The plan embeds its prices as they are now (oldest first)."""
    own = [p for p in store.prices.values() if p["planId"] == plan["id"]]
    plan["prices"] = [store.public(p) for p in sorted(own, key=lambda p: p["_seq"])]


def add_price(store: Store, mode: str, plan_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    with store.lock:
        plan = store.get(store.plans, mode, plan_id, "plan")
        previous = {"prices": plan["prices"]}
        price = _new_price(store, plan, fields)
        store.touch(plan)
        store.emit("plan.updated", plan, previous=previous)
        return price


def update_price(store: Store, mode: str, price_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    with store.lock:
        price = store.get(store.prices, mode, price_id, "price")
        changed = {k: price[k] for k in fields if price.get(k) != fields[k]}
        price.update(fields)
        store.touch(price)
        if changed:
            plan = store.plans[price["planId"]]
            previous = {"prices": plan["prices"]}
            _sync_prices(store, plan)
            store.touch(plan)
            store.emit("plan.updated", plan, previous=previous)
        return price


def delete_price(store: Store, mode: str, price_id: str) -> None:
    """Remove a price no subscription uses (one in use answers 409: deactivate it instead)."""
    with store.lock:
        price = store.get(store.prices, mode, price_id, "price")
        users = [s["id"] for s in store.subscriptions.values() if s["priceId"] == price_id]
        if users:
            raise ApiError(
                409,
                "conflict",
                f"Price {price_id} is used by {', '.join(users)}; set active=false instead.",
            )
        plan = store.plans[price["planId"]]
        previous = {"prices": plan["prices"]}
        del store.prices[price_id]
        _sync_prices(store, plan)
        store.touch(plan)
        store.emit("plan.updated", plan, previous=previous)


def update_plan(store: Store, mode: str, plan_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    with store.lock:
        plan = store.get(store.plans, mode, plan_id, "plan")
        store.change(plan, "plan.updated", **fields)
        return plan


def archive_plan(store: Store, mode: str, plan_id: str) -> dict[str, Any]:
    with store.lock:
        plan = store.get(store.plans, mode, plan_id, "plan")
        if plan["archivedAt"]:
            raise ApiError(409, "conflict", f"Plan {plan_id} is already archived.")
        plan.update(active=False, archivedAt=iso(store.now()))
        store.touch(plan)
        store.emit("plan.archived", plan)
        return plan


def price_amount(price: dict[str, Any]) -> int:
    """What one unit of a price bills (the sandbox bills one unit of every model)."""
    if price["model"] in ("tiered", "volume"):
        tier = (price.get("tiers") or [{}])[0]
        return int(tier.get("unitAmount") or 0) + int(tier.get("flatAmount") or 0)
    return int(price.get("unitAmount") or 0)


FAMILY = register(
    Family(
        "plans",
        stores=("plans", "prices"),
        event_kinds=("plan.created", "plan.updated", "plan.archived"),
    )
)
