"""The sandbox API driven by the official SDK (forjio-plugipay) and by raw HTTP."""

import json
import time

import plugipay
import pytest
import requests

from plugipay_sandbox import signing

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def test_sdk_customers_create_get_list_update(sdk):
    created = sdk.customers.create(email="ada@example.com", name="Ada", external_id="u-1")
    assert created["id"].startswith("cus_") and len(created["id"]) == 30
    assert sdk.customers.get(created["id"])["email"] == "ada@example.com"
    updated = sdk.customers.update(created["id"], phone="+62 811")
    assert updated["phone"] == "+62 811" and updated["name"] == "Ada"
    page = sdk.customers.list(limit=10)
    assert [c["id"] for c in page.data] == [created["id"]] and page.has_more is False


def test_sdk_checkout_sessions_create_get_list_cancel(sdk, session_factory):
    session = session_factory(metadata={"order": "42"})
    assert session["id"].startswith("cs_") and session["status"] == "open"
    assert session["hostedUrl"].endswith(f"/c/{session['id']}")
    assert sdk.checkout_sessions.get(session["id"])["metadata"] == {"order": "42"}
    assert [s["id"] for s in sdk.checkout_sessions.list(status="open").data] == [session["id"]]
    assert sdk.checkout_sessions.cancel(session["id"])["status"] == "canceled"
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.checkout_sessions.cancel(session["id"])
    assert info.value.status == 409 and info.value.code == "conflict"


def test_sdk_refunds_create_get_list(sdk, session_factory, control):
    session = session_factory()
    control("POST", f"checkout-sessions/{session['id']}/pay", {"card": "4242424242424242"})
    refund = sdk.refunds.create(
        source_type="checkout_session",
        source_id=session["id"],
        amount=50_000,
        reason="requested_by_customer",
    )
    assert refund["id"].startswith("rfd_") and refund["status"] == "succeeded"
    assert sdk.refunds.get(refund["id"])["amount"] == 50_000
    charge = sdk.checkout_sessions.get(session["id"])["paymentId"]
    assert [r["id"] for r in sdk.refunds.list(charge_id=charge).data] == [refund["id"]]


def test_sdk_events_list_get_and_webhook_endpoints(sdk, session_factory):
    session_factory()
    events = sdk.events.list(limit=5)
    assert events.data and events.data[0]["type"] == "plugipay.checkout_session.created.v1"
    assert sdk.events.get(events.data[0]["id"])["id"] == events.data[0]["id"]
    endpoint = sdk.webhook_endpoints.create(url="https://example.test/hook", events=["*"])
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["id"] in [e["id"] for e in sdk.webhook_endpoints.list()]
    assert all("secret" not in e.raw for e in sdk.webhook_endpoints.list())
    sdk.webhook_endpoints.delete(endpoint["id"])
    assert endpoint["id"] not in [e["id"] for e in sdk.webhook_endpoints.list()]


def test_wrong_secret_is_401_plugipay_error(sandbox):
    client = plugipay.PlugipayClient(
        key_id="pk_test_sandbox", secret="nope", base_url=sandbox.base_url
    )
    with pytest.raises(plugipay.PlugipayError) as info:
        client.customers.list()
    assert info.value.status == 401 and info.value.code == "INVALID_SIGNATURE"
    assert info.value.request_id.startswith("req_")


def test_sdk_verify_webhook_accepts_sandbox_deliveries(sdk, session_factory, control, receiver):
    session = session_factory()
    control("POST", f"checkout-sessions/{session['id']}/pay", {"card": "4242424242424242"})
    control("POST", "deliveries/flush")
    assert receiver.deliveries
    for headers, body in receiver.deliveries:
        event = plugipay.verify_webhook(
            body, headers["X-Plugipay-Signature"], "whsec_sandbox_tests"
        )
        assert event.id.startswith("evt_")
    assert "plugipay.payment.succeeded.v1" in receiver.types()


def test_api_md_request_vectors():
    message = signing.request_string_to_sign(
        "POST",
        "/api/v1/customers",
        "1750000000",
        b'{"email":"ada@example.com"}',
        "idem_00000000-0000-4000-8000-000000000000",
    )
    assert signing.hmac_hex("sk_test_emulator_secret", message) == (
        "e32d7b8d91e419918e69211164c57ae19efaa93e381cf0f5f46aef315b4d2364"
    )
    message = signing.request_string_to_sign(
        "GET", "/api/v1/customers?limit=10", "1750000000", b"", None
    )
    assert signing.hmac_hex("sk_test_emulator_secret", message) == (
        "cbaf29943842cacb5e8b0af7e5b75beb1e96aa477a127092978bc117eeec5468"
    )


def test_api_md_webhook_vector():
    body = (
        b'{"id":"evt_1","type":"plugipay.checkout_session.completed.v1","accountId":"acc_1",'
        b'"occurredAt":"2026-01-01T00:00:00Z","data":{"object":{"id":"cs_1",'
        b'"status":"completed"}}}'
    )
    assert signing.webhook_signature_header("whsec_emulator", 1750000000, body) == (
        "t=1750000000,v1=736284b4d959cb51690a14e425e41c8227f0b23000da7ab1346ea9d624a93a0c"
    )


