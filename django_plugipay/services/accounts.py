"""Accounts at Plugipay: the client acting for one, and provisioning a merchant's workspace."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django_plugipay import accounts
from django_plugipay.client import PlugipayClient, get_client
from django_plugipay.conf import DEFAULT_ACCOUNT
from django_plugipay.exceptions import ConfigurationError
from django_plugipay.models import Account

ADMIN_WORKSPACES = "/admin/workspaces"


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
