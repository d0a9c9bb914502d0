"""Money out: balance, bank account, payouts, the ledger and its reports."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any

from plugipay_sandbox.app import Request, Response, api, envelope, pages, paginate
from plugipay_sandbox.resources import (
    MISSING,
    boolean,
    choice,
    integer,
    invalid,
    string,
    time_filter,
)
from plugipay_sandbox.state import CURRENCIES, Store, money


def _currency(request: Request) -> str:
    currency = request.query.get("currency") or "IDR"
    if currency not in CURRENCIES:
        raise invalid("currency", f"currency must be one of {', '.join(CURRENCIES)}.")
    return currency


# ── balance and bank account ───────────────────────────────────────────────────


@api.add("GET", "/payouts/balance")
def balance(store: Store, request: Request):
    return envelope(money.balance(store, request.mode, _currency(request)), store=store)


@api.add("GET", "/payouts/bank-account")
def get_bank_account(store: Store, request: Request):
    return envelope(money.bank_account(store), store=store)


@api.add("PATCH", "/payouts/bank-account")
def update_bank_account(store: Store, request: Request):
    return envelope(money.update_bank_account(store, request.json()), store=store)


# ── payouts ────────────────────────────────────────────────────────────────────


@api.add("POST", "/payouts")
def create_payout(store: Store, request: Request):
    body = request.json()
    integer(body, "amount", required=True, minimum=1)
    choice(body, "currency", CURRENCIES)
    choice(body, "method", money.PAYOUT_METHODS)
    string(body, "note", max_length=500)
    payout = money.create_payout(store, request.mode, body)
    return envelope(store.public(payout), status=201, store=store)


@api.add("GET", "/payouts/<id>")
def get_payout(store: Store, request: Request):
    payout = money.get_payout(store, request.mode, request.params["id"])
    return envelope(store.public(payout), store=store)


@api.add("GET", "/payouts")
def list_payouts(store: Store, request: Request):
    status = request.query.get("status")
    if status is not None and status not in money.PAYOUT_STATUSES:
        raise invalid("status", f"status must be one of {', '.join(money.PAYOUT_STATUSES)}.")
    items = [
        p
        for p in store.payouts.values()
        if p["mode"] == request.mode and (status is None or p["status"] == status)
    ]
    return paginate(store, request, items)


@api.add("POST", "/payouts/<id>/cancel")
def cancel_payout(store: Store, request: Request):
    with store.lock:
        payout = money.get_payout(store, request.mode, request.params["id"])
        payout = money.move_payout(store, payout, "cancelled")
    return envelope(store.public(payout), store=store)


def _reference(request: Request) -> str | None:
    """The optional ``reference`` of a ``mark-*`` call (absent, null or empty: none)."""
    reference = string(request.json(), "reference", max_length=255)
    return reference if isinstance(reference, str) and reference else None


def _mark(store: Store, request: Request, status: str, **fields: Any) -> Response:
    payout = money.mark_payout(store, request.mode, request.params["id"], status, **fields)
    return envelope(store.public(payout), store=store)


@api.add("POST", "/payouts/<id>/mark-in-transit")
def mark_in_transit(store: Store, request: Request):
    return _mark(store, request, "in_transit", reference=_reference(request))


@api.add("POST", "/payouts/<id>/mark-paid")
def mark_paid(store: Store, request: Request):
    return _mark(store, request, "paid", reference=_reference(request))


@api.add("POST", "/payouts/<id>/mark-failed")
def mark_failed(store: Store, request: Request):
    body = request.json()
    reason = string(body, "failureReason", required=True, max_length=500)
    return _mark(store, request, "failed", failure_reason=reason)


# ── the ledger ─────────────────────────────────────────────────────────────────


def _ledger_items(store: Store, request: Request) -> list[dict[str, Any]]:
    query = request.query
    source_type = query.get("sourceType")
    if source_type is not None and source_type not in money.SOURCE_TYPES:
        raise invalid("sourceType", f"sourceType must be one of {', '.join(money.SOURCE_TYPES)}.")
    return [
        e
        for e in money.entries(store, request.mode)
        if all(
            query.get(name) in (None, e[name])
            for name in ("txId", "code", "sourceType", "sourceId")
        )
    ]


@api.add("GET", "/ledger")
def list_ledger(store: Store, request: Request):
    if "limit" not in request.query:
        request.query["limit"] = "20"
    return paginate(store, request, _ledger_items(store, request))


@api.add("GET", "/ledger/balances")
def ledger_balances(store: Store, request: Request):
    return envelope(money.ledger_balances(store, request.mode), store=store)


# ── reports ────────────────────────────────────────────────────────────────────


#: a ``to`` written as a date alone (a ten-digit epoch is as long)
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _window(store: Store, request: Request) -> tuple[float, float]:
    """``from``/``to`` (ISO-8601 date or time, or epoch seconds); ``to`` a date includes it."""
    low = time_filter(request.query, "from")
    high = time_filter(request.query, "to")
    if high is not None and DATE.fullmatch(request.query["to"].strip()):  # the whole day
        high += 86400
    return (low if low is not None else 0.0, high if high is not None else store.now() + 1)


def _in_window(store: Store, request: Request) -> list[dict[str, Any]]:
    currency = _currency(request)
    low, high = _window(store, request)
    return [
        e
        for e in money.entries(store, request.mode)
        if e["currency"] == currency and low <= e["_postedAtTs"] < high
    ]


def _total(rows: list[dict[str, Any]], code: str, direction: str) -> int:
    return sum(e["amount"] for e in rows if e["code"] == code and e["direction"] == direction)


@api.add("GET", "/reports/pnl")
def pnl(store: Store, request: Request):
    rows = _in_window(store, request)
    revenue = _total(rows, "revenue", "credit") - _total(rows, "revenue", "debit")
    refunds = _total(rows, "revenue_refund", "debit") - _total(rows, "revenue_refund", "credit")
    fees = _total(rows, "platform_fee", "debit") - _total(rows, "platform_fee", "credit")
    tax = money.tax_in(store, revenue - refunds)
    lines = [
        {"code": "revenue", "label": "Revenue", "amount": revenue},
        {"code": "revenue_refund", "label": "Refunds", "amount": -refunds},
        {"code": "platform_fee", "label": "Platform fees", "amount": -fees},
    ]
    return envelope(
        {
            "currency": _currency(request),
            "revenue": revenue,
            "refunds": refunds,
            "platformFees": fees,
            "tax": tax,
            "net": revenue - refunds - fees,
            "lines": lines,
        },
        store=store,
    )


@api.add("GET", "/reports/cash-flow")
def cash_flow(store: Store, request: Request):
    buckets: dict[str, dict[str, Any]] = {}
    for entry in _in_window(store, request):
        if entry["code"] != "cash":
            continue
        day = dt.datetime.fromtimestamp(entry["_postedAtTs"], tz=dt.timezone.utc).date()
        bucket = buckets.setdefault(
            day.isoformat(), {"day": day.isoformat(), "inflow": 0, "outflow": 0, "net": 0}
        )
        bucket["inflow" if entry["direction"] == "debit" else "outflow"] += entry["amount"]
    for bucket in buckets.values():
        bucket["net"] = bucket["inflow"] - bucket["outflow"]
    return envelope(
        {"currency": _currency(request), "buckets": [buckets[d] for d in sorted(buckets)]},
        store=store,
    )


CSV_COLUMNS = (
    "postedAt",
    "txId",
    "id",
    "code",
    "direction",
    "amount",
    "currency",
    "sourceType",
    "sourceId",
    "memo",
)


@api.add("GET", "/reports/ledger.csv")
def ledger_csv(store: Store, request: Request):
    return Response(
        ledger_csv_text(_ledger_rows(store, request)),
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="ledger.csv"'},
    )


def _ledger_rows(store: Store, request: Request) -> list[dict[str, Any]]:
    low, high = _window(store, request)
    rows = [e for e in _ledger_items(store, request) if low <= e["_postedAtTs"] < high]
    return sorted(rows, key=lambda e: e["_seq"])


def ledger_csv_text(rows: list[dict[str, Any]]) -> str:
    """The ledger as CSV, oldest first, one row per entry (also the dashboard's export)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for entry in rows:
        writer.writerow([_csv_safe(entry.get(column)) for column in CSV_COLUMNS])
    return out.getvalue()


def _csv_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula is quoted with a leading apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


# ── the sandbox's own settings (a control route, not Plugipay's API) ────────────


@pages.add("POST", "/_sandbox/money/settings")
def money_settings(store: Store, request: Request):
    """Set an account's payout method and tax (PPN) settings: ``payoutMethod``,
    ``taxEnabled``, ``taxRate`` (0–1), ``taxId`` (NPWP); ``accountId`` defaults to the own."""
    body = request.json()
    account = string(body, "accountId")
    if account in (MISSING, None):
        account = store.config.account_id
    if store.find_account(account) is None:
        raise invalid("accountId", f"No account {account!r}.")
    method = choice(body, "payoutMethod", money.PAYOUT_METHODS)
    enabled = boolean(body, "taxEnabled")
    rate = body.get("taxRate")
    if rate is not None and (
        isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1
    ):
        raise invalid("taxRate", "taxRate must be a number from 0 to below 1 (0.11 is 11 %).")
    tax_id = string(body, "taxId", max_length=30)
    if tax_id is MISSING:
        tax_id = None
    with store.lock, store.scope(account):
        found = money.settings(store, account)
        changes = {
            "payoutMethod": method,
            "taxEnabled": enabled,
            "taxRate": rate,
            "taxId": tax_id,
        }
        found.update({k: v for k, v in changes.items() if v not in (None, MISSING)})
        return envelope(store.public(found), store=store)
