"""Money out over the sandbox: balance, payouts, the mirrored ledger and receipts."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import Sum
from django.utils import timezone

from django_plugipay import services, signals
from django_plugipay.client import get_client
from django_plugipay.exceptions import APIError, PayoutError, TransientError
from django_plugipay.models import Delivery, LedgerEntry, Payout, Receipt, SyncCursor
from django_plugipay.services import payouts
from django_plugipay.services.payouts import ledger_is_balanced

BANK = {
    "bankCode": "BCA",
    "bankName": "Bank Central Asia",
    "accountNumber": "8801234567",
    "accountHolder": "Toko Contoh",
}


def save_bank_account(number=BANK["accountNumber"]):
    get_client().request(
        "PATCH", "/payouts/bank-account", json_body={**BANK, "accountNumber": number}
    )


def count(log, name):
    return [n for n, _ in log].count(name)


def api_ledger_balances():
    rows, _meta = get_client().request("GET", "/ledger/balances")
    return {row["code"]: (row["debits"], row["credits"]) for row in rows}


def mirrored_ledger_balances():
    totals = {}
    for code in LedgerEntry.objects.values_list("code", flat=True).distinct():
        entries = LedgerEntry.objects.filter(code=code)
        debits = entries.filter(direction="debit").aggregate(s=Sum("amount"))["s"] or 0
        credits = entries.filter(direction="credit").aggregate(s=Sum("amount"))["s"] or 0
        totals[code] = (debits, credits)
    return totals


def mirrored_cash():
    debits, credits = mirrored_ledger_balances().get("cash", (0, 0))
    return debits - credits


def test_a_payment_a_partial_refund_and_a_payout_move_balance_and_ledger(
    plugipay_sandbox, signal_log
):
    payment = plugipay_sandbox.paid_payment(amount=100_000)
    refund = services.refund_payment(payment=payment, amount=30_000, reason="duplicate")
    plugipay_sandbox.flush()
    refund.refresh_from_db()
    assert refund.status == "succeeded"
    save_bank_account()
    before = services.balance()
    payout = services.create_payout(amount=40_000, note="Mingguan")
    assert payout.status == "pending" and payout.plugipay_id.startswith("po_")
    assert payout.bank_account_last4 == "4567" and payout.masked_account.endswith("••••4567")
    during = services.balance()
    assert during.locked == 40_000 and during.available == before.available - 40_000
    services.mark_payout(payout=payout, status="in_transit", reference="TRF-1")
    paid = services.mark_payout(payout=payout, status="paid", reference="TRF-1")
    assert paid.status == "paid" and paid.completed_at is not None
    plugipay_sandbox.flush()

    assert services.sync_ledger() > 0
    assert services.sync_ledger() == 0  # the cursor: nothing new
    after = services.balance()
    # the mirror says what Plugipay says: per code, and the balance is the cash account
    assert mirrored_ledger_balances() == api_ledger_balances()
    assert mirrored_cash() == after.ledger_balance == before.ledger_balance - 40_000
    assert after.locked == 0 and after.available == after.ledger_balance
    fee = 100_000 - 30_000 - before.ledger_balance
    assert fee > 0  # the sandbox's card fee
    assert ledger_is_balanced(LedgerEntry.objects.all()) == {}
    assert set(LedgerEntry.objects.values_list("source_type", flat=True)) == {
        "checkout_session",
        "refund",
        "payout",
    }
    outflow = LedgerEntry.objects.get(source_id=payout.plugipay_id, code="payout")
    assert (outflow.direction, outflow.amount) == ("debit", 40_000)
    assert count(signal_log, "payout_paid") == 1


@pytest.mark.parametrize("route", ["services", "webhooks"])
def test_payout_events_shuffled_and_duplicated_fire_each_signal_once(
    plugipay_sandbox, signal_log, route
):
    plugipay_sandbox.paid_payment(amount=500_000)
    save_bank_account()
    client = get_client()
    plugipay_sandbox.hold()
    ids = {}
    for outcome in ("paid", "failed", "canceled"):
        if route == "services":
            payout = services.create_payout(amount=10_000)
            if outcome == "canceled":
                services.cancel_payout(payout=payout)
            else:
                services.mark_payout(payout=payout, status="in_transit")
                extra = {"failure_reason": "Rekening ditutup"} if outcome == "failed" else {}
                services.mark_payout(payout=payout, status=outcome, **extra)
            ids[outcome] = payout.plugipay_id
        else:  # only the webhooks bring the news
            remote = client.create_payout({"amount": 10_000})
            if outcome == "canceled":
                client.cancel_payout(remote["id"])
            else:
                client.payout_action(remote["id"], "mark-in-transit", {})
                body = {"failureReason": "Rekening ditutup"} if outcome == "failed" else {}
                client.payout_action(remote["id"], f"mark-{outcome}", body)
            ids[outcome] = remote["id"]
    assert plugipay_sandbox.release(order="shuffle", duplicate=3) > 0
    plugipay_sandbox.flush()
    for outcome, plugipay_id in ids.items():
        row = Payout.objects.get(plugipay_id=plugipay_id)
        assert row.status == outcome
        assert [name for name, ident in signal_log if ident == plugipay_id] == [f"payout_{outcome}"]
    assert Payout.objects.get(plugipay_id=ids["failed"]).failure_reason == "Rekening ditutup"
    assert Payout.objects.count() == 3


def test_a_durable_receiver_of_payout_paid_runs_once(plugipay_sandbox, durable):
    runs = []
    durable(
        signals.payout_paid,
        lambda sender, instance, event, delivery, **kw: runs.append(instance.plugipay_id),
        name="tests.money.payout_paid",
    )
    plugipay_sandbox.paid_payment(amount=100_000)
    save_bank_account()
    payout = services.create_payout(amount=10_000)
    services.mark_payout(payout=payout, status="in_transit")
    services.mark_payout(payout=payout, status="paid")
    plugipay_sandbox.flush()
    services.run_deliveries(force=True)
    assert runs == [payout.plugipay_id]
    assert Delivery.objects.get(signal="payout_paid").status == "succeeded"


def test_over_the_available_balance_is_refused_and_nothing_is_created(plugipay_sandbox):
    plugipay_sandbox.paid_payment(amount=100_000)
    save_bank_account()
    available = services.balance().available
    with pytest.raises(PayoutError) as refused:
        services.create_payout(amount=available + 1)
    assert refused.value.code == "insufficient_balance" and refused.value.field == "amount"
    assert "available balance" in refused.value.message
    with pytest.raises(PayoutError):
        services.create_payout(amount=0)
    assert not Payout.objects.exists()
    listed, _meta = get_client().request("GET", "/payouts")
    assert listed == []
    assert services.create_payout(amount=available).status == "pending"  # all of it is fine


def test_manual_transitions_and_their_409s(plugipay_sandbox, signal_log):
    plugipay_sandbox.paid_payment(amount=200_000)
    save_bank_account()
    payout = services.create_payout(amount=10_000)
    with pytest.raises(APIError) as early:
        services.mark_payout(payout=payout, status="paid")
    assert early.value.status == 409 and early.value.code == "invalid_transition"
    with pytest.raises(PayoutError):
        services.mark_payout(payout=payout, status="canceled")
    with pytest.raises(PayoutError):
        services.mark_payout(payout=payout, status="failed")  # no reason
    moved = services.mark_payout(payout=payout, status="in_transit", reference="TRF-9")
    assert moved.status == "in_transit" and moved.reference == "TRF-9" and moved.processed_at
    with pytest.raises(APIError) as late:
        services.cancel_payout(payout=moved)
    assert late.value.status == 409
    failed = services.mark_payout(payout=moved, status="failed", failure_reason="Ditolak bank")
    assert failed.status == "failed"
    with pytest.raises(APIError) as terminal:
        services.mark_payout(payout=failed, status="paid")
    assert terminal.value.status == 409
    failed.refresh_from_db()
    assert failed.status == "failed"
    assert signal_log.names().count("payout_failed") == 1
    assert services.balance().locked == 0  # the failed payout's money is back


def test_a_disbursement_moves_by_itself_and_reconciliation_brings_it(plugipay_sandbox, signal_log):
    plugipay_sandbox.paid_payment(amount=200_000)
    save_bank_account()
    plugipay_sandbox.http.post(
        f"{plugipay_sandbox.base_url}/_sandbox/money/settings",
        json={"payoutMethod": "xendit_disbursement"},
        timeout=30,
    ).raise_for_status()
    plugipay_sandbox.hold()  # no webhook reaches the app: reconciliation must find it
    payout = services.create_payout(amount=10_000)
    assert payout.method == "xendit_disbursement"
    with pytest.raises(APIError) as manual:
        services.mark_payout(payout=payout, status="in_transit")
    assert manual.value.status == 409
    plugipay_sandbox.advance(120)
    services.reconcile()
    payout.refresh_from_db()
    assert payout.status == "paid"
    assert signal_log.names().count("payout_paid") == 1
    plugipay_sandbox.release(order="shuffle", duplicate=3)
    plugipay_sandbox.flush()
    assert signal_log.names().count("payout_paid") == 1


def test_receipts_are_synced_once_with_their_links(plugipay_sandbox, signal_log):
    payment = plugipay_sandbox.paid_payment(amount=111_000)
    plugipay_sandbox.http.post(
        f"{plugipay_sandbox.base_url}/_sandbox/money/settings",
        json={"taxEnabled": True, "taxId": "01.234.567.8-901.000"},
        timeout=30,
    ).raise_for_status()
    taxed = plugipay_sandbox.paid_payment(amount=111_000)
    synced = services.sync_receipts()
    assert len(synced) == 2
    assert services.sync_receipts() == []
    receipt = Receipt.objects.get(payment=taxed)
    assert (receipt.amount, receipt.subtotal, receipt.tax_amount) == (111_000, 100_000, 11_000)
    assert receipt.customer == taxed.customer and receipt.number.startswith("RCPT-")
    untaxed = Receipt.objects.get(payment=payment)
    assert untaxed.tax_amount == 0 and untaxed.subtotal == 111_000
    assert count(signal_log, "receipt_issued") == 2
    document = services.receipt_document(receipt=receipt, format="pdf")
    with document:
        assert document.content.startswith(b"%PDF")
    with services.receipt_document(receipt=receipt, format="html") as page:
        assert b"RCPT-" in page.content
    emailed = services.email_receipt(receipt=receipt, to="pembeli@example.com")
    assert emailed.emailed_at is not None
    assert count(signal_log, "receipt_issued") == 2


def test_ledger_entries_are_immutable_mirrors(plugipay_sandbox):
    plugipay_sandbox.paid_payment(amount=50_000)
    services.sync_ledger()
    entry = LedgerEntry.objects.first()
    assert entry is not None and entry.tx_id.startswith("ltx_")
    assert services.sync_ledger(since=entry.posted_at) >= 1  # read again: stored once
    assert LedgerEntry.objects.filter(plugipay_id=entry.plugipay_id).count() == 1


def test_plugipay_sync_money_mirrors_the_ledger_and_receipts_since_its_last_run(
    plugipay_sandbox, signal_log
):
    from io import StringIO

    from django.core.management import call_command

    plugipay_sandbox.paid_payment(amount=40_000)
    out = StringIO()
    call_command("plugipay_sync", "--money", stdout=out)
    entries = LedgerEntry.objects.count()
    assert entries > 0 and Receipt.objects.count() == 1
    assert f"ledger entries synced: {entries}; receipts synced: 1." in out.getvalue()
    call_command("plugipay_sync", "--money", stdout=out)
    assert "ledger entries synced: 0; receipts synced: 0." in out.getvalue()
    assert count(signal_log, "receipt_issued") == 1


def test_plugipay_sync_money_dry_run_only_reads(plugipay_sandbox, signal_log, monkeypatch):
    """``plugipay_sync --money --dry-run`` says what a sync would mirror and changes
    nothing: no row, no cursor moved, no ``receipt_issued``; the sync after it mirrors it."""
    from io import StringIO

    from django.core.management import call_command

    monkeypatch.setattr(payouts, "sync_receipts_soon", lambda source_id: None)
    plugipay_sandbox.paid_payment(amount=40_000)
    out = StringIO()
    call_command("plugipay_sync", "--money", "--dry-run", stdout=out)
    assert not LedgerEntry.objects.exists() and not Receipt.objects.exists()
    assert not SyncCursor.objects.exclude(last_event_id="").exists()
    assert count(signal_log, "receipt_issued") == 0
    waiting = services.unsynced_money()
    assert waiting["ledger"] > 0 and waiting["receipts"] == 1
    assert f"would be synced: {waiting['ledger']}; receipts: 1." in out.getvalue()
    call_command("plugipay_sync", "--money", stdout=out)
    assert LedgerEntry.objects.count() == waiting["ledger"] and Receipt.objects.count() == 1


# ── a payout whose create answer was lost ─────────────────────────────────────


@pytest.fixture
def funded(plugipay_sandbox, settings, monkeypatch):
    """A funded account, the client's retries off, and the balance read once: the fault
    below is for the create call alone (the balance shares the /payouts prefix)."""
    from django_plugipay.services import payouts

    plugipay_sandbox.paid_payment(amount=250_000)
    save_bank_account()
    settings.PLUGIPAY = {**settings.PLUGIPAY, "MAX_RETRIES": 0}
    funds = services.balance()
    monkeypatch.setattr(payouts, "balance", lambda **kw: funds)
    return funds


def lose_the_answer(sandbox, amount):
    """A payout Plugipay made whose answer never came back: the row has no Plugipay id."""
    sandbox.fault("drop_after_commit", count=1, path_prefix="/api/v1/payouts")
    with pytest.raises(TransientError):
        services.create_payout(amount=amount)
    row = Payout.objects.get(plugipay_id=None)  # (its webhook may have brought a row of its own)
    assert row.submitted_at is not None
    return row


def remote_payouts(sandbox):
    return [(p["id"], p["status"]) for p in sandbox.state().get("payouts", [])]


def a_day_later(sandbox, monkeypatch):
    """Both clocks 25 h on: past Plugipay's idempotency window."""
    later = timezone.now() + dt.timedelta(hours=25)
    sandbox.advance(25 * 3600)
    monkeypatch.setattr(timezone, "now", lambda: later)


