"""The dashboard a developer trusts: billing pages with Activity, creating a plan, refunding a
payment, the clock, human labels for codes, the merchant's name on hosted pages."""

import re

import pytest
import requests

from plugipay_sandbox import SandboxConfig, SandboxServer
from plugipay_sandbox.hosted import dashboard
from tests.sandbox.test_billing_rules import FEATURES
from tests.sandbox.test_dashboard import get, post, text
from tests.sandbox.test_hosted_i18n import Pages, english_words


def api(sandbox, method, path, body=None):
    return Pages(sandbox.base_url).api(method, path, body)


def billing(sandbox, control):
    """A member on a 7-day trial who paid the first invoice by card after it ended."""
    customer = api(sandbox, "POST", "/customers", {"email": "siti.rahayu@example.com"})
    plan = api(
        sandbox,
        "POST",
        "/plans",
        {
            "name": "Member",
            "interval": "month",
            "trialDays": 7,
            "portalFeatures": FEATURES,
            "prices": [{"currency": "IDR", "model": "flat", "unitAmount": 99_000}],
        },
    )
    subscription = api(
        sandbox,
        "POST",
        "/subscriptions",
        {
            "customerId": customer["id"],
            "planId": plan["id"],
            "priceId": plan["prices"][0]["id"],
            "collectionMethod": "send_invoice",
        },
    )
    control("POST", "clock/advance", {"seconds": 8 * 86400})
    invoice = next(
        i
        for i in control("GET", "state")[1]["data"]["invoices"]
        if i["subscriptionId"] == subscription["id"]
    )
    status, paid = control("POST", f"invoices/{invoice['id']}/pay", {"card": "4242424242424242"})
    assert status == 200, paid
    return customer, plan, subscription, invoice


def test_billing_pages_list_and_show_objects_with_activity(sandbox, control):
    customer, plan, subscription, invoice = billing(sandbox, control)
    plans_page = text(get(sandbox, "plans"))
    assert "Member" in plans_page and "IDR 99,000 / month" in plans_page
    plan_page = text(get(sandbox, f"plans/{plan['id']}"))
    assert "plan.created" in plan_page and "siti.rahayu@example.com" in plan_page
    assert "Customers may cancel" in plan_page and "Customers may downgrade" not in plan_page

    subscriptions = get(sandbox, "subscriptions")
    assert subscription["id"] in subscriptions and "Send an invoice" in subscriptions
    assert subscription["id"] not in get(sandbox, "subscriptions", status="canceled")
    sub_page = text(get(sandbox, f"subscriptions/{subscription['id']}"))
    for kind in ("subscription.created", "invoice.created", "invoice.paid"):
        assert kind in sub_page
    assert invoice["number"] in sub_page

    invoices = get(sandbox, "invoices", status="paid")
    assert invoice["number"] in invoices and "Paid" in text(invoices)
    assert invoice["number"] not in get(sandbox, "invoices", status="open")
    invoice_page = get(sandbox, f"invoices/{invoice['id']}")
    assert f'href="/i/{invoice["id"]}"' in invoice_page
    payment = re.search(r"/dashboard/payments/(pay_\w+)", invoice_page).group(1)
    assert "invoice.paid" in text(invoice_page) and "Card" in text(invoice_page)
    assert 'action="/dashboard/payments/' in get(sandbox, f"payments/{payment}")


