"""Hypothesis fuzzing of the DRF API without the sandbox (PLUGIPAY_FUZZ_EXAMPLES per test, 60 by
default; thousands when hunting): every Plugipay call is recorded and
fails (TransientError), so the view and service validation run for real and anything that
reaches Plugipay on a refused request is seen."""

import base64
import json
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("rest_framework")

from django_plugipay.client import PlugipayClient
from django_plugipay.exceptions import TransientError
from django_plugipay.models import CheckoutSession, Payout, Refund, Subscription
from tests.factories import (
    CustomerFactory,
    InvoiceFactory,
    PaymentFactory,
    PriceFactory,
    RefundFactory,
    UserFactory,
)
from tests.test_api import API, client_for, staff_with

pytestmark = pytest.mark.django_db
FUZZ = settings(
    max_examples=int(__import__("os").environ.get("PLUGIPAY_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    print_blob=False,
)

# ---- strategies ---------------------------------------------------------------------------

weird_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="latin-1"), max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "a\x00b",
            "１２３",  # fullwidth digits
            "٣",  # arabic-indic digit
            "1_000",
            "250.000",
            "1e3",
            "-1",
            "+5",
            " 7 ",
            "0x10",
            "NaN",
            "Infinity",
            "9" * 30,
            "9" * 5000,
            "x" * 10_000,
            "\u202e",
            "\ud7ff",
            "null",
            "true",
            "requested_by_customer",
            "duplicate",
            "fraudulent",
            "other",
            "paid",
            "canceled",
            "in_transit",
            "failed",
            "pending",
            "succeeded",
        ]
    ),
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**53 - 1, 2**53, 2**63 - 1, 2**63, 2**64, 10**20, 10**300]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1.0, 1.5, -0.0, 1e300, 1e20, 9007199254740993.0, 2.0**63]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, weird_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(weird_text, inner, max_size=4)
    ),
    max_leaves=8,
)


def body_for(*keys):
    """A JSON body: the endpoint's keys (each optional) with any value, plus stray keys; or
    something that is not an object at all."""
    obj = st.fixed_dictionaries(
        {}, optional={key: st.one_of(scalars, json_values) for key in keys}
    ).flatmap(
        lambda d: st.dictionaries(weird_text, json_values, max_size=2).map(
            lambda extra: {**extra, **d}
        )
    )
    return st.one_of(obj, obj, obj, json_values)


header_text = st.one_of(
    st.none(),
    st.text(alphabet=st.characters(codec="latin-1"), max_size=80),
    st.text(max_size=80),
    st.sampled_from(["", " ", "\x00", "\r\n", "\t", "k" * 65, "k" * 10_000, "é" * 100]),
)
path_ids = st.one_of(
    st.text(min_size=1, max_size=60).filter(lambda t: "/" not in t and t.strip(".")),
    st.sampled_from(["%00", "pay_1", "a" * 5000, "%FF", "%C0%AF", "\u0000"]),
)


#: times with no UTC year once their offset is applied
EDGE_TIMES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59"]


def cursor_values():
    raw = st.dictionaries(
        st.sampled_from(["o", "r", "p", "x"]),
        st.one_of(
            weird_text,
            st.integers(min_value=-(10**30), max_value=10**30).map(str),
            st.datetimes().map(lambda d: d.isoformat()),
            st.sampled_from([*EDGE_TIMES, "2026-01-01 00:00:00+00:00", "2026-13-45T00:00:00"]),
        ),
        max_size=3,
    ).map(lambda d: base64.b64encode(urlencode(d).encode()).decode())
    return st.one_of(raw, weird_text)


def query_params():
    keys = st.sampled_from(
        [
            "status",
            "created_after",
            "created_before",
            "cursor",
            "page_size",
            "ordering",
            "page",
            "limit",
            "offset",
            "format",
            "search",
        ]
    )
    values = st.one_of(
        weird_text,
        cursor_values(),
        st.integers(min_value=-(10**25), max_value=10**25).map(str),
        st.datetimes().map(lambda d: d.isoformat()),
        st.sampled_from(
            [
                *EDGE_TIMES,
                "0001-01-01",
                "9999-12-31",
                "2026-02-30T00:00:00",
                "2026-01-01T00:00:00+99:00",
                "2026-01-01T24:00:00",
                "json",
                "api",
                "yaml",
            ]
        ),
    )
    return st.lists(st.tuples(keys, values), max_size=5)


# ---- harness ----------------------------------------------------------------------------


@pytest.fixture
def upstream(monkeypatch):
    calls = []

    def fake_request(self, method, path, **kwargs):
        calls.append((method, path, kwargs))
        raise TransientError("fake: Plugipay unreachable", status=503)

    monkeypatch.setattr(PlugipayClient, "request", fake_request)
    return calls


def counts():
    return (
        Refund.objects.count(),
        Payout.objects.count(),
        CheckoutSession.objects.count(),
        Subscription.objects.count(),
    )