def test_a_payout_whose_answer_was_lost_is_linked_by_a_later_sync_and_made_once(
    plugipay_sandbox, funded
):
    row = lose_the_answer(plugipay_sandbox, 70_000)
    synced = services.sync_object(row)  # within the window: sent again with its key
    [(made, status)] = remote_payouts(plugipay_sandbox)
    # one row (the webhook's, if it came first, takes the key): linked to the one payout
    [local] = Payout.objects.values_list("plugipay_id", "idempotency_key", "status")
    assert local == (made, row.idempotency_key, "pending") and synced.plugipay_id == made


def test_past_the_idempotency_window_a_lost_payout_is_looked_for_never_sent_again(
    plugipay_sandbox, funded, monkeypatch
):
    services.create_payout(amount=70_000)  # another payout of the same amount, linked here
    row = lose_the_answer(plugipay_sandbox, 70_000)
    a_day_later(plugipay_sandbox, monkeypatch)
    synced = services.sync_object(row)
    remote = dict(remote_payouts(plugipay_sandbox))
    assert len(remote) == 2, remote  # nothing sent again
    mine = Payout.objects.get(idempotency_key=row.idempotency_key)
    other = Payout.objects.exclude(idempotency_key=row.idempotency_key).get()
    assert Payout.objects.count() == 2 and not Payout.objects.filter(plugipay_id=None).exists()
    assert synced.plugipay_id == mine.plugipay_id != other.plugipay_id
    assert {mine.plugipay_id, other.plugipay_id} == set(remote)


