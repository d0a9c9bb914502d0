"""The plan catalog as code: make Plugipay's plans and prices match a declarative definition.

A definition maps a stable key (``"member"``) to a plan in Plugipay's own field names — the body
of ``POST /plans``. The key is stored in the plan's ``metadata`` (``django_plugipay_plan``), so
a run finds the plan it created before; every write carries an idempotency key derived from
what it writes, so running twice (or two deploys at once) creates nothing new.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from django_plugipay.accounts import takes_account
from django_plugipay.client import get_client
from django_plugipay.conf import app_settings
from django_plugipay.exceptions import PlugipayError
from django_plugipay.models import Plan
from django_plugipay.models.querysets import PLAN_KEY
from django_plugipay.resources.billing import PLAN
from django_plugipay.services.apply import advance

#: The plan's metadata key holding its definition key.
#: What Plugipay's own SDK sends when a plan gives no ``portalFeatures`` (the API needs them).
DEFAULT_PORTAL_FEATURES = {
    "selfServeCancel": True,
    "selfServePause": False,
    "selfServeUpgrade": False,
    "selfServeDowngrade": False,
    "updatePaymentMethod": True,
}
#: Fields Plugipay lets a plan change after creation (``PATCH /plans/{id}``).
PATCHABLE = ("name", "description")
#: Fields fixed at creation: a different value needs a new plan (a new key).
FIXED = ("interval", "intervalCount", "trialDays", "portalFeatures")
#: A price's identity: two prices with the same values are the same price.
PRICE_FIELDS = ("currency", "model", "unitAmount", "tiers", "taxMode")
PRICE_DEFAULTS = {"model": "flat", "taxMode": "exclusive", "unitAmount": None, "tiers": None}
PLAN_DEFAULTS = {"description": None, "intervalCount": 1, "trialDays": 0}


@dataclasses.dataclass(frozen=True)
class EnsuredPlan:
    """What :func:`ensure_plans` did for one definition."""

    key: str
    plan: Plan
    #: ``"created"``, ``"updated"`` (renamed, or prices added or deactivated) or ``"unchanged"``
    action: str
    prices_added: int = 0
    prices_deactivated: int = 0
    #: fields that differ from the definition but Plugipay cannot change on an existing plan
    #: (give the definition a new key to create a new plan, and archive the old one)
    fixed_differences: tuple[str, ...] = ()


def _digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _idempotency_key(*parts: Any) -> str:
    return f"django-plugipay-plans-{_digest(*parts)}"


def _price_identity(price: Mapping[str, Any]) -> tuple:
    values = {**PRICE_DEFAULTS, **price}
    return tuple(json.dumps(values.get(name), sort_keys=True) for name in PRICE_FIELDS)


def _comparable(name: str, value: Any) -> Any:
    """``value`` of the fixed field ``name`` as compared with the plan's: Plugipay stores every
    portal flag (one a definition leaves out is false), so only the flags that are on count."""
    if name == "portalFeatures" and isinstance(value, Mapping):
        return frozenset(flag for flag, on in value.items() if on)
    return value


def _check(key: str, definition: Any) -> dict[str, Any]:
    if not isinstance(definition, Mapping):
        raise PlugipayError(f"Plan {key!r}: the definition must be a dict.", code="plans")
    for required in ("name", "interval"):
        if not definition.get(required):
            raise PlugipayError(f"Plan {key!r}: {required!r} is required.", code="plans")
    prices = definition.get("prices")
    if (
        not isinstance(prices, list)
        or not prices
        or not all(isinstance(p, Mapping) for p in prices)
    ):
        raise PlugipayError(
            f"Plan {key!r}: 'prices' must be a non-empty list of prices.", code="plans"
        )
    body = dict(definition)
    body.setdefault("portalFeatures", DEFAULT_PORTAL_FEATURES)
    body["metadata"] = {**(definition.get("metadata") or {}), PLAN_KEY: key}
    return body


@takes_account
def ensure_plans(*, definitions: Mapping[str, Any] | None = None) -> list[EnsuredPlan]:
    """Make Plugipay's catalog match ``definitions`` (default: the ``PLANS`` setting) and
    mirror it; idempotent.

    Per key: the active plan created for that key is found (by its metadata), else created; a
    changed ``name`` or ``description`` is patched; each listed price missing from the plan is
    added, and each active price no longer listed is deactivated (subscriptions on it go on;
    it takes no new ones). Plans not in ``definitions`` are left alone. Raises
    ``PlugipayError`` for a malformed definition and ``APIError`` when Plugipay refuses one.
    """
    wanted = {
        str(key): _check(str(key), value)
        for key, value in (app_settings.PLANS if definitions is None else definitions).items()
    }
    client = get_client()
    remote = list(client.list_plans(limit=100))
    return [_ensure(client, key, body, remote) for key, body in wanted.items()]


def _ensure(client, key: str, body: dict[str, Any], remote: list[dict[str, Any]]) -> EnsuredPlan:
    mine = [p for p in remote if (p.get("metadata") or {}).get(PLAN_KEY) == key]
    current = next((p for p in mine if p.get("active", True)), None)
    if current is None:
        # The generation (plans made for this key before) keeps an archived plan's create from
        # being replayed for its successor.
        obj = client.create_plan(body, idempotency_key=_idempotency_key("create", key, len(mine)))
        return EnsuredPlan(key=key, plan=advance(PLAN, obj), action="created")
    plan_id = current["id"]
    fixed = tuple(
        name
        for name in FIXED
        if name in body
        and _comparable(name, body[name])
        != _comparable(name, current.get(name, PLAN_DEFAULTS.get(name)))
    )
    changes = {
        name: body.get(name)
        for name in PATCHABLE
        if body.get(name, PLAN_DEFAULTS.get(name)) != current.get(name)
    }
    if changes:
        client.update_plan(
            plan_id, changes, idempotency_key=_idempotency_key("patch", plan_id, changes)
        )
    listed = {_price_identity(price) for price in body["prices"]}
    have = {_price_identity(p) for p in current.get("prices") or [] if p.get("active", True)}
    added = 0
    for price in body["prices"]:
        identity = _price_identity(price)
        if identity not in have:
            # The generation lets a price deactivated earlier be listed again.
            generation = sum(_price_identity(p) == identity for p in current.get("prices") or [])
            idempotency_key = _idempotency_key("price", plan_id, identity, generation)
            client.add_price(plan_id, dict(price), idempotency_key=idempotency_key)
            have.add(identity)
            added += 1
    deactivated = 0
    for price in current.get("prices") or []:
        if price.get("active", True) and _price_identity(price) not in listed:
            client.update_price(
                price["id"],
                {"active": False},
                idempotency_key=_idempotency_key("deactivate", price["id"]),
            )
            deactivated += 1
    moved = bool(changes or added or deactivated)
    plan = advance(PLAN, client.get_plan(plan_id) if moved else current)
    return EnsuredPlan(
        key=key,
        plan=plan,
        action="updated" if moved else "unchanged",
        prices_added=added,
        prices_deactivated=deactivated,
        fixed_differences=fixed,
    )
