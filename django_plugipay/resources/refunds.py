"""The refund resource, and keeping a payment's ``amount_refunded`` true."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, cast

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from django_plugipay import signals
from django_plugipay.client import endpoint, get_client
from django_plugipay.db import connection_for, execute_returning, lock
from django_plugipay.exceptions import InvalidObject
from django_plugipay.models import Payment, PaymentStatus, Refund, RefundStatus
from django_plugipay.models.querysets import NOT_SUBMITTED
from django_plugipay.resources.common import UPDATED_AT, parent_fields
from django_plugipay.resources.payments import PAYMENT
from django_plugipay.specs import (
    Currency,
    Group,
    Integer,
    Object,
    ResourceSpec,
    Text,
    UnresolvedReference,
    field,
    registered,
)

#: metadata key carrying our refund's idempotency key (matches Plugipay's refund to our row)
REFUND_REFERENCE_KEY = "django_plugipay_refund"
#: a requested refund older than this is synced (submitted again with the same key)
STUCK_REQUEST_AGE = dt.timedelta(minutes=5)
#: what applying a refund reads of its (locked) payment
PARENT_FIELDS = parent_fields(Payment)


endpoint("refund", "/refunds", "create", "get", "list")


class RefundSpec(ResourceSpec):
    name = "refund"
    events = ("created", "updated", "succeeded", "failed", "canceled")
    model = Refund
    lock_rank = 30
    fields = {
        "amount": field(Integer(1), "amount", required=True),
        "currency": field(Currency(), "currency"),
        "reason": field(Text(), "reason"),
        "failure_code": field(Text(), "failureCode"),
        "failure_message": field(Text(), "failureMessage", "failureReason"),
    }
    refs = {
        "updated_at": UPDATED_AT,
        "charge_id": field(Text(), "chargeId", "paymentId"),
        "source_id": field(Text(), "sourceId"),
        "source_type": field(Text(), "sourceType"),
        "metadata": field(Object(), "metadata"),
    }
    locks_with = {"charge_id": "payment"}
    tiers = (
        (RefundStatus.REQUESTED,),
        (RefundStatus.PENDING,),
        (RefundStatus.SUCCEEDED, RefundStatus.FAILED, RefundStatus.CANCELED),
    )
    signals = {
        RefundStatus.SUCCEEDED: signals.refund_succeeded,
        RefundStatus.FAILED: signals.refund_failed,
    }
    actions = {
        "created": RefundStatus.PENDING,
        "succeeded": RefundStatus.SUCCEEDED,
        "failed": RefundStatus.FAILED,
        "canceled": RefundStatus.CANCELED,
    }
    initial = RefundStatus.PENDING
    outcomes = {RefundStatus.SUCCEEDED: "success", RefundStatus.FAILED: "failure"}
    groups = {"in_flight": Group(_("In flight"))}
    example = {
        "id": "rfd_v",
        "status": "succeeded",
        "amount": 1000,
        "currency": "IDR",
        "chargeId": "pay_v",
        "reason": "duplicate",
        "metadata": {},
    }

    def lock_parent(self, values, refs, context) -> Payment:
        """The refunded payment, locked: ``amount_refunded`` is recounted under this lock."""
        payment = None
        if refs["charge_id"]:
            payment = lock(PAYMENT, plugipay_id=refs["charge_id"], only=PARENT_FIELDS)
        by_invoice = refs["source_type"] == "invoice"
        if payment is None and refs["source_id"]:
            source = "invoice__plugipay_id" if by_invoice else "checkout_session__plugipay_id"
            lookups = {source: refs["source_id"], "status": PaymentStatus.SUCCEEDED}
            payment = lock(PAYMENT, only=PARENT_FIELDS, **lookups)
        if payment is None:
            source_resource = "invoice" if by_invoice else "checkout_session"
            raise UnresolvedReference(
                f"Refund {values['plugipay_id']} names payment "
                f"{refs['charge_id'] or refs['source_id']}, which is not known here yet.",
                resource=source_resource if refs["source_id"] else None,
                plugipay_id=refs["source_id"],
            )
        values["payment_id"] = payment.pk
        values["currency"] = values["currency"] or payment.currency
        return payment

    def find(self, values, refs) -> Refund | None:
        """Our own refund (created by ``submit_refund``) is matched by its reference too,
        while the row is not linked to another refund: a second refund Plugipay made under the
        same reference is a refund of its own (mirrored, counted and signalled), not news of
        the first."""
        reference = refs["metadata"].get(REFUND_REFERENCE_KEY)
        if reference is None:
            return None
        if not isinstance(reference, str):
            raise InvalidObject(f"metadata.{REFUND_REFERENCE_KEY} must be a string")
        found = lock(self, plugipay_id=values["plugipay_id"])
        if found is not None:
            return found
        ours = lock(self, idempotency_key=reference)
        if ours is not None and ours.plugipay_id not in (None, values["plugipay_id"]):
            return None
        return ours

    def changed(self, row, moved_to, parent) -> None:
        """A succeeded refund counts in its payment's ``amount_refunded``: recounted when one
        succeeds, and when news of one already succeeded is applied (its amount may differ)."""
        if row.status == RefundStatus.SUCCEEDED:
            recount_refunded(parent)

    def fetch(self, plugipay_id: str) -> Mapping[str, Any]:
        return get_client().get_refund(plugipay_id)

    def in_flight(self, now: dt.datetime) -> models.QuerySet:
        """Pending refunds, requested ones stuck for a while, and requested ones that could
        not be queued or sent (``NOT_SUBMITTED``) — a retry sends the same key."""
        return Refund.objects.filter(
            Q(status=RefundStatus.PENDING)
            | Q(status=RefundStatus.REQUESTED, created_at__lt=now - STUCK_REQUEST_AGE)
            | Q(status=RefundStatus.REQUESTED, plugipay_id=None, failure_code=NOT_SUBMITTED)
        ).select_related("payment")


REFUND = registered("refund")


def recount_refunded(payment: Payment) -> None:
    """Set ``amount_refunded`` to the sum of succeeded refunds, in one statement compiled once
    (the payment is locked), and give the locked payment the sum the database holds (its
    receivers read that object)."""
    now = timezone.now()
    updated_at = Payment._meta.get_field("updated_at")
    stamp = cast(models.Field, updated_at).get_db_prep_save(now, connection_for(Payment))
    payment.amount_refunded = execute_returning(
        Payment,
        "recount_refunded",
        _recount_sql,
        [RefundStatus.SUCCEEDED.value, stamp, payment.pk],
        pk=payment.pk,
        returning="amount_refunded",
    )
    payment.updated_at = now


def _recount_sql(connection) -> str:
    qn = connection.ops.quote_name
    payments, refunds = Payment._meta, Refund._meta

    def column(meta, name: str) -> str:
        return qn(cast(models.Field, meta.get_field(name)).column)

    total = (
        f"SELECT SUM({column(refunds, 'amount')}) FROM {qn(refunds.db_table)} "
        f"WHERE {column(refunds, 'payment')} = {qn(payments.db_table)}.{column(payments, 'id')} "
        f"AND {column(refunds, 'status')} = %s"
    )
    return (
        f"UPDATE {qn(payments.db_table)} SET {column(payments, 'amount_refunded')} = "
        f"COALESCE(({total}), 0), {column(payments, 'updated_at')} = %s "
        f"WHERE {column(payments, 'id')} = %s"
    )
