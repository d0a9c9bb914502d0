"""Money out in the reader's language: what the admin and the API say about payouts, receipts
and the ledger is Indonesian on an Indonesian page, never Plugipay's English developer
message, and the buyer's receipt document comes in the buyer's language."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import translation

from django_plugipay import services
from django_plugipay.admin.money import LedgerEntryAdmin
from django_plugipay.exceptions import TransientError
from django_plugipay.models import LedgerEntry, Payout, Receipt
from tests.factories import UserFactory
from tests.test_api import API, client_for, staff_with
from tests.test_money_out import save_bank_account


def staff(*codenames):
    user = UserFactory(is_staff=True)
    codes = ("view_payout", "view_ledgerentry", "view_receipt", "view_payment", *codenames)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codes))
    return user


@pytest.fixture
def funded(plugipay_sandbox):
    plugipay_sandbox.paid_payment(amount=300_000)
    save_bank_account()
    return services.balance()


def test_a_move_plugipay_refuses_is_said_in_the_requests_language_by_the_api(funded):
    """The API's 409 for a move a payout cannot make is said as the admin says it."""
    payout = services.create_payout(amount=10_000)
    with translation.override("id"):
        response = client_for(staff_with("manage_payout")).post(
            f"{API}/payouts/{payout.plugipay_id}/move/", {"status": "paid"}, format="json"
        )
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "cannot become" not in detail, detail  # Plugipay's English
    assert "tidak dapat ditandai lunas" in detail, detail


def test_emailing_a_guest_receipt_is_refused_in_the_clerks_language(client, plugipay_sandbox):
    """A receipt with no e-mail address to go to: Plugipay's "send `to`" is a developer's."""
    payment = plugipay_sandbox.paid_payment(amount=75_000)  # a guest checkout: no customer
    services.sync_receipts()
    receipt = Receipt.objects.get(payment=payment)
    client.force_login(staff("change_receipt"))
    with translation.override("id"):
        page = client.post(
            reverse("admin:django_plugipay_receipt_email", args=[receipt.pk]),
            {"post": "yes"},
            follow=True,
        )
    [message] = [str(m) for m in page.context["messages"]]
    assert "has no email" not in message and "`to`" not in message, message
    assert "tidak ada alamat e-mail" in message, message


def test_the_buyers_receipt_document_is_in_the_active_language(client, plugipay_sandbox):
    """The document is asked of Plugipay in the reader's language (``Accept-Language``)."""
    buyer = UserFactory()
    customer = services.get_or_create_customer_for_user(user=buyer)
    payment = plugipay_sandbox.paid_payment(amount=90_000, customer=customer)
    url = reverse("plugipay:receipt_document", args=[payment.checkout_session.plugipay_id])
    client.force_login(buyer)
    for language, word in (("id", "Kuitansi"), ("en", "Receipt")):
        with translation.override(language):
            page = client.get(url, {"format": "html"})
        assert page.status_code == 200
        body = b"".join(page.streaming_content).decode()
        assert word in body, (language, body[:300])


def test_a_ledger_entrys_transaction_legs_and_name_are_in_the_clerks_language(funded):
    services.sync_ledger()
    entry = LedgerEntry.objects.filter(direction="credit").first()
    with translation.override("id"):
        legs = str(LedgerEntryAdmin.transaction(None, entry))
        name = str(entry)
    assert "Kredit" in legs and "credit " not in legs, legs
    assert "kredit" in name and "Rp" in name, name


def test_new_payout_with_plugipay_unreachable_is_said_in_the_clerks_language(
    client, funded, monkeypatch, settings
):
    """The client's hint (its URL, "is it running?") is for developers: shown under DEBUG
    only, after the clerk's own words."""

    def unreachable(**kwargs):
        raise TransientError("Could not reach Plugipay at http://127.0.0.1:8787 (GET …).")

    monkeypatch.setattr(services, "balance", unreachable)
    client.force_login(staff("manage_payout"))
    for debug in (False, True):
        settings.DEBUG = debug
        with translation.override("id"):
            page = client.get(reverse("admin:django_plugipay_payout_new"), follow=True)
        [message] = [str(m) for m in page.context["messages"]]
        assert message.startswith("Plugipay tidak dapat dihubungi"), message
        assert ("Could not reach" in message) is debug, message


@pytest.mark.django_db
def test_a_payout_plugipay_never_answered_is_named_in_the_clerks_language():
    """Its name is the admin page's title and breadcrumb, and is in the Re-sync messages."""
    payout = Payout.objects.create(amount=2_345, currency="IDR", status="pending")
    with translation.override("id"):
        name = str(payout)
    assert name == f"pencairan #{payout.pk} (tertunda)", name


@pytest.mark.django_db
def test_a_cancel_plugipay_refuses_is_said_as_a_cancel_not_a_mark():
    from django_plugipay.exceptions import APIError
    from django_plugipay.models import PayoutMethod, PayoutStatus
    from django_plugipay.services.payouts import move_refusal

    payout = Payout(
        pk=7,
        amount=10_000,
        currency="IDR",
        method=PayoutMethod.XENDIT_DISBURSEMENT,
        status="pending",
    )
    exc = APIError("Cannot cancel a processing payout", status=409, code="invalid_transition")
    said = str(move_refusal(payout, PayoutStatus.CANCELED, exc))
    assert "can no longer be canceled" in said and "manual" not in said, said


def test_payment_methods_are_named_in_the_clerks_language_in_lists_and_filters(
    client, plugipay_sandbox
):
    """Plugipay's method codes (``card``, ``va``…) are shown by their labels, in the column,
    the filter and the receipt's source; a code Plugipay adds later is shown as it is."""
    from django_plugipay.models import PaymentMethod

    plugipay_sandbox.paid_payment(amount=75_000)
    services.sync_receipts()
    client.force_login(staff("view_checkoutsession"))
    with translation.override("id"):
        payments = client.get(reverse("admin:django_plugipay_payment_changelist")).content.decode()
        receipts = client.get(reverse("admin:django_plugipay_receipt_changelist")).content.decode()
    assert '<td class="field-method_label">Kartu</td>' in payments, payments[-3000:]
    assert "?method=card" in payments and ">Kartu</a>" in payments  # the filter
    assert "sesi pembayaran cs_" in receipts and "checkout_session cs_" not in receipts
    assert PaymentMethod.label_of("bnpl") == "bnpl" and PaymentMethod.label_of("") == "—"


@pytest.mark.django_db
def test_subscribing_through_the_api_when_it_is_not_enabled_is_said_in_the_requests_language():
    client = client_for(UserFactory())
    with translation.override("id"):
        response = client.post(f"{API}/subscriptions/", {}, format="json")
    assert response.status_code == 404
    assert "Berlangganan belum diaktifkan" in response.json()["detail"], response.json()
