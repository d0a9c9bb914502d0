"""The DRF API with several accounts: reads stay the user's rows, a call to Plugipay about a row
is made with the row's account, and what a request creates goes to the account
``PLUGIPAY["API_ACCOUNT"]`` names (default: the default account)."""

import pytest

pytest.importorskip("rest_framework")

from django_plugipay.exceptions import ConfigurationError
from django_plugipay.models import CheckoutSession, Payment, Refund
from tests.conftest import MERCHANT
from tests.factories import UserFactory
from tests.test_accounts import remote
from tests.test_api import API, client_for, staff_with

PRICING = {"API_CHECKOUT_PARAMS": "tests.test_api.pricing", "API_SYNC_INTERVAL": 0}


def merchant_shop(request):
    """The test project's hook: the merchant's shop serves users whose name says so."""
    return "merchant" if request.user.username.startswith("merchant-") else None


def checkout(user, reference):
    response = client_for(user).post(
        f"{API}/checkout-sessions/", {"reference": reference, "quantity": 1}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_without_the_hook_an_api_checkout_is_the_default_accounts(two_accounts, settings):
    sandbox, _secret = two_accounts
    settings.PLUGIPAY = {**settings.PLUGIPAY, **PRICING}
    session_id = checkout(UserFactory(username="merchant-buyer"), "A-1")
    assert CheckoutSession.objects.get(plugipay_id=session_id).account.alias == "default"
    assert remote(sandbox, "sessions", session_id)["accountId"] != MERCHANT


def test_the_hook_names_the_account_and_row_calls_use_the_rows_account(two_accounts, settings):
    sandbox, _secret = two_accounts
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        **PRICING,
        "API_ACCOUNT": "tests.test_accounts_api.merchant_shop",
    }
    theirs_buyer = UserFactory(username="merchant-buyer", email="same@shop.test")
    own_buyer = UserFactory(username="buyer", email="same@shop.test")
    theirs, own = checkout(theirs_buyer, "A-1"), checkout(own_buyer, "A-1")
    rows = dict(CheckoutSession.objects.values_list("plugipay_id", "account__alias"))
    assert rows == {theirs: "merchant", own: "default"}
    assert remote(sandbox, "sessions", theirs)["accountId"] == MERCHANT
    assert remote(sandbox, "sessions", own)["accountId"] != MERCHANT
    # the buyer's customer was made in the merchant's account too
    session = CheckoutSession.objects.get(plugipay_id=theirs)
    assert session.customer.account.alias == "merchant"
    assert remote(sandbox, "customers", session.customer.plugipay_id)["accountId"] == MERCHANT

    # reading syncs the open session with the merchant's credentials (the default's is 404)
    sandbox.hold()
    sandbox.pay(theirs, deliver=False)
    read = client_for(theirs_buyer).get(f"{API}/checkout-sessions/{theirs}/")
    assert read.status_code == 200, read.content
    assert read.json()["status"] == "completed"
    assert client_for(own_buyer).get(f"{API}/checkout-sessions/{theirs}/").status_code == 404
    sandbox.release()

    # a refund is asked in the payment's account and made with its credentials; staff of
    # another account do not find the payment
    payment = Payment.objects.get(checkout_session__plugipay_id=theirs)
    path = f"{API}/payments/{payment.plugipay_id}/refunds/"
    body = {"reason": "duplicate", "amount": 1000}
    others = client_for(staff_with("refund_payment"))
    assert others.post(path, body, format="json").status_code == 404
    merchant_staff = staff_with("refund_payment")
    merchant_staff.username = "merchant-staff"
    merchant_staff.save()
    response = client_for(merchant_staff).post(path, body, format="json")
    assert response.status_code == 201, response.content
    refund = Refund.objects.get()
    assert refund.account.alias == "merchant"
    assert remote(sandbox, "refunds", refund.plugipay_id)["accountId"] == MERCHANT


def unknown_shop(request):
    return "nobody"


def test_a_hook_naming_an_unknown_account_is_a_configuration_error(two_accounts, settings):
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        **PRICING,
        "API_ACCOUNT": "tests.test_accounts_api.unknown_shop",
    }
    with pytest.raises(ConfigurationError, match="nobody"):
        client_for(UserFactory()).post(
            f"{API}/checkout-sessions/", {"reference": "A-1", "quantity": 1}, format="json"
        )
    assert not CheckoutSession.objects.exists()


def staff_shop(request):
    """Staff of the merchant pay out of its balance."""
    return "merchant" if request.user.username.startswith("merchant-") else None


