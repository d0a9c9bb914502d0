"""Billing rules one at a time: validation, lifecycle edges, pages, documents, event shapes."""

import json
import re
import shutil
import subprocess

import pytest
import requests

DAY = 86400
FEATURES = {
    "selfServeCancel": True,
    "selfServePause": True,
    "selfServeUpgrade": True,
    "selfServeDowngrade": False,
    "updatePaymentMethod": True,
}


@pytest.fixture
def api(sandbox):
    """Raw API calls with the Bearer key: (status, envelope) or the response for documents."""

    def call(method, path, body=None, raw=False):
        response = requests.request(
            method,
            f"{sandbox.base_url}/api/v1{path}",
            json=body,
            headers={"Authorization": "Bearer pk_test_sandbox_bearer"},
            timeout=10,
        )
        return response if raw else (response.status_code, response.json())

    return call


@pytest.fixture
def setup(api, control):
    """A customer and a monthly IDR plan (portal: cancel, pause, upgrade), plus helpers."""

    class Setup:
        def __init__(self):
            _, self.customer = api("POST", "/customers", {"email": "c@example.test", "name": "C"})
            self.customer = self.customer["data"]
            self.plan, self.price = self.new_plan("Basic", 100_000)

        def new_plan(self, name, amount, **extra):
            status, body = api(
                "POST",
                "/plans",
                {
                    "name": name,
                    "interval": "month",
                    "portalFeatures": FEATURES,
                    "prices": [{"currency": "IDR", "model": "flat", "unitAmount": amount}],
                    **extra,
                },
            )
            assert status == 201, body
            return body["data"], body["data"]["prices"][0]["id"]

        def create(self, **extra):
            """``POST /subscriptions``: (status, envelope)."""
            body = {
                "customerId": self.customer["id"],
                "planId": self.plan["id"],
                "priceId": self.price,
                "paymentTokenId": "ptok_test_success",
                **extra,
            }
            return api("POST", "/subscriptions", body)

        def subscribe(self, **extra):
            status, answer = self.create(**extra)
            assert status == 201, answer
            return answer["data"]

        def get(self, kind, object_id):
            return api("GET", f"/{kind}/{object_id}")[1]["data"]

        def invoices(self, subscription):
            _, body = api("GET", f"/invoices?subscriptionId={subscription['id']}")
            return body["data"]

        def advance(self, days):
            control("POST", "clock/advance", {"seconds": days * DAY})

    return Setup()


def field_error(answer):
    status, body = answer
    return status, body["error"]["code"], body["error"].get("field")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"portalFeatures": None}, "portalFeatures"),
        ({"portalFeatures": {"selfServeTeleport": True}}, "portalFeatures.selfServeTeleport"),
        ({"interval": "fortnight"}, "interval"),
        ({"prices": []}, "prices"),
        ({"prices": [{"model": "flat", "unitAmount": 1}]}, "prices[0].currency"),
        ({"prices": [{"currency": "IDR", "model": "flat"}]}, "prices[0].unitAmount"),
        ({"prices": [{"currency": "EUR", "unitAmount": 1}]}, "prices[0].currency"),
        ({"prices": [{"currency": "IDR", "model": "tiered"}]}, "prices[0].tiers"),
        ({"name": ""}, "name"),
        ({"trialDays": -1}, "trialDays"),
    ],
)
def test_plan_validation_names_the_field(api, change, field):
    body = {
        "name": "P",
        "interval": "month",
        "portalFeatures": FEATURES,
        "prices": [{"currency": "IDR", "model": "flat", "unitAmount": 1000}],
        **change,
    }
    assert field_error(api("POST", "/plans", body)) == (400, "VALIDATION_ERROR", field)


