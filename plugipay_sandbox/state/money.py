"""Money out: the double-entry ledger, the balance derived from it, the bank account, payouts.

Every money movement posts one ledger transaction (``txId``) whose debits equal its credits:

* a payment (on ``payment.succeeded``): debit ``cash`` / credit ``revenue`` for the gross, then
  debit ``platform_fee`` / credit ``cash`` for the sandbox's fee (``FEE_BASIS_POINTS``);
* a refund (on ``refund.succeeded``): debit ``revenue_refund`` / credit ``cash``;
* a paid payout: debit ``payout`` / credit ``cash``.

The balance is the ``cash`` account (debits − credits); ``locked`` is what pending and
in-transit payouts hold; ``available`` is the difference. Payouts move ``pending → in_transit
→ paid``, ``pending → cancelled``, ``pending | in_transit → failed``; anything else is a 409.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from plugipay_sandbox.state.core import (
    ApiError,
    Family,
    Store,
    iso,
    new_id,
    not_found,
    register,
)

#: The sandbox's fee per payment method, in basis points of the gross (a sandbox convention:
#: Plugipay's real pricing is per contract). Rounded half up to the minor unit.
FEE_BASIS_POINTS = {
    "card": 290,
    "va": 100,
    "qris": 70,
    "ewallet": 150,
    "retail": 200,
    "paypal": 440,
    "manual": 0,
}

PAYOUT_METHODS = ("manual", "xendit_disbursement")
PAYOUT_STATUSES = ("pending", "in_transit", "paid", "failed", "cancelled")
#: ``xendit_disbursement`` on the sandbox clock: seconds after creation it goes in transit,
#: then is paid (or fails).
DISBURSEMENT_IN_TRANSIT_AFTER = 10.0
DISBURSEMENT_SETTLED_AFTER = 60.0
#: A sandbox convention, like the test cards: a disbursement to an account number ending in
#: this fails at the bank.
FAILING_ACCOUNT_SUFFIX = "0000"
DISBURSEMENT_FAILURE = "The receiving bank rejected the account (sandbox: number ending 0000)."

LEDGER_CODES = ("cash", "revenue", "revenue_refund", "platform_fee", "payout", "adjustment")
SOURCE_TYPES = ("checkout_session", "invoice", "refund", "payout", "adjustment", "dispute")
BANK_FIELDS = ("bankCode", "bankName", "accountNumber", "accountHolder")
#: The SDK's names for the bank fields of a payout (``bankAccountNumber``…) → the API's.
BANK_ALIASES = {"bankAccountNumber": "accountNumber", "bankAccountHolder": "accountHolder"}
SDK_NAMES = {name: alias for alias, name in BANK_ALIASES.items()}
DEFAULT_TAX_RATE = 0.11


def fee_for(method: str, amount: int) -> int:
    basis = FEE_BASIS_POINTS.get(method, 0)
    return min(amount, (amount * basis + 5000) // 10000)


# ── settings: bank account, payout method, tax ──────────────────────────────────


def settings(store: Store, account: str | None = None) -> dict[str, Any]:
    """The acting account's money settings (created on first use)."""
    account = account or store.account
    found = dict.get(store.money_settings, account)
    if found is None:
        found = {
            "id": account,
            "accountId": account,
            "bankCode": None,
            "bankName": None,
            "accountNumber": None,
            "accountHolder": None,
            "payoutMethod": "manual",
            "taxEnabled": False,
            "taxRate": DEFAULT_TAX_RATE,
            "taxId": None,
            "_seq": store.next_seq(),
        }
        store.money_settings[account] = found
    return found


def bank_account(store: Store) -> dict[str, Any]:
    found = settings(store)
    account = {field: found[field] for field in BANK_FIELDS}
    account["configured"] = bool(found["accountNumber"] and found["accountHolder"])
    return {"configured": account.pop("configured"), **account}


