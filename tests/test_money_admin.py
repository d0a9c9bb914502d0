"""Money out in the admin and for buyers: the payouts list with the balance, "New payout"
with its confirmation and one-time token, the manual transitions, the ledger and its CSV,
receipts on the payment page, and the buyer's receipt."""

from __future__ import annotations

import csv
import io
import re
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Permission
from django.template import Context
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone, translation

from django_plugipay import services
from django_plugipay.client import PlugipayClient
from django_plugipay.exceptions import APIError, TransientError
from django_plugipay.models import LedgerEntry, Payout, Receipt
from django_plugipay.services import payouts
from tests.factories import UserFactory
from tests.test_money_out import save_bank_account
from tests.test_safe_links import shop_engine

PAYOUTS = "/admin/django_plugipay/payout/"
LEDGER = "/admin/django_plugipay/ledgerentry/"


def staff(*codenames):
    user = UserFactory(is_staff=True)
    codes = ("view_payout", "view_ledgerentry", "view_receipt", "view_payment", *codenames)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codes))
    return user


def token_of(page) -> str:
    return re.search(r'name="plugipay_token" value="([0-9a-f]{32})"', page.content.decode())[1]


@pytest.fixture
def funded(plugipay_sandbox):
    plugipay_sandbox.paid_payment(amount=250_000)
    save_bank_account()
    return services.balance()


def test_the_list_shows_the_balance_in_rupiah_and_new_payout_needs_the_permission(client, funded):
    client.force_login(staff())
    with translation.override("id"):
        page = client.get(PAYOUTS).content.decode()
    assert 'id="plugipay-balance"' in page
    assert f"Rp {funded.available:,}".replace(",", ".") in page
    assert "plugipay-new-payout" not in page
    assert client.get(reverse("admin:django_plugipay_payout_new")).status_code == 403
    client.force_login(staff("manage_payout"))
    assert "plugipay-new-payout" in client.get(PAYOUTS).content.decode()


def test_new_payout_is_confirmed_then_made_once_whatever_the_resubmits(client, funded):
    client.force_login(staff("manage_payout"))
    url = reverse("admin:django_plugipay_payout_new")
    form = client.get(url)
    page = form.content.decode()
    assert "••••4567" in page and "8801234567" not in page  # the account, masked
    token = token_of(form)
    too_much = client.post(
        url, {"stage": "review", "amount": str(funded.available + 1), "plugipay_token": token}
    )
    assert "available balance" in too_much.content.decode() and not Payout.objects.exists()
    review = client.post(
        url, {"stage": "review", "amount": "100000", "note": "Minggu 1", "plugipay_token": token}
    )
    assert "Yes, pay out" in review.content.decode() and not Payout.objects.exists()
    confirm = {"stage": "confirm", "amount": "100000", "note": "Minggu 1", "plugipay_token": token}
    assert client.post(url, confirm).status_code == 302
    assert client.post(url, confirm).status_code == 302  # the back button, submitted again
    payout = Payout.objects.get()
    assert (payout.amount, payout.status, payout.note) == (100_000, "pending", "Minggu 1")
    assert services.balance().locked == 100_000


def test_manual_transitions_are_actions_behind_a_confirmation(client, funded, signal_log):
    payout = services.create_payout(amount=50_000)
    client.force_login(staff("manage_payout"))
    selected = {"_selected_action": [payout.pk]}
    page = client.post(PAYOUTS, {**selected, "action": "mark_in_transit"})
    assert page.status_code == 200 and "Bank reference" in page.content.decode()
    payout.refresh_from_db()
    assert payout.status == "pending"  # nothing before "Yes"
    client.post(PAYOUTS, {**selected, "action": "mark_in_transit", "post": "yes", "text": "TRF-7"})
    payout.refresh_from_db()
    assert (payout.status, payout.reference) == ("in_transit", "TRF-7")
    refused = client.post(
        PAYOUTS, {**selected, "action": "cancel_payouts", "post": "yes"}, follow=True
    )
    payout.refresh_from_db()
    assert payout.status == "in_transit" and refused.status_code == 200
    no_reason = client.post(
        PAYOUTS, {**selected, "action": "mark_failed", "post": "yes", "text": ""}
    )
    assert no_reason.status_code == 200  # the form again: a reason is required
    client.post(PAYOUTS, {**selected, "action": "mark_paid", "post": "yes", "text": ""})
    payout.refresh_from_db()
    assert payout.status == "paid"
    assert signal_log.names().count("payout_paid") == 1
    viewer = staff()
    client.force_login(viewer)
    assert "mark_paid" not in client.get(PAYOUTS).content.decode()