def check(response, calls, before, *, upstream_ok=False):
    code = response.status_code
    if code >= 500:
        # A 502 after the (fake) Plugipay failed is an upstream error, not the sender's.
        assert upstream_ok and code == 502 and calls, (code, response.content[:500])
    if 400 <= code < 500:
        assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
        json.loads(response.content)
        assert counts() == before, "a row was created on a 4xx"
        assert not calls, f"Plugipay was called on a {code}: {calls[:1]}"


def send(client, method, url, body, headers=None):
    headers = headers or {}
    if isinstance(body, bytes):
        return getattr(client, method)(url, body, content_type="application/json", **headers)
    return getattr(client, method)(url, body, format="json", **headers)


def meta(idempotency_key=None, language=None):
    headers = {}
    if idempotency_key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = idempotency_key
    if language is not None:
        headers["HTTP_ACCEPT_LANGUAGE"] = language
    return headers


raw_bodies = st.one_of(
    st.binary(max_size=50),
    st.sampled_from(
        [
            b"",
            b"{",
            b'{"amount": NaN, "reason": "duplicate"}',
            b'{"amount": Infinity, "reason": "duplicate"}',
            b'{"amount": 1' + b"0" * 5000 + b', "reason": "duplicate"}',
            b'{"amount": 1e999, "reason": "duplicate"}',
            b'{"amount": -0, "reason": "duplicate"}',
            b'{"reason": "duplicate", "reason": "fraudulent"}',
            b'{"reason": "\\u0000"}',
            b"\xff\xfe",
        ]
    ),
)


@pytest.fixture
def buyer():
    user = UserFactory()
    CustomerFactory(user=user)  # no customer creation at Plugipay
    PriceFactory()
    return client_for(user)


@pytest.fixture
def hooks(settings):  # set once: a settings override per example nests until RecursionError
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "API_CHECKOUT_PARAMS": "tests.test_api.pricing",
        "API_SUBSCRIBE_PARAMS": "tests.test_api_fuzz.subscribe_any",
    }


@pytest.fixture
def staff_client():
    return client_for(
        staff_with("view_payment", "refund_payment", "view_payout", "manage_payout", "view_receipt")
    )


# ---- writable endpoints ----------------------------------------------------------------


@pytest.fixture
def refunder_and_payment(upstream):
    payment = PaymentFactory(amount=10**15)
    return client_for(staff_with("refund_payment")), payment


@FUZZ
@given(
    body=st.one_of(body_for("amount", "reason", "description"), raw_bodies),
    key=header_text,
    language=header_text,
)
def test_fuzz_refund_create(refunder_and_payment, upstream, body, key, language):
    client, payment = refunder_and_payment
    upstream.clear()
    before = counts()
    response = send(
        client, "post", f"{API}/payments/{payment.plugipay_id}/refunds/", body, meta(key, language)
    )
    check(response, upstream, before, upstream_ok=True)


@FUZZ
@given(
    body=st.one_of(body_for("amount", "note"), raw_bodies),
    key=header_text,
    language=header_text,
)
def test_fuzz_payout_create(upstream, body, key, language):
    client = client_for(staff_with("manage_payout", "view_payout"))
    upstream.clear()
    before = counts()
    response = send(client, "post", f"{API}/payouts/", body, meta(key, language))
    check(response, upstream, before, upstream_ok=True)


@pytest.fixture
def manager_and_payout(upstream):
    from django_plugipay.context import current_account_pk

    payout = Payout.objects.create(
        account_id=current_account_pk(),
        plugipay_id="po_fuzz1",
        amount=10_000,
        currency="IDR",
        status="pending",
        idempotency_key="fuzz-1",
    )
    return client_for(staff_with("manage_payout", "view_payout")), payout


@FUZZ
@given(body=st.one_of(body_for("status", "reference", "failure_reason"), raw_bodies))
def test_fuzz_payout_move(manager_and_payout, upstream, body):
    client, payout = manager_and_payout
    upstream.clear()
    before = counts()
    response = send(client, "post", f"{API}/payouts/{payout.plugipay_id}/move/", body)
    check(response, upstream, before, upstream_ok=True)


def pricing_fuzz(request, data):
    return {
        "amount": 75_000 * data["quantity"],
        "currency": "IDR",
        "description": f"Order {data['reference']}",
        "metadata": {"order": data["reference"][:100], **data["metadata"]},
        "success_url": "https://shop.test/ok",
        "cancel_url": "https://shop.test/no",
    }


@pytest.fixture
def first_time_buyer(settings):
    """A user with no customer yet (made at Plugipay on a first checkout), and a pricing hook
    that passes the client's metadata on."""
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "API_CHECKOUT_PARAMS": "tests.test_api_fuzz.pricing_fuzz",
    }
    return client_for(UserFactory())


@FUZZ
@given(body=st.one_of(body_for("reference", "quantity", "metadata"), raw_bodies), lang=header_text)
def test_fuzz_checkout_create(upstream, first_time_buyer, body, lang):
    upstream.clear()
    before = counts()
    response = send(first_time_buyer, "post", f"{API}/checkout-sessions/", body, meta(None, lang))
    check(response, upstream, before, upstream_ok=True)
    if 400 <= response.status_code < 500:  # refused before any call (the buyer's customer)
        assert not upstream, (response.status_code, upstream)