def bank_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The bank fields a body names, under the API's names (either spelling accepted)."""
    fields = {}
    for name in (*BANK_FIELDS, *BANK_ALIASES):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip() or len(value) > 100:
            raise ApiError(
                400, "VALIDATION_ERROR", f"{name} must be a non-empty string.", field=name
            )
        fields[BANK_ALIASES.get(name, name)] = value.strip()
    return fields


def update_bank_account(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    with store.lock:
        fields = bank_fields(body)
        for required in ("bankName", "accountNumber", "accountHolder"):
            if required not in fields:
                raise ApiError(400, "VALIDATION_ERROR", f"{required} is required.", field=required)
        settings(store).update({field: fields.get(field) for field in BANK_FIELDS})
        return bank_account(store)


# ── the ledger ─────────────────────────────────────────────────────────────────


def post(
    store: Store,
    *,
    account: str,
    mode: str,
    currency: str,
    source_type: str,
    source_id: str,
    memo: str,
    legs: Iterable[tuple[str, str, int]],
) -> str:
    """Post one balanced transaction: ``legs`` are (code, debit|credit, amount); zero legs are
    dropped. Returns the ``txId``."""
    legs = [leg for leg in legs if leg[2] > 0]
    debits = sum(amount for _, direction, amount in legs if direction == "debit")
    credits = sum(amount for _, direction, amount in legs if direction == "credit")
    if debits != credits:  # a sandbox bug, never a sender's
        raise AssertionError(f"unbalanced ledger transaction: {debits} != {credits}")
    tx_id = new_id("ltx_")
    moment = store.now()
    for code, direction, amount in legs:
        entry: dict[str, Any] = {
            "id": new_id("le_"),
            "accountId": account,
            "txId": tx_id,
            "code": code,
            "direction": direction,
            "amount": amount,
            "currency": currency,
            "sourceType": source_type,
            "sourceId": source_id,
            "memo": memo,
            "mode": mode,
            "postedAt": iso(moment),
            "_postedAtTs": moment,
            "_seq": store.next_seq(),
        }
        store.ledger[entry["id"]] = entry
    return tx_id


def _posted(store: Store, account: str, source_type: str, source_id: str) -> bool:
    """Has a transaction already been posted for this source (in any mode)?

    Read from an index of the ledger's sources, not by scanning every entry (a long session
    posts a transaction per payment). Entries are only ever added to a ledger, and a reset or
    a state file's load puts a new ledger map in place, so the index takes in the entries added
    since it last looked, and starts again for a new map.
    """
    ledger = store.ledger
    index = store.__dict__.get("_ledger_sources")
    if index is None or index[0] is not ledger:
        index = store.__dict__["_ledger_sources"] = [ledger, 0, set()]
    _, seen, sources = index
    if dict.__len__(ledger) != seen:
        for entry in itertools.islice(dict.values(ledger), seen, None):
            sources.add((entry["accountId"], entry["sourceType"], entry["sourceId"]))
        index[1] = dict.__len__(ledger)
    return (account, source_type, source_id) in sources


def _on_event(store: Store, event: dict[str, Any]) -> None:
    """Post what a payment or refund moved, read from the stored object (a synthetic event from
    ``POST /events/trigger`` moves no money), once per source."""
    kind, object_id = event["kind"], event["object"].get("id") or ""
    account = event["accountId"]
    if kind == "payment.succeeded":
        payment = dict.get(store.payments, object_id)
        if payment is None or payment["status"] != "succeeded" or not payment["amount"]:
            return
        source_type = "invoice" if payment.get("invoiceId") else "checkout_session"
        source_id = payment.get("invoiceId") or payment.get("checkoutSessionId") or object_id
        if _posted(store, account, source_type, source_id):
            return
        gross, fee = payment["amount"], fee_for(payment.get("method") or "", payment["amount"])
        post(
            store,
            account=payment["accountId"],
            mode=payment["mode"],
            currency=payment["currency"],
            source_type=source_type,
            source_id=source_id,
            memo=f"Payment {object_id} ({payment.get('method')})",
            legs=[
                ("cash", "debit", gross),
                ("revenue", "credit", gross),
                ("platform_fee", "debit", fee),
                ("cash", "credit", fee),
            ],
        )
    elif kind == "refund.succeeded":
        refund = dict.get(store.refunds, object_id)
        if refund is None or refund["status"] != "succeeded":
            return
        if not _posted(store, refund["accountId"], "refund", object_id):
            memo = f"Refund {object_id} of {refund.get('chargeId')}"
            post_outflow(store, refund, "revenue_refund", "refund", memo)


def post_outflow(store: Store, obj: dict[str, Any], code: str, source_type: str, memo: str) -> str:
    """Money leaving the cash account for ``obj`` (a refund or a payout): debit ``code``."""
    return post(
        store,
        account=obj["accountId"],
        mode=obj["mode"],
        currency=obj["currency"],
        source_type=source_type,
        source_id=obj["id"],
        memo=memo,
        legs=[(code, "debit", obj["amount"]), ("cash", "credit", obj["amount"])],
    )


def entries(store: Store, mode: str) -> list[dict[str, Any]]:
    return [e for e in store.ledger.values() if e["mode"] == mode]


def ledger_balances(store: Store, mode: str) -> list[dict[str, Any]]:
    """Per code (and currency): total debits, credits and ``balance`` = debits − credits."""
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in sorted(entries(store, mode), key=lambda e: e["_seq"]):
        row = totals.setdefault(
            (entry["code"], entry["currency"]),
            {"code": entry["code"], "currency": entry["currency"], "debits": 0, "credits": 0},
        )
        row["debits" if entry["direction"] == "debit" else "credits"] += entry["amount"]
    rows = sorted(totals.values(), key=lambda r: (r["code"], r["currency"]))
    for row in rows:
        row["balance"] = row["debits"] - row["credits"]
    return rows


def balance(store: Store, mode: str, currency: str = "IDR") -> dict[str, Any]:
    cash = sum(
        e["amount"] if e["direction"] == "debit" else -e["amount"]
        for e in entries(store, mode)
        if e["code"] == "cash" and e["currency"] == currency
    )
    locked = sum(
        p["amount"]
        for p in store.payouts.values()
        if p["mode"] == mode and p["currency"] == currency and p["status"] in LOCKING
    )
    return {
        "ledgerBalance": cash,
        "locked": locked,
        "available": cash - locked,
        "currency": currency,
    }


# ── payouts ────────────────────────────────────────────────────────────────────

LOCKING = ("pending", "in_transit")
#: status → the statuses it may move to.
TRANSITIONS = {
    "pending": ("in_transit", "cancelled", "failed"),
    "in_transit": ("paid", "failed"),
}


def create_payout(store: Store, mode: str, body: dict[str, Any]) -> dict[str, Any]:
    with store.lock:
        currency = body.get("currency") or "IDR"
        method = body.get("method") or settings(store)["payoutMethod"]
        inline = bank_fields(body)
        bank = inline if inline else {f: settings(store)[f] for f in BANK_FIELDS}
        missing = [f for f in ("accountNumber", "accountHolder") if not bank.get(f)]
        if missing:
            # Both spellings are accepted (the API's and the SDK's, see BANK_ALIASES): say so.
            spelled = " and ".join(f"{f} (or {SDK_NAMES[f]})" for f in missing)
            raise ApiError(
                400,
                "VALIDATION_ERROR",
                f"A one-off payout's bank account needs {spelled} too."
                if inline
                else "No bank account is configured: PATCH /payouts/bank-account, or send "
                "bankName, accountNumber and accountHolder (or bankAccountNumber and "
                "bankAccountHolder) with the payout.",
                field=missing[0],
            )
        available = balance(store, mode, currency)["available"]
        if body["amount"] > available:
            raise ApiError(
                422,
                "insufficient_balance",
                f"amount {body['amount']} exceeds the available balance {available} {currency}.",
                field="amount",
            )
        payout = {
            "id": new_id("po_"),
            "amount": body["amount"],
            "currency": currency,
            "status": "pending",
            "method": method,
            **{field: bank.get(field) for field in BANK_FIELDS},
            "bankAccountNumber": bank.get("accountNumber"),
            "bankAccountHolder": bank.get("accountHolder"),
            "note": body.get("note"),
            "reference": None,
            "failureReason": None,
            "ledgerTransactionId": None,
            "processedAt": None,
            "completedAt": None,
        }
        store.stamp(payout, mode)
        store.payouts[payout["id"]] = payout
        store.emit("payout.created", payout)
        return payout


def get_payout(store: Store, mode: str, payout_id: str) -> dict[str, Any]:
    payout = store.payouts.get(payout_id)
    if payout is None or payout["mode"] != mode:
        raise not_found("payout", payout_id)
    return payout


def move_payout(
    store: Store,
    payout: dict[str, Any],
    status: str,
    *,
    reference: str | None = None,
    failure_reason: str | None = None,
) -> dict[str, Any]:
    """Move a payout to ``status`` (409 ``invalid_transition`` when it may not), post the paid
    one to the ledger and emit ``payout.<status>``."""
    with store.lock:
        if status not in TRANSITIONS.get(payout["status"], ()):
            raise ApiError(
                409,
                "invalid_transition",
                f"Payout {payout['id']} is {payout['status']}; it cannot become {status}.",
            )
        now = iso(store.now())
        payout["status"] = status
        if reference is not None:
            payout["reference"] = reference
        if status == "in_transit":
            payout["processedAt"] = now
        if status == "failed":
            payout["failureReason"] = failure_reason
        if status in ("paid", "failed", "cancelled"):
            payout["completedAt"] = now
        if status == "paid":
            payout["ledgerTransactionId"] = post_outflow(
                store, payout, "payout", "payout", f"Payout {payout['id']} to {payout['bankName']}"
            )
        store.touch(payout)
        store.emit(f"payout.{status}", payout)
        return payout


def mark_payout(
    store: Store, mode: str, payout_id: str, status: str, **fields: str | None
) -> dict[str, Any]:
    """The ``mark-*`` calls: for ``manual`` payouts only (a disbursement moves by itself)."""
    with store.lock:
        payout = get_payout(store, mode, payout_id)
        if payout["method"] != "manual":
            raise ApiError(
                409,
                "invalid_transition",
                f"Payout {payout_id} is a {payout['method']} payout: it moves by itself; "
                "mark-* is for manual payouts.",
            )
        return move_payout(store, payout, status, **fields)


def _tick(store: Store) -> None:
    now = store.now()
    for payout in sorted(store.payouts.values(), key=lambda p: p["_seq"]):
        if payout["method"] != "xendit_disbursement" or payout["status"] not in LOCKING:
            continue
        age = now - payout["_createdAtTs"]
        if payout["status"] == "pending" and age >= DISBURSEMENT_IN_TRANSIT_AFTER:
            move_payout(store, payout, "in_transit", reference="disb_" + payout["id"][3:])
        if payout["status"] == "in_transit" and age >= DISBURSEMENT_SETTLED_AFTER:
            if (payout.get("accountNumber") or "").endswith(FAILING_ACCOUNT_SUFFIX):
                move_payout(store, payout, "failed", failure_reason=DISBURSEMENT_FAILURE)
            else:
                move_payout(store, payout, "paid")


FAMILY = register(
    Family(
        "money",
        stores=("ledger", "payouts", "money_settings"),
        event_kinds=tuple(
            f"payout.{kind}" for kind in ("created", "in_transit", "paid", "failed", "cancelled")
        ),
        tick=_tick,
        on_event=_on_event,
    )
)


def tax_of(gross: int, rate: float) -> int:
    """PPN inside a gross amount: ``round(gross × rate / (1 + rate))``, half up."""
    numerator = round(rate * 10000)
    return (gross * numerator * 2 + (10000 + numerator)) // (2 * (10000 + numerator))


def tax_in(store: Store, gross: int) -> int:
    """The PPN inside ``gross`` when the acting account's tax setting is on, else 0."""
    found = settings(store)
    return tax_of(gross, found["taxRate"]) if found["taxEnabled"] else 0