def test_create_a_plan_in_the_dashboard(sandbox, sdk):
    form = get(sandbox, "plans/new")
    assert 'name="amount"' in form and 'value="selfServeCancel" checked' in form
    refused = post(
        sandbox, "plans", {"name": "Gold", "amount": "lots", "currency": "IDR", "interval": "month"}
    )
    assert refused.status_code == 400 and "Enter the price as a whole number" in refused.text
    assert 'value="lots"' in refused.text  # what was typed is kept
    assert api(sandbox, "GET", "/plans") == []
    # What only the API checks is shown as the API says it.
    huge = {"name": "Gold", "amount": "1", "currency": "IDR", "interval": "day"}
    too_long = post(sandbox, "plans", {**huge, "interval_count": "1000"})
    assert too_long.status_code == 400 and "intervalCount must be at most 365" in too_long.text
    created = post(
        sandbox,
        "plans",
        {
            "name": "Gold",
            "amount": "250.000",
            "currency": "IDR",
            "interval": "month",
            "interval_count": "3",
            "trial_days": "14",
            "features": ["selfServeCancel", "updatePaymentMethod"],
        },
    )
    assert created.status_code == 303
    plan_id = created.headers["Location"].split("/")[-1].split("?")[0]
    plan = api(sandbox, "GET", f"/plans/{plan_id}")
    assert plan["name"] == "Gold" and plan["intervalCount"] == 3 and plan["trialDays"] == 14
    assert plan["prices"][0]["unitAmount"] == 250_000 and plan["mode"] == "test"
    assert plan["portalFeatures"]["updatePaymentMethod"] is True
    assert plan["portalFeatures"]["selfServePause"] is False
    page = text(get(sandbox, f"plans/{plan_id}?done=created"))
    assert "The plan was created" in page and "3 months" in page


def test_refund_button_on_a_payment(sandbox, control, session_factory):
    session = session_factory()
    _, paid = control(
        "POST", f"checkout-sessions/{session['id']}/pay", {"card": "4242424242424242"}
    )
    payment = paid["data"]["payment"]
    page = get(sandbox, f"payments/{payment['id']}")
    assert 'id="refund-amount"' in page and 'value="150000"' in page
    assert '<option value="">Choose a reason' in page
    no_reason = post(sandbox, f"payments/{payment['id']}/refund", {"amount": "50000"})
    assert no_reason.status_code == 303 and "error=" in no_reason.headers["Location"]
    too_much = post(
        sandbox, f"payments/{payment['id']}/refund", {"amount": "999999", "reason": "other"}
    )
    assert "exceeds" in requests.utils.unquote(too_much.headers["Location"])
    done = post(
        sandbox,
        f"payments/{payment['id']}/refund",
        {"amount": "50000", "reason": "requested_by_customer"},
    )
    assert done.headers["Location"].endswith("?done=refunded")
    page = text(get(sandbox, f"payments/{payment['id']}?done=refunded"))
    assert "The refund was created." in page and "Requested by customer" in page
    assert "requested_by_customer" not in page and "Partially refunded" in page
    refunds = api(sandbox, "GET", f"/refunds?chargeId={payment['id']}")
    assert [(r["amount"], r["reason"], r["status"]) for r in refunds] == [
        (50_000, "requested_by_customer", "succeeded")
    ]
    cross = post(sandbox, f"payments/{payment['id']}/refund", {"amount": "1", "reason": "other"})
    assert cross.status_code == 303  # same-site form: accepted
    evil = requests.post(
        f"{sandbox.base_url}/dashboard/payments/{payment['id']}/refund",
        data={"amount": "1", "reason": "other"},
        headers={"Origin": "https://evil.test"},
        allow_redirects=False,
        timeout=10,
    )
    assert evil.status_code == 403
    assert len(api(sandbox, "GET", f"/refunds?chargeId={payment['id']}")) == 2


def test_codes_have_human_labels_in_both_languages(sandbox, control, session_factory):
    session = session_factory()
    _, paid = control("POST", f"checkout-sessions/{session['id']}/pay", {"method": "va"})
    payment = paid["data"]["payment"]
    html = get(sandbox, f"payments/{payment['id']}")
    page = text(html)
    assert "Bank transfer (VA)" in page and "Test mode" in page
    assert "<dd>va</dd>" not in html and "<dd>test</dd>" not in html
    listing = text(get(sandbox, "payments"))
    assert "Bank transfer (VA)" in listing
    indonesian = text(get(sandbox, f"payments/{payment['id']}", lang="id"))
    assert "Transfer bank (VA)" in indonesian and "Mode uji" in indonesian