def test_the_ledger_is_read_only_filtered_and_exported_as_csv(client, funded):
    services.sync_ledger()
    client.force_login(staff())
    page = client.get(LEDGER, {"code": "cash"}).content.decode()
    assert "plugipay-ledger-export" in page
    assert client.get(LEDGER + "add/").status_code == 403
    response = client.get(reverse("admin:django_plugipay_ledgerentry_export"), {"code": "cash"})
    assert response.streaming
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["posted_at", "tx_id", "plugipay_id"]
    cash = LedgerEntry.objects.filter(code="cash")
    assert len(rows) - 1 == cash.count() and {r[3] for r in rows[1:]} == {"cash"}
    everything = client.get(reverse("admin:django_plugipay_ledgerentry_export"))
    assert len(list(everything.streaming_content)) - 1 == LedgerEntry.objects.count()


def test_receipts_are_linked_from_the_payment_and_emailed_after_confirmation(
    client, plugipay_sandbox
):
    customer = services.create_customer(email="pembeli@example.com", name="Pembeli")
    payment = plugipay_sandbox.paid_payment(amount=75_000, customer=customer)
    services.sync_receipts()
    receipt = Receipt.objects.get(payment=payment)
    client.force_login(staff("change_receipt"))
    page = client.get(reverse("admin:django_plugipay_payment_change", args=[payment.pk]))
    assert (
        reverse("admin:django_plugipay_receipt_change", args=[receipt.pk]) in page.content.decode()
    )
    change = client.get(reverse("admin:django_plugipay_receipt_change", args=[receipt.pk]))
    assert (
        reverse("plugipay:receipt_document", args=[receipt.plugipay_id]) in change.content.decode()
    )
    email = reverse("admin:django_plugipay_receipt_email", args=[receipt.pk])
    assert client.get(email).status_code == 200 and receipt.emailed_at is None
    client.post(email, {"post": "yes"})
    receipt.refresh_from_db()
    assert receipt.emailed_at is not None
    client.force_login(staff())
    assert client.get(email).status_code == 403


def test_the_buyer_gets_their_receipt_and_another_user_a_404(client, plugipay_sandbox):
    buyer = UserFactory()
    customer = services.get_or_create_customer_for_user(user=buyer)
    payment = plugipay_sandbox.paid_payment(amount=90_000, customer=customer)
    session_id = payment.checkout_session.plugipay_id
    url = reverse("plugipay:receipt_document", args=[session_id])
    assert client.get(url).status_code == 302  # login required
    client.force_login(buyer)
    pdf = client.get(url)  # by the session's id: synced on the way
    assert pdf.status_code == 200 and b"".join(pdf.streaming_content).startswith(b"%PDF")
    receipt = Receipt.objects.get(source_id=session_id)
    html = client.get(
        reverse("plugipay:receipt_document", args=[receipt.plugipay_id]), {"format": "html"}
    )
    assert html.status_code == 200 and receipt.number.encode() in b"".join(html.streaming_content)
    client.force_login(UserFactory())
    assert client.get(url).status_code == 404
    assert (
        client.get(reverse("plugipay:receipt_document", args=[receipt.plugipay_id])).status_code
        == 404
    )
    client.force_login(staff())
    assert (
        client.get(reverse("plugipay:receipt_document", args=[receipt.plugipay_id])).status_code
        == 200
    )


