"""Accounts (workspaces): partner provisioning and partner usage (plugipay-api.md §10.9).

The account scoping itself is the store's (``AccountMap``, ``Store.scope``): every object map
filters by the acting account in one place. This module adds what the admin routes do.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from plugipay_sandbox.state.core import (
    ApiError,
    Family,
    Store,
    iso,
    new_id,
    parse_time,
    register,
)

#: The currency partner usage is reported in; payments in other currencies are not counted.
USAGE_CURRENCY = "IDR"


def provision(
    store: Store,
    *,
    account_id: str | None,
    partner: str | None,
    discount_rate: float | None,
    brand_name: str | None,
    business_email: str | None,
) -> tuple[dict[str, Any], bool]:
    """Create the workspace ``account_id`` (a new ``acc_…`` id when None), or update the one
    that exists with the fields given; returns it and whether it was created."""
    with store.lock, store.scope(None):
        existing = store.find_account(account_id) if account_id else None
        if existing is not None:
            fields = {
                "partner": partner,
                "discountRate": discount_rate,
                "brandName": brand_name,
                "businessEmail": business_email,
            }
            existing.update({k: v for k, v in fields.items() if v is not None})
            store.touch(existing)
            return existing, False
        account = store.new_account(
            account_id or new_id("acc_"),
            brand_name=brand_name,
            business_email=business_email,
            partner=partner,
            discount_rate=discount_rate,
        )
        store.accounts[account["id"]] = account
        return account, True


def fee(gross_volume: int, discount_rate: float | None) -> int:
    """The partner fee on a volume, in whole IDR (half up): the rate is a fraction (0.02), or a
    percentage when above 1 (2 → 2 %)."""
    rate = Decimal(str(discount_rate or 0))
    if rate > 1:
        rate /= 100
    return int((Decimal(gross_volume) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def usage(
    store: Store, mode: str, *, partner: str | None, start: float | None, end: float | None
) -> dict[str, Any]:
    """Per account of ``partner`` (every partner's when None): the payments taken in ``mode``
    between ``start`` (inclusive) and ``end`` (exclusive), their gross volume and the fee."""
    with store.lock, store.scope(None):
        accounts = sorted(
            (a for a in store.accounts.values() if a["partner"] is not None),
            key=lambda a: a["_seq"],
        )
        lines = []
        for account in accounts:
            if partner is not None and account["partner"] != partner:
                continue
            paid = [
                p
                for p in store.payments.values()
                if p["accountId"] == account["id"]
                and p["mode"] == mode
                and p["currency"] == USAGE_CURRENCY
                and p.get("paidAt")
                and _within(p["paidAt"], start, end)
            ]
            volume = sum(p["amount"] for p in paid)
            lines.append(
                {
                    "accountId": account["id"],
                    "workspaceId": account["workspaceId"],
                    "brandName": account["brandName"],
                    "partner": account["partner"],
                    "transactionCount": len(paid),
                    "grossVolume": volume,
                    "discountRate": account["discountRate"],
                    "fee": fee(volume, account["discountRate"]),
                    "currency": USAGE_CURRENCY,
                }
            )
        return {
            "partner": partner,
            "from": iso(start) if start is not None else None,
            "to": iso(end) if end is not None else None,
            "currency": USAGE_CURRENCY,
            "lines": lines,
            "total": sum(line["fee"] for line in lines),
            "transactionCount": sum(line["transactionCount"] for line in lines),
            "grossVolume": sum(line["grossVolume"] for line in lines),
        }


def _within(paid_at: str, start: float | None, end: float | None) -> bool:
    moment = parse_time(paid_at)
    return (start is None or moment >= start) and (end is None or moment < end)


def require_account(store: Store, account_or_workspace_id: str) -> dict[str, Any]:
    account = store.find_account(account_or_workspace_id)
    if account is None:
        raise ApiError(404, "not_found", f"No workspace with id {account_or_workspace_id!r}.")
    return account


FAMILY = register(Family("accounts"))