def test_clock_offset_is_shown_and_advanced_from_the_dashboard(sandbox, control):
    page = get(sandbox, "payments")
    assert 'data-testid="clock-offset">real time' in page
    moved = requests.post(
        f"{sandbox.base_url}/dashboard/clock/advance",
        data={"seconds": str(31 * 86400)},
        headers={"Referer": f"{sandbox.base_url}/dashboard/invoices?status=open"},
        allow_redirects=False,
        timeout=10,
    )
    assert moved.status_code == 303
    assert moved.headers["Location"] == "/dashboard/invoices?status=open"
    assert control("GET", "state")[1]["data"]["clock"]["offsetSeconds"] == 31 * 86400
    assert "+31 d ahead of real time" in text(get(sandbox, "events"))
    assert "lebih cepat dari waktu nyata" in text(get(sandbox, "events", lang="id"))
    odd = post(sandbox, "clock/advance", {"seconds": "99999999"})
    assert odd.status_code == 303 and odd.headers["Location"] == "/dashboard/"
    assert control("GET", "state")[1]["data"]["clock"]["offsetSeconds"] == 31 * 86400
    control("POST", "clock/advance", {"seconds": 3600 + 120})
    assert "+31 d 1 h 2 min" in text(get(sandbox, "plans"))


def test_merchant_name_on_hosted_pages():
    config = SandboxConfig(port=0, merchant_name="Toko Batik Sari")
    with SandboxServer(config) as server:
        created = requests.post(
            f"{server.base_url}/api/v1/checkout-sessions",
            json={
                "amount": 10_000,
                "currency": "IDR",
                "successUrl": "https://shop.test/ok",
                "cancelUrl": "https://shop.test/no",
                "methods": ["card"],
            },
            headers={"Authorization": "Bearer pk_test_sandbox_bearer"},
            timeout=10,
        ).json()["data"]
        page = requests.get(f"{server.base_url}/c/{created['id']}", timeout=10).text
    assert "Toko Batik Sari" in page
    assert 'class="logo"></span>\nPlugipay Sandbox' not in page


def test_default_merchant_name_and_endpoint_description(sandbox, session_factory):
    session = session_factory()
    page = requests.get(f"{sandbox.base_url}/c/{session['id']}", timeout=10).text
    assert "Sandbox Shop" in page
    webhooks = text(get(sandbox, "webhooks"))
    assert "--forward-to" not in webhooks
    assert "Added when the sandbox started" in webhooks


@pytest.fixture
def indonesian(sandbox):
    from plugipay_sandbox.hosted import i18n

    with i18n.recording_misses() as misses:
        found = Pages(sandbox.base_url)
        yield found
    assert sorted(misses) == [], "add these to plugipay_sandbox.hosted.i18n.ID"
    for path, page in found.seen:
        assert english_words(page) == [], path


def test_billing_pages_are_indonesian(indonesian, sandbox, control, session_factory):
    session = session_factory()
    _, paid = control(
        "POST", f"checkout-sessions/{session['id']}/pay", {"card": "4242424242424242"}
    )
    customer, plan, subscription, invoice = billing(sandbox, control)
    for path in (
        "/dashboard/plans",
        "/dashboard/plans/new",
        f"/dashboard/plans/{plan['id']}?done=created",
        "/dashboard/subscriptions",
        "/dashboard/subscriptions?status=active",
        f"/dashboard/subscriptions/{subscription['id']}",
        "/dashboard/invoices",
        f"/dashboard/invoices/{invoice['id']}",
        f"/dashboard/payments/{paid['data']['payment']['id']}",
        "/dashboard/plans/plan_nope",
    ):
        indonesian("GET", path, expect=404 if path.endswith("nope") else 200)
    indonesian("POST", "/dashboard/plans", 400, data={"name": "Emas", "amount": "x"})
    indonesian("POST", "/dashboard/plans", 400, data={"name": "Emas", "amount": "1"})
    indonesian("POST", "/dashboard/plans", 400, data={"name": "", "amount": "1"})


def test_every_new_label_is_translated():
    from plugipay_sandbox.hosted import dashboard_billing, i18n

    texts = [
        *dashboard.REASON_LABELS.values(),
        *dashboard.MODE_LABELS.values(),
        *dashboard.COLLECTION_LABELS.values(),
        *(text for _seconds, text in dashboard.CLOCK_STEPS),
        *dashboard_billing.FEATURE_LABELS.values(),
        *dashboard_billing.PLAN_NOTICES.values(),
    ]
    assert [t for t in texts if t not in i18n.ID] == []