def test_subscription_validation_names_the_field(api, setup):
    base = {
        "customerId": setup.customer["id"],
        "planId": setup.plan["id"],
        "priceId": setup.price,
        "paymentTokenId": "ptok_test_success",
    }
    other_plan, other_price = setup.new_plan("Other", 5_000)
    cases = [
        ({"priceId": None}, (400, "VALIDATION_ERROR", "priceId")),
        ({"priceId": other_price}, (400, "VALIDATION_ERROR", "priceId")),
        ({"planId": "plan_nope"}, (404, "not_found", "planId")),
        ({"customerId": "cus_nope"}, (404, "not_found", None)),
        ({"paymentTokenId": "ptok_made_up"}, (400, "VALIDATION_ERROR", "paymentTokenId")),
        ({"paymentTokenId": None}, (400, "VALIDATION_ERROR", "paymentTokenId")),
        ({"collectionMethod": "cash"}, (400, "VALIDATION_ERROR", "collectionMethod")),
        ({"trialDays": "7"}, (400, "VALIDATION_ERROR", "trialDays")),
    ]
    for change, expected in cases:
        assert field_error(api("POST", "/subscriptions", {**base, **change})) == expected, change
    sub = setup.subscribe()
    for path, body, field in [
        (f"/subscriptions/{sub['id']}/cancel", {"at": "later"}, "at"),
        (f"/subscriptions/{sub['id']}/cancel", {"reason": "bored"}, "reason"),
        (f"/subscriptions/{sub['id']}/pause", {"resumeAt": "2001-01-01T00:00:00Z"}, "resumeAt"),
        (f"/subscriptions/{sub['id']}/pause", {"resumeAt": 5}, "resumeAt"),
        ("/test/clocks/advance", {"subscriptionId": sub["id"], "days": 0}, "days"),
    ]:
        assert field_error(api("POST", path, body)) == (400, "VALIDATION_ERROR", field), body
    patch = api("PATCH", f"/subscriptions/{sub['id']}", {"defaultPaymentTokenId": "ptok_x"})
    assert field_error(patch) == (400, "VALIDATION_ERROR", "defaultPaymentTokenId")
    assert api("GET", "/subscriptions/sub_nope")[0] == 404
    assert other_plan["id"] != setup.plan["id"]


def test_invoice_validation_names_the_field(api, setup):
    base = {
        "customerId": setup.customer["id"],
        "currency": "IDR",
        "lines": [{"description": "A", "quantity": 1, "unitAmount": 10}],
    }
    for change, field in [
        ({"lines": []}, "lines"),
        ({"lines": [{"description": "A", "quantity": 0, "unitAmount": 1}]}, "lines[0].quantity"),
        ({"lines": [{"quantity": 1, "unitAmount": 1}]}, "lines[0].description"),
        ({"currency": "XYZ"}, "currency"),
        ({"status": "paid"}, "status"),
        ({"dueAt": "tomorrow"}, "dueAt"),
    ]:
        assert field_error(api("POST", "/invoices", {**base, **change})) == (
            400,
            "VALIDATION_ERROR",
            field,
        ), change
    _, draft = api("POST", "/invoices", base)
    draft = draft["data"]
    for action in ("pay", "send", "send-email"):
        status, body = api("POST", f"/invoices/{draft['id']}/{action}", {})
        assert (status, body["error"]["code"]) == (409, "conflict"), action
    assert api("POST", f"/invoices/{draft['id']}/finalize", {})[0] == 200
    assert api("POST", f"/invoices/{draft['id']}/finalize", {})[0] == 409


def test_plans_list_archive_prices(api, setup):
    _, added = api(
        "POST", f"/plans/{setup.plan['id']}/prices", {"currency": "USD", "unitAmount": 900}
    )
    price = added["data"]
    assert price["planId"] == setup.plan["id"] and price["model"] == "flat"
    assert len(setup.get("plans", setup.plan["id"])["prices"]) == 2
    _, updated = api("PATCH", f"/prices/{price['id']}", {"active": False})
    assert updated["data"]["active"] is False
    assert field_error(api("PATCH", f"/prices/{price['id']}", {})) == (
        400,
        "VALIDATION_ERROR",
        "active",
    )
    _, renamed = api("PATCH", f"/plans/{setup.plan['id']}", {"name": "Basic+"})
    assert renamed["data"]["name"] == "Basic+"
    _, archived = api("POST", f"/plans/{setup.plan['id']}/archive", {})
    assert archived["data"]["active"] is False and archived["data"]["archivedAt"]
    assert api("POST", f"/plans/{setup.plan['id']}/archive", {})[0] == 409
    _, active = api("GET", "/plans?active=true")
    assert setup.plan["id"] not in [p["id"] for p in active["data"]]
    _, inactive = api("GET", "/plans?active=false")
    assert [p["id"] for p in inactive["data"]] == [setup.plan["id"]]
    status, body = api(
        "POST",
        "/subscriptions",
        {
            "customerId": setup.customer["id"],
            "planId": setup.plan["id"],
            "priceId": setup.price,
            "paymentTokenId": "ptok_test_success",
        },
    )
    assert (status, body["error"]["field"]) == (400, "planId")