def test_past_the_window_a_payout_plugipay_never_made_is_marked_failed_and_not_sent(
    plugipay_sandbox, funded, monkeypatch, caplog
):
    # sent (the request never arrived), its answer never came
    row = Payout.objects.create(
        amount=60_000, idempotency_key="payout_x", submitted_at=timezone.now()
    )
    a_day_later(plugipay_sandbox, monkeypatch)
    failed = services.submit_payout(row)
    assert remote_payouts(plugipay_sandbox) == []
    assert (failed.status, failed.failure_code) == ("failed", "not_at_plugipay")
    assert "not made at Plugipay" in caplog.text
    with pytest.raises(PayoutError):  # failed is terminal: never sent after
        services.submit_payout(failed)
    assert remote_payouts(plugipay_sandbox) == []


def test_a_retry_plugipay_refuses_marks_the_payout_failed_and_keeps_the_row(
    plugipay_sandbox, funded
):
    row = Payout.objects.create(amount=funded.available + 1, idempotency_key="payout_y")
    refused = services.submit_payout(row)
    assert Payout.objects.filter(pk=row.pk).exists()
    assert (refused.status, refused.failure_code) == ("failed", "insufficient_balance")


def test_a_canceled_payout_is_never_sent(plugipay_sandbox, funded):
    row = Payout.objects.create(amount=60_000, idempotency_key="payout_z")
    assert services.cancel_payout(payout=row).status == "canceled"  # never sent: here only
    with pytest.raises(PayoutError) as refused:
        services.submit_payout(row)
    assert refused.value.code == "not_pending"
    services.sync_object(row)
    assert remote_payouts(plugipay_sandbox) == []