def test_staff_who_may_view_receipts_open_one_by_the_sessions_id(
    client, plugipay_sandbox, monkeypatch
):
    monkeypatch.setattr(payouts, "sync_receipts_soon", lambda source_id: None)
    payment = plugipay_sandbox.paid_payment(amount=90_000)
    url = reverse("plugipay:receipt_document", args=[payment.checkout_session.plugipay_id])
    receipts_only = UserFactory(is_staff=True)
    receipts_only.user_permissions.add(Permission.objects.get(codename="view_receipt"))
    client.force_login(UserFactory(is_staff=True))  # staff without view_receipt
    assert client.get(url).status_code == 404
    assert not Receipt.objects.exists()
    client.force_login(receipts_only)  # no permission on sessions: the receipt's is enough
    pdf = client.get(url)  # not mirrored yet: synced on the way
    assert pdf.status_code == 200 and b"".join(pdf.streaming_content).startswith(b"%PDF")
    assert Receipt.objects.get().payment == payment
    assert client.get(url, {"format": "html"}).status_code == 200  # mirrored now


@override_settings(ROOT_URLCONF="tests.test_safe_links")
def test_the_example_shops_order_page_links_the_receipt_of_a_paid_order():
    session = SimpleNamespace(
        plugipay_id="cs_paid", is_pending=False, payments=SimpleNamespace(all=list)
    )
    paid = SimpleNamespace(
        pk=1, status="paid", paid_at="now", checkout_session=session, product="Kopi", quantity=1
    )
    waiting = SimpleNamespace(
        pk=2, status="pending", paid_at=None, checkout_session=None, product="Teh", quantity=1
    )
    page = shop_engine.get_template("shop/orders.html").render(Context({"orders": [paid, waiting]}))
    links = re.findall(r'href="([^"]+)" data-testid="order-receipt"', page)
    assert links == [reverse("plugipay:receipt_document", args=["cs_paid"])]


def test_the_mark_actions_are_named_in_the_language_of_the_request():
    from django.contrib import admin

    actions = admin.site._registry[Payout].actions
    marks = [a for a in actions if a.__name__.startswith("mark_")]
    assert len(marks) == 3
    with translation.override("id"):
        names = [str(a.short_description) for a in marks]
    assert names == [
        "Tandai pencairan sedang dikirim…",
        "Tandai pencairan sudah dibayar…",
        "Tandai pencairan gagal…",
    ]


def resync(client, row):
    return client.post(PAYOUTS, {"_selected_action": [row.pk], "action": "resync", "post": "yes"})


def remote_payouts(sandbox):
    return [(p["id"], p["status"]) for p in sandbox.state().get("payouts", [])]


def test_resync_by_staff_who_may_only_view_payouts_never_sends_one(client, funded):
    canceled = Payout.objects.create(amount=60_000, idempotency_key="payout_review_1")
    services.cancel_payout(payout=canceled)  # never sent: canceled here
    unsent = Payout.objects.create(amount=50_000, idempotency_key="payout_review_2")
    client.force_login(staff())  # view_payout, no manage_payout
    page = resync(client, canceled)
    resync(client, unsent)
    rows = set(Payout.objects.values_list("pk", "plugipay_id", "status"))
    assert rows == {(canceled.pk, None, "canceled"), (unsent.pk, None, "pending")}
    assert services.balance().locked == 0
    assert page.status_code == 302
    messages = [str(m) for m in client.get(PAYOUTS).context["messages"]]
    assert any("manage payouts" in m for m in messages), messages


def test_resync_by_a_payout_manager_sends_an_unacknowledged_payout_once(
    client, funded, plugipay_sandbox
):
    sent = timezone.now() - payouts.SEND_DEADLINE  # its send is over, never answered
    row = Payout.objects.create(amount=50_000, idempotency_key="payout_review_3", submitted_at=sent)
    client.force_login(staff("manage_payout"))
    resync(client, row)
    resync(client, Payout.objects.get())  # again: the row is linked, only fetched
    [(made, status)] = remote_payouts(plugipay_sandbox)
    assert list(Payout.objects.values_list("plugipay_id", "status")) == [(made, "pending")]


