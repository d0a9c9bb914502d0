"""Recurring billing: plans and prices, subscriptions, invoices, payment tokens, portal sessions.

The lifecycle runs on the sandbox clock (``Store.tick``) and on each subscription's own test
clock (``POST /test/clocks/advance``): trial ends, renewals, dunning retries, due dates,
scheduled cancels and resumes. Rules the consulted sources do not state are sandbox conventions,
listed in ``docs/reference/sandbox.md``.
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

from plugipay_sandbox import cards
from plugipay_sandbox.state import refunds
from plugipay_sandbox.state.checkout import record_payment
from plugipay_sandbox.state.core import ApiError, Family, Store, iso, new_id, not_found, register

DAY = 86400
INTERVALS = ("day", "week", "month", "year")
PRICE_MODELS = ("flat", "tiered", "volume", "usage")
TAX_MODES = ("inclusive", "exclusive")
COLLECTION_METHODS = ("charge_automatically", "send_invoice")
CANCEL_REASONS = ("customer_portal", "merchant", "failed_payment", "user_request")
PORTAL_FEATURES = (
    "selfServeCancel",
    "selfServePause",
    "selfServeUpgrade",
    "selfServeDowngrade",
    "updatePaymentMethod",
)
#: Days after a failed charge_automatically invoice when the sandbox retries it; after the last
#: failed retry the subscription is canceled with reason ``failed_payment``.
DUNNING_DAYS = (3, 5, 7)
#: Days a send_invoice invoice is open before it is past due (sandbox convention).
DAYS_UNTIL_DUE = 7
PORTAL_TTL = 15 * 60
#: Sandbox payment tokens and the test card each behaves like.
TEST_TOKENS = {
    "ptok_test_success": "4242424242424242",
    "ptok_test_decline": "4000000000000002",
    "ptok_test_insufficient_funds": "4000000000009995",
}
UNPAID = ("open", "past_due")
LIVE_SUBSCRIPTION = ("trialing", "active", "past_due", "paused", "incomplete")


# ── time ────────────────────────────────────────────────────────────────────────


def add_interval(start: float, interval: str, count: int) -> float:
    """``start`` plus ``count`` intervals; months and years keep the day of month (clamped)."""
    if interval in ("day", "week"):
        return start + count * DAY * (7 if interval == "week" else 1)
    moment = dt.datetime.fromtimestamp(start, tz=dt.timezone.utc)
    months = moment.month - 1 + count * (12 if interval == "year" else 1)
    year, month = moment.year + months // 12, months % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day).timestamp()


def sub_now(store: Store, subscription: dict[str, Any]) -> float:
    """The subscription's time: the sandbox clock plus what its test clock was advanced."""
    return store.now() + subscription.get("_clockOffset", 0.0)


def invoice_now(store: Store, invoice: dict[str, Any]) -> float:
    subscription = store.subscriptions.get(invoice.get("subscriptionId") or "")
    return sub_now(store, subscription) if subscription else store.now()


# ── plans and prices ─────────────────────────────────────────────────────────────


def create_plan(store: Store, mode: str, fields: dict[str, Any]) -> dict[str, Any]:
    with store.lock:
        prices = fields.pop("prices")
        plan: dict[str, Any] = {
            "id": new_id("plan_"),
            "name": None,
            "description": None,
            "interval": "month",
            "intervalCount": 1,
            "trialDays": 0,
            "active": True,
            "portalFeatures": {},
            "dunningPolicyId": None,
            "usageAggregate": None,
            "meteredUnit": None,
            "prices": [],
            "archivedAt": None,
            "metadata": None,
        }
        plan.update(fields)
        store.stamp(plan, mode)
        store.plans[plan["id"]] = plan
        for price in prices:
            _new_price(store, plan, price)
        store.emit("plan.created", plan)
        return plan