def test_send_invoice_past_due_date_goes_past_due(api, setup):
    sub = setup.subscribe(collectionMethod="send_invoice")
    assert sub["status"] == "incomplete"
    [invoice] = setup.invoices(sub)
    assert invoice["status"] == "open"
    setup.advance(6.9)
    assert setup.get("subscriptions", sub["id"])["status"] == "incomplete"
    setup.advance(0.2)
    assert setup.get("invoices", invoice["id"])["status"] == "past_due"
    assert setup.get("subscriptions", sub["id"])["status"] == "past_due"
    # Each with its event: a mirror never sees one moved alone.
    events = api("GET", "/events?limit=100&order=asc")[1]["data"]
    moved = [
        (e["type"], e["data"]["object"]["id"])
        for e in events
        if e["data"]["object"].get("status") == "past_due"
    ]
    assert sorted(moved) == [
        ("plugipay.invoice.updated.v1", invoice["id"]),
        ("plugipay.subscription.updated.v1", sub["id"]),
    ]


def test_return_url_is_kept_on_the_subscription(setup):
    sub = setup.subscribe(collectionMethod="send_invoice", returnUrl="https://shop.test/back")
    assert sub["returnUrl"] == "https://shop.test/back"
    answer = setup.create(collectionMethod="send_invoice", returnUrl="javascript:alert(1)")
    assert field_error(answer) == (400, "VALIDATION_ERROR", "returnUrl")


def test_insufficient_funds_token_and_a_retry_that_succeeds(api, setup):
    sub = setup.subscribe(paymentTokenId="ptok_test_insufficient_funds")
    [invoice] = setup.invoices(sub)
    _, payments = api("GET", "/events?type=payment.failed")
    assert payments["data"][0]["data"]["object"]["failureCode"] == "insufficient_funds"
    api("PATCH", f"/subscriptions/{sub['id']}", {"defaultPaymentTokenId": "ptok_test_success"})
    setup.advance(3)
    assert setup.get("invoices", invoice["id"])["status"] == "paid"
    assert setup.get("subscriptions", sub["id"])["status"] == "active"


def test_price_change_bills_from_the_next_period(api, setup):
    pro_plan, pro_price = setup.new_plan("Pro", 250_000)
    sub = setup.subscribe()
    _, patched = api("PATCH", f"/subscriptions/{sub['id']}", {"priceId": pro_price})
    assert patched["data"]["priceId"] == pro_price and patched["data"]["planId"] == pro_plan["id"]
    assert [i["total"] for i in setup.invoices(sub)] == [100_000]
    setup.advance(31)
    assert [i["total"] for i in setup.invoices(sub)] == [250_000, 100_000]


def test_trial_with_charge_automatically_charges_at_trial_end(setup):
    sub = setup.subscribe(trialDays=14)
    assert sub["status"] == "trialing" and sub["currentPeriodEnd"] == sub["trialEnd"]
    setup.advance(14)
    current = setup.get("subscriptions", sub["id"])
    assert current["status"] == "active" and current["currentPeriodStart"] == sub["trialEnd"]
    assert [i["status"] for i in setup.invoices(sub)] == ["paid"]