def _signed(method, path, body=b"", key=None, *, ts=None, secret="sk_test_sandbox"):
    ts = str(ts or int(time.time()))
    sig = signing.hmac_hex(secret, signing.request_string_to_sign(method, path, ts, body, key))
    headers = {
        "Authorization": f"Plugipay-HMAC-SHA256 keyId=pk_test_sandbox, scope=*, signature={sig}",
        "X-Plugipay-Timestamp": ts,
        "Content-Type": "application/json",
    }
    if key:
        headers["Idempotency-Key"] = key
    return headers


def test_bearer_and_cli_header_schemes(sandbox):
    url = f"{sandbox.base_url}/api/v1/customers"
    bearer = requests.get(url, headers={"Authorization": "Bearer pk_test_sandbox_bearer"})
    assert bearer.status_code == 200
    assert requests.get(url, headers={"Authorization": "Bearer pk_test_x"}).status_code == 401
    ts = str(int(time.time()))
    sig = signing.hmac_hex(
        "sk_test_sandbox", signing.cli_string_to_sign("GET", "/api/v1/customers", ts, b"")
    )
    cli = requests.get(
        url,
        headers={
            "X-Plugipay-Key-Id": "pk_test_sandbox",
            "X-Plugipay-Timestamp": ts,
            "X-Plugipay-Signature": sig,
        },
    )
    assert cli.status_code == 200


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "INVALID_KEY"),
        (
            {
                "Authorization": "Plugipay-HMAC-SHA256 keyId=pk_test_nobody, scope=*, signature=00",
                "X-Plugipay-Timestamp": str(int(time.time())),
            },
            "INVALID_KEY",
        ),
    ],
)
def test_missing_or_unknown_credentials(sandbox, headers, code):
    response = requests.get(f"{sandbox.base_url}/api/v1/customers", headers=headers)
    assert response.status_code == 401 and response.json()["error"]["code"] == code


def test_stale_timestamp_is_invalid_timestamp(sandbox):
    headers = _signed("GET", "/api/v1/customers", ts=int(time.time()) - 301)
    response = requests.get(f"{sandbox.base_url}/api/v1/customers", headers=headers)
    assert response.json()["error"]["code"] == "INVALID_TIMESTAMP"


def test_live_key_sees_only_live_data(sandbox, sdk):
    sdk.customers.create(email="test@example.com")
    live = plugipay.PlugipayClient(
        key_id="pk_live_sandbox", secret="sk_live_sandbox", base_url=sandbox.base_url
    )
    assert live.customers.list().data == []
    assert live.customers.create(email="l@example.com")["mode"] == "live"


def test_idempotent_replay_and_mismatch(sandbox):
    body = json.dumps({"email": "ada@example.com"}).encode()
    url = f"{sandbox.base_url}/api/v1/customers"
    first = requests.post(url, data=body, headers=_signed("POST", "/api/v1/customers", body, "k1"))
    again = requests.post(url, data=body, headers=_signed("POST", "/api/v1/customers", body, "k1"))
    assert first.status_code == again.status_code == 201
    assert first.content == again.content and again.headers["Idempotent-Replayed"] == "true"
    other = json.dumps({"email": "bob@example.com"}).encode()
    clash = requests.post(
        url, data=other, headers=_signed("POST", "/api/v1/customers", other, "k1")
    )
    assert clash.status_code == 409
    assert clash.json()["error"] == {
        "code": "idempotency_mismatch",
        "field": "email",
        "message": clash.json()["error"]["message"],
    }
    listing = requests.get(url, headers=_signed("GET", "/api/v1/customers"))
    assert len(listing.json()["data"]) == 1


def test_pagination_both_forms_across_pages(sdk):
    ids = [sdk.customers.create(email=f"c{i}@example.com")["id"] for i in range(7)]
    seen, cursor = [], None
    while True:
        page = sdk.customers.list(limit=3, cursor=cursor)
        seen += [c["id"] for c in page.data]
        if not page.has_more:
            break
        cursor = page.cursor
    assert seen == list(reversed(ids))


