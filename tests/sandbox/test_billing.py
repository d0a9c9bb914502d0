"""Recurring billing in the sandbox, driven by the official SDK (forjio-plugipay 0.6.0)."""

import datetime as dt
import json

import plugipay
import pytest
import requests

from tests.sandbox.conftest import WEBHOOK_SECRET

DAY = 86400


@pytest.fixture
def billing(sdk, control, receiver):
    """Helpers for a billing test: a plan, a customer, the clock, the delivered events."""

    class Billing:
        def plan(self, amount=150_000, trial_days=None, **kwargs):
            plan = sdk.plans.create(
                name=kwargs.pop("name", "Pro"),
                interval=kwargs.pop("interval", "month"),
                currency="IDR",
                amount=amount,
                trial_days=trial_days,
                **kwargs,
            )
            return plan, plan["prices"][0]["id"]

        def customer(self, **kwargs):
            return sdk.customers.create(email="ada@example.test", name="Ada", **kwargs)

        def subscribe(self, customer, plan, price_id, **kwargs):
            return sdk.subscriptions.create(
                customer_id=customer["id"], plan_id=plan["id"], price_id=price_id, **kwargs
            )

        def advance(self, days):
            status, _ = control("POST", "clock/advance", {"seconds": days * DAY})
            assert status == 200

        def invoices(self, subscription):
            found = sdk.invoices.list(customer_id=subscription["customerId"]).data
            return [i for i in found if i["subscriptionId"] == subscription["id"]]

        def events(self):
            control("POST", "deliveries/flush")
            return [json.loads(body) for _, body in receiver.deliveries]

        def types(self):
            return [e["type"] for e in self.events()]

    return Billing()


def pay_page(invoice, number="4242 4242 4242 4242", **extra):
    return requests.post(
        invoice["hostedInvoiceUrl"] + "/pay",
        data={"number": number, "expiry": "12/39", "cvc": "123", **extra},
        allow_redirects=False,
        timeout=10,
    )


def test_send_invoice_with_trial_renews_with_a_new_invoice(sdk, billing):
    plan, price_id = billing.plan(trial_days=7)
    assert plan["prices"][0]["unitAmount"] == 150_000 and plan["trialDays"] == 7
    customer = billing.customer()
    subscription = billing.subscribe(customer, plan, price_id, collection_method="send_invoice")
    assert subscription["status"] == "trialing" and subscription["trialEnd"]
    assert billing.invoices(subscription) == []

    billing.advance(8)
    assert sdk.subscriptions.get(subscription["id"])["status"] == "incomplete"
    [invoice] = billing.invoices(subscription)
    assert invoice["status"] == "open" and invoice["amountDue"] == 150_000
    assert invoice["dueAt"] and invoice["hostedInvoiceUrl"].endswith(f"/i/{invoice['id']}")
    page = requests.get(invoice["hostedInvoiceUrl"], timeout=10)
    assert "IDR 150,000" in page.text and "not Plugipay" in page.text and "Pro (" in page.text

    assert pay_page(invoice).status_code == 303
    active = sdk.subscriptions.get(subscription["id"])
    assert active["status"] == "active"
    paid = sdk.invoices.get(invoice["id"])
    assert paid["status"] == "paid" and paid["chargeId"].startswith("pay_")
    assert paid["amountPaid"] == 150_000 and paid["amountDue"] == 0

    billing.advance(31)
    renewed = sdk.subscriptions.get(subscription["id"])
    assert renewed["currentPeriodStart"] == active["currentPeriodEnd"]
    invoices = billing.invoices(subscription)
    assert [i["status"] for i in invoices] == ["open", "paid"]
    events = billing.events()
    [renewal] = [e for e in events if e["type"] == "plugipay.subscription.renewed.v1"]
    assert renewal["data"]["object"] == {
        "id": subscription["id"],
        "currentPeriodStart": renewed["currentPeriodStart"],
        "currentPeriodEnd": renewed["currentPeriodEnd"],
    }
    types = [e["type"] for e in events]
    for kind in (
        "subscription.created",
        "subscription.updated",
        "invoice.created",
        "invoice.finalized",
        "invoice.sent",
        "invoice.paid",
        "payment.succeeded",
    ):
        assert f"plugipay.{kind}.v1" in types, kind


