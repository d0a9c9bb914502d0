"""Refunds: create against a captured payment (by its source, chargeId or paymentId), settle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plugipay_sandbox.state.core import ApiError, Family, Store, new_id, not_found, register

REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "other")

#: ``sourceType`` → a function (store, mode, sourceId) returning the captured payment; each
#: family that takes money registers its own (``checkout_session``, ``invoice``).
SOURCE_TYPES: dict[str, Callable[[Store, str, str], dict[str, Any]]] = {}


def register_source(source_type: str, resolve: Callable[[Store, str, str], dict[str, Any]]) -> None:
    SOURCE_TYPES[source_type] = resolve


def payment_for(store: Store, mode: str, body: dict[str, Any]) -> dict[str, Any]:
    """Resolve what a refund names: sourceType+sourceId, chargeId or paymentId."""
    if body.get("sourceType") is not None or body.get("sourceId") is not None:
        resolve = SOURCE_TYPES.get(str(body.get("sourceType")))
        if resolve is None:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"sourceType must be one of {', '.join(map(repr, SOURCE_TYPES))} in the sandbox.",
                field="sourceType",
            )
        return resolve(store, mode, str(body.get("sourceId")))
    charge_id = body.get("chargeId") or body.get("paymentId")
    if not charge_id:
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            "Name what to refund: sourceType and sourceId, chargeId or paymentId.",
            field="sourceId",
        )
    payment = store.payments.get(str(charge_id))
    if payment is None and str(charge_id) in store.sessions:  # a manual payment's charge id
        session = store.sessions[str(charge_id)]
        payment = store.payments.get(session.get("paymentId") or "")
    if payment is None or payment["mode"] != mode:
        raise not_found("payment", str(charge_id))
    if payment["status"] != "succeeded":
        raise ApiError(
            409,
            "conflict",
            f"Payment {payment['id']} is {payment['status']}; "
            "only succeeded payments can be refunded.",
        )
    return payment


def refundable(store: Store, payment: dict[str, Any]) -> int:
    taken = sum(
        r["amount"]
        for r in store.refunds.values()
        if r["chargeId"] == payment["id"] and r["status"] in ("pending", "succeeded")
    )
    return payment["amount"] - taken


def refunded(store: Store, payment: dict[str, Any]) -> int:
    """What succeeded refunds gave back (a payment is partially refunded while 0 < it < amount)."""
    return sum(
        r["amount"]
        for r in store.refunds.values()
        if r["chargeId"] == payment["id"] and r["status"] == "succeeded"
    )


def create_refund(store: Store, mode: str, body: dict[str, Any]) -> dict[str, Any]:
    with store.lock:
        payment = payment_for(store, mode, body)
        remaining = refundable(store, payment)
        amount = body.get("amount")
        if amount is None:
            amount = remaining
        if remaining <= 0:
            raise ApiError(409, "conflict", f"Payment {payment['id']} is already fully refunded.")
        if amount > remaining:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"amount {amount} exceeds the refundable "
                f"remainder {remaining} of payment {payment['id']}.",
                field="amount",
            )
        refund = {
            "id": new_id("rfd_"),
            "chargeId": payment["id"],
            "paymentId": payment["id"],
            "invoiceId": payment["_sourceId"] if payment["_sourceType"] == "invoice" else None,
            "sourceType": payment["_sourceType"],
            "sourceId": payment["_sourceId"],
            "amount": amount,
            "currency": payment["currency"],
            "reason": body.get("reason"),
            "status": "pending",
            "failureCode": None,
            "failureMessage": None,
            "failureReason": None,
            "metadata": body.get("metadata"),
        }
        store.stamp(refund, mode)
        store.refunds[refund["id"]] = refund
        store.emit("refund.created", refund)
        if store.take_fault("/api/v1/refunds", ("refund_refused",)):
            settle_refund(
                store,
                refund["id"],
                succeed=False,
                code="provider_refused",
                message="The provider refused the refund.",
            )
            raise ApiError(
                422,
                "refund_failed",
                "The provider refused the refund.",
                details={"refund": store.public(refund)},
            )
        delay = store.config.refund_delay
        if delay == 0:
            settle_refund(store, refund["id"], succeed=True)
        elif delay > 0:
            refund["_settle_at"] = store.now() + delay
        return refund


def settle_refund(
    store: Store,
    refund_id: str,
    *,
    succeed: bool,
    code: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    with store.lock:
        refund = store.refunds.get(refund_id)
        if refund is None:
            raise not_found("refund", refund_id)
        if refund["status"] != "pending":
            raise ApiError(
                409, "conflict", f"Refund {refund_id} is {refund['status']}, not pending."
            )
        refund.pop("_settle_at", None)
        if succeed:
            refund["status"] = "succeeded"
        else:
            code = code or "refund_failed"
            message = message or "The refund failed at the provider."
            refund.update(
                status="failed", failureCode=code, failureMessage=message, failureReason=message
            )
        store.touch(refund)
        store.emit(f"refund.{refund['status']}", refund)
        return refund


def _tick(store: Store) -> None:
    now = store.now()
    for refund in list(store.refunds.values()):
        if refund["status"] == "pending" and refund.get("_settle_at", now + 1) <= now:
            settle_refund(store, refund["id"], succeed=True)


FAMILY = register(
    Family(
        "refunds",
        stores=("refunds",),
        event_kinds=("refund.created", "refund.succeeded", "refund.failed"),
        tick=_tick,
    )
)
