"""Creating Plugipay customers and linking them to users."""

from __future__ import annotations

from typing import Any

from django_plugipay.accounts import current_account_pk, takes_account
from django_plugipay.client import get_client
from django_plugipay.conf import app_settings
from django_plugipay.exceptions import APIError
from django_plugipay.metadata import validate_metadata
from django_plugipay.models import Customer
from django_plugipay.services.apply import upsert_customer


@takes_account
def create_customer(
    *,
    email: str,
    name: str | None = None,
    phone: str | None = None,
    user=None,
    metadata: dict[str, str] | None = None,
    external_id: str | None = None,
) -> Customer:
    """Create a customer at Plugipay and mirror it (linked to ``user`` when given).

    Bad ``metadata`` raises ``ValidationError`` naming the key before anything is sent.
    """
    validate_metadata(metadata)
    body: dict[str, Any] = {"email": email}
    for key, value in (
        ("name", name),
        ("phone", phone),
        ("metadata", metadata),
        ("externalId", external_id),
    ):
        if value:
            body[key] = value
    try:
        obj = get_client().create_customer(body)
    except APIError as exc:
        if exc.status != 409 or not external_id:
            raise
        # Another process created this user's customer first: adopt it.
        obj = next(get_client().list_customers(externalId=external_id, limit=1))
    return upsert_customer(obj, user=user)


@takes_account
def get_or_create_customer_for_user(*, user) -> Customer:
    """The user's customer in the configured mode and the account acting, created at Plugipay
    the first time.

    The user's ``externalId`` (``user:<pk>``) is unique at Plugipay, so two concurrent first
    calls still end with one customer.
    """
    mode = app_settings.MODE
    existing = Customer.objects.filter(
        user=user, mode=mode, account_id=current_account_pk()
    ).first()
    if existing is not None:
        return existing
    full_name = user.get_full_name() if hasattr(user, "get_full_name") else ""
    return create_customer(
        email=getattr(user, "email", "") or f"user-{user.pk}@example.invalid",
        name=full_name or user.get_username(),
        user=user,
        external_id=f"user:{user.pk}",
    )