def test_hosted_invoice_page_3ds_and_save_card(api, setup, sandbox):
    sub = setup.subscribe(collectionMethod="send_invoice")
    [invoice] = setup.invoices(sub)
    url = invoice["hostedInvoiceUrl"]
    form = {"number": "4000002760003184", "expiry": "12/39", "cvc": "123", "save": "1"}
    first = requests.post(url + "/pay", data=form, allow_redirects=False, timeout=10)
    assert first.headers["Location"].endswith(f"/i/{invoice['id']}/3ds")
    assert "Approve this payment?" in requests.get(url + "/3ds", timeout=10).text
    failed = requests.post(url + "/3ds", data={"action": "fail"}, timeout=10)
    assert failed.status_code == 402 and "authentication failed" in failed.text
    requests.post(url + "/pay", data=form, allow_redirects=False, timeout=10)
    approved = requests.post(url + "/3ds", data={"action": "approve"}, allow_redirects=False)
    assert approved.status_code == 303
    assert "Payment received" in requests.get(url, timeout=10).text
    token = setup.get("customers", setup.customer["id"])["defaultPaymentTokenId"]
    assert token.startswith("ptok_") and token not in ("ptok_test_success",)
    other = setup.subscribe(paymentTokenId=None)  # charged with the saved card
    assert other["defaultPaymentTokenId"] == token and other["status"] == "active"
    declined = requests.post(
        setup.invoices(other)[0]["hostedInvoiceUrl"] + "/pay", data=form, timeout=10
    )
    assert declined.status_code == 200  # already paid: the page says so
    assert "Payment received" in declined.text


def test_hosted_invoice_page_errors_and_decline(setup):
    sub = setup.subscribe(collectionMethod="send_invoice")
    [invoice] = setup.invoices(sub)
    url = invoice["hostedInvoiceUrl"]
    bad = requests.post(url + "/pay", data={"number": "1234", "expiry": "1", "cvc": "1"})
    assert bad.status_code == 400 and "not valid" in bad.text
    declined = requests.post(
        url + "/pay", data={"number": "4000000000000002", "expiry": "12/39", "cvc": "123"}
    )
    assert declined.status_code == 402 and "declined" in declined.text
    assert setup.get("invoices", invoice["id"])["collectionAttempts"] == 1
    assert requests.get(url.replace(invoice["id"], "inv_nope"), timeout=10).status_code == 404


def test_invoice_documents(api, setup):
    sub = setup.subscribe()
    [invoice] = setup.invoices(sub)
    html = api("GET", f"/invoices/{invoice['id']}/invoice.html", raw=True)
    assert html.headers["Content-Type"].startswith("text/html")
    assert invoice["number"] in html.text and "IDR 100,000" in html.text
    response = api("GET", f"/invoices/{invoice['id']}/invoice.pdf", raw=True)
    assert response.headers["Content-Type"] == "application/pdf"
    check_pdf(response.content, [f"Invoice {invoice['number']}", "IDR 100,000", "Basic ("])
    public = requests.get(invoice["hostedInvoiceUrl"] + "/invoice.pdf", timeout=10)
    assert public.content.startswith(b"%PDF-1.4")
    _, read = api("GET", f"/public/checkout/invoices/{invoice['id']}")
    assert read["data"]["number"] == invoice["number"]


def check_pdf(data: bytes, texts):
    """A well-formed one-page PDF: header, objects where the xref says, trailer, the texts."""
    assert data.startswith(b"%PDF-1.") and data.rstrip().endswith(b"%%EOF")
    startxref = int(re.search(rb"startxref\s+(\d+)\s+%%EOF", data).group(1))
    assert data[startxref:].startswith(b"xref")
    header = re.match(rb"xref\s+0 (\d+)\s+", data[startxref:])
    count = int(header.group(1))
    entries = data[startxref + header.end() :].split(b"\n")[:count]
    assert entries[0].startswith(b"0000000000 65535 f")
    for number, entry in enumerate(entries[1:], start=1):
        offset = int(entry[:10])
        assert data[offset:].startswith(b"%d 0 obj" % number), number
    assert re.search(rb"trailer\s*<<\s*/Size %d /Root 1 0 R" % count, data)
    assert data.count(b"/Type /Page ") == 1
    length = int(re.search(rb"/Length (\d+) >>\nstream\n", data).group(1))
    stream = data.split(b"stream\n", 1)[1][:length].decode("latin-1")
    assert stream.startswith("BT") and stream.endswith("ET")
    shown = " ".join(
        re.sub(r"\\(.)", r"\1", text) for text in re.findall(r"\(((?:\\.|[^\\)])*)\) Tj", stream)
    )
    for text in texts:
        assert text in shown, text
    if shutil.which("pdftotext"):  # a real reader, where one is installed
        read = subprocess.run(
            ["pdftotext", "-", "-"], input=data, capture_output=True, check=True, timeout=30
        )
        assert not read.stderr
        for text in texts:
            assert text in read.stdout.decode(), text


