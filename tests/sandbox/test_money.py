"""Money out, driven by the unmodified official SDK: ledger, balance, bank account, payouts,
reports."""

import csv
import io
import json

import plugipay
import pytest
import requests

from plugipay_sandbox.state.money import (
    DISBURSEMENT_IN_TRANSIT_AFTER,
    DISBURSEMENT_SETTLED_AFTER,
    FEE_BASIS_POINTS,
    fee_for,
    tax_of,
)


def pay(control, session, **body):
    status, answer = control("POST", f"checkout-sessions/{session['id']}/pay", body)
    assert status == 200, answer
    return answer["data"]


def card_payment(control, session_factory, amount):
    session = session_factory(amount=amount)
    pay(control, session, card="4242424242424242")
    return session


def all_entries(sdk, **filters):
    entries, cursor = [], None
    while True:
        page = sdk.ledger.list(limit=100, cursor=cursor, **filters)
        entries += [e.raw for e in page.data]
        if not page.has_more:
            return entries
        cursor = page.cursor


def balanced(entries):
    by_tx = {}
    for e in entries:
        by_tx.setdefault(e["txId"], 0)
        by_tx[e["txId"]] += e["amount"] if e["direction"] == "debit" else -e["amount"]
    return by_tx and all(total == 0 for total in by_tx.values())


def funded(control, session_factory, amount=1_000_000):
    """A card payment of ``amount``: the balance is the amount less the sandbox card fee."""
    card_payment(control, session_factory, amount)
    return amount - fee_for("card", amount)


def with_bank(sdk, number="1234567890"):
    return sdk.payouts.update_bank_account(
        bank_code="BCA",
        bank_name="Bank Central Asia",
        bank_account_number=number,
        bank_account_holder="Toko Sandbox",
    )


def test_fee_convention_rounds_half_up():
    assert fee_for("card", 100_000) == 2_900
    assert fee_for("qris", 150) == 1  # 1.05 → 1
    assert fee_for("manual", 100_000) == 0
    assert set(FEE_BASIS_POINTS) >= {"card", "va", "qris", "ewallet", "retail", "manual"}
    assert tax_of(111_000, 0.11) == 11_000


def test_payments_and_refunds_post_balanced_transactions(sdk, control, session_factory):
    session = card_payment(control, session_factory, 200_000)
    va = session_factory(amount=50_000)
    pay(control, va, method="va")
    sdk.refunds.create(source_type="checkout_session", source_id=session["id"], amount=20_000)
    entries = all_entries(sdk)
    assert balanced(entries)
    assert {e["sourceType"] for e in entries} == {"checkout_session", "refund"}
    payment_tx = all_entries(sdk, source_id=session["id"])
    assert {(e["code"], e["direction"], e["amount"]) for e in payment_tx} == {
        ("cash", "debit", 200_000),
        ("revenue", "credit", 200_000),
        ("platform_fee", "debit", 5_800),
        ("cash", "credit", 5_800),
    }
    assert len({e["txId"] for e in payment_tx}) == 1
    tx = payment_tx[0]["txId"]
    assert {e["id"] for e in all_entries(sdk, tx_id=tx)} == {e["id"] for e in payment_tx}
    refund_entries = all_entries(sdk, source_type="refund")
    assert {(e["code"], e["direction"]) for e in refund_entries} == {
        ("revenue_refund", "debit"),
        ("cash", "credit"),
    }
    balances = {row.raw["code"]: row.raw for row in sdk.ledger.balances()}
    cash = 200_000 - 5_800 + 50_000 - 500 - 20_000
    assert balances["cash"]["balance"] == cash
    assert balances["revenue"] == {
        "code": "revenue",
        "currency": "IDR",
        "debits": 0,
        "credits": 250_000,
        "balance": -250_000,
    }
    assert sum(row["balance"] for row in balances.values()) == 0
    assert sdk.payouts.balance().raw == {
        "ledgerBalance": cash,
        "locked": 0,
        "available": cash,
        "currency": "IDR",
    }
    only_cash = all_entries(sdk, code="cash")
    assert only_cash and {e["code"] for e in only_cash} == {"cash"}


def test_ledger_pages_default_to_twenty(sdk, control, session_factory):
    for _ in range(6):
        card_payment(control, session_factory, 10_000)
    page = sdk.ledger.list()
    assert len(page.data) == 20 and page.has_more
    rest = sdk.ledger.list(cursor=page.cursor, order="desc")
    assert len(rest.data) == 4 and not rest.has_more
    oldest = sdk.ledger.list(order="asc", limit=1).data[0].raw
    assert oldest["code"] == "cash" and oldest["direction"] == "debit"
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.ledger.list(source_type="nonsense")
    assert info.value.status == 400


