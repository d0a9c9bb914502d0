"""Receipts and ledger entries arrive by themselves (no sync run by anyone), once; and money
out stays in its account (DESIGN §6 rule 14)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from django_plugipay import datetimes, services
from django_plugipay.accounts import acting_for
from django_plugipay.client import get_client
from django_plugipay.exceptions import TransientError
from django_plugipay.models import CheckoutSession, LedgerEntry, Payout, Receipt
from django_plugipay.services import payouts
from django_plugipay.services.payouts import ledger_is_balanced
from tests.test_money_out import BANK

OPTIONS = {"success_url": "https://shop.test/ok", "cancel_url": "https://shop.test/no"}


def issued(signal_log):
    return [ident for name, ident in signal_log if name == "receipt_issued"]


def test_a_receipt_arrives_when_the_session_completes(plugipay_sandbox, signal_log):
    payment = plugipay_sandbox.paid_payment(amount=111_000)
    receipt = Receipt.objects.get(source_id=payment.checkout_session.plugipay_id)
    assert receipt.payment == payment and receipt.amount == 111_000
    assert issued(signal_log) == [receipt.plugipay_id]
    # a later sync (or the list sync of plugipay_sync --money) sends nothing again
    services.sync_receipts()
    services.sync_receipts(source_id=payment.checkout_session.plugipay_id)
    assert issued(signal_log) == [receipt.plugipay_id]


def test_shuffled_and_duplicated_deliveries_issue_each_receipt_once(plugipay_sandbox, signal_log):
    plugipay_sandbox.hold()
    sessions = []
    for amount in (10_000, 20_000, 30_000):
        session = services.create_checkout_session(amount=amount, currency="IDR", **OPTIONS)
        plugipay_sandbox.pay(session, deliver=False)
        sessions.append(session.plugipay_id)
    assert plugipay_sandbox.release(order="shuffle", duplicate=3) > 0
    plugipay_sandbox.flush()
    receipts = Receipt.objects.filter(source_id__in=sessions)
    assert sorted(receipts.values_list("source_id", flat=True)) == sorted(sessions)
    assert sorted(issued(signal_log)) == sorted(receipts.values_list("plugipay_id", flat=True))
    services.reconcile()
    services.sweep()
    assert Receipt.objects.count() == 3 and len(issued(signal_log)) == 3


def test_a_lost_receipt_sync_is_taken_over_by_the_sweeper(
    plugipay_sandbox, signal_log, monkeypatch
):
    monkeypatch.setattr(payouts, "sync_receipts_soon", lambda source_id: None)
    payment = plugipay_sandbox.paid_payment(amount=50_000)
    source = payment.checkout_session.plugipay_id
    assert not Receipt.objects.filter(source_id=source).exists()
    assert services.sweep()["receipts"] == 0  # too fresh: its own sync may still come
    CheckoutSession.objects.filter(plugipay_id=source).update(
        completed_at=timezone.now() - dt.timedelta(hours=1)
    )
    assert services.sweep()["receipts"] == 1
    assert services.sweep()["receipts"] == 0
    receipt = Receipt.objects.get(source_id=source)
    assert issued(signal_log) == [receipt.plugipay_id]


def test_without_sync_receipts_nothing_mirrors_money_by_itself(plugipay_sandbox, settings):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "SYNC_RECEIPTS": False}
    payment = plugipay_sandbox.paid_payment(amount=40_000)
    CheckoutSession.objects.filter(pk=payment.checkout_session.pk).update(
        completed_at=timezone.now() - dt.timedelta(hours=1)
    )
    assert services.sweep()["receipts"] == 0
    assert "ledger" not in services.reconcile().synced
    assert not Receipt.objects.exists() and not LedgerEntry.objects.exists()
    assert len(services.sync_receipts()) == 1  # asked for, it still works


def test_the_sweeper_stops_asking_for_receipts_while_plugipay_is_unreachable(
    plugipay_sandbox, monkeypatch
):
    monkeypatch.setattr(payouts, "sync_receipts_soon", lambda source_id: None)
    for amount in (10_000, 20_000, 30_000):
        plugipay_sandbox.paid_payment(amount=amount)
    CheckoutSession.objects.update(completed_at=timezone.now() - dt.timedelta(hours=1))
    asked = []

    def unreachable(*, source_id=None, **kwargs):
        asked.append(source_id)
        raise TransientError("Could not reach Plugipay.")

    monkeypatch.setattr(payouts, "sync_receipts", unreachable)
    assert payouts.sync_missing_receipts() == 0
    assert len(asked) == 1  # not once per source, each with its retries


def test_reconciliation_mirrors_the_ledger_and_receipts(plugipay_sandbox, monkeypatch):
    monkeypatch.setattr(payouts, "sync_receipts_soon", lambda source_id: None)
    plugipay_sandbox.paid_payment(amount=100_000)
    assert not LedgerEntry.objects.exists() and not Receipt.objects.exists()
    result = services.reconcile()
    assert result.synced["ledger"] == LedgerEntry.objects.count() > 0
    assert result.synced["receipts"] == Receipt.objects.count() == 1
    assert ledger_is_balanced(LedgerEntry.objects.all()) == {}
    assert "ledger" not in services.reconcile().synced  # the cursor: nothing new


def test_money_out_stays_in_its_account(two_accounts, signal_log):
    sandbox, _secret = two_accounts
    for account, amount in (("default", 100_000), ("merchant", 300_000)):
        with_account = {"account": account}
        session = services.create_checkout_session(
            amount=amount, currency="IDR", **OPTIONS, **with_account
        )
        sandbox.pay(session)
        with acting_for(account):
            get_client().request("PATCH", "/payouts/bank-account", json_body=BANK)
    default, merchant = services.balance(), services.balance(account="merchant")
    assert 0 < default.available < 100_000 < 200_000 < merchant.available < 300_000
    payout = services.create_payout(amount=150_000, account="merchant")
    assert payout.account.alias == "merchant"
    assert services.balance().available == default.available
    assert services.balance(account="merchant").available == merchant.available - 150_000
    services.mark_payout(payout=payout, status="in_transit")
    services.mark_payout(payout=payout, status="paid")
    sandbox.flush()
    assert Payout.objects.get().account.alias == "merchant"
    assert [n for n, ident in signal_log if ident == payout.plugipay_id] == ["payout_paid"]
    # receipts came by themselves, each in its account
    receipts = {r.account.alias: r for r in Receipt.objects.select_related("account")}
    assert sorted(receipts) == ["default", "merchant"]
    assert (receipts["default"].amount, receipts["merchant"].amount) == (100_000, 300_000)
    assert sorted(issued(signal_log)) == sorted(r.plugipay_id for r in receipts.values())
    # the ledger of each account, mirrored into that account, balances on its own
    assert services.sync_ledger() > 0 and services.sync_ledger(account="merchant") > 0
    for alias in ("default", "merchant"):
        entries = LedgerEntry.objects.filter(account__alias=alias)
        assert entries.exists() and ledger_is_balanced(entries) == {}
    merchant_sources = set(
        LedgerEntry.objects.filter(account__alias="merchant").values_list("source_id", flat=True)
    )
    assert payout.plugipay_id in merchant_sources
    assert receipts["merchant"].source_id in merchant_sources
    default_sources = set(
        LedgerEntry.objects.filter(account__alias="default").values_list("source_id", flat=True)
    )
    assert not default_sources & merchant_sources
    cash = LedgerEntry.objects.filter(account__alias="merchant", code="cash")
    net = sum(e.amount if e.direction == "debit" else -e.amount for e in cash)
    assert net == services.balance(account="merchant").ledger_balance


def fund_both(sandbox):
    for account, amount in (("default", 100_000), ("merchant", 300_000)):
        session = services.create_checkout_session(
            amount=amount, currency="IDR", account=account, **OPTIONS
        )
        sandbox.pay(session)
        with acting_for(account):
            get_client().request("PATCH", "/payouts/bank-account", json_body=BANK)


def test_the_admins_new_payout_asks_which_account(two_accounts, client):
    from django.urls import reverse

    from django_plugipay.models import Account
    from tests.test_money_admin import staff, token_of

    sandbox, _secret = two_accounts
    fund_both(sandbox)
    merchant = Account.objects.get(alias="merchant")
    own = services.balance().formatted()["available"]
    theirs = services.balance(account="merchant").formatted()["available"]
    client.force_login(staff("manage_payout"))
    payouts_list = reverse("admin:django_plugipay_payout_changelist")
    listed = client.get(payouts_list).content.decode()
    assert own in listed and theirs not in listed  # the default account's balance
    filtered = client.get(payouts_list, {"account__id__exact": merchant.pk}).content.decode()
    assert theirs in filtered and f"?account={merchant.pk}" in filtered
    url = reverse("admin:django_plugipay_payout_new")
    page = client.get(url).content.decode()
    assert 'name="account"' in page and own in page and theirs not in page
    chosen = client.get(url, {"account": merchant.pk})
    assert theirs in chosen.content.decode()
    token = token_of(chosen)
    form = {"amount": "150000", "plugipay_token": token, "account": merchant.pk}
    review = client.post(url, {**form, "stage": "review"})  # over the default's balance
    assert "Merchant" in review.content.decode() and "Yes, pay out" in review.content.decode()
    assert client.post(url, {**form, "stage": "confirm"}).status_code == 302
    payout = Payout.objects.get()
    assert payout.account == merchant and payout.amount == 150_000
    assert services.balance(account="merchant").locked == 150_000
    assert services.balance().locked == 0


def test_one_account_gets_no_account_choice(plugipay_sandbox, client):
    from django.urls import reverse

    from tests.test_money_admin import staff

    client.force_login(staff("manage_payout"))
    page = client.get(reverse("admin:django_plugipay_payout_new")).content.decode()
    assert 'name="account"' not in page
    listed = client.get(reverse("admin:django_plugipay_payout_changelist")).content.decode()
    assert "plugipay-balance-account" not in listed


def test_the_example_shop_emails_the_receipt_pdf_once_though_smtp_failed_first(
    plugipay_sandbox,
    durable,
    mailoutbox,
    monkeypatch,
    settings,
    request,
):
    import sys
    from pathlib import Path
    from smtplib import SMTPServerDisconnected

    from django.core.mail import EmailMessage

    from django_plugipay import signals
    from django_plugipay.models import Delivery

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "example_project"))
    request.addfinalizer(lambda: [sys.modules.pop(n, None) for n in ("shop.receipt_mail", "shop")])
    from shop.receipt_mail import MESSAGE_DOMAIN, email_receipt_document

    settings.PLUGIPAY = {**settings.PLUGIPAY, "DELIVERY_BACKOFF": 0}
    durable(signals.receipt_issued, email_receipt_document, name="shop.email_receipt_document")
    attempts = []
    send = EmailMessage.send

    def smtp_down_once(message, *args, **kwargs):
        attempts.append(message.extra_headers["Message-ID"])
        if len(attempts) == 1:
            raise SMTPServerDisconnected("Connection unexpectedly closed")
        return send(message, *args, **kwargs)

    monkeypatch.setattr(EmailMessage, "send", smtp_down_once)
    customer = services.create_customer(email="pembeli@example.com", name="Pembeli")
    payment = plugipay_sandbox.paid_payment(amount=111_000, customer=customer)
    receipt = Receipt.objects.get(source_id=payment.checkout_session.plugipay_id)
    delivery = Delivery.objects.get(signal="receipt_issued")
    assert delivery.status == "failed" and "SMTPServerDisconnected" in delivery.last_error
    assert mailoutbox == []
    services.run_deliveries(force=True)
    services.run_deliveries(force=True)
    services.sync_receipts()
    services.reconcile()
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == ["pembeli@example.com"] and receipt.number in mail.subject
    [(filename, content, mimetype)] = mail.attachments
    assert filename == f"{receipt.number}.pdf" and mimetype == "application/pdf"
    assert content.startswith(b"%PDF")
    delivery.refresh_from_db()
    assert delivery.status == "succeeded"
    # both attempts carried the same Message-ID, made from the delivery's key
    assert attempts == [f"<{delivery.key}@{MESSAGE_DOMAIN}>"] * 2


def test_a_paid_invoices_receipt_arrives_and_staff_open_it_by_the_invoice_id(
    plugipay_sandbox, signal_log, client
):
    from django.contrib.auth.models import Permission
    from django.urls import reverse

    from tests.factories import UserFactory
    from tests.test_billing import buyer, make_price

    _user, customer = buyer()
    invoice = services.subscribe(customer=customer, price=make_price(trial_days=0)).invoice
    plugipay_sandbox.pay_invoice(invoice)
    receipt = Receipt.objects.get(source_id=invoice.plugipay_id)
    assert receipt.source_type == "invoice" and receipt.invoice == invoice
    assert issued(signal_log) == [receipt.plugipay_id]
    receipts_only = UserFactory(is_staff=True)
    receipts_only.user_permissions.add(Permission.objects.get(codename="view_receipt"))
    client.force_login(receipts_only)  # no permission on invoices
    url = reverse("plugipay:receipt_document", args=[invoice.plugipay_id])
    pdf = client.get(url)
    assert pdf.status_code == 200 and b"".join(pdf.streaming_content).startswith(b"%PDF")
    client.force_login(UserFactory(is_staff=True))
    assert client.get(url).status_code == 404


def test_an_idempotency_key_is_the_accounts_own(two_accounts):
    sandbox, _secret = two_accounts
    fund_both(sandbox)
    theirs = services.create_payout(amount=10_000, idempotency_key="k-1", account="merchant")
    ours = services.create_payout(amount=10_000, idempotency_key="k-1")  # the default account
    assert not ours.replayed and ours.pk != theirs.pk
    assert (ours.account.alias, theirs.account.alias) == ("default", "merchant")
    again = services.create_payout(amount=10_000, idempotency_key="k-1", account="merchant")
    assert again.replayed and again.pk == theirs.pk


class _Later:
    """``django.utils.timezone`` as the payouts service sees it ``days`` from now."""

    def __init__(self, days: float) -> None:
        self.days = days

    def __getattr__(self, name):
        return getattr(timezone, name)

    def now(self):
        return timezone.now() + dt.timedelta(days=self.days)


def test_the_first_receipts_sync_does_not_announce_receipts_issued_long_ago(
    plugipay_sandbox, signal_log, settings, monkeypatch
):
    """A shop live on Plugipay before it synced receipts (an upgrade, or ``SYNC_RECEIPTS``
    turned on later): the first sync mirrors every receipt Plugipay issued, but sends
    ``receipt_issued`` only for those of the last day, so a receiver that e-mails receipts
    does not mail every past buyer again. Later syncs announce each new receipt."""
    settings.PLUGIPAY = {**settings.PLUGIPAY, "SYNC_RECEIPTS": False}  # before the upgrade
    for amount in (10_000, 20_000):
        plugipay_sandbox.paid_payment(amount=amount)
    settings.PLUGIPAY = {**settings.PLUGIPAY, "SYNC_RECEIPTS": True}
    monkeypatch.setattr(payouts, "timezone", _Later(30))
    services.sync_receipts()
    assert Receipt.objects.count() == 2 and issued(signal_log) == []
    monkeypatch.undo()
    monkeypatch.setattr(payouts, "sync_receipts_soon", lambda source_id: None)
    plugipay_sandbox.paid_payment(amount=30_000)
    [new] = services.sync_receipts()
    assert issued(signal_log) == [new.plugipay_id]


def test_a_ledger_sync_since_a_moment_leaves_the_cursor_where_it_was(plugipay_sandbox):
    """``sync_ledger(since=…)`` reads the entries posted since that moment and leaves the
    cursor alone: entries between the cursor and that moment, which it did not read, are
    mirrored by the next sync."""
    plugipay_sandbox.paid_payment(amount=10_000)
    assert services.sync_ledger() > 0
    plugipay_sandbox.paid_payment(amount=20_000)
    between = {e["id"] for e in get_client().list_ledger_entries(order="desc", limit=100)}
    between -= set(LedgerEntry.objects.values_list("plugipay_id", flat=True))
    plugipay_sandbox.advance(3600)
    plugipay_sandbox.paid_payment(amount=30_000)
    newest = next(iter(get_client().list_ledger_entries(order="desc", limit=100)))
    services.sync_ledger(since=datetimes.parse(newest["postedAt"]) - dt.timedelta(minutes=1))
    services.sync_ledger()
    mirrored = set(LedgerEntry.objects.values_list("plugipay_id", flat=True))
    assert between and between <= mirrored, sorted(between - mirrored)


@pytest.mark.django_db
def test_a_receipt_without_a_ppn_split_is_all_subtotal():
    """Plugipay splits a receipt into ``subtotal`` and ``taxAmount`` only with PPN
    configured; without the split the whole amount is the subtotal, so the two add up to the
    total as on a receipt with PPN."""
    from django_plugipay.resources.money import RECEIPT
    from django_plugipay.services.apply import advance

    plain = {"id": "rcpt_plain", "sourceType": "checkout_session", "sourceId": "cs_plain"}
    receipt = advance(RECEIPT, {**plain, "amount": 50_000, "currency": "IDR"})
    receipt.refresh_from_db()
    assert (receipt.amount, receipt.subtotal, receipt.tax_amount) == (50_000, 50_000, 0)


def test_a_lost_receipt_of_an_account_that_mirrors_receipts_is_announced_when_found(
    plugipay_sandbox, signal_log, monkeypatch
):
    """An account that has mirrored receipts all along (each after its session completed):
    one receipt's sync was lost and the sweeper's day has passed; the first full sync that
    finds it announces it, as every other one was (it is no upgrade)."""
    plugipay_sandbox.paid_payment(amount=10_000)
    assert len(issued(signal_log)) == 1
    monkeypatch.setattr(payouts, "sync_receipts_soon", lambda source_id: None)  # lost
    plugipay_sandbox.paid_payment(amount=20_000)
    monkeypatch.setattr(payouts, "timezone", _Later(2))
    services.sync_receipts()
    lost = Receipt.objects.exclude(plugipay_id__in=issued(signal_log)[:1]).get()
    assert issued(signal_log)[1:] == [lost.plugipay_id]


def test_receipts_after_an_empty_first_sync_are_announced(
    plugipay_sandbox, signal_log, monkeypatch
):
    """A new account's first full sync finds no receipt; receipts issued after it are
    announced by a later sync, however long after (that sync is not the first)."""
    monkeypatch.setattr(payouts, "sync_receipts_soon", lambda source_id: None)
    assert services.sync_receipts() == []
    plugipay_sandbox.paid_payment(amount=20_000)
    monkeypatch.setattr(payouts, "timezone", _Later(3))
    [new] = services.sync_receipts()
    assert issued(signal_log) == [new.plugipay_id]