def test_docs_pagination_meta_and_direction(sandbox, sdk):
    for i in range(3):
        sdk.customers.create(email=f"c{i}@example.com")
    path = "/api/v1/customers?limit=2&direction=asc"
    meta = requests.get(sandbox.base_url + path, headers=_signed("GET", path)).json()["meta"]
    assert meta["page"]["hasMore"] is True and meta["page"]["nextCursor"] == meta["cursor"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {
                "amount": "100",
                "currency": "IDR",
                "methods": ["card"],
                "successUrl": "https://a",
                "cancelUrl": "https://b",
            },
            "amount",
        ),
        (
            {
                "amount": 100,
                "currency": "EUR",
                "methods": ["card"],
                "successUrl": "https://a",
                "cancelUrl": "https://b",
            },
            "currency",
        ),
        (
            {
                "amount": 100,
                "currency": "IDR",
                "methods": [],
                "successUrl": "https://a",
                "cancelUrl": "https://b",
            },
            "methods",
        ),
        (
            {"amount": 100, "currency": "IDR", "methods": ["card"], "cancelUrl": "https://b"},
            "successUrl",
        ),
    ],
)
def test_validation_errors_name_the_field(sandbox, body, field):
    raw = json.dumps(body).encode()
    response = requests.post(
        f"{sandbox.base_url}/api/v1/checkout-sessions",
        data=raw,
        headers=_signed("POST", "/api/v1/checkout-sessions", raw),
    )
    assert response.status_code == 400 and response.json()["error"]["field"] == field


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/api/v1/customers", b"{not json", 400),
        ("POST", "/api/v1/customers", b"[1, 2]", 400),
        ("GET", "/api/v1/nothing-here", b"", 404),
        ("DELETE", "/api/v1/customers", b"", 405),
        ("GET", "/api/v1/customers/cus_missing", b"", 404),
    ],
)
def test_bad_input_gets_an_envelope_error(sandbox, method, path, body, status):
    response = requests.request(
        method, sandbox.base_url + path, data=body, headers=_signed(method, path, body)
    )
    assert response.status_code == status
    payload = response.json()
    assert payload["data"] is None and payload["error"]["code"]
    assert payload["meta"]["requestId"].startswith("req_")


def test_body_over_one_mib_is_413(sandbox):
    body = b"x" * (1024 * 1024 + 1)
    response = requests.post(
        f"{sandbox.base_url}/api/v1/customers",
        data=body,
        headers=_signed("POST", "/api/v1/customers", body),
    )
    assert response.status_code == 413


def test_concurrent_hammering_keeps_the_server_alive(sandbox, sdk):
    from concurrent.futures import ThreadPoolExecutor

    def hit(i):
        if i % 3 == 0:
            return requests.post(
                f"{sandbox.base_url}/api/v1/customers",
                data=b"{",
                headers=_signed("POST", "/api/v1/customers", b"{"),
            ).status_code
        return sdk.customers.create(email=f"h{i}@example.com") and 201

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(hit, range(90)))
    assert codes.count(400) == 30 and codes.count(201) == 60
    assert len(sdk.customers.list(limit=100).data) == 60


def test_v1_alias_and_public_session_read(sandbox, sdk, session_factory):
    session = session_factory()
    public = requests.get(f"{sandbox.base_url}/api/v1/public/checkout/sessions/{session['id']}")
    assert public.json()["data"]["session"]["amount"] == 150_000
    alias = requests.get(
        f"{sandbox.base_url}/v1/checkout-sessions/{session['id']}",
        headers=_signed("GET", f"/v1/checkout-sessions/{session['id']}"),
    )
    assert alias.json()["data"]["id"] == session["id"]


def _signed_by(headers, body):
    """The v1 signatures of a delivery, each as the secret count it verifies with."""
    parts = dict(p.split("=", 1) for p in headers["X-Plugipay-Signature"].split(",")[:1])
    message = f"{parts['t']}.".encode() + body
    return [
        p[3:] for p in headers["X-Plugipay-Signature"].split(",") if p.startswith("v1=")
    ], message


def test_rotate_secret_signs_with_both_during_the_overlap(sdk, session_factory, control, receiver):
    hook = f"{receiver.url}?rotated"
    endpoint = sdk.webhook_endpoints.create(url=hook, events=["*"])
    old = endpoint["secret"]
    rotated = sdk.request(
        method="POST",
        path=f"/api/v1/webhooks/{endpoint['id']}/rotate-secret",
        body={"expiresIn": 3600},
    )
    new = rotated["secret"]
    assert new.startswith("whsec_") and new != old and rotated["previousSecretExpiresAt"]
    assert all("secret" not in e.raw for e in sdk.webhook_endpoints.list())

    def signatures():
        receiver.deliveries.clear()
        session = session_factory()
        control("POST", f"checkout-sessions/{session['id']}/pay", {"card": "4242424242424242"})
        control("POST", "deliveries/flush")
        found = []
        for headers, body in receiver.deliveries:
            signed, message = _signed_by(headers, body)
            if signing.hmac_hex(new, message) in signed:  # a delivery to the rotated endpoint
                found.append((signed, signing.hmac_hex(old, message)))
        assert found
        return found

    assert all(len(signed) == 2 and old_sig in signed for signed, old_sig in signatures())
    control("POST", "clock/advance", {"seconds": 3601})  # the overlap ends
    assert all(signed == [s for s in signed if s != old_sig] for signed, old_sig in signatures())
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.request(
            method="POST",
            path=f"/api/v1/webhooks/{endpoint['id']}/rotate-secret",
            body={"expiresIn": -1},
        )
    assert info.value.status == 400
    sdk.webhook_endpoints.delete(endpoint["id"])
