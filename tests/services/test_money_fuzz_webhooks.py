"""Fuzz: signed payout.* / receipt.* webhooks (both dialects) on the shared and the per-account
route, with arbitrary ``accountId``/``workspaceId`` and hostile object values.

Invariants: never 5xx; a payout or receipt row stays in the account whose secret signed the
first news of it; each terminal payout signal fires at most once per row; no two rows share
a Plugipay id within an account."""

import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_plugipay import accounts, signals
from django_plugipay.models import Account, Payout, Receipt
from django_plugipay.testing import build_event, signed_webhook

pytestmark = pytest.mark.django_db
#: examples per property; ``PLUGIPAY_FUZZ_EXAMPLES`` raises it (run with thousands)
EXAMPLES = int(os.environ.get("PLUGIPAY_FUZZ_EXAMPLES", 250))
LOADED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]

SECRETS = {"default": "whsec_one", "m": "whsec_m", "b": "whsec_b"}

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(
        ["", "0", "-1", "1e9", "IDR", "idr", "XX", "2026-01-01T00:00:00Z", "2026-13-45"]
    ),
)
json_value = st.recursive(
    json_leaf,
    lambda kids: st.one_of(
        st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=8), kids, max_size=3)
    ),
    max_leaves=8,
)


def maybe(strategy):
    return st.one_of(strategy, json_value)


ids = st.one_of(
    st.sampled_from(["po_1", "po_2", "rcpt_1", "rcpt_2", "cs_1", "inv_1"]),
    st.text(min_size=1, max_size=80),
    json_value,
)
timestamps = st.sampled_from(
    [
        None,
        "",
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:01Z",
        "2020-01-01",
        "0000-00-00",
        "nonsense",
        "2026-01-01T00:00:00+99:00",
        "9999-12-31T23:59:59Z",
        "1-1-1",
    ]
)
amounts = st.one_of(
    st.integers(-5, 10**6),
    st.sampled_from([0, 1, 2**53 - 1, 2**53, 2**63 - 1, 2**63, 2**64, -(2**63)]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
payout_obj = st.fixed_dictionaries(
    {
        "id": ids,
        "method": maybe(st.sampled_from(["manual", "xendit_disbursement", "MANUAL", "bank", ""])),
    },
    optional={
        "status": maybe(
            st.sampled_from(
                [
                    "pending",
                    "in_transit",
                    "paid",
                    "failed",
                    "cancelled",
                    "canceled",
                    "PAID",
                    "processing",
                    "x" * 40,
                ]
            )
        ),
        "amount": maybe(amounts),
        "currency": maybe(st.sampled_from(["IDR", "usd", "JPY", "I D R", "ÍDR"])),
        "bankCode": maybe(st.text(max_size=40)),
        "accountNumber": maybe(st.text(max_size=60)),
        "bankAccountNumber": maybe(st.text(max_size=60)),
        "accountHolder": maybe(st.text(max_size=300)),
        "note": maybe(st.text(max_size=600)),
        "reference": maybe(st.text(max_size=300)),
        "failureReason": maybe(st.text(max_size=600)),
        "processedAt": maybe(timestamps),
        "completedAt": maybe(timestamps),
        "updatedAt": maybe(timestamps),
        "mode": maybe(st.sampled_from(["test", "live"])),
    },
)
receipt_obj = st.fixed_dictionaries(
    {"id": ids},
    optional={
        "number": maybe(st.text(max_size=80)),
        "sourceType": maybe(st.sampled_from(["checkout_session", "invoice", "refund", ""])),
        "sourceId": maybe(ids),
        "customerId": maybe(st.sampled_from(["cus_1", "cus_2"]) | st.text(max_size=80)),
        "paymentId": maybe(st.sampled_from(["pay_1"]) | st.text(max_size=80)),
        "amount": maybe(amounts),
        "total": maybe(amounts),
        "subtotal": maybe(amounts),
        "taxAmount": maybe(amounts),
        "currency": maybe(st.sampled_from(["IDR", "usd"])),
        "method": maybe(st.text(max_size=40)),
        "issuedAt": maybe(timestamps),
        "emailedAt": maybe(timestamps),
        "updatedAt": maybe(timestamps),
    },
)
payout_kinds = st.sampled_from(
    [
        "payout.created",
        "payout.in_transit",
        "payout.paid",
        "payout.failed",
        "payout.cancelled",
        "payout.canceled",
        "payout.updated",
    ]
)
receipt_kinds = st.sampled_from(
    ["receipt.created", "receipt.issued", "receipt.emailed", "receipt.updated"]
)
account_ids = st.one_of(
    st.just(None),
    st.sampled_from(["acc_m", "acc_b", "acc_test", "acc_other", "m", "b", "default", "", "1", "2"]),
    st.text(max_size=120),
    json_value,
)


@st.composite
def deliveries(draw):
    if draw(st.booleans()):
        kind, obj = draw(payout_kinds), draw(payout_obj)
    else:
        kind, obj = draw(receipt_kinds), draw(receipt_obj)
    style = draw(st.sampled_from(["sdk", "docs"]))
    event = build_event(
        kind,
        obj,
        style=style,
        event_id=draw(
            st.sampled_from(["evt_a", "evt_b", "evt_c"]) | st.text(min_size=1, max_size=70)
        ),
    )
    key = "accountId" if style == "sdk" else "workspaceId"
    named = draw(account_ids)
    if named is None:
        event.pop(key, None)
    else:
        event[key] = named
    if draw(st.booleans()):
        event["occurredAt" if style == "sdk" else "createdAt"] = draw(maybe(timestamps))
    signer = draw(st.sampled_from(list(SECRETS)))
    route = draw(
        st.one_of(
            st.none(),
            st.sampled_from(list(SECRETS)),
            st.text(
                st.characters(codec="ascii", exclude_characters="/?#%"), min_size=1, max_size=20
            ),
        )
    )
    return event, signer, route


@pytest.fixture
def multi(settings):
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "WEBHOOK_SECRETS": [SECRETS["default"]],
        "ACCOUNTS": {
            "m": {"ON_BEHALF_OF": "acc_m", "WEBHOOK_SECRETS": [SECRETS["m"]]},
            "b": {"API_KEY": "sk_test_b", "WEBHOOK_SECRETS": [SECRETS["b"]]},
        },
        "MAX_RETRIES": 0,
        "TIMEOUT": 0.5,
    }
    accounts.forget(tables=False)
    accounts.known("m"), accounts.known("b")  # the rows exist before any example's transaction
    yield
    accounts.forget(tables=False)


def _post(client, event, signer, route):
    body, headers = signed_webhook(event, SECRETS[signer])
    url = "/plugipay/webhook/" if route is None else f"/plugipay/webhook/{route}/"
    return client.post(url, body, content_type="application/json", headers=headers)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=LOADED)
