"""The DRF API for money out: payouts and the balance for staff, receipts for their owner."""

import pytest

pytest.importorskip("rest_framework")

from django_plugipay import services
from django_plugipay.models import Payout, Receipt
from tests.factories import UserFactory
from tests.test_api import API, client_for, staff_with
from tests.test_money_out import save_bank_account


@pytest.fixture
def funded(plugipay_sandbox):
    plugipay_sandbox.paid_payment(amount=300_000)
    save_bank_account()
    return services.balance()


def test_payouts_are_for_staff_and_paying_out_needs_the_permission(funded):
    assert client_for(UserFactory()).get(f"{API}/payouts/").status_code == 403
    assert client_for(UserFactory(is_staff=True)).get(f"{API}/payouts/balance/").status_code == 403
    viewer = client_for(staff_with("view_payout"))
    balance = viewer.get(f"{API}/payouts/balance/").json()
    assert balance["available"] == funded.available and balance["currency"] == "IDR"
    assert viewer.post(f"{API}/payouts/", {"amount": 1000}).status_code == 403
    manager = client_for(staff_with("manage_payout"))
    too_much = manager.post(f"{API}/payouts/", {"amount": funded.available + 1}, format="json")
    assert too_much.status_code == 400 and "available balance" in str(too_much.json())
    headers = {"HTTP_IDEMPOTENCY_KEY": "weekly-1"}
    made = manager.post(f"{API}/payouts/", {"amount": 20_000}, format="json", **headers)
    again = manager.post(f"{API}/payouts/", {"amount": 20_000}, format="json", **headers)
    assert (made.status_code, again.status_code) == (201, 200)
    assert made.json()["id"] == again.json()["id"] and Payout.objects.count() == 1
    assert made.json()["destination"].endswith("••••4567")
    listed = viewer.get(f"{API}/payouts/").json()["results"]
    assert [p["id"] for p in listed] == [made.json()["id"]]


def test_payout_moves_and_their_409(funded):
    manager = client_for(staff_with("manage_payout"))
    payout = services.create_payout(amount=10_000)
    url = f"{API}/payouts/{payout.plugipay_id}/move/"
    early = manager.post(url, {"status": "paid"}, format="json")
    assert early.status_code == 409
    moved = manager.post(url, {"status": "in_transit", "reference": "TRF-2"}, format="json")
    assert moved.status_code == 200 and moved.json()["status"] == "in_transit"
    assert manager.post(url, {"status": "canceled"}, format="json").status_code == 409
    assert manager.post(url, {"status": "failed"}, format="json").status_code == 400
    paid = manager.post(url, {"status": "paid"}, format="json")
    assert paid.json()["status"] == "paid" and paid.json()["reference"] == "TRF-2"


def test_receipts_are_their_owners(plugipay_sandbox):
    buyer = UserFactory()
    customer = services.get_or_create_customer_for_user(user=buyer)
    plugipay_sandbox.paid_payment(amount=80_000, customer=customer)
    plugipay_sandbox.paid_payment(amount=60_000)  # someone else's
    services.sync_receipts()
    mine = Receipt.objects.get(customer=customer)
    listed = client_for(buyer).get(f"{API}/receipts/").json()["results"]
    assert [r["id"] for r in listed] == [mine.plugipay_id]
    assert listed[0]["amount_display"]
    other = client_for(UserFactory())
    assert other.get(f"{API}/receipts/").json()["results"] == []
    assert other.get(f"{API}/receipts/{mine.plugipay_id}/").status_code == 404
    assert client_for(buyer).get(f"{API}/receipts/{mine.plugipay_id}/").status_code == 200
    staff = client_for(staff_with("view_receipt"))
    assert len(staff.get(f"{API}/receipts/").json()["results"]) == 2


def test_an_idempotency_key_replayed_with_another_amount_is_a_409(funded):
    manager = client_for(staff_with("manage_payout"))
    headers = {"HTTP_IDEMPOTENCY_KEY": "weekly-2"}
    made = manager.post(f"{API}/payouts/", {"amount": 20_000}, format="json", **headers)
    other = manager.post(f"{API}/payouts/", {"amount": 25_000}, format="json", **headers)
    assert (made.status_code, other.status_code) == (201, 409)
    assert Payout.objects.count() == 1