def test_canceling_a_payout_whose_answer_was_lost_cancels_it_at_plugipay(
    plugipay_sandbox, funded, signal_log
):
    row = lose_the_answer(plugipay_sandbox, 50_000)
    canceled = services.cancel_payout(payout=row)
    [(made, status)] = remote_payouts(plugipay_sandbox)
    assert (canceled.plugipay_id, canceled.status, status) == (made, "canceled", "cancelled")
    assert get_client().request("GET", "/payouts/balance")[0]["locked"] == 0
    assert count(signal_log, "payout_canceled") == 1


def test_canceling_a_lost_payout_past_the_window_finds_it_and_cancels_it_there(
    plugipay_sandbox, funded, monkeypatch
):
    row = lose_the_answer(plugipay_sandbox, 50_000)
    a_day_later(plugipay_sandbox, monkeypatch)
    canceled = services.cancel_payout(payout=row)
    [(made, status)] = remote_payouts(plugipay_sandbox)
    assert (canceled.plugipay_id, canceled.status, status) == (made, "canceled", "cancelled")


def test_a_replayed_idempotency_key_with_other_parameters_is_refused(plugipay_sandbox, funded):
    first = services.create_payout(amount=10_000, note="Mingguan", idempotency_key="k-2")
    again = services.create_payout(amount=10_000, note="Mingguan", idempotency_key="k-2")
    assert again.replayed and again.pk == first.pk
    for changed in ({"amount": 11_000}, {"note": "Bulanan"}, {"currency": "USD"}):
        request = {"amount": 10_000, "note": "Mingguan", **changed}
        with pytest.raises(PayoutError) as refused:
            services.create_payout(idempotency_key="k-2", **request)
        assert refused.value.code == "idempotency_mismatch"
    assert len(remote_payouts(plugipay_sandbox)) == 1