@given(batch=st.lists(deliveries(), min_size=1, max_size=4))
def test_fuzz_money_webhooks_never_5xx_and_stay_in_their_account(client, multi, batch):
    from django.db import transaction

    sent = []

    def record(sender, instance, event, name=None, **kwargs):
        sent.append((name, instance.pk))

    receivers = {}
    for name in ("payout_paid", "payout_failed", "payout_canceled", "receipt_issued"):
        receivers[name] = lambda sender, instance, event, _n=name, **kw: sent.append(
            (_n, type(instance).__name__, instance.pk)
        )
        getattr(signals, name).connect(receivers[name], weak=False)
    try:
        with transaction.atomic():
            for event, signer, route in batch:
                response = _post(client, event, signer, route)
                assert response.status_code < 500, (
                    response.status_code,
                    response.content,
                    event,
                    signer,
                    route,
                )
                # a redelivery of the same body must be answered too
                again = _post(client, event, signer, route)
                assert again.status_code < 500, (again.status_code, again.content)
            for row in list(Payout.objects.all()) + list(Receipt.objects.all()):
                assert row.account_id is not None
            dup = Counter(
                (type(r).__name__, r.account_id, r.plugipay_id)
                for r in list(Payout.objects.all()) + list(Receipt.objects.all())
            )
            assert all(n == 1 for n in dup.values()), dup
            counts = Counter(sent)
            assert all(n == 1 for n in counts.values()), counts
            transaction.set_rollback(True)
    finally:
        accounts.forget(tables=False)
        for name, receiver in receivers.items():
            getattr(signals, name).disconnect(receiver)


@settings(max_examples=max(1, EXAMPLES // 3), deadline=None, suppress_health_check=LOADED)
@given(
    first=st.sampled_from(list(SECRETS)),
    second=st.sampled_from(list(SECRETS)),
    kind=st.sampled_from(["payout.paid", "payout.failed", "payout.cancelled", "receipt.created"]),
    named=st.sampled_from([None, "acc_m", "acc_b", "acc_test", "acc_zz"]),
    route2=st.one_of(st.none(), st.sampled_from(list(SECRETS))),
)
def test_fuzz_same_object_from_two_accounts_never_moves_across(
    client, multi, first, second, kind, named, route2
):
    """News of one payout/receipt id signed by another account must not change the first
    account's row (nor be 5xx)."""
    from django.db import transaction

    obj = {
        "id": "po_x" if kind.startswith("payout") else "rcpt_x",
        "status": "pending",
        "amount": 1000,
        "total": 1000,
        "currency": "IDR",
        "method": "manual",
        "updatedAt": "2026-01-01T00:00:00Z",
    }
    with transaction.atomic():
        created = build_event(
            "payout.created" if kind.startswith("payout") else "receipt.created",
            obj,
            event_id="evt_first",
        )
        created.pop("accountId")
        r1 = _post(client, created, first, first if first != "default" else None)
        assert r1.status_code < 500
        model = Payout if kind.startswith("payout") else Receipt
        row = model.objects.filter(plugipay_id=obj["id"]).first()
        before = (row.account_id, getattr(row, "status", None), row.data) if row else None
        later = dict(
            obj,
            status=kind.split(".")[1].replace("cancelled", "canceled"),
            updatedAt="2026-01-02T00:00:00Z",
            emailedAt="2026-01-02T00:00:00Z",
        )
        event = build_event(kind, later, event_id="evt_second")
        if named is None:
            event.pop("accountId")
        else:
            event["accountId"] = named
        r2 = _post(client, event, second, route2)
        assert r2.status_code < 500, r2.content
        if row is not None and second != first:
            row.refresh_from_db()
            signed_by = (
                Account.objects.get(alias=second)
                if Account.objects.filter(alias=second).exists()
                else None
            )
            if signed_by is not None and signed_by.pk != before[0]:
                assert row.account_id == before[0]
                assert (getattr(row, "status", None), row.data) == before[1:], (
                    "another account's news changed the row",
                    r2.status_code,
                    r2.content,
                )
        transaction.set_rollback(True)
    accounts.forget(tables=False)
