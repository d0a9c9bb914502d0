"""DRF permission classes over the app's one policy module, :mod:`django_plugipay.permissions`."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from django_plugipay import permissions


class CanRefund(BasePermission):
    message = f"Refunding needs the {permissions.REFUND_PERMISSION} permission."

    def has_permission(self, request, view) -> bool:
        return permissions.can_refund(request.user)