def test_invoice_payment_posts_under_the_invoice(sdk, control):
    customer = sdk.customers.create(email="books@shop.test")
    invoice = sdk.invoices.create(
        customer_id=customer["id"],
        currency="IDR",
        lines=[{"description": "Consulting", "quantity": 1, "unitAmount": 80_000}],
        status="open",
    )
    control("POST", f"invoices/{invoice['id']}/pay", {"card": "4242424242424242"})
    entries = all_entries(sdk, source_type="invoice", source_id=invoice["id"])
    assert balanced(entries) and len(entries) == 4


def test_bank_account_get_and_patch(sdk):
    empty = sdk.payouts.get_bank_account().raw
    assert empty["configured"] is False and empty["accountNumber"] is None
    saved = with_bank(sdk).raw
    assert saved == {
        "configured": True,
        "bankCode": "BCA",
        "bankName": "Bank Central Asia",
        "accountNumber": "1234567890",
        "accountHolder": "Toko Sandbox",
    }
    assert sdk.payouts.get_bank_account().raw == saved
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.request(method="PATCH", path="/api/v1/payouts/bank-account", body={"bankName": "X"})
    assert info.value.status == 400


def test_manual_payout_lifecycle(sdk, control, session_factory, sandbox):
    available = funded(control, session_factory)
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.payouts.create(amount=100_000, currency="IDR")
    assert info.value.status == 400  # no bank account yet
    # the fields it names are the ones it accepts (the API's; the SDK's spelling too)
    assert "send bankName, accountNumber and accountHolder (or bankAccountNumber and" in str(
        info.value
    )
    with_bank(sdk)
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.payouts.create(amount=available + 1, currency="IDR")
    assert info.value.status == 422 and info.value.code == "insufficient_balance"
    payout = sdk.payouts.create(amount=400_000, currency="IDR", note="weekly").raw
    assert payout["id"].startswith("po_") and payout["status"] == "pending"
    assert payout["method"] == "manual" and payout["accountNumber"] == "1234567890"
    assert sdk.payouts.balance().raw == {
        "ledgerBalance": available,
        "locked": 400_000,
        "available": available - 400_000,
        "currency": "IDR",
    }
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.payouts.mark_paid(payout["id"], reference="x")
    assert info.value.status == 409 and info.value.code == "invalid_transition"
    moving = sdk.payouts.mark_in_transit(payout["id"], reference="TRF-1").raw
    assert moving["status"] == "in_transit" and moving["processedAt"]
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.payouts.cancel(payout["id"])
    assert info.value.status == 409
    paid = sdk.payouts.mark_paid(payout["id"]).raw
    assert paid["status"] == "paid" and paid["reference"] == "TRF-1" and paid["completedAt"]
    tx = all_entries(sdk, tx_id=paid["ledgerTransactionId"])
    assert {(e["code"], e["direction"], e["amount"]) for e in tx} == {
        ("payout", "debit", 400_000),
        ("cash", "credit", 400_000),
    }
    assert sdk.payouts.balance().raw["ledgerBalance"] == available - 400_000
    assert sdk.payouts.balance().raw["locked"] == 0
    for call in (
        lambda: sdk.payouts.mark_failed(payout["id"], failure_reason="late"),
        lambda: sdk.payouts.mark_in_transit(payout["id"]),
        lambda: sdk.payouts.cancel(payout["id"]),
    ):
        with pytest.raises(plugipay.PlugipayError) as info:
            call()
        assert info.value.status == 409
    assert [p.raw["id"] for p in sdk.payouts.list(status="paid").data] == [payout["id"]]
    assert sdk.payouts.get(payout["id"]).raw["status"] == "paid"
    kinds = [e.raw["type"] for e in sdk.events.list(limit=100).data]
    assert "plugipay.payout.created.v1" in kinds and "plugipay.payout.paid.v1" in kinds


