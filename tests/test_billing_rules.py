"""The billing state machines on the webhook path: monotonic, exactly once, tolerant."""

import pytest

from django_plugipay.models import Customer, Invoice, Plan, Subscription
from django_plugipay.testing import build_event, signed_webhook
from tests.test_billing import sent  # noqa: F401 - the signal counter fixture

pytestmark = pytest.mark.django_db
SECRET = "whsec_plugipay_testing"


def post(client, kind, obj, style="sdk"):
    body, headers = signed_webhook(build_event(kind, obj, style=style), SECRET)
    return client.post("/plugipay/webhook/", body, content_type="application/json", headers=headers)


@pytest.fixture
def known():
    Customer.objects.create(plugipay_id="cus_1", email="a@example.com")
    Plan.objects.create(plugipay_id="plan_1", name="Member")


def sub(status, updated="2026-01-01T00:00:00Z", **extra):
    return {
        "id": "sub_1",
        "customerId": "cus_1",
        "planId": "plan_1",
        "status": status,
        "currentPeriodStart": "2026-01-01T00:00:00Z",
        "currentPeriodEnd": "2026-02-01T00:00:00Z",
        "updatedAt": updated,
        **extra,
    }


@pytest.mark.parametrize("style", ["sdk", "docs"])
def test_a_canceled_subscription_never_comes_back(client, known, sent, style):  # noqa: F811
    assert post(client, "subscription.created", sub("active"), style).status_code == 200
    post(client, "subscription.cancelled", sub("cancelled", "2026-01-02T00:00:00Z"), style)
    post(client, "subscription.updated", sub("active", "2026-01-03T00:00:00Z"), style)
    row = Subscription.objects.get()
    assert row.status == "canceled"
    assert sent[("subscription_canceled", "sub_1")] == 1
    assert sent[("subscription_activated", "sub_1")] == 1  # only the first sight


def test_a_stale_update_changes_nothing_and_a_fresh_one_moves(client, known, sent):  # noqa: F811
    post(client, "subscription.updated", sub("past_due", "2026-01-05T00:00:00Z"))
    post(client, "subscription.updated", sub("active", "2026-01-04T00:00:00Z"))
    assert Subscription.objects.get().status == "past_due"
    assert sent[("subscription_activated", "sub_1")] == 0
    post(client, "subscription.updated", sub("active", "2026-01-06T00:00:00Z"))
    assert Subscription.objects.get().status == "active"
    assert sent[("subscription_activated", "sub_1")] == 1
    assert sent[("subscription_past_due", "sub_1")] == 1


def test_an_unknown_status_is_stored_and_sends_nothing(client, known, sent):  # noqa: F811
    response = post(client, "subscription.updated", sub("incomplete_expired"))
    assert response.status_code == 200
    row = Subscription.objects.get()
    assert row.status == "incomplete_expired" and not row.is_entitled
    assert set(sent) == {("subscription_created", "sub_1")}


def test_a_paid_invoice_never_reopens(client, known, sent):  # noqa: F811
    invoice = {
        "id": "inv_1",
        "customerId": "cus_1",
        "currency": "IDR",
        "total": 99000,
        "amountDue": 0,
        "amountPaid": 99000,
        "status": "paid",
        "updatedAt": "2026-01-02T00:00:00Z",
    }
    post(client, "invoice.paid", invoice)
    later = {
        **invoice,
        "status": "open",
        "amountDue": 99000,
        "amountPaid": 0,
        "updatedAt": "2026-01-09T00:00:00Z",
    }
    post(client, "invoice.finalized", later)
    post(client, "invoice.voided", {**later, "status": "void"})
    row = Invoice.objects.get()
    assert (row.status, row.amount_paid) == ("paid", 99000)
    assert sent[("invoice_paid", "inv_1")] == 1 and sent[("invoice_voided", "inv_1")] == 0


def test_a_payment_heard_of_before_its_invoice_is_linked_when_the_invoice_is_paid(client, known):
    """The charge's event arrives first, naming an invoice not known here: the payment is kept
    without it; the invoice's ``paid`` links it (and only it: another invoice's payment and a
    checkout payment stay as they were)."""
    from django_plugipay.models import Payment

    def charge(n, invoice):
        obj = {"id": f"pay_{n}", "status": "succeeded", "amount": 99000, "currency": "IDR"}
        return {**obj, **({"invoiceId": invoice} if invoice else {})}

    for n, invoice in ((1, "inv_1"), (2, "inv_2"), (3, None)):
        assert post(client, "payment.succeeded", charge(n, invoice)).status_code == 200
    assert set(Payment.objects.values_list("invoice", flat=True)) == {None}
    invoice = {
        "id": "inv_1",
        "customerId": "cus_1",
        "currency": "IDR",
        "total": 99000,
        "amountPaid": 99000,
        "status": "paid",
        "updatedAt": "2026-01-02T00:00:00Z",
    }
    assert post(client, "invoice.paid", invoice).status_code == 200
    linked = dict(Payment.objects.values_list("plugipay_id", "invoice__plugipay_id"))
    assert linked == {"pay_1": "inv_1", "pay_2": None, "pay_3": None}
    assert Payment.objects.get(plugipay_id="pay_1").customer.plugipay_id == "cus_1"


def test_a_subscription_of_an_unknown_customer_fails_visibly_without_plugipay(client, sent):  # noqa: F811
    """The customer is fetched first; with Plugipay unreachable the event stays failed."""
    from django_plugipay.models import WebhookEvent

    response = post(client, "subscription.created", sub("active"))
    assert response.status_code == 500
    assert WebhookEvent.objects.get().status == "failed"
    assert not Subscription.objects.exists() and not sent


@pytest.mark.parametrize("first", ["incomplete", "active"])
def test_two_states_stamped_the_same_instant_converge_forward_and_signal_once(
    client,
    known,
    sent,  # noqa: F811
    first,
):
    """A subscription created ``incomplete`` and charged within one millisecond: both events
    carry the same ``updatedAt``; whichever arrives first, it ends ``active``, activated once."""
    same = "2026-01-01T00:00:00.123Z"
    created, charged = sub("incomplete", same), sub("active", same, latestInvoiceId="inv_9")
    order = [created, charged] if first == "incomplete" else [charged, created]
    for obj in [*order, *order]:
        assert post(client, "subscription.updated", obj).status_code == 200
    row = Subscription.objects.get()
    assert row.status == "active" and row.data["status"] == "active"
    assert sent[("subscription_activated", "sub_1")] == 1