def test_portal_actions_follow_portal_features(api, setup, sandbox):
    pro_plan, pro_price = setup.new_plan("Pro", 250_000)
    cheap_plan, _ = setup.new_plan("Lite", 50_000)
    sub = setup.subscribe()
    _, portal = api(
        "POST",
        "/portal-sessions",
        {"customerId": setup.customer["id"], "returnUrl": "https://shop.test/back"},
    )
    url = portal["data"]["url"]
    page = requests.get(url, timeout=10).text
    assert "Pro" in page and "Lite" not in page  # upgrades only
    assert "Pause" in page and "Cancel subscription" in page and "Download" not in page
    base = f"{url}/subscriptions/{sub['id']}"
    switched = requests.post(base + "/switch", data={"price_id": pro_price}, allow_redirects=False)
    assert switched.status_code == 303 and "done=switched" in switched.headers["Location"]
    assert setup.get("subscriptions", sub["id"])["priceId"] == pro_price
    down = requests.post(base + "/switch", data={"price_id": setup.price})
    assert down.status_code == 403  # downgrades are off for this plan
    requests.post(base + "/pause", timeout=10)
    assert setup.get("subscriptions", sub["id"])["status"] == "paused"
    assert "Resume" in requests.get(url, timeout=10).text
    requests.post(base + "/resume", timeout=10)
    requests.post(base + "/cancel", timeout=10)
    canceled = setup.get("subscriptions", sub["id"])
    assert canceled["cancelAt"] and canceled["status"] == "active"
    setup.advance(0.02)
    late = requests.post(base + "/pause", timeout=10)
    assert late.status_code == 410 and "expired" in late.text
    assert cheap_plan["id"] and pro_plan["id"]


def test_portal_without_pause_or_cancel_shows_no_buttons(api, setup):
    plan, price = setup.new_plan("Locked", 10_000, portalFeatures={"selfServeCancel": False})
    sub = setup.subscribe(planId=plan["id"], priceId=price)
    _, portal = api(
        "POST",
        "/portal-sessions",
        {"customerId": setup.customer["id"], "returnUrl": "https://shop.test/back"},
    )
    page = requests.get(portal["data"]["url"], timeout=10).text
    assert "Locked" in page and "Cancel subscription" not in page and "Pause" not in page
    blocked = requests.post(f"{portal['data']['url']}/subscriptions/{sub['id']}/cancel")
    assert blocked.status_code == 403
    assert setup.get("subscriptions", sub["id"])["cancelAt"] is None


def test_docs_dialect_carries_previous_attributes(api, setup, control, receiver):
    control("POST", "config", {"eventStyle": "docs"})
    sub = setup.subscribe()
    api("POST", f"/subscriptions/{sub['id']}/cancel", {"at": "period_end"})
    control("POST", "deliveries/flush")
    events = [json.loads(body) for _, body in receiver.deliveries]
    updates = [e for e in events if e["type"] == "subscription.updated"]
    assert [u["previousAttributes"] for u in updates] == [
        {"status": "incomplete"},
        {"cancelAt": None},
    ]
    updated = updates[-1]
    assert updated["data"]["cancelAt"] == sub["currentPeriodEnd"]
    types = {e["type"] for e in events}
    assert {"subscription.created", "invoice.paid", "payment.succeeded"} <= types