def test_cancelled_and_failed_payouts_return_the_money(sdk, control, session_factory):
    available = funded(control, session_factory)
    with_bank(sdk)
    first = sdk.payouts.create(amount=100_000, currency="IDR")
    second = sdk.payouts.create(amount=200_000, currency="IDR")
    assert sdk.payouts.balance().raw["available"] == available - 300_000
    cancelled = sdk.payouts.cancel(first.raw["id"]).raw
    assert cancelled["status"] == "cancelled"
    sdk.payouts.mark_in_transit(second.raw["id"])
    failed = sdk.payouts.mark_failed(second.raw["id"], failure_reason="Account closed").raw
    assert failed["status"] == "failed" and failed["failureReason"] == "Account closed"
    assert sdk.payouts.balance().raw == {
        "ledgerBalance": available,
        "locked": 0,
        "available": available,
        "currency": "IDR",
    }
    assert not all_entries(sdk, source_type="payout")
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.payouts.get("po_missing")
    assert info.value.status == 404


def test_inline_bank_fields_make_a_one_off_payout(sdk, control, session_factory):
    funded(control, session_factory)
    payout = sdk.payouts.create(
        amount=50_000,
        currency="IDR",
        bank_name="BNI",
        bank_account_number="999",
        bank_account_holder="Someone Else",
    ).raw
    assert payout["accountNumber"] == "999" and payout["bankName"] == "BNI"
    assert sdk.payouts.get_bank_account().raw["configured"] is False
    # the API's spelling (payouts.md's) works too, and a missing field is named as accepted
    body = {"amount": 1_000, "currency": "IDR", "bankName": "BNI", "accountNumber": "999"}
    with pytest.raises(plugipay.PlugipayError, match=r"accountHolder \(or bankAccountHolder\)"):
        sdk.request(method="POST", path="/api/v1/payouts", body=body, idempotency_key="one")
    body["accountHolder"] = "Someone Else"
    made = sdk.request(method="POST", path="/api/v1/payouts", body=body, idempotency_key="two")
    assert made["accountHolder"] == "Someone Else" and made["accountNumber"] == "999"


def test_disbursement_moves_on_the_clock(sdk, control, session_factory, sandbox):
    available = funded(control, session_factory)
    with_bank(sdk)
    ok = sdk.request(
        method="POST",
        path="/api/v1/payouts",
        body={"amount": 100_000, "currency": "IDR", "method": "xendit_disbursement"},
    )
    bad = sdk.request(
        method="POST",
        path="/api/v1/payouts",
        body={
            "amount": 50_000,
            "method": "xendit_disbursement",
            "bankName": "BCA",
            "accountNumber": "7770000",
            "accountHolder": "Nobody",
        },
    )
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.payouts.mark_in_transit(ok["id"])
    assert info.value.status == 409
    control("POST", "clock/advance", {"seconds": DISBURSEMENT_IN_TRANSIT_AFTER})
    assert sdk.payouts.get(ok["id"]).raw["status"] == "in_transit"
    control("POST", "clock/advance", {"seconds": DISBURSEMENT_SETTLED_AFTER})
    assert sdk.payouts.get(ok["id"]).raw["status"] == "paid"
    failed = sdk.payouts.get(bad["id"]).raw
    assert failed["status"] == "failed" and "0000" in failed["failureReason"]
    assert sdk.payouts.balance().raw["available"] == available - 100_000


def test_payout_events_in_the_docs_dialect(sdk, control, session_factory, sandbox, receiver):
    funded(control, session_factory)
    with_bank(sdk)
    control("POST", "deliveries/flush")  # the payment's events reach the receiver first
    control("POST", "config", {"eventStyle": "docs"})
    receiver.clear()
    payout = sdk.payouts.create(amount=10_000, currency="IDR")
    sdk.payouts.cancel(payout.raw["id"])
    control("POST", "deliveries/flush")
    bodies = [json.loads(body) for _, body in receiver.deliveries]
    bodies = [b for b in bodies if b["type"].startswith("payout.")]
    assert [b["type"] for b in bodies] == ["payout.created", "payout.cancelled"]
    assert bodies[1]["data"]["id"] == payout.raw["id"] and bodies[1]["workspaceId"]


def test_payouts_are_per_account(sdk, platform, control, session_factory):
    funded(control, session_factory)
    with_bank(sdk)
    sdk.payouts.create(amount=10_000, currency="IDR")
    account_id = "acc_01MONEYSHOP000000000000000"
    platform.admin.provision_workspace(
        account_id=account_id,
        partner="p",
        discount_rate=0.0,
        brand_name="Other",
        business_email="other@shop.test",
    )
    other = platform.for_merchant(account_id)
    assert other.payouts.list().data == []
    assert other.payouts.balance().raw["ledgerBalance"] == 0
    assert other.ledger.list().data == []
    assert other.payouts.get_bank_account().raw["configured"] is False


