"""Who may see and refund what through the API."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

REFUND_PERMISSION = "django_plugipay.refund_payment"


def sees_everything(user, model_name: str) -> bool:
    """Staff with the model's view permission see every row; others see their own."""
    return bool(user.is_staff and user.has_perm(f"django_plugipay.view_{model_name}"))


class CanRefund(BasePermission):
    message = "Refunding needs the django_plugipay.refund_payment permission."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.has_perm(REFUND_PERMISSION))
