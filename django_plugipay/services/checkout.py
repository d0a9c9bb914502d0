"""Starting, syncing and canceling checkout sessions."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from django_plugipay.accounts import takes_account
from django_plugipay.client import get_client
from django_plugipay.conf import app_settings
from django_plugipay.exceptions import APIError, PlugipayError
from django_plugipay.metadata import validate_metadata
from django_plugipay.models import CheckoutSession, Customer, SessionStatus
from django_plugipay.money import check_amount
from django_plugipay.services.apply import sync_object, upsert_checkout_session


@takes_account
def create_checkout_session(
    *,
    amount: int,
    currency: str,
    success_url: str,
    cancel_url: str,
    customer: Customer | None = None,
    description: str | None = None,
    line_items: list[dict[str, Any]] | None = None,
    methods: list[str] | None = None,
    metadata: dict[str, str] | None = None,
    expires_in: int | None = None,
) -> CheckoutSession:
    """Create a hosted checkout at Plugipay and mirror it; send the buyer to ``session.url``.

    ``amount`` is in the currency's minor unit. A ``description`` without ``line_items``
    becomes a single line item. Methods and expiry default from settings and are always sent.
    Bad ``metadata`` raises ``ValidationError`` naming the key before anything is sent.
    """
    validate_metadata(metadata)
    try:
        check_amount(amount, currency)
    except ValueError as exc:
        raise PlugipayError(str(exc), code="amount", field="amount") from None
    if line_items is None:
        line_items = (
            [{"name": description, "quantity": 1, "unitAmount": amount}] if description else []
        )
    body: dict[str, Any] = {
        "amount": amount,
        "currency": currency.upper(),
        "methods": list(methods or app_settings.DEFAULT_METHODS),
        "successUrl": success_url,
        "cancelUrl": cancel_url,
        "lineItems": line_items,
        "expiresInSec": int(expires_in or app_settings.SESSION_EXPIRES_IN),
    }
    if customer is not None:
        body["customerId"] = customer.plugipay_id
    if metadata:
        body["metadata"] = metadata
    try:
        obj = get_client().create_checkout_session(body)
    except APIError as exc:
        if customer is not None and exc.status == 404 and customer.plugipay_id in exc.message:
            raise unknown_customer(customer, exc) from exc
        raise
    return upsert_checkout_session(obj)


def unknown_customer(customer: Customer, exc: APIError) -> APIError:
    """Plugipay does not know a customer this database has: say what probably happened."""
    return APIError(
        f"Plugipay has no customer {customer.plugipay_id} (local Customer #{customer.pk}"
        f"{f', user {customer.user_id}' if customer.user_id else ''}, {customer.mode} mode). "
        "Probably the sandbox was restarted empty (--fresh, or another --state-file) or the "
        "keys changed between test and live since the row was created. Fix: delete that "
        "Customer row (the next checkout creates a new one), or run the sandbox with the "
        "state file it had; with real Plugipay, check that KEY_ID/SECRET belong to the "
        "account and mode that created it.",
        status=exc.status,
        code=exc.code,
        request_id=exc.request_id,
        field="customer",
    )


@takes_account
def sync_checkout_session(*, session: CheckoutSession) -> CheckoutSession:
    """Fetch the session from Plugipay and apply it through the same path as webhooks."""
    return sync_object(session)


@takes_account
def cancel_checkout_session(*, session: CheckoutSession) -> CheckoutSession:
    """Cancel an open session at Plugipay; the mirror moves to canceled (signal once)."""
    return upsert_checkout_session(get_client().cancel_checkout_session(session.plugipay_id))


@takes_account
def confirm_checkout_session(*, session: CheckoutSession, confirmed_by=None) -> CheckoutSession:
    """Tell Plugipay the manual transfer of a ``pending_review`` session arrived; the mirror
    moves to completed (``checkout_session_completed`` and ``payment_succeeded`` once).

    Refuses, without calling Plugipay, a session that is not ``pending_review`` here. The call
    carries the idempotency key ``confirm:<session id>`` (a retry, or a second member of staff
    confirming at the same moment, is the same request) and runs outside any transaction;
    ``confirmed_by`` (a user) and the time are stored on the row (first confirmation wins).
    """
    if session.status != SessionStatus.PENDING_REVIEW:
        raise PlugipayError(
            _("Only a session waiting for review can be confirmed; this one is %(status)s.")
            % {"status": session.get_status_display()},
            code="not_pending_review",
        )
    obj = get_client().confirm_checkout_session(
        session.plugipay_id, idempotency_key=f"confirm:{session.plugipay_id}"
    )
    row = upsert_checkout_session(obj)
    CheckoutSession.objects.filter(pk=row.pk, confirmed_at=None).update(
        confirmed_by_id=getattr(confirmed_by, "pk", None), confirmed_at=timezone.now()
    )
    row.refresh_from_db()
    return row