def test_state_lists_billing_objects_and_reset_clears_them(setup, control):
    setup.subscribe()
    _, state = control("GET", "state")
    data = state["data"]
    for name in ("plans", "prices", "subscriptions", "invoices", "payments"):
        assert data[name], name
    assert "_clockOffset" not in data["subscriptions"][0]
    control("POST", "reset")
    _, state = control("GET", "state")
    assert all(state["data"][name] == [] for name in ("plans", "subscriptions", "invoices"))


def test_control_pay_route(setup, control):
    sub = setup.subscribe(collectionMethod="send_invoice")
    [invoice] = setup.invoices(sub)
    status, body = control("POST", f"invoices/{invoice['id']}/pay", {"card": "4000000000000002"})
    assert status == 200 and body["data"]["outcome"] == "declined"
    status, body = control("POST", f"invoices/{invoice['id']}/pay", {"card": "4000002760003184"})
    assert body["data"]["outcome"] == "requires_3ds"
    status, body = control(
        "POST", f"invoices/{invoice['id']}/pay", {"card": "4000002760003184", "three_ds": "approve"}
    )
    assert body["data"]["outcome"] == "succeeded" and body["data"]["invoice"]["status"] == "paid"
    status, body = control("POST", f"invoices/{invoice['id']}/pay", {"card": "4242424242424242"})
    assert (status, body["error"]["code"]) == (409, "conflict")
    assert control("POST", f"invoices/{invoice['id']}/pay", {})[0] == 400


JUNK = [None, "", "x", -1, 0, 1.5, True, [], {}, {"a": 1}, [{}], "2026-13-40T99:00:00Z"]


def test_no_junk_field_is_a_server_error(api, setup):
    sub = setup.subscribe(collectionMethod="send_invoice")
    [invoice] = setup.invoices(sub)
    plan = setup.plan
    valid = {
        "/plans": {
            "name": "P",
            "interval": "month",
            "portalFeatures": FEATURES,
            "prices": [{"currency": "IDR", "unitAmount": 1}],
            "trialDays": 1,
            "intervalCount": 1,
            "usageAggregate": "sum",
            "description": "d",
            "active": True,
            "metadata": {"k": "v"},
        },
        f"/plans/{plan['id']}/prices": {"currency": "IDR", "model": "tiered", "tiers": [{}]},
        f"/subscriptions/{sub['id']}/cancel": {"at": "now", "reason": "merchant"},
        f"/subscriptions/{sub['id']}/pause": {"resumeAt": "2030-01-01T00:00:00Z"},
        "/subscriptions": {
            "customerId": setup.customer["id"],
            "planId": plan["id"],
            "priceId": setup.price,
            "paymentTokenId": "ptok_test_success",
            "trialDays": 3,
            "collectionMethod": "send_invoice",
            "initialDiscount": 10,
            "metadata": {},
        },
        "/invoices": {
            "customerId": setup.customer["id"],
            "currency": "IDR",
            "lines": [{"description": "a", "quantity": 1, "unitAmount": 1}],
            "discount": 1,
            "tax": 1,
            "dueAt": "2030-01-01",
            "status": "open",
            "memo": "m",
            "subscriptionId": sub["id"],
        },
        f"/invoices/{invoice['id']}/send-email": {"to": "a@example.test"},
        "/portal-sessions": {"customerId": setup.customer["id"], "returnUrl": "https://a.test"},
        "/test/clocks/advance": {"subscriptionId": sub["id"], "days": 1},
    }
    patches = {
        f"/plans/{plan['id']}": valid["/plans"],
        f"/subscriptions/{sub['id']}": {"priceId": setup.price, "metadata": {}},
        f"/prices/{setup.price}": {"active": True},
    }
    calls = [("POST", path, body) for path, body in valid.items()]
    calls += [("PATCH", path, body) for path, body in patches.items()]
    for method, path, body in calls:
        for field in body:
            for junk in JUNK:
                status, answer = api(method, path, {**body, field: junk})
                assert status < 500, (method, path, field, junk, answer)
        for junk in JUNK:  # a whole body that is not an object, or nested junk
            assert api(method, path, {"lines": [junk], "prices": [junk]})[0] < 500


