"""What a client sends the sandbox's HTTP API is never a 5xx (found by fuzzing it over WSGI
and real HTTP)."""

import base64
import http.client
import json as _json

import pytest


@pytest.fixture(scope="module")
def sandbox_http():
    from plugipay_sandbox import SandboxConfig, SandboxServer

    server = SandboxServer(SandboxConfig(port=0)).start()
    yield server
    server.stop()


def raw(server, method, path, body=b"", headers=None):
    host, port = server.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest(method, path, skip_accept_encoding=True)
    for name, value in (headers or {}).items():
        connection.putheader(name, value)
    connection.endheaders(body)
    response = connection.getresponse()
    return response.status, response.read()


BEARER = {"Authorization": "Bearer pk_test_sandbox_bearer"}


def new_session(server, method):
    """Create a checkout session paid by ``method``: ``(status, body)``."""
    body = _json.dumps(
        {
            "amount": 200000,
            "currency": "IDR",
            "methods": [method],
            "successUrl": "https://x.test/s",
            "cancelUrl": "https://x.test/c",
        }
    ).encode()
    headers = {**BEARER, "Content-Type": "application/json", "Content-Length": str(len(body))}
    return raw(server, "POST", "/api/v1/checkout-sessions", body, headers)


def test_sandbox_a_buyer_claim_without_proof_url_is_not_a_500_and_breaks_nothing(
    sandbox_http,
):
    """The public buyer-claim route's proofUrl is optional; without it the route stores the
    ``MISSING`` sentinel in the session, answers 500, and every later read of the session, the
    session list, the events and /_sandbox/state answers 500 until a reset."""
    status, out = new_session(sandbox_http, "manual")
    assert status == 201
    session = _json.loads(out)["data"]["id"]
    claim = raw(
        sandbox_http,
        "POST",
        f"/api/v1/public/checkout/sessions/{session}/buyer-claim",
        b"{}",
        {"Content-Type": "application/json", "Content-Length": "2"},
    )
    read = raw(sandbox_http, "GET", f"/api/v1/checkout-sessions/{session}", headers=BEARER)
    state = raw(sandbox_http, "GET", "/_sandbox/state")
    raw(sandbox_http, "POST", "/_sandbox/reset", b"", {"Content-Length": "0"})
    assert (claim[0], read[0], state[0]) == (200, 200, 200)


@pytest.mark.parametrize(
    ("what", "method", "path", "headers"),
    [
        (
            "a timestamp of Unicode digits",
            "GET",
            "/api/v1/customers",
            {
                "X-Plugipay-Key-Id": "pk_test_sandbox",
                "X-Plugipay-Timestamp": "²",
                "X-Plugipay-Signature": "0" * 64,
            },
        ),
        (
            "a cursor holding 1e999",
            "GET",
            "/api/v1/customers?cursor=cur_" + base64.urlsafe_b64encode(b'{"after":1e999}').decode(),
            BEARER,
        ),
        (
            "a Content-Length that is not a number",
            "POST",
            "/api/v1/customers",
            {**BEARER, "Content-Length": "abc"},
        ),
        (
            "an Origin that is not a URL (hosted page form)",
            "POST",
            "/c/cs_x/pay",
            {"Origin": "http://[", "Content-Length": "0"},
        ),
        (
            "a Host port of a superscript",
            "GET",
            "/api/v1/customers",
            {**BEARER, "Host": "h:\u00b2"},
        ),
        (
            "an Origin port of a superscript",
            "POST",
            "/_sandbox/reset",
            {"Origin": "http://h:\u00b2"},
        ),
        (
            "a cursor nested 5000 deep",
            "GET",
            "/api/v1/customers?cursor=cur_" + base64.urlsafe_b64encode(b"[" * 5000).decode(),
            BEARER,
        ),
        (
            "an Origin that is not a URL (control route)",
            "POST",
            "/_sandbox/reset",
            {"Origin": "http://[", "Content-Length": "0"},
        ),
    ],
)
def test_sandbox_client_input_is_never_a_500(sandbox_http, what, method, path, headers):
    status, out = raw(sandbox_http, method, path, b"", headers)
    assert status < 500, (what, out[:200])


def test_a_charge_without_a_channel_takes_the_methods_default(sandbox_http):
    import json as _json

    status, out = new_session(sandbox_http, "va")
    assert status == 201, out
    session = _json.loads(out)["data"]["id"]
    status, out = raw(
        sandbox_http,
        "POST",
        f"/api/v1/public/checkout/sessions/{session}/charge",
        b'{"method":"va"}',
        {"Content-Type": "application/json", "Content-Length": "15"},
    )
    assert status == 200, out[:300]