def test_payouts_and_the_balance_follow_the_hook(two_accounts, settings):
    from django_plugipay import accounts, services
    from django_plugipay.models import Payout
    from tests.test_money_out import save_bank_account

    sandbox, _secret = two_accounts
    _customer, session = shop_in("merchant")
    sandbox.pay(session)
    with accounts.acting_for("merchant"):  # the merchant's own bank account
        save_bank_account()
    settings.PLUGIPAY = {**settings.PLUGIPAY, "API_ACCOUNT": "tests.test_accounts_api.staff_shop"}
    merchant_balance = services.balance(account="merchant")
    own_balance = services.balance()
    assert merchant_balance.available != own_balance.available
    theirs = staff_with("view_payout", "manage_payout")
    theirs.username = "merchant-staff"
    theirs.save()
    client = client_for(theirs)
    assert client.get(f"{API}/payouts/balance/").json()["available"] == merchant_balance.available
    own = client_for(staff_with("view_payout"))
    assert own.get(f"{API}/payouts/balance/").json()["available"] == own_balance.available
    made = client.post(f"{API}/payouts/", {"amount": 20_000}, format="json")
    assert made.status_code == 201, made.content
    payout = Payout.objects.get()
    assert payout.account.alias == "merchant"
    assert remote(sandbox, "payouts", payout.plugipay_id)["accountId"] == MERCHANT


def shop_in(account):
    from tests.test_accounts import shop

    return shop(account)


def test_payouts_and_receipts_of_another_account_are_not_the_requests(two_accounts, settings):
    from django_plugipay import accounts, services
    from django_plugipay.models import Payout, Receipt
    from tests.test_money_out import save_bank_account

    sandbox, _secret = two_accounts
    _customer, session = shop_in("merchant")
    sandbox.pay(session)
    with accounts.acting_for("merchant"):
        save_bank_account()
    theirs = services.create_payout(amount=10_000, account="merchant")
    [receipt] = Receipt.objects.filter(account__alias="merchant")
    settings.PLUGIPAY = {**settings.PLUGIPAY, "API_ACCOUNT": "tests.test_accounts_api.staff_shop"}
    # staff of the default account (the hook answers None for them)
    own = client_for(staff_with("view_payout", "manage_payout", "view_receipt"))
    assert own.get(f"{API}/payouts/").json()["results"] == []
    assert own.get(f"{API}/payouts/{theirs.plugipay_id}/").status_code == 404
    moved = own.post(
        f"{API}/payouts/{theirs.plugipay_id}/move/", {"status": "canceled"}, format="json"
    )
    assert moved.status_code == 404
    assert Payout.objects.get().status == "pending"
    assert own.get(f"{API}/receipts/").json()["results"] == []
    assert own.get(f"{API}/receipts/{receipt.plugipay_id}/").status_code == 404
    # the merchant's staff see and move them
    staff = staff_with("view_payout", "manage_payout", "view_receipt")
    staff.username = "merchant-staff"
    staff.save()
    merchant = client_for(staff)
    assert [p["id"] for p in merchant.get(f"{API}/payouts/").json()["results"]] == [
        theirs.plugipay_id
    ]
    assert merchant.get(f"{API}/receipts/{receipt.plugipay_id}/").status_code == 200
    moved = merchant.post(
        f"{API}/payouts/{theirs.plugipay_id}/move/", {"status": "canceled"}, format="json"
    )
    assert moved.status_code == 200 and moved.json()["status"] == "canceled"


def rows_of(account):
    """A paid session with a refund, and a subscription with an invoice, in ``account``."""
    from django_plugipay import accounts
    from tests.factories import InvoiceFactory, RefundFactory

    with accounts.acting_for(account):
        refund = RefundFactory()
        invoice = InvoiceFactory()
    payment = refund.payment
    return {
        "payments": payment.plugipay_id,
        "checkout-sessions": payment.checkout_session.plugipay_id,
        "refunds": refund.plugipay_id,
        "subscriptions": invoice.subscription.plugipay_id,
        "invoices": invoice.plugipay_id,
    }


def listed(client, kind):
    body = client.get(f"{API}/{kind}/").json()
    return {row["id"] for row in (body["results"] if isinstance(body, dict) else body)}


@pytest.mark.parametrize("hook", [None, "tests.test_accounts_api.staff_shop"])
def test_staff_read_the_rows_of_the_request_account_only(two_accounts, settings, hook):
    """Staff who see every row see every row of the account the request acts for: the
    default account when API_ACCOUNT is unset or answers None, else the one it names."""
    settings.PLUGIPAY = {**settings.PLUGIPAY, "API_ACCOUNT": hook}
    own, theirs = rows_of("default"), rows_of("merchant")
    staff = staff_with(
        "view_payment", "view_checkoutsession", "view_refund", "view_subscription", "view_invoice"
    )
    if hook is not None:
        staff.username = "merchant-staff"
        staff.save()
        own, theirs = theirs, own
    client = client_for(staff)
    for kind in ("payments", "subscriptions", "invoices"):
        assert listed(client, kind) == {own[kind]}, kind
    for kind in ("payments", "checkout-sessions", "refunds", "subscriptions"):
        assert client.get(f"{API}/{kind}/{own[kind]}/").status_code == 200, kind
        assert client.get(f"{API}/{kind}/{theirs[kind]}/").status_code == 404, kind
