"""The sandbox dashboard over plain HTTP (the walkthrough in Chromium is in the service suite)."""

import re

import pytest
import requests

from plugipay_sandbox.hosted import i18n


def get(sandbox, path, **params):
    response = requests.get(f"{sandbox.base_url}/dashboard/{path}", params=params, timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def post(sandbox, path, data=None):
    return requests.post(
        f"{sandbox.base_url}/dashboard/{path}", data=data or {}, allow_redirects=False, timeout=10
    )


def text(html):
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


@pytest.fixture
def refunded(sandbox, sdk, control, session_factory):
    """A customer with metadata who paid IDR 150,000 and got IDR 50,000 back."""
    customer = sdk.customers.create(email="ada@example.com", metadata={"tier": "gold"})
    session = session_factory(customer_id=customer["id"])
    _, paid = control(
        "POST", f"checkout-sessions/{session['id']}/pay", {"card": "4242424242424242"}
    )
    refund = sdk.refunds.create(
        source_type="checkout_session", source_id=session["id"], amount=50_000
    )
    return customer, session, paid["data"]["payment"], refund


def test_payments_show_partially_refunded_with_filter_and_search(sandbox, refunded, control):
    customer, session, payment, _ = refunded
    listing = text(get(sandbox, "payments"))
    assert "IDR 150,000" in listing and "Partially refunded" in listing
    assert "ada@example.com" in listing and "Sandbox" in listing
    assert payment["id"] in get(sandbox, "payments", status="partially_refunded")
    assert payment["id"] not in get(sandbox, "payments", status="refunded")
    assert payment["id"] in get(sandbox, "payments", q="ADA@example")
    assert payment["id"] in get(sandbox, "payments", q=session["id"])
    assert payment["id"] not in get(sandbox, "payments", q="grace@example.com")


def test_payment_page_lists_refunds_and_activity_oldest_first(sandbox, refunded):
    _, session, payment, refund = refunded
    page = get(sandbox, f"payments/{payment['id']}")
    assert refund["id"] in page and "Partially refunded" in text(page)
    kinds = re.findall(r'href="/dashboard/events/evt_\w+">([a-z_.]+)</a>', page)
    assert kinds == [
        "checkout_session.created",
        "checkout_session.completed",
        "payment.succeeded",
        "refund.created",
        "refund.succeeded",
    ]
    assert session["id"] in page


def test_customers_sessions_and_events(sandbox, refunded, sdk):
    customer, session, payment, _ = refunded
    assert customer["id"] in get(sandbox, "customers")
    detail = text(get(sandbox, f"customers/{customer['id']}"))
    assert "tier gold" in detail and payment["id"] in detail
    assert session["id"] in get(sandbox, "checkout-sessions")
    assert "Completed" in text(get(sandbox, f"checkout-sessions/{session['id']}"))
    refunds_only = get(sandbox, "events", type="refund.succeeded")
    assert "refund.succeeded" in refunds_only and "payment.succeeded</a>" not in refunds_only
    event = sdk.events.list(type="plugipay.payment.succeeded.v1").data[0]
    page = get(sandbox, f"events/{event['id']}")
    assert "&quot;type&quot;: &quot;plugipay.payment.succeeded.v1&quot;" in page


def test_unknown_ids_are_404_pages(sandbox):
    response = requests.get(f"{sandbox.base_url}/dashboard/payments/pay_nope", timeout=10)
    assert response.status_code == 404 and "pay_nope" in response.text


def add_endpoint(sandbox, url, events, description="Shop"):
    return post(
        sandbox,
        "webhooks",
        [("url", url), ("description", description)] + [("events", e) for e in events],
    )


def test_add_endpoint_shows_the_secret_once_and_subscribes_the_ticked_events(
    sandbox, sdk, receiver
):
    response = add_endpoint(sandbox, receiver.url, ["payment.succeeded", "refund.succeeded"])
    assert response.status_code == 201
    secret = re.search(r'id="signing-secret">(whsec_\w+)<', response.text).group(1)
    endpoint = next(e for e in sdk.webhook_endpoints.list() if e["description"] == "Shop")
    assert endpoint["events"] == ["payment.succeeded", "refund.succeeded"]
    assert "secret" not in endpoint.raw and secret not in get(sandbox, f"webhooks/{endpoint['id']}")
    assert receiver.url in get(sandbox, "webhooks")


def test_add_endpoint_refuses_what_the_api_refuses(sandbox):
    bad_url = add_endpoint(sandbox, "ftp://shop.test/hook", ["payment.succeeded"])
    assert bad_url.status_code == 400 and "url must be an http(s) URL" in bad_url.text
    nothing_ticked = add_endpoint(sandbox, "https://shop.test/hook", [])
    assert nothing_ticked.status_code == 400 and "Tick the events" in nothing_ticked.text
    everything = add_endpoint(sandbox, "https://shop.test/hook", ["*", "payment.failed"])
    assert everything.status_code == 201


def test_pause_enable_delete(sandbox, sdk):
    add_endpoint(sandbox, "https://shop.test/hook", ["*"], description="to pause")
    endpoint = next(e for e in sdk.webhook_endpoints.list() if e["description"] == "to pause")
    assert post(sandbox, f"webhooks/{endpoint['id']}/pause").status_code == 303
    assert (
        next(e for e in sdk.webhook_endpoints.list() if e["id"] == endpoint["id"])["active"]
        is False
    )
    assert "Paused" in get(sandbox, f"webhooks/{endpoint['id']}")
    post(sandbox, f"webhooks/{endpoint['id']}/enable")
    assert (
        next(e for e in sdk.webhook_endpoints.list() if e["id"] == endpoint["id"])["active"] is True
    )
    post(sandbox, f"webhooks/{endpoint['id']}/delete")
    assert endpoint["id"] not in [e["id"] for e in sdk.webhook_endpoints.list()]


def test_deliveries_show_attempts_and_retry_succeeds(sandbox, sdk, receiver, control):
    control("POST", "config", {"retrySchedule": []})  # one attempt, then failed
    receiver.status = 500
    customer = sdk.customers.create(email="grace@example.com")
    control("POST", "deliveries/flush")
    endpoint = sdk.webhook_endpoints.list()[0]  # the --forward-to endpoint (the receiver)
    delivery = sdk.webhook_endpoints.list_deliveries(endpoint_id=endpoint["id"]).data[0]
    assert delivery["status"] == "failed"
    page = get(sandbox, f"webhooks/{endpoint['id']}")
    assert "customer.created" in page and "HTTP 500" in page and " ms<" in page
    receiver.status = 200
    retried = post(sandbox, f"deliveries/{delivery['id']}/retry")
    assert retried.status_code == 303 and "done=retried" in retried.headers["Location"]
    control("POST", "deliveries/flush")
    after = sdk.webhook_endpoints.get_delivery(delivery["id"])
    assert after["status"] == "succeeded" and after["attempts"] == 2
    assert [a["responseCode"] for a in after["attemptLog"]] == [500, 200]
    assert customer["id"]


def test_retry_refused_while_queued_shows_the_reason(sandbox, sdk, control):
    control("POST", "deliveries/hold")
    sdk.customers.create(email="held@example.com")
    delivery = sdk.webhook_endpoints.list_deliveries().data[0]
    response = post(sandbox, f"deliveries/{delivery['id']}/retry")
    assert response.status_code == 303 and "already+queued" in response.headers["Location"]
    control("POST", "deliveries/release")


def test_strings_go_through_the_catalog(sandbox, monkeypatch):
    monkeypatch.setitem(i18n.ID, "Payments", "Daftar pembayaran")
    response = requests.get(
        f"{sandbox.base_url}/dashboard/payments",
        headers={"Accept-Language": "id-ID,id;q=0.9,en;q=0.8"},
        timeout=10,
    )
    assert "Daftar pembayaran" in response.text
    assert "Daftar pembayaran" not in get(sandbox, "payments")
    assert "Daftar pembayaran" in get(sandbox, "payments", lang="id")


def test_forms_posted_from_another_site_are_refused(sandbox, sdk):
    before = len(sdk.webhook_endpoints.list())
    response = requests.post(
        f"{sandbox.base_url}/dashboard/webhooks",
        data={"url": "https://evil.test/hook", "events": "*"},
        headers={"Origin": "https://evil.test"},
        timeout=10,
    )
    assert response.status_code == 403 and len(sdk.webhook_endpoints.list()) == before
    same = requests.post(
        f"{sandbox.base_url}/dashboard/webhooks",
        data={"url": "https://shop.test/hook", "events": "*"},
        headers={"Origin": sandbox.base_url},
        timeout=10,
    )
    assert same.status_code == 201 and len(sdk.webhook_endpoints.list()) == before + 1