def test_the_receipt_email_page_of_an_id_that_is_not_a_number_is_a_404(client, plugipay_sandbox):
    client.force_login(staff("change_receipt"))
    assert client.get("/admin/django_plugipay/receipt/abc/email/").status_code == 404


def test_a_receipt_document_is_sandboxed_on_the_shops_origin(client, plugipay_sandbox):
    buyer = UserFactory()
    customer = services.get_or_create_customer_for_user(user=buyer)
    payment = plugipay_sandbox.paid_payment(amount=90_000, customer=customer)
    url = reverse("plugipay:receipt_document", args=[payment.checkout_session.plugipay_id])
    client.force_login(buyer)
    for kind in ("html", "pdf"):
        response = client.get(url, {"format": kind})
        b"".join(response.streaming_content)
        assert response.status_code == 200
        assert response["Content-Security-Policy"] == "sandbox"
        assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.django_db(transaction=True)
def test_a_new_payout_whose_answer_was_lost_is_confirmed_again_with_its_key_paid_once(
    client, plugipay_sandbox, settings, monkeypatch
):
    """Plugipay made the payout and its answer was lost: the page is the confirmation again,
    with the same token, so confirming again sends the same key (a fresh form would send a
    new one, and Plugipay would pay out twice)."""
    plugipay_sandbox.paid_payment(amount=250_000)
    save_bank_account()
    settings.PLUGIPAY = {**settings.PLUGIPAY, "MAX_RETRIES": 0}
    real = PlugipayClient.create_payout
    calls = []

    def create_payout(self, body, idempotency_key=None):
        calls.append(idempotency_key)
        made = real(self, body, idempotency_key=idempotency_key)
        if len(calls) == 1:
            raise TransientError("Read timed out.")  # made at Plugipay; the answer lost
        return made

    monkeypatch.setattr(PlugipayClient, "create_payout", create_payout)
    client.force_login(staff("manage_payout"))
    url = reverse("admin:django_plugipay_payout_new")
    token = token_of(client.get(url))
    confirm = {"stage": "confirm", "amount": "100000", "note": "Minggu 1"}
    first = client.post(url, {**confirm, "plugipay_token": token})
    assert first.status_code == 200 and token_of(first) == token
    said = " ".join(str(m) for m in first.context["messages"])
    assert "Plugipay did not answer: the payout" in said and "never paid twice" in said
    assert "Read timed out" not in said  # the client's English, for developers
    second = client.post(url, {**confirm, "plugipay_token": token_of(first)}, follow=True)
    assert second.redirect_chain[-1][0] == reverse("admin:django_plugipay_payout_changelist")
    assert calls == [f"admin_{token}"] * 2
    assert len(remote_payouts(plugipay_sandbox)) == 1
    [payout] = Payout.objects.all()
    assert payout.plugipay_id == remote_payouts(plugipay_sandbox)[0][0]


@pytest.mark.django_db(transaction=True)
def test_a_payout_confirmed_again_with_another_amount_is_not_offered_again(
    client, plugipay_sandbox, settings, monkeypatch
):
    plugipay_sandbox.paid_payment(amount=250_000)
    save_bank_account()
    settings.PLUGIPAY = {**settings.PLUGIPAY, "MAX_RETRIES": 0}

    def lost(self, body, idempotency_key=None):
        raise TransientError("Read timed out.")

    monkeypatch.setattr(PlugipayClient, "create_payout", lost)
    client.force_login(staff("manage_payout"))
    url = reverse("admin:django_plugipay_payout_new")
    token = token_of(client.get(url))
    first = client.post(url, {"stage": "confirm", "amount": "100000", "plugipay_token": token})
    assert first.context["confirming"]
    changed = {"stage": "confirm", "amount": "200000", "plugipay_token": token}
    second = client.post(url, changed, follow=True)
    assert second.redirect_chain[-1][0] == reverse("admin:django_plugipay_payout_changelist")
    said = " ".join(str(m) for m in second.context["messages"])
    assert "cannot be changed now" in said and "did not answer" not in said
    assert list(Payout.objects.values_list("amount", "plugipay_id")) == [(100_000, None)]