def test_declined_token_goes_past_due_then_dunning_cancels(sdk, billing):
    plan, price_id = billing.plan()
    customer = billing.customer()
    subscription = billing.subscribe(customer, plan, price_id, payment_token_id="ptok_test_decline")
    assert subscription["status"] == "past_due"
    [invoice] = billing.invoices(subscription)
    assert invoice["status"] == "past_due" and invoice["collectionAttempts"] == 1
    for day, attempts in ((3, 2), (2, 3), (2, 4)):  # retries 3, 5 and 7 days after the failure
        billing.advance(day - 0.01)
        assert sdk.invoices.get(invoice["id"])["collectionAttempts"] == attempts - 1
        billing.advance(0.01)
        assert sdk.invoices.get(invoice["id"])["collectionAttempts"] == attempts
    canceled = sdk.subscriptions.get(subscription["id"])
    assert canceled["status"] == "canceled" and canceled["canceledReason"] == "failed_payment"
    assert sdk.invoices.get(invoice["id"])["status"] == "uncollectible"
    types = billing.types()
    assert types.count("plugipay.payment.failed.v1") == 4
    assert types.count("plugipay.invoice.failed.v1") == 4
    assert types[-1] == "plugipay.subscription.canceled.v1"


def test_charge_automatically_renews_and_the_renewal_event_is_minimal(sdk, billing):
    plan, price_id = billing.plan(amount=99_000)
    subscription = billing.subscribe(
        billing.customer(), plan, price_id, payment_token_id="ptok_test_success"
    )
    assert subscription["status"] == "active"
    billing.advance(31)
    assert [i["status"] for i in billing.invoices(subscription)] == ["paid", "paid"]
    renewal = [e for e in billing.events() if e["type"].endswith("subscription.renewed.v1")]
    assert len(renewal) == 1 and set(renewal[0]["data"]["object"]) == {
        "id",
        "currentPeriodStart",
        "currentPeriodEnd",
    }


def test_cancel_at_period_end(sdk, billing):
    plan, price_id = billing.plan()
    subscription = billing.subscribe(
        billing.customer(), plan, price_id, payment_token_id="ptok_test_success"
    )
    pending = sdk.subscriptions.cancel(subscription["id"], at="period_end", reason="user_request")
    assert pending["status"] == "active"
    assert pending["cancelAt"] == subscription["currentPeriodEnd"]
    billing.advance(10)
    assert sdk.subscriptions.get(subscription["id"])["status"] == "active"
    billing.advance(25)
    canceled = sdk.subscriptions.get(subscription["id"])
    assert canceled["status"] == "canceled" and canceled["canceledAt"] == pending["cancelAt"]
    assert canceled["canceledReason"] == "user_request"
    assert len(billing.invoices(subscription)) == 1  # no renewal after the cancel


def test_cancel_now_and_transitions_that_cannot_happen(sdk, billing):
    plan, price_id = billing.plan()
    subscription = billing.subscribe(
        billing.customer(), plan, price_id, payment_token_id="ptok_test_success"
    )
    canceled = sdk.subscriptions.cancel(subscription["id"], at="now")
    assert canceled["status"] == "canceled" and canceled["canceledAt"]
    for call in (
        lambda: sdk.subscriptions.cancel(subscription["id"], at="now"),
        lambda: sdk.subscriptions.pause(subscription["id"]),
        lambda: sdk.subscriptions.resume(subscription["id"]),
        lambda: sdk.subscriptions.update(subscription["id"], metadata={"a": "b"}),
    ):
        with pytest.raises(plugipay.PlugipayError) as caught:
            call()
        assert caught.value.status == 409 and caught.value.code == "conflict"


def test_pause_stops_renewals_until_resume(sdk, billing):
    plan, price_id = billing.plan()
    subscription = billing.subscribe(
        billing.customer(), plan, price_id, payment_token_id="ptok_test_success"
    )
    paused = sdk.subscriptions.pause(subscription["id"])
    assert paused["status"] == "paused" and paused["pausedAt"]
    billing.advance(45)
    assert len(billing.invoices(subscription)) == 1
    resumed = sdk.subscriptions.resume(subscription["id"])
    assert resumed["status"] == "active"
    assert resumed["currentPeriodStart"] > subscription["currentPeriodEnd"]
    assert [i["status"] for i in billing.invoices(subscription)] == ["paid", "paid"]
    types = billing.types()
    assert "plugipay.subscription.paused.v1" in types
    assert "plugipay.subscription.resumed.v1" in types