def _new_price(store: Store, plan: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    price: dict[str, Any] = {
        "id": new_id("price_"),
        "planId": plan["id"],
        "currency": None,
        "model": "flat",
        "unitAmount": None,
        "tiers": None,
        "taxMode": "exclusive",
        "active": True,
    }
    price.update(fields)
    store.stamp(price, plan["mode"])
    store.prices[price["id"]] = price
    _sync_prices(store, plan)
    return price


def _sync_prices(store: Store, plan: dict[str, Any]) -> None:
    """The plan embeds its prices as they are now (oldest first)."""
    own = [p for p in store.prices.values() if p["planId"] == plan["id"]]
    plan["prices"] = [store.public(p) for p in sorted(own, key=lambda p: p["_seq"])]


def add_price(store: Store, mode: str, plan_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    with store.lock:
        plan = store.get(store.plans, mode, plan_id, "plan")
        previous = {"prices": plan["prices"]}
        price = _new_price(store, plan, fields)
        store.touch(plan)
        store.emit("plan.updated", plan, previous=previous)
        return price


def update_price(store: Store, mode: str, price_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    with store.lock:
        price = store.get(store.prices, mode, price_id, "price")
        changed = {k: price[k] for k in fields if price.get(k) != fields[k]}
        price.update(fields)
        store.touch(price)
        if changed:
            plan = store.plans[price["planId"]]
            previous = {"prices": plan["prices"]}
            _sync_prices(store, plan)
            store.touch(plan)
            store.emit("plan.updated", plan, previous=previous)
        return price


def delete_price(store: Store, mode: str, price_id: str) -> None:
    """Remove a price no subscription uses (one in use answers 409: deactivate it instead)."""
    with store.lock:
        price = store.get(store.prices, mode, price_id, "price")
        users = [s["id"] for s in store.subscriptions.values() if s["priceId"] == price_id]
        if users:
            raise ApiError(
                409,
                "conflict",
                f"Price {price_id} is used by {', '.join(users)}; set active=false instead.",
            )
        plan = store.plans[price["planId"]]
        previous = {"prices": plan["prices"]}
        del store.prices[price_id]
        _sync_prices(store, plan)
        store.touch(plan)
        store.emit("plan.updated", plan, previous=previous)


def update_plan(store: Store, mode: str, plan_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    with store.lock:
        plan = store.get(store.plans, mode, plan_id, "plan")
        previous = {k: plan.get(k) for k in fields if plan.get(k) != fields[k]}
        plan.update(fields)
        store.touch(plan)
        if previous:
            store.emit("plan.updated", plan, previous=previous)
        return plan


def archive_plan(store: Store, mode: str, plan_id: str) -> dict[str, Any]:
    with store.lock:
        plan = store.get(store.plans, mode, plan_id, "plan")
        if plan["archivedAt"]:
            raise ApiError(409, "conflict", f"Plan {plan_id} is already archived.")
        plan.update(active=False, archivedAt=iso(store.now()))
        store.touch(plan)
        store.emit("plan.archived", plan)
        return plan


def price_amount(price: dict[str, Any]) -> int:
    """What one unit of a price bills (the sandbox bills one unit of every model)."""
    if price["model"] in ("tiered", "volume"):
        tier = (price.get("tiers") or [{}])[0]
        return int(tier.get("unitAmount") or 0) + int(tier.get("flatAmount") or 0)
    return int(price.get("unitAmount") or 0)


# ── payment tokens ─────────────────────────────────────────────────────────────────


def check_token(store: Store, customer: dict[str, Any], token_id: str, field: str) -> str:
    """A token the customer may be charged with: a sandbox test token or one saved for them."""
    token = store.payment_tokens.get(token_id)
    if token_id in TEST_TOKENS or (token and token["customerId"] == customer["id"]):
        return token_id
    raise ApiError(
        400,
        "VALIDATION_ERROR",
        f"{field} {token_id!r} is not a payment token of customer {customer['id']}; use "
        f"{', '.join(TEST_TOKENS)} or a token saved on the hosted invoice page.",
        field=field,
    )


def save_token(store: Store, customer: dict[str, Any], card: cards.TestCard) -> dict[str, Any]:
    """Store the card as a payment token and make it the customer's default."""
    token = {
        "id": new_id("ptok_"),
        "object": "payment_token",
        "customerId": customer["id"],
        "brand": "visa",
        "last4": card.number[-4:],
        "_card": card.number,
    }
    store.stamp(token, customer["mode"])
    store.payment_tokens[token["id"]] = token
    previous = {"defaultPaymentTokenId": customer.get("defaultPaymentTokenId")}
    customer["defaultPaymentTokenId"] = token["id"]
    store.touch(customer)
    store.emit("customer.updated", customer, previous=previous)
    return token


def update_payment_method(
    store: Store, customer_id: str, number: str, expiry: str, cvc: str
) -> dict[str, Any]:
    """The portal's "update card": save the card (no charge) as the customer's default and put
    it on their live charge_automatically subscriptions. Raises ``cards.CardError``."""
    with store.lock:
        customer = store.customers[customer_id]
        token = save_token(
            store, customer, cards.check_card(number, expiry, cvc, today=store.today())
        )
        for subscription in store.subscriptions.values():
            if (
                subscription["customerId"] == customer_id
                and subscription["status"] in LIVE_SUBSCRIPTION
                and subscription["collectionMethod"] == "charge_automatically"
            ):
                _set(store, subscription, defaultPaymentTokenId=token["id"])
        return token


def _token_card(store: Store, token_id: str) -> cards.TestCard:
    number = TEST_TOKENS.get(token_id) or store.payment_tokens[token_id]["_card"]
    return next(c for c in cards.TEST_CARDS if c.number == number)


# ── invoices ───────────────────────────────────────────────────────────────────


def create_invoice(
    store: Store,
    mode: str,
    fields: dict[str, Any],
    *,
    status: str = "draft",
    now: float | None = None,
) -> dict[str, Any]:
    """A new invoice (``fields``: customerId, currency, lines and the optional fields).

    ``status="open"`` finalizes it at once; ``now`` is the time it is issued at (a subscription's
    own clock).
    """
    with store.lock:
        store.get(store.customers, mode, fields["customerId"], "customer")
        lines = [
            {
                "id": new_id("il_"),
                "description": line["description"],
                "quantity": line["quantity"],
                "unitAmount": line["unitAmount"],
                "amount": line["quantity"] * line["unitAmount"],
                "priceId": line.get("priceId"),
                "metadata": line.get("metadata"),
            }
            for line in fields.pop("lines")
        ]
        number = 1 + sum(1 for i in store.invoices.values() if i["mode"] == mode)
        invoice: dict[str, Any] = {
            "id": new_id("inv_"),
            "customerId": None,
            "subscriptionId": None,
            "status": "draft",
            "number": f"SBX-{number:06d}",
            "currency": None,
            "subtotal": 0,
            "discount": 0,
            "tax": 0,
            "total": 0,
            "amountPaid": 0,
            "amountDue": 0,
            "dueAt": None,
            "issuedAt": None,
            "paidAt": None,
            "voidedAt": None,
            "hostedInvoiceUrl": None,
            "collectionAttempts": 0,
            "lines": lines,
            "memo": None,
            "metadata": None,
            "_chargeId": None,
        }
        invoice.update(fields)
        subtotal = sum(line["amount"] for line in lines)
        total = max(0, subtotal - (invoice["discount"] or 0) + (invoice["tax"] or 0))
        invoice.update(subtotal=subtotal, total=total, amountDue=total)
        if invoice["dueAt"]:
            invoice["_dueTs"] = _parse_iso(invoice["dueAt"])
        store.stamp(invoice, mode)
        store.invoices[invoice["id"]] = invoice
        store.emit("invoice.created", invoice)
        if status == "open":
            _finalize(store, invoice, now if now is not None else store.now())
        return invoice


def _parse_iso(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def get_invoice(store: Store, invoice_id: str, mode: str | None = None) -> dict[str, Any]:
    invoice = store.invoices.get(invoice_id)
    if invoice is None or (mode is not None and invoice["mode"] != mode):
        raise not_found("invoice", invoice_id)
    return invoice


def _require(invoice: dict[str, Any], action: str, *statuses: str) -> None:
    if invoice["status"] not in statuses:
        raise ApiError(
            409,
            "conflict",
            f"Cannot {action} invoice {invoice['id']}: it is {invoice['status']} "
            f"(only {' or '.join(statuses)}).",
        )


def _finalize(store: Store, invoice: dict[str, Any], now: float) -> None:
    invoice.update(
        status="open",
        issuedAt=iso(now),
        hostedInvoiceUrl=f"{store.base_url()}/i/{invoice['id']}",
    )
    if not invoice["dueAt"]:
        invoice["_dueTs"] = now + DAYS_UNTIL_DUE * DAY
        invoice["dueAt"] = iso(invoice["_dueTs"])
    store.touch(invoice)
    store.emit("invoice.finalized", invoice)


def finalize_invoice(store: Store, mode: str, invoice_id: str) -> dict[str, Any]:
    with store.lock:
        invoice = get_invoice(store, invoice_id, mode)
        _require(invoice, "finalize", "draft")
        _finalize(store, invoice, invoice_now(store, invoice))
        return invoice


def void_invoice(store: Store, mode: str, invoice_id: str) -> dict[str, Any]:
    with store.lock:
        invoice = get_invoice(store, invoice_id, mode)
        _require(invoice, "void", "draft", "open", "past_due")
        invoice.update(status="void", voidedAt=iso(store.now()), amountDue=0)
        invoice.pop("_retryTs", None)
        store.touch(invoice)
        store.emit("invoice.voided", invoice)
        return invoice


def send_invoice(store: Store, mode: str, invoice_id: str) -> dict[str, Any]:
    with store.lock:
        invoice = get_invoice(store, invoice_id, mode)
        _require(invoice, "send", "open", "past_due")
        store.emit("invoice.sent", invoice)
        return invoice


def email_invoice(store: Store, mode: str, invoice_id: str, to: str | None) -> dict[str, Any]:
    """The sandbox sends no mail: it answers what it would have sent and emits invoice.sent."""
    with store.lock:
        invoice = get_invoice(store, invoice_id, mode)
        _require(invoice, "email", "open", "past_due", "paid")
        to = to or store.customers[invoice["customerId"]].get("email")
        if not to:
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"Customer {invoice['customerId']} has no email; send `to`.",
                field="to",
            )
        store.emit("invoice.sent", invoice)
        return {"sent": True, "to": to}


def pay_out_of_band(store: Store, mode: str, invoice_id: str) -> dict[str, Any]:
    """``POST /invoices/{id}/pay``: money received off-platform, recorded as a manual payment."""
    with store.lock:
        invoice = get_invoice(store, invoice_id, mode)
        _require(invoice, "pay", *UNPAID)
        _succeed(store, invoice, "manual")
        return invoice


def _payment(
    store: Store, invoice: dict[str, Any], method: str, status: str, code: str | None = None
) -> dict[str, Any]:
    return record_payment(
        store,
        invoice["mode"],
        source_type="invoice",
        source_id=invoice["id"],
        method=method,
        status=status,
        fields={
            "invoiceId": invoice["id"],
            "customerId": invoice["customerId"],
            "amount": invoice["amountDue"],
            "currency": invoice["currency"],
            "metadata": invoice.get("metadata"),
        },
        failure_code=code,
    )


def _succeed(store: Store, invoice: dict[str, Any], method: str) -> dict[str, Any] | None:
    """Mark the invoice paid, with a succeeded payment unless nothing was due."""
    payment = _payment(store, invoice, method, "succeeded") if invoice["amountDue"] else None
    invoice.pop("_3ds_card", None)
    invoice.pop("_retryTs", None)
    invoice.update(
        status="paid",
        amountPaid=invoice["amountPaid"] + invoice["amountDue"],
        amountDue=0,
        paidAt=payment["paidAt"] if payment else iso(store.now()),
        _chargeId=payment["id"] if payment else None,
    )
    store.touch(invoice)
    if payment:
        store.emit("payment.succeeded", payment)
    store.emit("invoice.paid", invoice)
    subscription = store.subscriptions.get(invoice.get("subscriptionId") or "")
    if subscription and subscription["status"] in ("incomplete", "past_due"):
        unpaid = [
            i
            for i in store.invoices.values()
            if i.get("subscriptionId") == subscription["id"] and i["status"] in UNPAID
        ]
        if not unpaid:
            _set(store, subscription, status="active")
    return payment


def _fail(store: Store, invoice: dict[str, Any], code: str | None) -> dict[str, Any]:
    payment = _payment(store, invoice, "card", "failed", code)
    invoice.pop("_3ds_card", None)
    invoice["collectionAttempts"] += 1
    store.touch(invoice)
    store.emit("payment.failed", payment)
    store.emit("invoice.failed", invoice)
    return payment


def pay_invoice_card(
    store: Store,
    invoice_id: str,
    number: str,
    expiry: str | None = None,
    cvc: str | None = None,
    *,
    three_ds: str | None = None,
    save: bool = False,
) -> tuple[str, dict[str, Any] | None]:
    """Pay an open invoice with a test card (the hosted page); returns (outcome, payment).

    Raises ``cards.CardError`` for bad form input. ``save`` stores the card as the customer's
    default payment token once the payment succeeds.
    """
    with store.lock:
        invoice = get_invoice(store, invoice_id)
        _require(invoice, "pay", *UNPAID)
        card = cards.check_card(number, expiry, cvc, today=store.today())
        outcome, code = cards.charge(card, three_ds)
        if outcome == cards.REQUIRES_3DS:
            invoice["_3ds_card"] = card.number
            invoice["_3ds_save"] = save
            return outcome, None
        if outcome == cards.DECLINED:
            return outcome, _fail(store, invoice, code)
        payment = _succeed(store, invoice, "card")
        if save:
            save_token(store, store.customers[invoice["customerId"]], card)
        return cards.SUCCESS, payment


def finish_invoice_3ds(
    store: Store, invoice_id: str, approve: bool
) -> tuple[str, dict[str, Any] | None]:
    with store.lock:
        invoice = get_invoice(store, invoice_id)
        card = invoice.get("_3ds_card")
        if invoice["status"] not in UNPAID or not card:
            raise ApiError(409, "conflict", "This invoice has no 3-D Secure step waiting.")
        return pay_invoice_card(
            store,
            invoice_id,
            card,
            three_ds="approve" if approve else "fail",
            save=bool(invoice.pop("_3ds_save", False)),
        )


def _token_for(store: Store, subscription: dict[str, Any]) -> str | None:
    """The subscription's token, else the customer's default (a card saved on an invoice page)."""
    customer = store.customers[subscription["customerId"]]
    return subscription["defaultPaymentTokenId"] or customer.get("defaultPaymentTokenId")


def _charge_token(store: Store, invoice: dict[str, Any], token_id: str | None, now: float) -> bool:
    """Charge a charge_automatically invoice; a decline starts (or continues) dunning."""
    card = _token_card(store, token_id) if token_id else None
    if card is not None and card.outcome != cards.DECLINED:
        _succeed(store, invoice, "card")
        return True
    _fail(store, invoice, card.failure_code if card else "no_payment_token")
    if invoice["status"] == "open":
        invoice.update(status="past_due", _firstFailureTs=now)
    # Automatic attempts only (a decline on the hosted page does not move the schedule).
    attempts = invoice["_automaticAttempts"] = invoice.get("_automaticAttempts", 0) + 1
    if attempts <= len(DUNNING_DAYS):
        invoice["_retryTs"] = invoice["_firstFailureTs"] + DUNNING_DAYS[attempts - 1] * DAY
    else:
        invoice.pop("_retryTs", None)
    return False


def refundable_payment(store: Store, mode: str, invoice_id: str) -> dict[str, Any]:
    invoice = get_invoice(store, invoice_id, mode)
    if invoice["status"] != "paid" or not invoice["_chargeId"]:
        raise ApiError(
            409,
            "conflict",
            f"Invoice {invoice_id} has no captured payment (status {invoice['status']}).",
        )
    return store.payments[invoice["_chargeId"]]


refunds.register_source("invoice", refundable_payment)


# ── subscriptions ──────────────────────────────────────────────────────────────


def create_subscription(store: Store, mode: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Start a subscription: trialing, or billed at once (send_invoice: open invoice, incomplete;
    charge_automatically: the token is charged, active or past_due)."""
    with store.lock:
        customer = store.get(store.customers, mode, fields["customerId"], "customer")
        plan, price = _plan_price(store, mode, fields["planId"], fields["priceId"])
        method = fields.get("collectionMethod") or "charge_automatically"
        token = fields.pop("paymentTokenId", None) or customer.get("defaultPaymentTokenId")
        if token:
            check_token(store, customer, token, "paymentTokenId")
        elif method == "charge_automatically":
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                "charge_automatically needs paymentTokenId (or a customer "
                "defaultPaymentTokenId); use send_invoice to bill by invoice.",
                field="paymentTokenId",
            )
        trial_days = fields.pop("trialDays", None)
        trial_days = plan["trialDays"] if trial_days is None else trial_days
        discount = fields.pop("initialDiscount", None)
        subscription: dict[str, Any] = {
            "id": new_id("sub_"),
            "customerId": customer["id"],
            "planId": plan["id"],
            "priceId": price["id"],
            "status": "incomplete",
            "currentPeriodStart": None,
            "currentPeriodEnd": None,
            "trialEnd": None,
            "cancelAt": None,
            "canceledAt": None,
            "canceledReason": None,
            "pausedAt": None,
            "resumeAt": None,
            "defaultPaymentTokenId": token,
            "discountCouponId": fields.get("couponId"),
            "collectionMethod": method,
            "latestInvoiceId": None,
            "metadata": fields.get("metadata"),
            "_clockOffset": 0.0,
            "_discount": discount or 0,
        }
        store.stamp(subscription, mode)
        store.subscriptions[subscription["id"]] = subscription
        now = sub_now(store, subscription)
        if trial_days:
            end = now + trial_days * DAY
            subscription.update(
                status="trialing",
                trialEnd=iso(end),
                currentPeriodStart=iso(now),
                currentPeriodEnd=iso(end),
                _trialEndTs=end,
                _periodEndTs=end,
            )
            store.emit("subscription.created", subscription)
        else:
            subscription.update(_period(store, subscription, now))
            store.emit("subscription.created", subscription)
            _bill(store, subscription, now)
        return subscription


def _plan_price(
    store: Store, mode: str, plan_id: str, price_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    plan = store.plans.get(plan_id)
    if plan is None or plan["mode"] != mode:
        raise ApiError(404, "not_found", f"No plan with id {plan_id!r}.", field="planId")
    if not plan["active"]:
        raise ApiError(400, "VALIDATION_ERROR", f"Plan {plan_id} is archived.", field="planId")
    price = store.prices.get(price_id)
    if price is None or price["planId"] != plan_id:
        raise ApiError(
            400,
            "VALIDATION_ERROR",
            f"priceId {price_id!r} is not a price of plan {plan_id}.",
            field="priceId",
        )
    if not price["active"]:
        raise ApiError(400, "VALIDATION_ERROR", f"Price {price_id} is inactive.", field="priceId")
    return plan, price


def get_subscription(store: Store, subscription_id: str, mode: str | None = None) -> dict[str, Any]:
    subscription = store.subscriptions.get(subscription_id)
    if subscription is None or (mode is not None and subscription["mode"] != mode):
        raise not_found("subscription", subscription_id)
    return subscription


def _set(store: Store, subscription: dict[str, Any], **changes: Any) -> None:
    """Apply public changes and emit one subscription.updated naming what they were."""
    previous = {k: subscription.get(k) for k in changes if subscription.get(k) != changes[k]}
    subscription.update(changes)
    store.touch(subscription)
    if previous:
        store.emit("subscription.updated", subscription, previous=previous)


def _period(store: Store, subscription: dict[str, Any], start: float) -> dict[str, Any]:
    """The fields of a billing period starting at ``start`` (the end is kept as a timestamp)."""
    plan = store.plans[subscription["planId"]]
    end = add_interval(start, plan["interval"], plan["intervalCount"])
    subscription["_periodEndTs"] = end
    return {"currentPeriodStart": iso(start), "currentPeriodEnd": iso(end)}


def _bill(store: Store, subscription: dict[str, Any], now: float) -> dict[str, Any]:
    """Invoice the current period; charge it or send it, as the collection method says."""
    plan = store.plans[subscription["planId"]]
    price = store.prices[subscription["priceId"]]
    start, end = subscription["currentPeriodStart"][:10], subscription["currentPeriodEnd"][:10]
    discount, subscription["_discount"] = subscription.get("_discount", 0), 0
    invoice = create_invoice(
        store,
        subscription["mode"],
        {
            "customerId": subscription["customerId"],
            "subscriptionId": subscription["id"],
            "currency": price["currency"],
            "discount": discount,
            "lines": [
                {
                    "description": f"{plan['name']} ({start} – {end})",
                    "quantity": 1,
                    "unitAmount": price_amount(price),
                    "priceId": price["id"],
                }
            ],
        },
        status="open",
        now=now,
    )
    subscription["latestInvoiceId"] = invoice["id"]
    token = _token_for(store, subscription)
    if subscription["collectionMethod"] == "send_invoice":
        store.emit("invoice.sent", invoice)
    elif invoice["amountDue"] == 0:
        _succeed(store, invoice, "card")
    elif not _charge_token(store, invoice, token, now):
        _set(store, subscription, status="past_due")
    return invoice


def update_subscription(
    store: Store, mode: str, subscription_id: str, fields: dict[str, Any]
) -> dict[str, Any]:
    """Change price (billed from the next period), default token or metadata."""
    with store.lock:
        subscription = get_subscription(store, subscription_id, mode)
        _require_live(subscription, "update")
        changes = dict(fields)
        if "priceId" in fields:
            price = store.prices.get(fields["priceId"])
            if price is None or price["mode"] != mode or not price["active"]:
                raise ApiError(
                    400,
                    "VALIDATION_ERROR",
                    f"priceId {fields['priceId']!r} is not an active price.",
                    field="priceId",
                )
            current = store.prices[subscription["priceId"]]
            if price["currency"] != current["currency"]:
                raise ApiError(
                    400,
                    "VALIDATION_ERROR",
                    f"priceId must be in {current['currency']}, like the current price.",
                    field="priceId",
                )
            changes["planId"] = price["planId"]
        if fields.get("defaultPaymentTokenId"):
            customer = store.customers[subscription["customerId"]]
            check_token(store, customer, fields["defaultPaymentTokenId"], "defaultPaymentTokenId")
        _set(store, subscription, **changes)
        return subscription


def _require_live(subscription: dict[str, Any], action: str, *statuses: str) -> None:
    if subscription["status"] not in (statuses or LIVE_SUBSCRIPTION):
        raise ApiError(
            409,
            "conflict",
            f"Cannot {action} subscription {subscription['id']}: it is {subscription['status']}.",
        )


def cancel_subscription(
    store: Store, mode: str, subscription_id: str, *, at: str, reason: str | None
) -> dict[str, Any]:
    with store.lock:
        subscription = get_subscription(store, subscription_id, mode)
        _require_live(subscription, "cancel")
        if at == "now":
            _cancel(store, subscription, reason, sub_now(store, subscription))
        elif subscription["cancelAt"]:
            raise ApiError(
                409,
                "conflict",
                f"Subscription {subscription_id} already cancels at {subscription['cancelAt']}.",
            )
        else:
            subscription["_cancelAtTs"] = subscription["_periodEndTs"]
            subscription["_cancelReason"] = reason
            _set(store, subscription, cancelAt=subscription["currentPeriodEnd"])
        return subscription


def _cancel(store: Store, subscription: dict[str, Any], reason: str | None, now: float) -> None:
    for name in ("_cancelAtTs", "_cancelReason", "_resumeAtTs"):
        subscription.pop(name, None)
    subscription.update(status="canceled", canceledAt=iso(now), canceledReason=reason)
    for invoice in store.invoices.values():
        if invoice.get("subscriptionId") == subscription["id"]:
            invoice.pop("_retryTs", None)
    store.touch(subscription)
    store.emit("subscription.canceled", subscription)


def pause_subscription(
    store: Store, mode: str, subscription_id: str, resume_at: float | None
) -> dict[str, Any]:
    with store.lock:
        subscription = get_subscription(store, subscription_id, mode)
        _require_live(subscription, "pause", "trialing", "active", "past_due")
        now = sub_now(store, subscription)
        if resume_at is not None and resume_at <= now:
            raise ApiError(
                400, "VALIDATION_ERROR", "resumeAt must be in the future.", field="resumeAt"
            )
        subscription.update(
            _statusBeforePause=subscription["status"],
            status="paused",
            pausedAt=iso(now),
            resumeAt=iso(resume_at) if resume_at else None,
        )
        if resume_at:
            subscription["_resumeAtTs"] = resume_at
        store.touch(subscription)
        store.emit("subscription.paused", subscription)
        return subscription


def resume_subscription(store: Store, mode: str | None, subscription_id: str) -> dict[str, Any]:
    with store.lock:
        subscription = get_subscription(store, subscription_id, mode)
        _require_live(subscription, "resume", "paused")
        _resume(store, subscription, sub_now(store, subscription))
        _run_due(store, subscription)
        return subscription


def _resume(store: Store, subscription: dict[str, Any], now: float) -> None:
    """Back to the status it had; a period that ended while paused restarts now, billed."""
    subscription.pop("_resumeAtTs", None)
    subscription.update(
        status=subscription.pop("_statusBeforePause", "active"), pausedAt=None, resumeAt=None
    )
    store.touch(subscription)
    store.emit("subscription.resumed", subscription)
    if subscription["status"] != "trialing" and subscription["_periodEndTs"] <= now:
        _set(store, subscription, **_period(store, subscription, now))
        _bill(store, subscription, now)


def advance_subscription(store: Store, mode: str, subscription_id: str, days: int) -> dict:
    """``POST /test/clocks/advance``: move one subscription's own clock forward."""
    with store.lock:
        subscription = get_subscription(store, subscription_id, mode)
        subscription["_clockOffset"] = subscription.get("_clockOffset", 0.0) + days * DAY
        _run_due(store, subscription, days_advanced=days)
        return subscription


# ── the clock ──────────────────────────────────────────────────────────────────


def _due_steps(store: Store, subscription: dict[str, Any]) -> list[tuple[float, int, str, Any]]:
    """What this subscription has scheduled: (when, priority, step, invoice) tuples."""
    status = subscription["status"]
    if status in ("canceled",):
        return []
    steps: list[tuple[float, int, str, Any]] = []
    if subscription.get("_cancelAtTs") is not None:
        steps.append((subscription["_cancelAtTs"], 0, "cancel", None))
    if status == "paused":
        if subscription.get("_resumeAtTs") is not None:
            steps.append((subscription["_resumeAtTs"], 1, "resume", None))
        return steps
    if status == "trialing":
        steps.append((subscription["_trialEndTs"], 2, "trial_end", None))
        return steps
    if status in ("active", "past_due") and subscription.get("_periodEndTs") is not None:
        steps.append((subscription["_periodEndTs"], 3, "renew", None))
    for invoice in store.invoices.values():
        if invoice.get("subscriptionId") != subscription["id"]:
            continue
        if invoice["status"] == "past_due" and invoice.get("_retryTs") is not None:
            steps.append((invoice["_retryTs"], 4, "retry", invoice))
        if invoice["status"] == "open" and invoice.get("_dueTs") is not None:
            steps.append((invoice["_dueTs"], 5, "overdue", invoice))
    return steps


def _run_due(store: Store, subscription: dict[str, Any], days_advanced: int | None = None):
    """Apply every step due by the subscription's time, oldest first, each at its own moment."""
    now = sub_now(store, subscription)
    for _ in range(10_000):  # a bound, not a schedule: each step moves time forward
        steps = [s for s in _due_steps(store, subscription) if s[0] <= now]
        if not steps:
            return
        when, _priority, step, invoice = min(steps, key=lambda s: (s[0], s[1]))
        if step == "cancel":
            _cancel(store, subscription, subscription.get("_cancelReason"), when)
        elif step == "resume":
            _resume(store, subscription, when)
        elif step == "trial_end":
            subscription.pop("_trialEndTs")
            automatic = subscription["collectionMethod"] == "charge_automatically"
            status = "active" if automatic else "incomplete"
            _set(store, subscription, status=status, **_period(store, subscription, when))
            _bill(store, subscription, when)
        elif step == "renew":
            _renew(store, subscription, when, days_advanced)
        elif step == "retry":
            _retry(store, subscription, invoice, when)
        elif step == "overdue":
            _overdue(store, invoice)


def _renew(store: Store, subscription: dict[str, Any], when: float, days: int | None) -> None:
    subscription.update(_period(store, subscription, when))
    store.touch(subscription)
    invoice = _bill(store, subscription, when)
    if invoice["status"] == "paid" or subscription["collectionMethod"] == "send_invoice":
        if days is None:  # the renewal job's event carries only the new period
            fields = ("id", "currentPeriodStart", "currentPeriodEnd")
            store.emit(
                "subscription.renewed",
                {k: subscription[k] for k in fields},
                mode=subscription["mode"],
            )
        else:  # a test clock's carries the whole subscription and how far it moved
            store.emit("subscription.renewed", {**subscription, "daysAdvanced": days})


def _retry(store: Store, subscription: dict[str, Any], invoice: dict, when: float) -> None:
    if _charge_token(store, invoice, _token_for(store, subscription), when):
        return
    if invoice.get("_retryTs") is None:  # that was the last retry
        invoice.update(status="uncollectible")
        store.touch(invoice)
        _cancel(store, subscription, "failed_payment", when)


def _overdue(store: Store, invoice: dict[str, Any]) -> None:
    """A send_invoice invoice passed its due date unpaid."""
    invoice.pop("_dueTs", None)
    invoice["status"] = "past_due"
    store.touch(invoice)
    subscription = store.subscriptions.get(invoice.get("subscriptionId") or "")
    if subscription and subscription["status"] in ("active", "incomplete"):
        _set(store, subscription, status="past_due")


def _tick(store: Store) -> None:
    for subscription in sorted(store.subscriptions.values(), key=lambda s: s["_seq"]):
        _run_due(store, subscription)
    now = store.now()
    for invoice in list(store.invoices.values()):
        if (
            not invoice.get("subscriptionId")
            and invoice["status"] == "open"
            and invoice.get("_dueTs", now + 1) <= now
        ):
            _overdue(store, invoice)


# ── portal sessions ────────────────────────────────────────────────────────────


def create_portal_session(
    store: Store, mode: str, customer_id: str, return_url: str
) -> dict[str, Any]:
    with store.lock:
        customer = store.customers.get(customer_id)
        if customer is None or customer["mode"] != mode:
            raise ApiError(
                404, "not_found", f"No customer with id {customer_id!r}.", field="customerId"
            )
        session: dict[str, Any] = {
            "id": new_id("bps_"),
            "customerId": customer_id,
            "returnUrl": return_url,
        }
        store.stamp(session, mode)
        session.pop("updatedAt")
        session["url"] = f"{store.base_url()}/portal/{session['id']}"
        session["_expiresTs"] = store.now() + PORTAL_TTL
        session["expiresAt"] = iso(session["_expiresTs"])
        store.portal_sessions[session["id"]] = session
        return session


FAMILY = register(
    Family(
        "billing",
        stores=(
            "plans",
            "prices",
            "subscriptions",
            "invoices",
            "payment_tokens",
            "portal_sessions",
        ),
        event_kinds=(
            "plan.created",
            "plan.updated",
            "plan.archived",
            "subscription.created",
            "subscription.updated",
            "subscription.paused",
            "subscription.resumed",
            "subscription.canceled",
            "subscription.renewed",
            "invoice.created",
            "invoice.finalized",
            "invoice.sent",
            "invoice.paid",
            "invoice.voided",
            "invoice.failed",
        ),
        tick=_tick,
    )
)