def test_reports(sdk, control, session_factory, sandbox):
    session = card_payment(control, session_factory, 111_000)
    sdk.refunds.create(source_type="checkout_session", source_id=session["id"], amount=11_100)
    pnl = sdk.reports.pnl(from_="2000-01-01", to="2999-12-31").raw
    fee = fee_for("card", 111_000)
    assert pnl["revenue"] == 111_000 and pnl["refunds"] == 11_100
    assert pnl["platformFees"] == fee and pnl["net"] == 111_000 - 11_100 - fee
    assert pnl["tax"] == 0 and {line["code"] for line in pnl["lines"]} >= {"revenue"}
    status, answer = control(
        "POST", "money/settings", {"taxEnabled": True, "taxId": "01.234.567.8-901.000"}
    )
    assert status == 200 and answer["data"]["taxEnabled"] is True, answer
    assert sdk.reports.pnl(from_="2000-01-01", to="2999-12-31").raw["tax"] == tax_of(99_900, 0.11)
    empty = sdk.reports.pnl(from_="2000-01-01", to="2000-01-02").raw
    assert empty["revenue"] == 0 and empty["net"] == 0
    flow = sdk.reports.cash_flow(from_="2000-01-01", to="2999-12-31").raw
    [day] = flow["buckets"]
    assert day["inflow"] == 111_000 and day["outflow"] == fee + 11_100
    assert day["net"] == day["inflow"] - day["outflow"]
    response = signed(sandbox, "GET", "/api/v1/reports/ledger.csv")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")
    text = response.text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 6 and {r["code"] for r in rows} == {
        "cash",
        "revenue",
        "platform_fee",
        "revenue_refund",
    }
    assert int(rows[0]["amount"]) == 111_000


# ── receipts ───────────────────────────────────────────────────────────────────


def signed(sandbox, method, path, body=None):
    client = plugipay.PlugipayClient(
        key_id="pk_test_sandbox", secret="sk_test_sandbox", base_url=sandbox.base_url
    )
    data = None if body is None else json.dumps(body, separators=(",", ":"))
    headers = client._auth_headers(method=method, path=path, body=data, idempotency_key=None)
    if data is not None:
        headers["Content-Type"] = "application/json"
    return requests.request(method, sandbox.base_url + path, headers=headers, data=data, timeout=10)


def test_receipts_are_issued_on_completion_and_invoice_payment(sdk, control, session_factory):
    customer = sdk.customers.create(email="buyer@shop.test", name="Budi")
    session = session_factory(
        amount=111_000,
        customer_id=customer["id"],
        line_items=[{"name": "Kopi", "quantity": 2, "unitAmount": 55_500}],
    )
    unpaid = session_factory(amount=5_000)
    pay(control, session, card="4242424242424242")
    invoice = sdk.invoices.create(
        customer_id=customer["id"],
        currency="IDR",
        lines=[{"description": "Consulting", "quantity": 1, "unitAmount": 80_000}],
        status="open",
    )
    control("POST", f"invoices/{invoice['id']}/pay", {"card": "4242424242424242"})
    listed = [r.raw for r in sdk.receipts.list().data]
    assert [r["sourceType"] for r in listed] == ["invoice", "checkout_session"]
    assert unpaid["id"] not in {r["sourceId"] for r in listed}
    first = sdk.receipts.get(listed[1]["id"])
    assert first["id"].startswith("rcpt_") and first["number"] == "RCPT-000001"
    assert first["sourceId"] == session["id"] and first["customerId"] == customer["id"]
    assert first["amount"] == 111_000 and first["method"] == "card" and first["adapter"]
    assert first["lines"] == [
        {"description": "Kopi", "quantity": 2, "unitAmount": 55_500, "amount": 111_000}
    ]
    assert first["taxAmount"] == 0 and first["subtotal"] == first["total"] == 111_000
    assert first["emailedAt"] is None and first["links"]["pdf"].endswith("/receipt.pdf")
    only = sdk.receipts.list(source_type="invoice").data
    assert [r.raw["sourceId"] for r in only] == [invoice["id"]]
    assert len(sdk.receipts.list(customer_id=customer["id"]).data) == 2
    assert sdk.receipts.list(customer_id="cus_other").data == []
    assert sdk.receipts.list(issued_after="2999-01-01T00:00:00Z").data == []
    assert len(sdk.receipts.list(issued_before="2999-01-01T00:00:00Z").data) == 2
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.receipts.get("rcpt_missing")
    assert info.value.status == 404


