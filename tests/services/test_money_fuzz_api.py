"""Fuzz: the DRF money API (payouts list/create/detail/move with Idempotency-Key, balance,
receipts) against the sandbox.

Invariants: never 5xx; every payout Plugipay holds is mirrored exactly once and the money
locked at Plugipay is what the mirrored locking payouts add up to; a 201 is one new payout
and a 200 on POST a replay of an existing one; a buyer never reads another's receipt."""

import os
from urllib.parse import quote

import pytest

pytest.importorskip("rest_framework")

from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_plugipay import services
from django_plugipay.client import get_client
from django_plugipay.models import Payout, Receipt
from tests.factories import UserFactory
from tests.test_api import API, client_for, staff_with
from tests.test_money_out import save_bank_account

LOADED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
#: examples per property; ``PLUGIPAY_FUZZ_EXAMPLES`` raises it (run with thousands)
EXAMPLES = int(os.environ.get("PLUGIPAY_FUZZ_EXAMPLES", 120))
N = EXAMPLES

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_value = st.recursive(
    json_leaf,
    lambda kids: st.one_of(
        st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=6), kids, max_size=3)
    ),
    max_leaves=6,
)
amounts = st.one_of(
    st.integers(1, 500),  # valid, small: the balance lasts
    st.integers(-(2**70), 2**70),
    st.sampled_from(
        [
            0,
            -1,
            2**53 - 1,
            2**53,
            2**63,
            10**30,
            True,
            False,
            None,
            "",
            "1000",
            "1e3",
            "١٢٣",
            "²",
            " 100 ",
            "100.0",
            "0x10",
            "NaN",
            "Infinity",
            "-0",
            100.0,
            100.5,
            1e308,
            -0.0,
            [],
            {},
            [100],
            {"amount": 100},
        ]
    ),
    st.floats(allow_nan=False, allow_infinity=False),  # JSON has no others (see test_money_edges)
    st.text(max_size=20),
    json_value,
)
bodies = st.one_of(
    st.fixed_dictionaries(
        {"amount": amounts}, optional={"note": st.one_of(st.text(max_size=600), json_value)}
    ),
    st.dictionaries(st.text(max_size=10), json_value, max_size=4),
    json_value,
)
# What an HTTP server can hand Django in a header: latin-1 text without CR/LF.
header_text = st.text(st.characters(codec="latin-1", exclude_characters="\r\n\x00"), max_size=300)
idem_keys = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "k1",
            "k2",
            "K1",
            "k1 ",
            " k1",
            "",
            "a" * 58,
            "a" * 59,
            "a" * 60,
            "a" * 500,
            "api_1_k1",
            "admin_x",
            "payout_x",
            "ÿ",
            "é" * 70,
        ]
    ),
    header_text,
)


@pytest.fixture
def setup(plugipay_sandbox):
    plugipay_sandbox.paid_payment(amount=2_000_000)
    save_bank_account()
    manager = staff_with("manage_payout", "view_payout")
    manager2 = staff_with("manage_payout", "view_payout")
    viewer = staff_with("view_payout")
    return plugipay_sandbox, manager, manager2, viewer


def plugipay_payouts():
    return list(get_client().list_payouts())


def check_money():
    at_plugipay = plugipay_payouts()
    ids = [p["id"] for p in at_plugipay]
    mirrored = list(Payout.objects.exclude(plugipay_id=None).values_list("plugipay_id", flat=True))
    assert sorted(ids) == sorted(mirrored), ("payouts at Plugipay vs mirrored", ids, mirrored)
    assert not Payout.objects.filter(plugipay_id=None).exists(), "a payout row Plugipay never saw"
    locked_here = Payout.objects.locking().aggregate(s=Sum("amount"))["s"] or 0
    assert services.balance().locked == locked_here


