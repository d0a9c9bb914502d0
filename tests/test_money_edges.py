"""What a sender controls on the money surfaces is never a 5xx, and never crosses accounts
(each case first found by the fuzzers in tests/services/test_fuzz_money_*.py)."""

import base64

import pytest
from django.urls import reverse

from django_plugipay import accounts
from django_plugipay.models import Customer, Payment, Payout, Receipt, WebhookEvent
from django_plugipay.testing import build_event, signed_webhook
from tests.factories import UserFactory
from tests.test_admin import staff

pytestmark = pytest.mark.django_db
SECRET = "whsec_plugipay_testing"
API = "/plugipay/api"


def deliver(client, event, secret=SECRET, path="/plugipay/webhook/"):
    body, headers = signed_webhook(event, secret)
    return client.post(path, body, content_type="application/json", headers=headers)


@pytest.mark.parametrize("method", [None, "", "bank_transfer"])
def test_a_payout_event_without_a_known_method_is_stored_failed_and_4xx(client, method):
    obj = {"id": "po_1", "status": "pending", "amount": 1000, "currency": "IDR"}
    if method is not None:
        obj["method"] = method
    response = deliver(client, build_event("payout.created", obj))
    assert response.status_code == 422, response.content
    assert WebhookEvent.objects.get().status == "failed"
    assert "method" in WebhookEvent.objects.get().last_error
    assert not Payout.objects.exists()


def test_a_payout_method_in_capitals_is_read(client):
    obj = {"id": "po_2", "status": "pending", "amount": 1000, "currency": "IDR", "method": "MANUAL"}
    assert deliver(client, build_event("payout.created", obj)).status_code == 200
    assert Payout.objects.get().method == "manual"


@pytest.mark.parametrize("position", [b"p=2026", b"o=1&p=x", b"p=2026-13-45T00:00:00"])
def test_a_forged_list_cursor_is_404_not_500(position):
    pytest.importorskip("rest_framework")
    from tests.test_api import client_for

    cursor = base64.b64encode(position).decode()
    for path in ("payments/", "receipts/"):
        response = client_for(UserFactory()).get(f"{API}/{path}", {"cursor": cursor})
        assert response.status_code == 404, (path, response.content)


@pytest.mark.parametrize(
    "params", [{"posted_at__gte": ""}, {"posted_at__year": "x"}, {"amount__gt": "x"}]
)
def test_the_ledger_export_with_a_bad_filter_goes_back_to_the_list(client, params):
    client.force_login(staff("view_ledgerentry"))
    response = client.get(reverse("admin:django_plugipay_ledgerentry_export"), params)
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


@pytest.fixture
def two_secrets(settings):
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "ACCOUNTS": {"m": {"ON_BEHALF_OF": "acc_m", "WEBHOOK_SECRETS": ["whsec_m"]}},
        "MAX_RETRIES": 0,
    }
    accounts.forget(tables=False)
    accounts.known("m")
    yield
    accounts.forget(tables=False)


def test_news_of_one_account_never_links_to_another_accounts_rows(client, two_secrets):
    """Account m's receipt and payment name a customer and a session the default account
    mirrors: they are not m's, so nothing of m is linked to them (that buyer would read m's
    receipt)."""
    customer = build_event("customer.created", {"id": "cus_1", "email": "buyer@shop.test"})
    session = build_event(
        "checkout_session.completed",
        {"id": "cs_1", "status": "completed", "amount": 5000, "currency": "IDR"},
    )
    for event in (customer, session):
        event.pop("accountId", None)
        assert deliver(client, event).status_code == 200
    receipt = build_event(
        "receipt.created",
        {
            "id": "rcpt_m1",
            "number": "M-1",
            "customerId": "cus_1",
            "amount": 5000,
            "total": 5000,
            "currency": "IDR",
            "sourceType": "checkout_session",
            "sourceId": "cs_m1",
        },
    )
    payment = build_event(
        "payment.succeeded",
        {
            "id": "pay_m1",
            "status": "succeeded",
            "amount": 5000,
            "currency": "IDR",
            "customerId": "cus_1",
            "checkoutSessionId": "cs_1",
        },
    )
    for event in (receipt, payment):
        event["accountId"] = "acc_m"
        response = deliver(client, event, "whsec_m", "/plugipay/webhook/m/")
        assert response.status_code < 500, response.content
    theirs = Customer.objects.get(plugipay_id="cus_1")
    row = Receipt.objects.filter(plugipay_id="rcpt_m1").first()
    assert row is None or row.customer_id != theirs.pk
    paid = Payment.objects.filter(plugipay_id="pay_m1").first()
    assert paid is None or (paid.customer_id, paid.checkout_session_id) == (None, None)


@pytest.mark.parametrize("number", ["Infinity", "-Infinity", "NaN", "1e999"])
def test_a_payout_amount_json_cannot_hold_is_400(number):
    pytest.importorskip("rest_framework")
    from tests.test_api import client_for

    body = f'{{"amount": {number}}}'
    response = client_for(staff("view_payout", "manage_payout")).post(
        f"{API}/payouts/", body, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert not Payout.objects.exists()


def vanishing_payout(key="pay-out-once"):
    """A pending payout row Plugipay never answered, as another call stored it; the caller
    holds it while Plugipay refuses that call's request, which deletes the row."""
    return Payout.objects.create(
        amount=50_000, currency="IDR", status="pending", idempotency_key=key, mode="test"
    )


@pytest.mark.parametrize("call", ["cancel", "sync", "same key"])
def test_a_payout_whose_creation_was_refused_meanwhile_is_a_payout_error(call, monkeypatch):
    """Two calls race: one stores its row and Plugipay refuses it (insufficient balance after
    another payout), which deletes the row; a cancel, a sync or a second create with the same
    key holding that row gets a PayoutError (``refused``) naming it, not the model's
    DoesNotExist (an API request's 500)."""
    from django_plugipay import services
    from django_plugipay.exceptions import PayoutError
    from django_plugipay.services import payouts

    payout = vanishing_payout()
    if call == "same key":
        original = payouts._replay

        def refused_meanwhile(earlier, **request):
            Payout.objects.filter(pk=earlier.pk).delete()
            return original(earlier, **request)

        monkeypatch.setattr(payouts, "_replay", refused_meanwhile)
        work = lambda: services.create_payout(amount=50_000, idempotency_key="pay-out-once")  # noqa: E731
    else:
        Payout.objects.filter(pk=payout.pk).delete()
        work = {
            "cancel": lambda: services.cancel_payout(payout=payout),
            "sync": lambda: services.sync_payout(payout=payout, send=True),
        }[call]
    with pytest.raises(PayoutError, match="no longer exists") as raised:
        work()
    assert raised.value.code == "refused"