def test_receipt_with_ppn_and_its_documents(sdk, control, session_factory, sandbox):
    control("POST", "money/settings", {"taxEnabled": True, "taxId": "01.234.567.8-901.000"})
    session = session_factory(amount=111_000)
    pay(control, session, card="4242424242424242")
    control("POST", "money/settings", {"taxEnabled": False})
    receipt = sdk.receipts.list().data[0].raw
    assert receipt["subtotal"] == 100_000 and receipt["taxAmount"] == 11_000
    assert receipt["total"] == 111_000 and receipt["taxId"] == "01.234.567.8-901.000"
    assert receipt["taxRate"] == 0.11
    path = f"/api/v1/receipts/{receipt['id']}"
    document = signed(sandbox, "GET", path + "/receipt.pdf")
    assert document.status_code == 200 and document.headers["Content-Type"] == "application/pdf"
    assert document.content.startswith(b"%PDF-1.4") and document.content.count(b"/Type /Page ") == 1
    assert b"01.234.567.8-901.000" in document.content and b"PPN 11%" in document.content
    page = signed(sandbox, "GET", path + "/receipt.html")
    assert page.status_code == 200 and "RCPT-000001" in page.text and "NPWP" in page.text
    indonesian = signed(sandbox, "GET", path + "/receipt.html?lang=id")
    assert "Kuitansi" in indonesian.text and "Rp 11.000" in indonesian.text
    printer = signed(sandbox, "GET", path + "/receipt.escpos")
    assert printer.content.startswith(b"\x1b@") and printer.content.endswith(b"\x1dV\x00")
    assert b"RCPT-000001" in printer.content
    assert all(len(line) <= 40 for line in printer.content.split(b"\n"))
    unsigned = requests.get(sandbox.base_url + path + "/receipt.pdf", timeout=10)
    assert unsigned.status_code == 401


def test_receipt_email(sdk, control, session_factory, sandbox):
    session = session_factory(amount=20_000)
    pay(control, session, card="4242424242424242")
    receipt = sdk.receipts.list().data[0].raw
    path = f"/api/v1/receipts/{receipt['id']}/email"
    refused = signed(sandbox, "POST", path, {})
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "to"
    bad = signed(sandbox, "POST", path, {"to": "nobody"})
    assert bad.status_code == 400
    sent = signed(sandbox, "POST", path, {"to": "buyer@shop.test"}).json()["data"]
    assert sent["emailedTo"] == "buyer@shop.test" and sent["emailedAt"]
    assert sdk.receipts.get(receipt["id"])["emailedTo"] == "buyer@shop.test"


def test_a_restart_keeps_the_ledger_payouts_receipts_and_settings(tmp_path):
    from plugipay_sandbox.server import SandboxServer
    from plugipay_sandbox.state import SandboxConfig

    def start():
        config = SandboxConfig(port=0, state_file=str(tmp_path / "state.json"))
        server = SandboxServer(config).start()
        client = plugipay.PlugipayClient(
            key_id="pk_test_sandbox", secret="sk_test_sandbox", base_url=server.base_url
        )
        return server, client

    server, sdk = start()
    session = sdk.checkout_sessions.create(
        amount=300_000,
        currency="IDR",
        methods=["card"],
        success_url="https://shop.test/ok",
        cancel_url="https://shop.test/no",
    )
    requests.post(
        f"{server.base_url}/_sandbox/checkout-sessions/{session['id']}/pay",
        json={"card": "4242424242424242"},
        timeout=10,
    )
    with_bank(sdk)
    payout = sdk.payouts.create(amount=100_000, currency="IDR").raw
    before = sdk.payouts.balance().raw
    server.stop()

    again, sdk = start()
    try:
        assert sdk.payouts.balance().raw == before and before["locked"] == 100_000
        assert sdk.payouts.get_bank_account().raw["configured"] is True
        assert sdk.payouts.mark_in_transit(payout["id"]).raw["status"] == "in_transit"
        assert balanced(all_entries(sdk)) and len(sdk.receipts.list().data) == 1
        assert sdk.reports.cash_flow(from_="2000-01-01", to="2999-12-31").raw["buckets"]
    finally:
        again.stop()


