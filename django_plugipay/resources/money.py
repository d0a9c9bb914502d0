"""Money out: payouts (by webhook and reconciliation), receipts and ledger entries (by sync).

Lock order: … → refund (30) → receipt (35) → payout (40) → ledger entry (45). A receipt links
its payment, invoice and customer when they are mirrored (it never waits for them); a ledger
entry stands alone.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any

from django.db import models
from django.utils.translation import gettext_lazy as _

from django_plugipay import signals
from django_plugipay.client import endpoint, get_client
from django_plugipay.context import current_account_pk
from django_plugipay.db import lock
from django_plugipay.exceptions import InvalidObject
from django_plugipay.models import (
    Invoice,
    LedgerDirection,
    LedgerEntry,
    Payout,
    PayoutMethod,
    PayoutStatus,
    Receipt,
)
from django_plugipay.resources.common import UPDATED_AT
from django_plugipay.specs import (
    Choice,
    Currency,
    Group,
    Integer,
    Link,
    ResourceSpec,
    Text,
    Timestamp,
    field,
    registered,
)

endpoint("payout", "/payouts", "create", "get", "list", actions=("cancel",))
endpoint("receipt", "/receipts", "get", "list", actions=("email",))
endpoint("ledger_entry", "/ledger", "list", plural="ledger_entries")

#: The manual transitions: status → the API's action (``POST /payouts/{id}/<action>``).
MARK_ACTIONS = {
    PayoutStatus.IN_TRANSIT: "mark-in-transit",
    PayoutStatus.PAID: "mark-paid",
    PayoutStatus.FAILED: "mark-failed",
}


class LastFour(Text):
    """A bank account number, of which only the last four characters are kept."""

    label = "string (the last 4 characters are kept)"

    def clean(self, value: Any, max_length: int | None) -> Any:
        return super().clean(value, None)[-4:]


class PayoutSpec(ResourceSpec):
    name = "payout"
    events = ("created", "in_transit", "paid", "failed", "cancelled")
    model = Payout
    lock_rank = 40
    fields = {
        "amount": field(Integer(1), "amount", required=True),
        "currency": field(Currency(), "currency"),
        "method": field(Choice(PayoutMethod.values), "method", required=True),
        "bank_code": field(Text(), "bankCode"),
        "bank_name": field(Text(), "bankName"),
        "bank_account_last4": field(LastFour(), "accountNumber", "bankAccountNumber"),
        "bank_account_holder": field(Text(), "accountHolder", "bankAccountHolder"),
        "note": field(Text(), "note"),
        "reference": field(Text(), "reference"),
        "failure_reason": field(Text(), "failureReason"),
        "processed_at": field(Timestamp(), "processedAt"),
        "completed_at": field(Timestamp(), "completedAt"),
    }
    refs = {"updated_at": UPDATED_AT}
    tiers = (
        (PayoutStatus.PENDING,),
        (PayoutStatus.IN_TRANSIT,),
        (PayoutStatus.PAID, PayoutStatus.FAILED, PayoutStatus.CANCELED),
    )
    signals = {
        PayoutStatus.PAID: signals.payout_paid,
        PayoutStatus.FAILED: signals.payout_failed,
        PayoutStatus.CANCELED: signals.payout_canceled,
    }
    actions = {
        "created": PayoutStatus.PENDING,
        "in_transit": PayoutStatus.IN_TRANSIT,
        "paid": PayoutStatus.PAID,
        "failed": PayoutStatus.FAILED,
        "canceled": PayoutStatus.CANCELED,
    }
    outcomes = {PayoutStatus.PAID: "success", PayoutStatus.FAILED: "failure"}
    groups = {"locking": Group(_("Holding money"))}
    example = {
        "id": "po_v",
        "status": "in_transit",
        "amount": 50000,
        "currency": "IDR",
        "method": "manual",
        "bankCode": "BCA",
        "bankName": "Bank Central Asia",
        "accountNumber": "1234567890",
        "accountHolder": "Toko Contoh",
        "note": "Weekly",
        "reference": "TRF-1",
        "failureReason": None,
        "processedAt": "2026-01-01T00:00:00Z",
        "completedAt": None,
        "updatedAt": "2026-01-01T00:00:00Z",
    }

    def lock_parent(self, values, refs, context) -> None:
        refs["local_pk"] = context.get("local_pk")

    def find(self, values, refs) -> Payout | None:
        """The row a ``create_payout`` call wrote before calling Plugipay is matched by its
        pk (the create call's answer carries no reference of ours)."""
        if refs.get("local_pk") is None:
            return None
        return lock(self, plugipay_id=values["plugipay_id"]) or lock(self, pk=refs["local_pk"])

    def fetch(self, plugipay_id: str) -> Mapping[str, Any]:
        return get_client().get_payout(plugipay_id)

    def in_flight(self, now: dt.datetime) -> models.QuerySet:
        """Payouts still holding money, created at Plugipay (a disbursement moves there)."""
        return Payout.objects.locking().exclude(plugipay_id=None)


#: Receipts issued before this instant are mirrored without ``receipt_issued`` (see
#: :func:`announcing_since`); None: every new one is announced.
_announced_since: contextvars.ContextVar[dt.datetime | None] = contextvars.ContextVar(
    "plugipay_receipts_announced_since", default=None
)


@contextlib.contextmanager
def announcing_since(moment: dt.datetime) -> Iterator[None]:
    """Mirror receipts issued before ``moment`` without sending ``receipt_issued`` (an
    account's first receipts sync reads every receipt Plugipay ever issued: its buyers had
    theirs long ago, and a receiver that e-mails receipts must not mail them again)."""
    token = _announced_since.set(moment)
    try:
        yield
    finally:
        _announced_since.reset(token)


class ReceiptSpec(ResourceSpec):
    """A receipt: issued by Plugipay once, never changed but for being e-mailed."""

    name = "receipt"
    model = Receipt
    lock_rank = 35
    fields = {
        "number": field(Text(), "number"),
        "source_type": field(Text(), "sourceType"),
        "source_id": field(Text(), "sourceId"),
        "amount": field(Integer(0), "total", "amount", required=True),
        "currency": field(Currency(), "currency"),
        "method": field(Text(), "method"),
        "subtotal": field(Integer(0), "subtotal", default=0),
        "tax_amount": field(Integer(0), "taxAmount", default=0),
        "issued_at": field(Timestamp(), "issuedAt"),
        "emailed_at": field(Timestamp(), "emailedAt"),
    }
    refs = {
        "updated_at": UPDATED_AT,
        "payment_id": field(Text(), "paymentId"),
        "customer_id": field(Text(), "customerId"),
    }
    links = {
        "payment": Link("django_plugipay.Payment", "payment_id"),
        "customer": Link("django_plugipay.Customer", "customer_id"),
    }
    example = {
        "id": "rcpt_v",
        "number": "RCPT-000001",
        "sourceType": "checkout_session",
        "sourceId": "cs_v",
        "customerId": "cus_v",
        "paymentId": "pay_v",
        "amount": 111000,
        "currency": "IDR",
        "method": "card",
        "subtotal": 100000,
        "taxAmount": 11000,
        "total": 111000,
        "issuedAt": "2026-01-01T00:00:00Z",
        "emailedAt": None,
    }

    def read(self, obj, action=None):
        """A receipt without PPN carries no split (plugipay-api.md §10.8): its whole amount
        is the subtotal, so subtotal and tax add up to the total either way."""
        values, refs = super().read(obj, action)
        if obj.get("subtotal") is None:
            values["subtotal"] = max(values["amount"] - values["tax_amount"], 0)
        return values, refs

    def lock_parent(self, values, refs, context) -> None:
        if values["source_type"] == "invoice" and values["source_id"]:
            values["invoice_id"] = (  # the acting account's invoice, never another's
                Invoice.objects.filter(
                    plugipay_id=values["source_id"], account_id=current_account_pk()
                )
                .values_list("pk", flat=True)
                .first()
            )

    def remember(self, row: Receipt) -> int:
        return row.pk

    def transitions(self, row, moved_to, before) -> list:
        """``receipt_issued`` when the receipt is first mirrored, never again (nor for one
        issued before :func:`announcing_since`'s moment)."""
        since = _announced_since.get()
        if before is not None or (since and row.issued_at and row.issued_at < since):
            return []
        return [signals.receipt_issued]

    def fetch(self, plugipay_id: str) -> Mapping[str, Any]:
        return get_client().get_receipt(plugipay_id)


class LedgerEntrySpec(ResourceSpec):
    """One leg of a ledger transaction (read-only at Plugipay: listed, never fetched alone)."""

    name = "ledger_entry"
    model = LedgerEntry
    lock_rank = 45
    fields = {
        "tx_id": field(Text(), "txId", required=True),
        "code": field(Text(), "code", required=True),
        "direction": field(Text(), "direction", required=True),
        "amount": field(Integer(0), "amount", required=True),
        "currency": field(Currency(), "currency"),
        "source_type": field(Text(), "sourceType"),
        "source_id": field(Text(), "sourceId"),
        "memo": field(Text(), "memo"),
        "posted_at": field(Timestamp(), "postedAt"),
    }
    example = {
        "id": "le_v",
        "txId": "ltx_v",
        "code": "cash",
        "direction": "debit",
        "amount": 100000,
        "currency": "IDR",
        "sourceType": "checkout_session",
        "sourceId": "cs_v",
        "memo": "Payment pay_v (card)",
        "postedAt": "2026-01-01T00:00:00Z",
    }

    def read(self, obj, action=None):
        values, refs = super().read(obj, action)
        if values["direction"] not in LedgerDirection.values:
            raise InvalidObject(
                f"direction must be one of {', '.join(LedgerDirection.values)}",
                field="direction",
            )
        return values, refs


PAYOUT = registered("payout")
RECEIPT = registered("receipt")
LEDGER_ENTRY = registered("ledger_entry")