def test_pause_with_resume_at_resumes_on_the_clock(sdk, billing):
    plan, price_id = billing.plan()
    subscription = billing.subscribe(
        billing.customer(), plan, price_id, payment_token_id="ptok_test_success"
    )
    start = dt.datetime.fromisoformat(subscription["currentPeriodStart"].replace("Z", "+00:00"))
    resume_at = (start + dt.timedelta(days=10)).isoformat()
    paused = sdk.subscriptions.pause(subscription["id"], resume_at=resume_at)
    assert paused["status"] == "paused" and paused["resumeAt"].startswith(resume_at[:19])
    billing.advance(9)
    assert sdk.subscriptions.get(subscription["id"])["status"] == "paused"
    billing.advance(2)
    assert sdk.subscriptions.get(subscription["id"])["status"] == "active"
    assert len(billing.invoices(subscription)) == 1  # the period had not ended: nothing to bill


def test_test_clock_moves_one_subscription(sdk, billing):
    plan, price_id = billing.plan()
    customer = billing.customer()
    moved = billing.subscribe(customer, plan, price_id, payment_token_id="ptok_test_success")
    still = billing.subscribe(customer, plan, price_id, payment_token_id="ptok_test_success")
    result = sdk.api.test_clocks_advance(subscription_id=moved["id"], days=31)
    assert (
        result["daysAdvanced"] == 31 and result["currentPeriodStart"] == moved["currentPeriodEnd"]
    )
    assert len(billing.invoices(moved)) == 2 and len(billing.invoices(still)) == 1
    renewal = [e for e in billing.events() if e["type"].endswith("subscription.renewed.v1")]
    assert renewal[0]["data"]["object"]["daysAdvanced"] == 31
    assert renewal[0]["data"]["object"]["status"] == "active"


def test_portal_lists_the_subscription_and_expires(sdk, billing, sandbox):
    plan, price_id = billing.plan(name="Pro Monthly")
    customer = billing.customer()
    billing.subscribe(customer, plan, price_id, payment_token_id="ptok_test_success")
    portal = sdk.portal_sessions.create(
        customer_id=customer["id"], return_url="https://shop.test/account"
    )
    assert portal["url"].startswith(sandbox.base_url) and portal["expiresAt"]
    page = requests.get(portal["url"], timeout=10)
    assert page.status_code == 200 and "Pro Monthly" in page.text
    assert "https://shop.test/account" in page.text and "not Plugipay" in page.text
    assert "Cancel subscription" in page.text and "Pause" not in page.text
    billing.advance(0.012)  # past 15 minutes
    expired = requests.get(portal["url"], timeout=10)
    assert expired.status_code == 410 and "expired" in expired.text


def test_invoices_void_pay_send_email(sdk, billing):
    customer = billing.customer()
    lines = [{"description": "Setup", "quantity": 2, "unitAmount": 25_000}]
    draft = sdk.invoices.create(customer_id=customer["id"], currency="IDR", lines=lines)
    assert draft["status"] == "draft" and draft["total"] == 50_000
    assert draft["hostedInvoiceUrl"] is None
    opened = sdk.invoices.finalize(draft["id"])
    assert opened["status"] == "open" and opened["hostedInvoiceUrl"]
    assert sdk.invoices.send_email(opened["id"]) == {"sent": True, "to": "ada@example.test"}
    assert sdk.invoices.send_email(opened["id"], to="b@example.test")["to"] == "b@example.test"
    paid = sdk.invoices.pay(opened["id"])
    assert paid["status"] == "paid" and paid["paidAt"]
    other = sdk.invoices.create(
        customer_id=customer["id"], currency="IDR", lines=lines, status="open", discount=5_000
    )
    assert other["total"] == 45_000
    voided = sdk.invoices.void(other["id"])
    assert voided["status"] == "void" and voided["voidedAt"]
    for call in (lambda: sdk.invoices.pay(other["id"]), lambda: sdk.invoices.void(paid["id"])):
        with pytest.raises(plugipay.PlugipayError) as caught:
            call()
        assert caught.value.status == 409 and caught.value.code == "conflict"
    types = billing.types()
    for kind in ("created", "finalized", "sent", "paid", "voided"):
        assert f"plugipay.invoice.{kind}.v1" in types


def test_refund_of_an_invoice_payment(sdk, billing, control):
    customer = billing.customer()
    invoice = sdk.invoices.create(
        customer_id=customer["id"],
        currency="IDR",
        lines=[{"description": "Consulting", "quantity": 1, "unitAmount": 80_000}],
        status="open",
    )
    status, body = control("POST", f"invoices/{invoice['id']}/pay", {"card": "4242424242424242"})
    assert status == 200 and body["data"]["outcome"] == "succeeded"
    refund = sdk.refunds.create(source_type="invoice", source_id=invoice["id"], amount=30_000)
    assert refund["sourceType"] == "invoice" and refund["sourceId"] == invoice["id"]
    assert refund["invoiceId"] == invoice["id"] and refund["status"] == "succeeded"
    assert refund["chargeId"] == sdk.invoices.get(invoice["id"])["chargeId"]
    assert "plugipay.refund.succeeded.v1" in billing.types()