def test_a_source_is_posted_once_across_replays_a_reset_and_a_restart(tmp_path):
    """The ledger posts a payment's transaction once however often its event is seen, also
    once the ledger was reloaded from a state file, and posts anew in a ledger that was reset."""
    from plugipay_sandbox.state import SandboxConfig, Store, checkout, money

    def paid(store):
        body = {"amount": 50_000, "currency": "IDR", "methods": ["card"]}
        body |= {"successUrl": "https://a.test", "cancelUrl": "https://b.test"}
        session = checkout.create_session(store, "test", body)
        checkout.pay_card(store, session["id"], "4242424242424242")
        return [e for e in store.events.values() if e["kind"] == "payment.succeeded"][-1]

    state = str(tmp_path / "state.json")
    store = Store(SandboxConfig(port=0, state_file=state))
    with store.lock:
        first = paid(store)
        posted = len(store.ledger)
        assert posted == 4  # gross and fee, each debit and credit
        money._on_event(store, first)
        assert len(store.ledger) == posted
        second = paid(store)
        assert len(store.ledger) == 2 * posted
        money._on_event(store, second)
        money._on_event(store, first)
        assert len(store.ledger) == 2 * posted
        store.save(state)

    restarted = Store(SandboxConfig(port=0, state_file=state))
    with restarted.lock:
        assert len(restarted.ledger) == 2 * posted
        for event in (first, second):
            money._on_event(restarted, event)
        assert len(restarted.ledger) == 2 * posted

        kept = dict(restarted.payments)
        restarted.reset()
        restarted.payments.update(kept)  # the payments, but none of the ledger they posted
        money._on_event(restarted, first)
        assert len(restarted.ledger) == posted


def test_synthetic_events_move_no_money(sdk, control, session_factory):
    session = card_payment(control, session_factory, 40_000)
    before = all_entries(sdk)
    payment_id = sdk.checkout_sessions.get(session["id"])["paymentId"]
    sdk.api.events_trigger(type_="payment.succeeded", aggregate_id=payment_id)
    sdk.api.events_trigger(type_="payment.succeeded", aggregate_id="pay_X")
    sdk.api.events_trigger(type_="refund.succeeded", aggregate_id="rfd_X")
    sdk.api.events_trigger(type_="checkout_session.completed", aggregate_id="cs_X")
    sdk.api.events_trigger(type_="invoice.paid", aggregate_id="inv_X")
    assert all_entries(sdk) == before and len(sdk.receipts.list().data) == 1


def test_payout_events_are_listed_by_type(sdk, control, session_factory):
    funded(control, session_factory)
    with_bank(sdk)
    payout = sdk.payouts.create(amount=10_000, currency="IDR").raw
    sdk.payouts.mark_failed(payout["id"], failure_reason="Closed account")  # pending → failed
    other = sdk.payouts.create(amount=10_000, currency="IDR").raw
    sdk.payouts.cancel(other["id"])
    for kind, object_id in (("failed", payout["id"]), ("cancelled", other["id"])):
        found = sdk.events.list(type=f"plugipay.payout.{kind}.v1").data
        assert [e.raw["data"]["object"]["id"] for e in found] == [object_id], kind
    types = sdk.request(method="GET", path="/api/v1/events/types")
    assert {f"plugipay.payout.{k}.v1" for k in ("created", "in_transit", "paid")} <= set(types)


def test_the_account_setting_makes_the_sdk_pay_out_by_disbursement(sdk, control, session_factory):
    funded(control, session_factory)
    with_bank(sdk, number="5550000")  # ends in 0000: the disbursement fails
    status, answer = control("POST", "money/settings", {"payoutMethod": "xendit_disbursement"})
    assert status == 200 and answer["data"]["payoutMethod"] == "xendit_disbursement"
    payout = sdk.payouts.create(amount=25_000, currency="IDR").raw
    assert payout["method"] == "xendit_disbursement"
    control("POST", "clock/advance", {"seconds": DISBURSEMENT_SETTLED_AFTER})
    failed = sdk.payouts.get(payout["id"]).raw
    assert failed["status"] == "failed" and failed["processedAt"] and failed["completedAt"]
    kinds = {e.raw["type"] for e in sdk.events.list(limit=100).data}
    assert {"plugipay.payout.in_transit.v1", "plugipay.payout.failed.v1"} <= kinds
    status, answer = control("POST", "money/settings", {"payoutMethod": "cheque"})
    assert status == 400 and answer["error"]["field"] == "payoutMethod"
    status, answer = control("POST", "money/settings", {"accountId": "acc_nobody"})
    assert status == 400