def test_two_requests_racing_with_one_idempotency_key_make_one_payout(funded, monkeypatch):
    from django_plugipay.api.views import idempotency_key
    from django_plugipay.services import payouts

    user = staff_with("view_payout", "manage_payout")

    def balance_while_the_other_request_inserts(**kw):
        # the other request with the same header passed the same check and stored first
        Payout.objects.create(
            amount=10_000, idempotency_key=idempotency_key(user, "k-9", Payout.objects)
        )
        return funded

    monkeypatch.setattr(payouts, "balance", balance_while_the_other_request_inserts)
    headers = {"HTTP_IDEMPOTENCY_KEY": "k-9"}
    response = client_for(user).post(
        f"{API}/payouts/", {"amount": 10_000}, format="json", **headers
    )
    # one payout, the other request's, still waiting for Plugipay: this one is told to ask again
    assert response.status_code == 409 and Payout.objects.count() == 1
    assert response.data["detail"].code == "in_progress"


@pytest.mark.parametrize("amount", ["250.000", "1_000", "20000.0x"])
def test_a_payout_amount_in_minor_units_is_digits_only(funded, amount):
    manager = client_for(staff_with("manage_payout"))
    response = manager.post(f"{API}/payouts/", {"amount": amount}, format="json")
    assert response.status_code == 400 and "amount" in response.json()
    assert not Payout.objects.exists()


def test_a_request_while_the_first_with_its_key_awaits_plugipay_is_a_409_to_retry(funded):
    """The first request with the key stored its payout and is waiting for Plugipay's answer:
    a second is told to ask again (409 ``in_progress``, ``Retry-After``), not handed a payout
    without an id; asked again once the first is answered, it reads that payout."""
    from django.utils import timezone

    from django_plugipay.api.views import idempotency_key

    user = staff_with("view_payout", "manage_payout")
    key = idempotency_key(user, "k-10", Payout.objects)
    Payout.objects.create(amount=10_000, idempotency_key=key, submitted_at=timezone.now())
    headers = {"HTTP_IDEMPOTENCY_KEY": "k-10"}
    manager = client_for(user)
    waiting = manager.post(f"{API}/payouts/", {"amount": 10_000}, format="json", **headers)
    assert waiting.status_code == 409 and waiting.data["detail"].code == "in_progress"
    assert waiting.headers["Retry-After"] == "1"
    Payout.objects.filter(idempotency_key=key).update(plugipay_id="po_answered")
    answered = client_for(user).post(
        f"{API}/payouts/", {"amount": 10_000}, format="json", **headers
    )
    assert answered.status_code == 200 and answered.json()["id"] == "po_answered"


def test_a_payout_without_a_saved_bank_account_is_refused_in_the_clerks_language(
    plugipay_sandbox,
):
    """Plugipay's refusal names its own fields and endpoints, in English: the API says what a
    client of this API can do, in the request's language."""
    from django.utils import translation

    plugipay_sandbox.paid_payment(amount=300_000)  # no bank account saved
    with translation.override("id"):
        response = client_for(staff_with("manage_payout")).post(
            f"{API}/payouts/", {"amount": 1000}, format="json"
        )
    assert response.status_code == 400
    assert response.json() == {
        "non_field_errors": [
            "Belum ada rekening bank tersimpan di Plugipay: tambahkan dulu di dasbor Plugipay."
        ]
    }
    assert not Payout.objects.exists()


def test_a_retried_payout_plugipay_refuses_is_answered_as_a_refusal(
    plugipay_sandbox, funded, settings, monkeypatch
):
    """The first POST got a 5xx and nothing was made (502); the balance is then used by
    another payout, and the client's retry with its Idempotency-Key is refused by Plugipay.
    The retry, and any later one with the key, is answered 400 with Plugipay's reason, as
    the same refusal of a first send is, not 201 Created or 200 with a failed payout."""
    from django_plugipay.client import get_client
    from django_plugipay.services import payouts
    from tests.test_money_out import remote_payouts

    settings.PLUGIPAY = {**settings.PLUGIPAY, "MAX_RETRIES": 0}
    monkeypatch.setattr(payouts, "balance", lambda **kw: funded)  # the fault: the create only
    manager = client_for(staff_with("manage_payout"))
    headers = {"HTTP_IDEMPOTENCY_KEY": "weekly-77"}
    plugipay_sandbox.fault("http_500", count=1, path_prefix="/api/v1/payouts")
    first = manager.post(f"{API}/payouts/", {"amount": 20_000}, format="json", **headers)
    assert first.status_code == 502 and remote_payouts(plugipay_sandbox) == []
    get_client().create_payout({"amount": funded.available - 10_000})  # the balance, used
    again = manager.post(f"{API}/payouts/", {"amount": 20_000}, format="json", **headers)
    assert again.status_code == 400, (again.status_code, again.json())
    assert "Plugipay refused the payout" in str(again.json())
    third = manager.post(f"{API}/payouts/", {"amount": 20_000}, format="json", **headers)
    assert third.status_code == 400, (third.status_code, third.json())  # the same answer
    assert Payout.objects.get(idempotency_key__endswith="weekly-77").status == "failed"
