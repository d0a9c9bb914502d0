"""Accounts at Plugipay: the client acting for one, and provisioning a merchant's workspace."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from django_plugipay import accounts
from django_plugipay.client import PlugipayClient, get_client
from django_plugipay.conf import DEFAULT_ACCOUNT
from django_plugipay.exceptions import ConfigurationError
from django_plugipay.models import Account

ADMIN_WORKSPACES = "/admin/workspaces"
ADMIN_PARTNER_USAGE = "/admin/partner/usage"


def client_for(account: Any = None) -> PlugipayClient:
    """The client that calls Plugipay for ``account`` (an Account, an alias, an ``acc_…`` id;
    None: the account acting now): its own credentials, or the platform key with
    ``X-Plugipay-On-Behalf-Of``."""
    with accounts.acting_for(account):
        return get_client()


def provision_account(
    *,
    account_id: str,
    brand_name: str,
    business_email: str,
    partner: str | None = None,
    discount_rate: float | None = None,
) -> Account:
    """Provision the merchant workspace ``account_id`` with the platform key (the default
    account's credentials) and return its Account row, reached on behalf of (alias: the
    ``acc_…`` id). Idempotent: provisioning it again updates the workspace and the row."""
    if not account_id.startswith("acc_"):
        raise ConfigurationError(f"{account_id!r} is not a Plugipay account id (acc_…).")
    body: dict[str, Any] = {
        "accountId": account_id,
        "brandName": brand_name,
        "businessEmail": business_email,
    }
    if partner is not None:
        body["partner"] = partner
    if discount_rate is not None:
        body["discountRate"] = discount_rate
    platform = client_for(DEFAULT_ACCOUNT)
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    platform.request(
        "POST",
        ADMIN_WORKSPACES,
        json_body=body,
        idempotency_key=f"provision:{account_id}:{digest}",
    )
    fields = {"name": brand_name, "platform": True, "mode": platform_mode(platform)}
    account, created = Account.objects.get_or_create(
        plugipay_id=account_id, defaults={"alias": account_id, **fields}
    )
    if not created:
        Account.objects.filter(pk=account.pk).update(**fields)
        account.refresh_from_db()
    accounts.forget(tables=False)
    return account


def platform_mode(client: PlugipayClient) -> str:
    key = client.api_key or client.key_id or ""
    return "live" if "_live_" in key else "test"


@dataclass(frozen=True)
class UsageLine:
    """One account's line of a partner usage report (amounts in the report's currency)."""

    account_id: str
    brand_name: str
    transaction_count: int
    gross_volume: int
    discount_rate: float
    fee: int


@dataclass(frozen=True)
class PartnerUsage:
    """What Plugipay reports of a partner's accounts over a period: a line per account and
    the totals (``fee``: what the partner is billed)."""

    partner: str | None
    currency: str
    lines: list[UsageLine]
    transaction_count: int
    gross_volume: int
    fee: int


def partner_usage(
    *,
    partner: str | None = None,
    start: dt.date | dt.datetime | None = None,
    end: dt.date | dt.datetime | None = None,
) -> PartnerUsage:
    """Plugipay's usage report of the partner ``partner``'s accounts (every partner's when
    None) — transactions, gross volume, discount rate and fee per account — paid from
    ``start`` until ``end`` (exclusive; a date names its whole day), through
    ``GET /api/v1/admin/partner/usage`` with the platform key (the default account's
    credentials)."""
    params: dict[str, str] = {}
    if partner is not None:
        params["partner"] = partner
    for name, value in (("from", start), ("to", end)):
        if value is not None:
            if name == "to" and not isinstance(value, dt.datetime):
                value -= dt.timedelta(days=1)  # Plugipay's `to` date covers that whole day
            params[name] = value.isoformat()
    data, _meta = client_for(DEFAULT_ACCOUNT).request("GET", ADMIN_PARTNER_USAGE, params=params)
    lines = [
        UsageLine(
            account_id=line["accountId"],
            brand_name=line.get("brandName") or "",
            transaction_count=int(line.get("transactionCount") or 0),
            gross_volume=int(line.get("grossVolume") or 0),
            discount_rate=float(line.get("discountRate") or 0),
            fee=int(line.get("fee") or 0),
        )
        for line in data.get("lines") or []
    ]
    return PartnerUsage(
        partner=data.get("partner", partner),
        currency=data.get("currency") or "IDR",
        lines=lines,
        transaction_count=int(
            data.get("transactionCount", sum(x.transaction_count for x in lines))
        ),
        gross_volume=int(data.get("grossVolume", sum(x.gross_volume for x in lines))),
        fee=int(data.get("total", sum(x.fee for x in lines))),
    )