def test_the_confirmation_submitted_again_once_the_balance_fell_reports_the_payout_made(
    client, funded
):
    """The second submit of a confirmed page finds the balance lower by its own payout: it
    says the payout was made from this page, not that the amount is over the balance."""
    client.force_login(staff("manage_payout"))
    url = reverse("admin:django_plugipay_payout_new")
    amount = str(funded.available * 3 // 4)
    confirm = {"stage": "confirm", "amount": amount, "plugipay_token": token_of(client.get(url))}
    first = client.post(url, confirm, follow=True)
    assert [m.level_tag for m in first.context["messages"]] == ["success"]
    again = client.post(url, confirm, follow=True)
    assert again.redirect_chain and Payout.objects.count() == 1
    assert [m.level_tag for m in again.context["messages"]] == ["info"]


def test_new_payout_without_a_saved_bank_account_is_refused_by_the_form(client, plugipay_sandbox):
    plugipay_sandbox.paid_payment(amount=250_000)
    client.force_login(staff("manage_payout"))
    url = reverse("admin:django_plugipay_payout_new")
    token = token_of(client.get(url))
    for stage in ("review", "confirm"):
        with translation.override("id"):
            page = client.post(
                url,
                {"stage": stage, "amount": "10000", "plugipay_token": token},
                headers={"accept-language": "id"},
            )
        assert page.status_code == 200
        assert "Belum ada rekening bank" in page.content.decode()
        assert "Ya, cairkan" not in page.content.decode()
    assert not Payout.objects.exists()


def test_a_move_plugipay_refuses_is_said_in_the_clerks_language(client, funded):
    payout = services.create_payout(amount=50_000)
    client.force_login(staff("manage_payout"))
    with translation.override("id"):
        page = client.post(
            PAYOUTS,
            {"_selected_action": [payout.pk], "action": "mark_paid", "post": "yes", "text": ""},
            follow=True,
            headers={"accept-language": "id"},
        )
    payout.refresh_from_db()
    [message] = [str(m) for m in page.context["messages"]]
    assert payout.status == "pending"
    assert message.startswith("Pencairan ") and "cannot" not in message, message


@pytest.mark.parametrize(
    ("error", "start"),
    [
        (TransientError("Plugipay could not be reached."), "Plugipay tidak dapat dihubungi"),
        (APIError("Forbidden for this key.", code="forbidden", status=403), "Plugipay menolak"),
    ],
)
def test_a_move_that_fails_otherwise_is_said_in_the_clerks_language_too(
    client, funded, monkeypatch, error, start
):
    """Unreachable, or refused for another reason: Plugipay's English is not shown."""
    payout = services.create_payout(amount=50_000)

    def fail(**kwargs):
        raise error

    monkeypatch.setattr(services, "mark_payout", fail)
    client.force_login(staff("manage_payout"))
    with translation.override("id"):
        page = client.post(
            PAYOUTS,
            {"_selected_action": [payout.pk], "action": "mark_in_transit", "post": "yes"},
            follow=True,
        )
    [message] = [str(m) for m in page.context["messages"]]
    assert message.startswith(start) and error.message not in message, message


def test_a_confirmation_no_page_of_ours_posted_is_shown_for_review_not_paid(client, funded):
    """A hand-made POST with ``stage=confirm`` and no page token (or a malformed one) gets
    the confirmation page, with a token, instead of a payout: each such POST would otherwise
    be a new payout, as its key would be new each time."""
    client.force_login(staff("manage_payout"))
    url = reverse("admin:django_plugipay_payout_new")
    for token in ({}, {"plugipay_token": "not-a-token"}):
        page = client.post(url, {"stage": "confirm", "amount": "1000", **token})
        assert page.status_code == 200 and page.context["confirming"]
        assert "Yes, pay out" in page.content.decode()
    assert not Payout.objects.exists()


def test_a_page_confirmed_again_with_another_amount_after_its_payout_keeps_it(client, funded):
    """The back button, another amount, confirmed again: the page's payout stands, and the
    clerk is told so in their words (not the Idempotency-Key's)."""
    client.force_login(staff("manage_payout"))
    url = reverse("admin:django_plugipay_payout_new")
    token = token_of(client.get(url))
    client.post(url, {"stage": "confirm", "amount": "100000", "plugipay_token": token})
    again = client.post(
        url, {"stage": "confirm", "amount": "90000", "plugipay_token": token}, follow=True
    )
    said = " ".join(str(m) for m in again.context["messages"])
    assert "already made a payout" in said and "Idempotency-Key" not in said, said
    assert list(Payout.objects.values_list("amount", flat=True)) == [100_000]


def test_confirming_again_while_the_first_send_waits_says_it_has_no_answer_yet(
    client, plugipay_sandbox, funded
):
    """The page's first confirmation stored its payout and is still waiting for Plugipay
    (or its process died mid-send). Confirming the page again sends nothing, and says the
    payout has no answer from Plugipay yet, not that it "was already made"."""
    client.force_login(staff("manage_payout"))
    url = reverse("admin:django_plugipay_payout_new")
    token = token_of(client.get(url))
    Payout.objects.create(  # what the first confirmation stored before calling Plugipay
        amount=100_000,
        note="Minggu 1",
        idempotency_key=f"admin_{token}",
        submitted_at=timezone.now(),
    )
    confirm = {"stage": "confirm", "amount": "100000", "note": "Minggu 1", "plugipay_token": token}
    page = client.post(url, confirm, follow=True)
    said = " ".join(str(m) for m in page.context["messages"])
    assert "has no answer yet; nothing was sent again" in said and "already made" not in said
    assert plugipay_sandbox.state()["payouts"] == []


def test_a_bank_reference_longer_than_a_payout_keeps_is_a_form_error(client, funded):
    """A bank reference is at most 255 characters (the payout's column, the API's field):
    a longer one is said on the form, before Plugipay is asked; a reason why a payout failed
    may be 500 long."""
    payout = services.create_payout(amount=50_000)
    client.force_login(staff("manage_payout"))
    selected = {"_selected_action": [payout.pk], "post": "yes"}
    page = client.post(PAYOUTS, {**selected, "action": "mark_in_transit", "text": "R" * 256})
    assert page.status_code == 200 and "at most 255 characters" in page.content.decode()
    payout.refresh_from_db()
    assert payout.status == "pending"
    client.post(PAYOUTS, {**selected, "action": "mark_in_transit", "text": "R" * 255})
    payout.refresh_from_db()
    assert (payout.status, len(payout.reference)) == ("in_transit", 255)


def test_confirming_again_a_payout_canceled_meanwhile_says_it_was_canceled(
    client, plugipay_sandbox, funded
):
    """The page's payout got no answer and staff canceled it here; confirming the page again
    sends nothing and says it was canceled, not that it waits for Plugipay."""
    client.force_login(staff("manage_payout"))
    url = reverse("admin:django_plugipay_payout_new")
    token = token_of(client.get(url))
    Payout.objects.create(
        amount=100_000,
        note="Minggu 1",
        idempotency_key=f"admin_{token}",
        submitted_at=timezone.now(),
        status="canceled",
    )
    confirm = {"stage": "confirm", "amount": "100000", "note": "Minggu 1", "plugipay_token": token}
    page = client.post(url, confirm, follow=True)
    said = " ".join(str(m) for m in page.context["messages"])
    assert "was canceled; nothing was sent again" in said and "no answer yet" not in said
