"""The dashboard's money-out pages: Balance with "Pay out", Payouts with the manual
transitions, Ledger with filters and CSV, Receipts with the PDF — in English and Indonesian."""

import csv
import io

import pytest

from plugipay_sandbox.hosted import i18n
from plugipay_sandbox.state.money import fee_for
from tests.sandbox.test_dashboard import get, post, text
from tests.sandbox.test_hosted_i18n import Pages, english_words


def paid_session(control, session_factory, amount=500_000):
    session = session_factory(amount=amount)
    status, answer = control(
        "POST", f"checkout-sessions/{session['id']}/pay", {"card": "4242424242424242"}
    )
    assert status == 200, answer
    return session


BANK = {
    "bankCode": "BCA",
    "bankName": "Bank Central Asia",
    "accountNumber": "1234567890",
    "accountHolder": "Toko Sandbox",
}


def test_pay_out_and_move_a_manual_payout(sandbox, sdk, control, session_factory):
    paid_session(control, session_factory)
    available = 500_000 - fee_for("card", 500_000)
    page = text(get(sandbox, "balance"))
    assert f"IDR {available:,}" in page and "No bank account yet" in page
    refused = post(sandbox, "payouts", {"amount": "1000"})
    assert refused.status_code == 303 and "error=" in refused.headers["Location"]
    saved = post(sandbox, "balance/bank-account", BANK)
    assert saved.headers["Location"].endswith("done=bank_saved")
    assert "Bank Central Asia ···7890" in text(get(sandbox, "balance"))
    too_much = post(sandbox, "payouts", {"amount": str(available + 1)})
    assert "error=" in too_much.headers["Location"]
    created = post(sandbox, "payouts", {"amount": "100.000", "note": "weekly", "method": "manual"})
    location = created.headers["Location"]
    payout_id = location.split("/")[-1].split("?")[0]
    assert payout_id.startswith("po_") and location.endswith("done=paid_out")
    detail = text(get(sandbox, f"payouts/{payout_id}"))
    assert "IDR 100,000" in detail and "Mark in transit" in detail and "Cancel payout" in detail
    assert "Mark paid" not in detail
    assert f"IDR {available - 100_000:,}" in text(get(sandbox, "balance"))
    moved = post(sandbox, f"payouts/{payout_id}/mark-in-transit", {"reference": "TRF-9"})
    assert moved.headers["Location"].endswith("done=in_transit")
    assert "Mark paid" in text(get(sandbox, f"payouts/{payout_id}"))
    no_reason = post(sandbox, f"payouts/{payout_id}/mark-failed", {"failureReason": ""})
    assert "error=" in no_reason.headers["Location"]
    post(sandbox, f"payouts/{payout_id}/mark-paid", {})
    payout = sdk.payouts.get(payout_id).raw
    assert payout["status"] == "paid" and payout["reference"] == "TRF-9"
    again = post(sandbox, f"payouts/{payout_id}/cancel", {})
    assert "error=" in again.headers["Location"]
    listing = text(get(sandbox, "payouts", status="paid"))
    assert payout_id in listing and "Paid" in listing
    assert "No payouts yet." in text(get(sandbox, "payouts", status="failed"))


def test_ledger_page_filters_and_exports(sandbox, sdk, control, session_factory):
    session = paid_session(control, session_factory, 200_000)
    sdk.refunds.create(source_type="checkout_session", source_id=session["id"], amount=50_000)
    page = text(get(sandbox, "ledger"))
    assert "Revenue" in page and "Platform fees" in page and "Refunds" in page
    only_refunds = text(get(sandbox, "ledger", sourceType="refund"))
    assert "rfd_" in only_refunds and session["id"] not in only_refunds
    export = get(sandbox, "ledger.csv", code="cash")
    rows = list(csv.DictReader(io.StringIO(export)))
    assert {r["code"] for r in rows} == {"cash"} and len(rows) == 3


def test_receipts_page_opens_the_pdf(sandbox, control, session_factory):
    paid_session(control, session_factory, 111_000)
    control("POST", "money/settings", {"taxEnabled": True, "taxId": "01.234.567.8-901.000"})
    paid_session(control, session_factory, 222_000)
    page = get(sandbox, "receipts")
    assert "RCPT-000001" in page and "RCPT-000002" in page and "incl. PPN" in page
    href = page.split('href="/dashboard/receipts/')[1].split('"')[0]
    import requests

    document = requests.get(f"{sandbox.base_url}/dashboard/receipts/{href}", timeout=10)
    assert document.headers["Content-Type"] == "application/pdf"
    assert document.content.startswith(b"%PDF")
    missing = requests.get(f"{sandbox.base_url}/dashboard/receipts/rcpt_x/receipt.pdf", timeout=10)
    assert missing.status_code == 404


@pytest.fixture
def indonesian(sandbox):
    with i18n.recording_misses() as misses:
        found = Pages(sandbox.base_url)
        yield found
    assert sorted(misses) == [], "add these to plugipay_sandbox.hosted.i18n.ID"
    for path, page in found.seen:
        assert english_words(page) == [], path


def test_money_pages_are_indonesian(indonesian, sandbox, control, session_factory):
    paid_session(control, session_factory)
    control("POST", "money/settings", {"taxEnabled": True, "taxId": "01.234.567.8-901.000"})
    paid_session(control, session_factory, 111_000)
    indonesian("POST", "/dashboard/balance/bank-account", data=BANK)
    created = indonesian("POST", "/dashboard/payouts", data={"amount": "10000"})
    payout_path = created.url.split("?")[0].replace(sandbox.base_url, "")
    indonesian("POST", payout_path + "/mark-in-transit", data={"reference": "X"})
    receipt = indonesian.api("GET", "/receipts")[0]
    for path in (
        "/dashboard/balance",
        "/dashboard/balance?error=x",
        "/dashboard/payouts",
        "/dashboard/payouts?status=in_transit",
        payout_path,
        "/dashboard/ledger",
        "/dashboard/ledger?code=cash",
        "/dashboard/receipts",
        f"/dashboard/receipts/{receipt['id']}/receipt.html",
        "/dashboard/payouts/po_nope",
    ):
        indonesian("GET", path, expect=404 if path.endswith("po_nope") else 200)
    assert "Saldo" in indonesian("GET", "/dashboard/balance").text


def test_every_money_label_is_translated():
    from plugipay_sandbox.hosted import dashboard_money as pages

    texts = [
        *pages.METHOD_NAMES.values(),
        *pages.NOTICES.values(),
        *pages.CODE_LABELS.values(),
        *pages.SOURCE_LABELS.values(),
        *(text for action in pages.ACTIONS.values() for text in (action[1], action[3]) if text),
    ]
    assert [t for t in texts if t not in i18n.ID] == []
