"""Who may do what: the app's permission names, the staff rules and which rows a user reads.

The one home of policy, read by the admin, the DRF API (``api/permissions.py``) and the views:

- an operation (refund, confirm a transfer, manage subscriptions or invoices, cancel sessions,
  reprocess events) needs its permission, named here once;
- the permission for an operation implies seeing the objects it is done on in the admin
  (a user with "Can refund payments" opens the payment's page and refunds from it);
- staff who may view a model (by its view permission or an operation implying it) read every
  row of it in the admin, the API and the views; everyone else reads only their own rows —
  rows of their Plugipay customer in the configured mode (``for_user``, the same rule
  ``billing.customers`` follows).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model, QuerySet

APP_LABEL = "django_plugipay"

#: Refund payments (the admin's Refund button and action, the API's refund endpoint).
REFUND_PERMISSION = f"{APP_LABEL}.refund_payment"
#: Confirm that a manual transfer was received.
CONFIRM_PERMISSION = f"{APP_LABEL}.confirm_payment"
#: Cancel, pause and resume subscriptions.
SUBSCRIPTION_PERMISSION = f"{APP_LABEL}.manage_subscription"
#: Void and send invoices.
INVOICE_PERMISSION = f"{APP_LABEL}.manage_invoice"
#: Run durable deliveries again now, or mark them resolved.
DELIVERY_PERMISSION = f"{APP_LABEL}.manage_delivery"
#: Create payouts, cancel them and mark manual ones in transit, paid or failed.
PAYOUT_PERMISSION = f"{APP_LABEL}.manage_payout"

#: The operation permission that implies seeing a model (by model name) in the admin.
IMPLIES_VIEW = {
    "payment": REFUND_PERMISSION,
    "refund": REFUND_PERMISSION,
    "checkoutsession": CONFIRM_PERMISSION,
    "subscription": SUBSCRIPTION_PERMISSION,
    "invoice": INVOICE_PERMISSION,
    "delivery": DELIVERY_PERMISSION,
    "payout": PAYOUT_PERMISSION,
}


def permission(action: str, model_name: str) -> str:
    """The name of one of Django's model permissions: ``permission("view", "payment")``."""
    return f"{APP_LABEL}.{action}_{model_name}"


def can_refund(user: Any) -> bool:
    return bool(user and user.has_perm(REFUND_PERMISSION))


def can_confirm(user: Any) -> bool:
    return bool(user and user.has_perm(CONFIRM_PERMISSION))


def can_manage_subscriptions(user: Any) -> bool:
    return bool(user and user.has_perm(SUBSCRIPTION_PERMISSION))


def can_manage_invoices(user: Any) -> bool:
    return bool(user and user.has_perm(INVOICE_PERMISSION))


def can_manage_deliveries(user: Any) -> bool:
    return bool(user and user.has_perm(DELIVERY_PERMISSION))


def can_manage_payouts(user: Any) -> bool:
    return bool(user and user.has_perm(PAYOUT_PERMISSION))


def can_email_receipts(user: Any) -> bool:
    """Have Plugipay e-mail a receipt to its customer (Django's ``change_receipt``: the
    mirror itself stays read-only)."""
    return bool(user and user.has_perm(permission("change", "receipt")))


def can_cancel_sessions(user: Any) -> bool:
    return bool(user and user.has_perm(permission("change", "checkoutsession")))


def can_reprocess_events(user: Any) -> bool:
    return bool(user and user.has_perm(permission("change", "webhookevent")))


def can_view(user: Any, model_name: str) -> bool:
    """May ``user`` see this model's rows in the admin: its view or change permission, or
    the operation permission that implies it (:data:`IMPLIES_VIEW`)."""
    if not user:
        return False
    implied = IMPLIES_VIEW.get(model_name)
    return (
        user.has_perm(permission("view", model_name))
        or user.has_perm(permission("change", model_name))
        or bool(implied and user.has_perm(implied))
    )


def sees_everything(user: Any, model_name: str) -> bool:
    """Staff who may view the model see every row; others see their own."""
    return bool(user and user.is_staff and can_view(user, model_name))


def visible(queryset: QuerySet, user: Any) -> QuerySet:
    """The rows of ``queryset`` ``user`` may read: all of them for :func:`sees_everything`,
    else the user's own (``for_user``: their customer's, in the configured mode)."""
    if sees_everything(user, queryset.model._meta.model_name or ""):
        return queryset
    return queryset.for_user(user)  # type: ignore[attr-defined]


def can_read(user: Any, obj: Model) -> bool:
    """May ``user`` read this one object (the rule of :func:`visible`)."""
    manager = type(obj)._default_manager
    return visible(manager.filter(pk=obj.pk), user).exists()