def test_every_billing_delivery_verifies_with_the_sdk(sdk, billing, receiver):
    plan, price_id = billing.plan(trial_days=3)
    customer = billing.customer()
    subscription = billing.subscribe(customer, plan, price_id, collection_method="send_invoice")
    billing.advance(4)
    [invoice] = billing.invoices(subscription)
    pay_page(invoice)
    sdk.plans.update(plan["id"], name="Pro Plus")
    sdk.plans.archive(plan["id"])
    billing.events()
    assert len(receiver.deliveries) >= 10
    for headers, body in receiver.deliveries:
        event = plugipay.verify_webhook(body, headers["X-Plugipay-Signature"], WEBHOOK_SECRET)
        assert event.id.startswith("evt_") and event.type.startswith("plugipay.")
    types = billing.types()
    for kind in ("plan.created", "plan.updated", "plan.archived"):
        assert f"plugipay.{kind}.v1" in types


def test_idempotent_replay_of_subscription_create(sdk, billing):
    plan, price_id = billing.plan()
    customer = billing.customer()
    body = {
        "customerId": customer["id"],
        "planId": plan["id"],
        "priceId": price_id,
        "collectionMethod": "send_invoice",
    }
    first = sdk.request(
        method="POST", path="/api/v1/subscriptions", body=body, idempotency_key="idem_sub_once"
    )
    again = sdk.request(
        method="POST", path="/api/v1/subscriptions", body=body, idempotency_key="idem_sub_once"
    )
    assert first == again
    assert [s["id"] for s in sdk.subscriptions.list(customer_id=customer["id"]).data] == [
        first["id"]
    ]
    with pytest.raises(plugipay.PlugipayError) as caught:
        sdk.request(
            method="POST",
            path="/api/v1/subscriptions",
            body={**body, "collectionMethod": "charge_automatically"},
            idempotency_key="idem_sub_once",
        )
    assert caught.value.status == 409 and caught.value.code == "idempotency_mismatch"


def test_the_rest_of_the_sdk_billing_surface(sdk, billing):
    plan, price_id = billing.plan(name="Basic", description="Starter")
    assert sdk.plans.get(plan["id"])["description"] == "Starter"
    assert [p["id"] for p in sdk.plans.list(active=True).data] == [plan["id"]]
    usd = sdk.api.plans_prices(plan["id"], currency="USD", model="flat", unit_amount=990)
    assert sdk.api.prices_update(usd["id"], active=False)["active"] is False
    spare = sdk.api.plans_prices(plan["id"], currency="IDR", model="flat", unit_amount=1)
    assert sdk.api.prices_delete(spare["id"]) in (None, "")
    assert [p["id"] for p in sdk.plans.get(plan["id"])["prices"]] == [price_id, usd["id"]]
    gold, gold_price = billing.plan(amount=300_000, name="Gold")
    customer = billing.customer()
    sub = billing.subscribe(customer, plan, price_id, payment_token_id="ptok_test_success")
    assert sdk.subscriptions.list(status="active", plan_id=plan["id"]).data[0]["id"] == sub["id"]
    moved = sdk.subscriptions.update(sub["id"], price_id=gold_price, metadata={"tier": "gold"})
    assert moved["planId"] == gold["id"] and moved["metadata"] == {"tier": "gold"}
    with pytest.raises(plugipay.PlugipayError) as caught:
        sdk.api.prices_delete(gold_price)
    assert caught.value.status == 409
    [invoice] = billing.invoices(sub)
    html = sdk.api.invoices_invoice_html(invoice["id"])
    assert invoice["number"] in html and "IDR 150,000" in html
    public = sdk.api.public_checkout_invoices(invoice["id"])
    assert public["id"] == invoice["id"] and "chargeId" not in public
    opened = sdk.invoices.create(
        customer_id=customer["id"],
        currency="IDR",
        lines=[{"description": "Extra", "quantity": 1, "unitAmount": 5_000}],
        status="open",
    )
    assert sdk.api.invoices_send(opened["id"])["status"] == "open"
    assert billing.types().count("plugipay.invoice.sent.v1") == 1
    listed = sdk.api.events_types()
    assert "plugipay.subscription.renewed.v1" in listed and "plugipay.plan.archived.v1" in listed