def test_state_file_keeps_billing_across_a_restart(tmp_path):
    import plugipay

    from plugipay_sandbox import SandboxConfig, SandboxServer

    config = SandboxConfig(port=0, state_file=str(tmp_path / "state.json"))
    with SandboxServer(config) as server:
        sdk = plugipay.PlugipayClient(
            key_id="pk_test_sandbox", secret="sk_test_sandbox", base_url=server.base_url
        )
        customer = sdk.customers.create(email="s@example.test")
        plan = sdk.plans.create(name="Kept", interval="day", currency="IDR", amount=1_000)
        sub = sdk.subscriptions.create(
            customer_id=customer["id"],
            plan_id=plan["id"],
            price_id=plan["prices"][0]["id"],
            payment_token_id="ptok_test_success",
        )
    with SandboxServer(SandboxConfig(port=0, state_file=config.state_file)) as server:
        sdk = plugipay.PlugipayClient(
            key_id="pk_test_sandbox", secret="sk_test_sandbox", base_url=server.base_url
        )
        assert sdk.subscriptions.get(sub["id"])["status"] == "active"
        requests.post(f"{server.base_url}/_sandbox/clock/advance", json={"seconds": DAY})
        assert len(sdk.invoices.list(customer_id=customer["id"]).data) == 2


def test_a_decline_on_the_page_does_not_move_the_dunning_schedule(setup):
    sub = setup.subscribe(paymentTokenId="ptok_test_decline")
    [invoice] = setup.invoices(sub)
    declined = requests.post(
        invoice["hostedInvoiceUrl"] + "/pay",
        data={"number": "4000000000000002", "expiry": "12/39", "cvc": "123"},
        timeout=10,
    )
    assert declined.status_code == 402
    assert setup.get("invoices", invoice["id"])["collectionAttempts"] == 2
    setup.advance(2.99)
    assert setup.get("invoices", invoice["id"])["collectionAttempts"] == 2
    setup.advance(0.02)  # the first retry, 3 days after the first failure
    assert setup.get("invoices", invoice["id"])["collectionAttempts"] == 3
    setup.advance(4)
    assert setup.get("subscriptions", sub["id"])["status"] == "canceled"


def test_portal_updates_the_card_when_the_plan_allows(api, setup):
    sub = setup.subscribe(paymentTokenId="ptok_test_decline")
    _, portal = api(
        "POST",
        "/portal-sessions",
        {"customerId": setup.customer["id"], "returnUrl": "https://shop.test/back"},
    )
    url = portal["data"]["url"]
    assert "Update the card" in requests.get(url, timeout=10).text
    bad = requests.post(url + "/payment-method", data={"number": "4242", "expiry": "12/39"})
    assert bad.status_code == 400 and "not valid" in bad.text
    saved = requests.post(
        url + "/payment-method",
        data={"number": "4242 4242 4242 4242", "expiry": "12/39", "cvc": "123"},
        allow_redirects=False,
    )
    assert saved.status_code == 303 and saved.headers["Location"].endswith("?done=card")
    token = setup.get("customers", setup.customer["id"])["defaultPaymentTokenId"]
    assert setup.get("subscriptions", sub["id"])["defaultPaymentTokenId"] == token
    setup.advance(3)  # the dunning retry charges the new card
    assert setup.get("subscriptions", sub["id"])["status"] == "active"


def test_portal_hides_the_card_form_when_no_plan_allows_it(api, setup):
    plan, price = setup.new_plan(
        "Fixed", 10_000, portalFeatures={"selfServeCancel": True, "updatePaymentMethod": False}
    )
    setup.subscribe(planId=plan["id"], priceId=price)
    _, portal = api(
        "POST",
        "/portal-sessions",
        {"customerId": setup.customer["id"], "returnUrl": "https://shop.test/back"},
    )
    url = portal["data"]["url"]
    assert "Update the card" not in requests.get(url, timeout=10).text
    refused = requests.post(
        url + "/payment-method", data={"number": "4242424242424242", "expiry": "12/39"}
    )
    assert refused.status_code == 403
