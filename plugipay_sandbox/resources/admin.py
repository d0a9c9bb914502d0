"""The platform-admin routes (``/api/v1/admin/*``, platform keys only; plugipay-api.md §10.9):
partner workspaces and partner usage."""

from __future__ import annotations

import re
from typing import Any

from plugipay_sandbox.app import Request, api, envelope
from plugipay_sandbox.resources import MISSING, invalid, string, time_filter
from plugipay_sandbox.state import Store, accounts

ACCOUNT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DAY = 24 * 3600


def _rate(body: dict[str, Any]) -> float | None:
    value = body.get("discountRate", MISSING)
    if value is MISSING or value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise invalid(
            "discountRate", "discountRate is a number: a fraction (0.02) or a percentage (2)."
        )
    return value


@api.add("POST", "/admin/workspaces")
def provision(store: Store, request: Request):
    body = request.json()
    # Both forms name the account: accountId (the SDKs) or workspaceId (the portal's ws_…).
    field = "accountId" if "accountId" in body else "workspaceId"
    account_id = _optional(string(body, field, max_length=64))
    if account_id is not None and not ACCOUNT_ID.match(account_id):
        raise invalid(field, f"{field} is letters, digits, _ and - (acc_…).")
    account, created = accounts.provision(
        store,
        account_id=account_id,
        partner=_optional(string(body, "partner", max_length=128)),
        discount_rate=_rate(body),
        brand_name=_optional(string(body, "brandName")),
        business_email=_optional(string(body, "businessEmail", max_length=320)),
    )
    return envelope(store.public(account), status=201 if created else 200, store=store)


def _optional(value: Any) -> Any:
    return None if value is MISSING else value


@api.add("GET", "/admin/workspaces")
def list_(store: Store, request: Request):
    found = sorted(store.accounts.values(), key=lambda a: a["_seq"])
    return envelope([store.public(a) for a in found], store=store)


@api.add("GET", "/admin/workspaces/<id>")
def get(store: Store, request: Request):
    account = accounts.require_account(store, request.params["id"])
    return envelope(store.public(account), store=store)


@api.add("GET", "/admin/partner/usage")
def usage(store: Store, request: Request):
    query = request.query
    start = time_filter(query, "from", "since")
    end = time_filter(query, "to", "until")
    if end is not None and DATE_ONLY.match(query.get("to") or query.get("until") or ""):
        end += DAY  # a date names the whole day
    report = accounts.usage(
        store, request.mode, partner=query.get("partner") or None, start=start, end=end
    )
    return envelope(report, store=store)