@settings(max_examples=N, deadline=None, suppress_health_check=LOADED)
@given(
    requests=st.lists(
        st.tuples(
            st.sampled_from(["m1", "m2", "viewer", "buyer"]),
            bodies,
            idem_keys,
            st.sampled_from(["json", "multipart"]),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_fuzz_payout_create(setup, requests):
    sandbox, m1, m2, viewer = setup
    users = {"m1": m1, "m2": m2, "viewer": viewer, "buyer": UserFactory()}
    for who, body, key, fmt in requests:
        before = set(Payout.objects.values_list("pk", flat=True))
        headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
        if fmt == "multipart" and not isinstance(body, dict):
            fmt = "json"
        if fmt == "multipart":
            body = {
                k: v
                for k, v in body.items()
                if isinstance(v, (str, int, float)) and not isinstance(v, bool)
            }
            body = {
                k: (v.replace("\x00", "") if isinstance(v, str) else v) for k, v in body.items()
            }
        response = client_for(users[who]).post(f"{API}/payouts/", body, format=fmt, **headers)
        assert response.status_code < 500, (response.status_code, who, body, key)
        after = set(Payout.objects.values_list("pk", flat=True))
        if response.status_code == 201:
            assert len(after - before) == 1, "a 201 made no or several payouts"
        else:
            assert after - before == set(), (response.status_code, "a non-201 left a new payout")
        if response.status_code == 200:
            assert Payout.objects.filter(plugipay_id=response.json()["id"]).exists()
    check_money()


@settings(max_examples=N, deadline=None, suppress_health_check=LOADED)
@given(
    who=st.sampled_from(["m1", "viewer", "buyer", "staff"]),
    params=st.dictionaries(
        st.sampled_from(
            [
                "cursor",
                "page_size",
                "status",
                "ordering",
                "limit",
                "page",
                "format",
                "created_after",
                "id",
                "account",
            ]
        ),
        st.one_of(
            header_text.map(lambda t: t[:40]),
            st.integers(-(2**70), 2**70).map(str),
            st.sampled_from(["", "0", "-1", "1000000", "json", "api"]),
        ),
        max_size=4,
    ),
    path=st.sampled_from(["payouts/", "payouts/balance/", "receipts/"]),
)
def test_fuzz_lists(setup, who, params, path):
    sandbox, m1, m2, viewer = setup
    user = {
        "m1": m1,
        "viewer": viewer,
        "buyer": UserFactory(),
        "staff": UserFactory(is_staff=True),
    }[who]
    if not Payout.objects.exists():
        services.create_payout(amount=1000)
    response = client_for(user).get(f"{API}/{path}", params)
    assert response.status_code < 500, (response.status_code, params, response.content[:300])


path_ids = st.one_of(
    st.sampled_from(["po_1", "PO_1", "0", "-1", "None", "null", "%00", "..", "balance", " ", "é"]),
    st.text(
        st.characters(exclude_characters="\x00/", exclude_categories=["Cs"]),
        min_size=1,
        max_size=80,
    ),
)
moves = st.one_of(
    st.fixed_dictionaries(
        {
            "status": st.one_of(
                st.sampled_from(
                    ["in_transit", "paid", "failed", "canceled", "cancelled", "pending", "PAID", ""]
                ),
                json_value,
            )
        },
        optional={
            "reference": st.one_of(st.text(max_size=300), json_value),
            "failure_reason": st.one_of(st.text(max_size=600), json_value),
        },
    ),
    json_value,
)


@settings(max_examples=N, deadline=None, suppress_health_check=LOADED)
@given(
    who=st.sampled_from(["m1", "viewer", "buyer"]),
    target=st.one_of(st.just("real"), path_ids),
    body=moves,
    action=st.sampled_from(["detail", "move"]),
)
def test_fuzz_payout_detail_and_move(setup, who, target, body, action):
    sandbox, m1, m2, viewer = setup
    user = {"m1": m1, "viewer": viewer, "buyer": UserFactory()}[who]
    if target == "real":
        payout = Payout.objects.exclude(plugipay_id=None).filter(status="pending").first()
        if payout is None:
            payout = services.create_payout(amount=500)
        target = payout.plugipay_id
    url = f"{API}/payouts/{quote(target, safe='')}/"
    if action == "detail":
        response = client_for(user).get(url)
    else:
        response = client_for(user).post(url + "move/", body, format="json")
    assert response.status_code < 500, (response.status_code, target, body, response.content[:300])
    if who == "buyer":
        assert response.status_code in (403, 404)
    check_money()


@settings(max_examples=N, deadline=None, suppress_health_check=LOADED)
@given(
    target=st.one_of(st.sampled_from(["mine", "theirs", "session_theirs"]), path_ids),
    staff=st.booleans(),
)
def test_fuzz_receipt_detail(setup, target, staff):
    sandbox = setup[0]
    from django.contrib.auth import get_user_model

    if not get_user_model().objects.filter(username="fuzz_buyer_a").exists():
        for name in ("a", "b"):
            buyer = UserFactory(username=f"fuzz_buyer_{name}")
            customer = services.get_or_create_customer_for_user(user=buyer)
            sandbox.paid_payment(amount=10_000, customer=customer)
        services.sync_receipts()
    a = get_user_model().objects.get(username="fuzz_buyer_a")
    mine = Receipt.objects.get(customer__user=a)
    theirs = Receipt.objects.exclude(pk=mine.pk).exclude(customer=None).first()
    ident = {
        "mine": mine.plugipay_id,
        "theirs": theirs.plugipay_id,
        "session_theirs": theirs.source_id,
    }.get(target, target)
    user = UserFactory(is_staff=True) if staff else a
    response = client_for(user).get(f"{API}/receipts/{quote(ident, safe='')}/")
    assert response.status_code < 500
    if target in ("theirs", "session_theirs") or staff:
        assert response.status_code == 404, response.content
    listed = client_for(a).get(f"{API}/receipts/").json()["results"]
    assert {r["id"] for r in listed} == {mine.plugipay_id}