@pytest.mark.parametrize(
    "one_off",
    [
        {
            "bank_code": "BNI",
            "bank_name": "Bank Negara Indonesia",
            "account_number": "9876543210",
            "account_holder": "Sari",
        },
        {
            "bankCode": "BNI",
            "bankName": "Bank Negara Indonesia",
            "bankAccountNumber": "9876543210",
            "bankAccountHolder": "Sari",
        },
    ],
    ids=["python", "sdk"],
)
def test_a_one_off_account_in_python_or_sdk_names_is_paid_not_the_saved_one(
    plugipay_sandbox, funded, one_off
):
    """``bank_account=`` written as Python names its fields, or as the SDKs do, pays that
    account: such keys were dropped, and the payout went to the saved account."""
    payout = services.create_payout(amount=10_000, bank_account=one_off)
    assert payout.one_off and payout.bank_code == "BNI"
    assert payout.bank_account_last4 == "3210"
    [remote] = [p for p in plugipay_sandbox.state()["payouts"] if p["id"] == payout.plugipay_id]
    assert remote["accountNumber"] == "9876543210" and remote["accountHolder"] == "Sari"


@pytest.mark.parametrize(
    ("one_off", "said"),
    [
        ({"bank": "BNI", "number": "9876543210"}, "Unknown bank account fields bank, number"),
        ({"accountNumber": "1", "account_number": "2"}, "given twice"),
        ({"accountNumber": " ", "bankCode": None}, "has no values"),
    ],
)
def test_a_one_off_account_that_cannot_be_read_is_refused_not_paid_to_the_saved_one(
    plugipay_sandbox, funded, one_off, said
):
    with pytest.raises(PayoutError, match=said) as refused:
        services.create_payout(amount=10_000, bank_account=one_off)
    assert refused.value.field == "bank_account"
    assert not Payout.objects.exists() and remote_payouts(plugipay_sandbox) == []
