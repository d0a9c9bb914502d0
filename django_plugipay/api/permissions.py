"""DRF permission classes over the app's one policy module, :mod:`django_plugipay.permissions`."""

from __future__ import annotations

from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import BasePermission

from django_plugipay import permissions


class CanRefund(BasePermission):
    message = format_lazy(
        _("Refunding needs the {permission} permission."), permission=permissions.REFUND_PERMISSION
    )

    def has_permission(self, request, view) -> bool:
        return permissions.can_refund(request.user)


class SeesPayouts(BasePermission):
    """Payouts and the balance are the merchant's: staff who may view payouts."""

    message = _("Payouts are for staff who may view them.")

    def has_permission(self, request, view) -> bool:
        return permissions.sees_everything(request.user, "payout")


class CanManagePayouts(BasePermission):
    message = format_lazy(
        _("Paying out needs the {permission} permission."), permission=permissions.PAYOUT_PERMISSION
    )

    def has_permission(self, request, view) -> bool:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        return permissions.can_manage_payouts(request.user)