def subscribe_any(request, price):
    return {}


@FUZZ
@given(body=st.one_of(body_for("price"), raw_bodies))
def test_fuzz_subscribe(upstream, buyer, hooks, body):
    upstream.clear()
    before = counts()
    response = send(buyer, "post", f"{API}/subscriptions/", body)
    check(response, upstream, before, upstream_ok=True)


@FUZZ
@given(
    body=st.one_of(body_for("return_url"), raw_bodies),
    host=st.sampled_from(["testserver", "shop.test"]),
)
def test_fuzz_portal_session(upstream, buyer, body, host):
    upstream.clear()
    before = counts()
    response = send(buyer, "post", f"{API}/portal-sessions/", body, {"HTTP_HOST": host})
    check(response, upstream, before, upstream_ok=True)


# ---- path ids -----------------------------------------------------------------------------

DETAIL = [
    ("get", "/checkout-sessions/{}/"),
    ("get", "/payments/{}/"),
    ("get", "/refunds/{}/"),
    ("get", "/subscriptions/{}/"),
    ("post", "/subscriptions/{}/cancel/"),
    ("get", "/payouts/{}/"),
    ("post", "/payouts/{}/move/"),
    ("post", "/payments/{}/refunds/"),
    ("get", "/receipts/{}/"),
]


@FUZZ
@given(route=st.sampled_from(DETAIL), ident=path_ids, raw=st.booleans(), lang=header_text)
def test_fuzz_path_ids(upstream, staff_client, route, ident, raw, lang):
    method, template = route
    if raw and any(c in ident for c in "?#%"):
        return  # another URL, not an id (Django's HTML 404 for an unrouted path)
    url = API + template.format(ident if raw else quote(ident, safe=""))
    upstream.clear()
    before = counts()
    body = {"status": "canceled", "reason": "duplicate"} if method == "post" else None
    try:
        response = send(staff_client, method, url, body, meta(None, lang))
    except UnicodeError:
        return  # the test client cannot even build such a URL
    check(response, upstream, before)


# ---- list endpoints -----------------------------------------------------------------------


@pytest.fixture
def lists_data(upstream):
    user = staff_with(
        "view_payment", "view_payout", "view_receipt", "view_invoice", "view_subscription"
    )
    customer = CustomerFactory(user=user)
    for _ in range(3):
        RefundFactory(payment__checkout_session__customer=customer)
        InvoiceFactory(subscription__customer=customer, customer=customer)
    return client_for(user), client_for(UserFactory())


LISTS = ["/payments/", "/invoices/", "/receipts/", "/payouts/", "/subscriptions/"]


@FUZZ
@given(path=st.sampled_from(LISTS), params=query_params(), staff=st.booleans(), lang=header_text)
def test_fuzz_list_query_params(lists_data, upstream, path, params, staff, lang):
    client = lists_data[0 if staff else 1]
    upstream.clear()
    before = counts()
    response = client.get(API + path + "?" + urlencode(params), **meta(None, lang))
    if dict(params).get("format") == "api":  # DRF's browsable API, HTML by design
        assert response.status_code < 500 and counts() == before
        return
    check(response, upstream, before)
    if response.status_code == 200 and isinstance(response.json(), dict):
        nxt = response.json().get("next")
        if nxt:
            check(client.get(nxt), upstream, before)


@pytest.mark.parametrize(
    "path",
    [
        "/payouts/",
        "/checkout-sessions/",
        "/subscriptions/",
        "/portal-sessions/",
        "/payments/pay_x/refunds/",
        "/payouts/po_x/move/",
    ],
)
def test_deeply_nested_json_is_a_400(manager_and_payout, settings, path):
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "API_CHECKOUT_PARAMS": "tests.test_api.pricing",
        "API_SUBSCRIBE_PARAMS": "tests.test_api_fuzz.subscribe_any",
    }
    payment = PaymentFactory()
    user = staff_with("manage_payout", "view_payout", "refund_payment")
    CustomerFactory(user=user)
    client = client_for(user)
    client.raise_request_exception = False
    path = path.replace("pay_x", payment.plugipay_id).replace("po_x", "po_fuzz1")
    response = client.post(API + path, b"[" * 5000 + b"]" * 5000, content_type="application/json")
    assert response.status_code == 400, response.status_code


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/payments/{pay}/refunds/", b'{"reason": "\\ud800"}'),
        ("/payouts/po_fuzz1/move/", b'{"status": "\\udfff"}'),
        ("/payments/{pay}/refunds/", b'{"reason": "other", "description": "\\ud800"}'),
        ("/payouts/", b'{"amount": 1000, "note": "\\ud800"}'),
        ("/payouts/po_fuzz1/move/", b'{"status": "in_transit", "reference": "\\ud800"}'),
    ],
)
def test_a_lone_surrogate_is_a_400(manager_and_payout, path, body):
    payment = PaymentFactory()
    client = client_for(staff_with("manage_payout", "view_payout", "refund_payment"))
    client.raise_request_exception = False
    url = API + path.format(pay=payment.plugipay_id)
    before = counts()
    response = client.post(url, body, content_type="application/json")
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert counts() == before
