"""Pending VA/QRIS/e-wallet/retail payments and manual transfers, over HTTP and the SDK."""

import json

import plugipay
import pytest
import requests

from plugipay_sandbox.hosted import i18n
from plugipay_sandbox.state.checkout import proof_type

ALL_METHODS = ("card", "va", "qris", "ewallet", "retail", "manual")
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def hosted(sandbox, session_id, path="", lang=None, **form):
    url = f"{sandbox.base_url}/c/{session_id}{path}"
    headers = {"Accept-Language": lang} if lang else {}
    if form:
        return requests.post(url, data=form, headers=headers, allow_redirects=False, timeout=10)
    return requests.get(url, headers=headers, allow_redirects=False, timeout=10)


def start(control, session, method, **extra):
    status, body = control(
        "POST",
        f"checkout-sessions/{session['id']}/pay",
        {"method": method, "settle": False, **extra},
    )
    assert status == 200, body
    return body["data"]


def kinds(receiver):
    return [json.loads(body)["type"] for _, body in receiver.deliveries]


def flushed(sandbox, receiver):
    requests.post(f"{sandbox.base_url}/_sandbox/deliveries/flush", timeout=30)
    return kinds(receiver)


@pytest.mark.parametrize(
    ("method", "channel", "field"),
    [
        ("va", "Mandiri", "accountNumber"),
        ("qris", None, "qrString"),
        ("ewallet", "GoPay", "approvalUrl"),
        ("retail", "Indomaret", "paymentCode"),
    ],
)
def test_pending_session_carries_instructions_for_the_sdk(
    sdk, session_factory, control, method, channel, field
):
    session = session_factory(methods=ALL_METHODS)
    extra = {"channel": channel} if channel else {}
    data = start(control, session, method, **extra)
    assert data["outcome"] == "pending" and data["payment"]["status"] == "pending"
    read = sdk.checkout_sessions.get(session["id"])
    assert read["status"] == "pending" and read["paymentId"] is None
    info = read["instructions"]
    assert info["method"] == method and info["channel"] == channel and info[field]
    assert info["paymentId"] == data["payment"]["id"] and info["expiresAt"]
    assert info["amount"] == 150_000 and info["currency"] == "IDR"


def test_va_number_differs_per_bank_and_qris_string_has_a_valid_crc(session_factory, control):
    numbers = {
        bank: start(control, session_factory(methods=ALL_METHODS), "va", channel=bank)["session"][
            "instructions"
        ]["accountNumber"]
        for bank in ("BCA", "Mandiri", "BNI", "BRI", "Permata")
    }
    assert len({n[:4] for n in numbers.values()}) == 5
    qr = start(control, session_factory(), "qris")["session"]["instructions"]["qrString"]
    assert qr.startswith("000201") and "5802ID" in qr and "5406150000" in qr
    crc = 0xFFFF
    for byte in qr[:-4].encode():
        crc ^= byte << 8
        for _ in range(8):
            crc = (((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1) & 0xFFFF
    assert qr[-4:] == f"{crc:04X}"


def test_unknown_bank_is_a_field_error(session_factory, control):
    session = session_factory()
    status, body = control(
        "POST", f"checkout-sessions/{session['id']}/pay", {"method": "va", "channel": "HSBC"}
    )
    assert status == 400 and body["error"]["field"] == "channel"


def test_settle_succeeds_with_the_async_events_in_both_dialects(
    sandbox, session_factory, control, receiver
):
    for style in ("sdk", "docs"):
        control("POST", "config", {"eventStyle": style})
        receiver.clear()
        session = session_factory()
        payment_id = start(control, session, "va")["payment"]["id"]
        status, body = control("POST", f"payments/{payment_id}/settle", {"outcome": "succeeded"})
        assert status == 200 and body["data"]["session"]["status"] == "completed"
        assert body["data"]["session"]["paymentId"] == payment_id
        assert body["data"]["payment"]["paidAt"]
        types = flushed(sandbox, receiver)
        wanted = [
            "payment.updated",
            "checkout_session.completed",
            "payment.succeeded",
            "checkout_session.async_payment_succeeded",
        ]
        if style == "sdk":
            wanted = [f"plugipay.{k}.v1" for k in wanted]
        assert [t for t in types if "created" not in t] == wanted
        status, _ = control("POST", f"payments/{payment_id}/settle", {"outcome": "succeeded"})
        assert status == 409


def test_failed_settle_reopens_the_session_and_another_attempt_completes(
    sandbox, session_factory, control, receiver
):
    session = session_factory()
    payment_id = start(control, session, "qris")["payment"]["id"]
    status, body = control("POST", f"payments/{payment_id}/settle", {"outcome": "failed"})
    assert body["data"]["payment"]["status"] == "failed"
    assert body["data"]["session"]["status"] == "open"
    assert "plugipay.checkout_session.async_payment_failed.v1" in flushed(sandbox, receiver)
    status, body = control(
        "POST", f"checkout-sessions/{session['id']}/pay", {"card": "4242424242424242"}
    )
    assert body["data"]["session"]["status"] == "completed"


def test_unpaid_charge_fails_at_its_expiry_and_the_session_at_its_ttl(
    sandbox, session_factory, control, receiver
):
    session = session_factory(expires_in_sec=3600)
    payment_id = start(control, session, "ewallet")["payment"]["id"]
    control("POST", "clock/advance", {"seconds": 11 * 60})
    state = control("GET", "state")[1]["data"]
    payment = next(p for p in state["payments"] if p["id"] == payment_id)
    assert payment["status"] == "failed" and payment["failureCode"] == "expired"
    assert next(s for s in state["sessions"] if s["id"] == session["id"])["status"] == "open"
    types = flushed(sandbox, receiver)
    assert "plugipay.payment.failed.v1" in types
    assert "plugipay.checkout_session.async_payment_failed.v1" in types
    va = session_factory(expires_in_sec=3600)
    start(control, va, "va")
    control("POST", "clock/advance", {"seconds": 3601})
    state = control("GET", "state")[1]["data"]
    assert next(s for s in state["sessions"] if s["id"] == va["id"])["status"] == "expired"


def test_cancel_a_pending_session_fails_its_charge(session_factory, control, sdk):
    session = session_factory()
    payment_id = start(control, session, "va")["payment"]["id"]
    assert sdk.checkout_sessions.cancel(session["id"])["status"] == "canceled"
    state = control("GET", "state")[1]["data"]
    payment = next(p for p in state["payments"] if p["id"] == payment_id)
    assert payment["status"] == "failed" and payment["failureCode"] == "canceled"


def test_manual_claim_then_sdk_confirm(sandbox, session_factory, control, sdk, receiver):
    session = session_factory(methods=ALL_METHODS)
    status, body = control(
        "POST", f"checkout-sessions/{session['id']}/claim", {"proof_url": "https://p.test/x.png"}
    )
    assert status == 200 and body["data"]["status"] == "pending_review"
    read = sdk.checkout_sessions.get(session["id"])
    info = read["instructions"]
    assert info["method"] == "manual" and info["bankAccounts"] and info["claimedAt"]
    assert info["proofUrl"] == "https://p.test/x.png"
    confirmed = sdk.checkout_sessions.confirm(session["id"])
    assert confirmed["status"] == "completed" and confirmed["paymentId"] == session["id"]
    with pytest.raises(plugipay.PlugipayError):
        sdk.checkout_sessions.confirm(session["id"])
    types = flushed(sandbox, receiver)
    assert "plugipay.payment.updated.v1" in types and "plugipay.payment.succeeded.v1" in types
    refund = sdk.refunds.create(source_type="checkout_session", source_id=session["id"], amount=1)
    assert refund["amount"] == 1


def test_confirm_needs_pending_review(sdk, session_factory):
    session = session_factory()
    with pytest.raises(plugipay.PlugipayError) as info:
        sdk.checkout_sessions.confirm(session["id"])
    assert info.value.status == 409


def test_hosted_va_flow_english_and_indonesian(sandbox, session_factory):
    session = session_factory(methods=ALL_METHODS, amount=250_000)
    page = hosted(sandbox, session["id"], lang="id-ID,id;q=0.9,en;q=0.5")
    assert "Bayar dengan kartu" in page.text and "Rp 250.000" in page.text
    assert '<html lang="id">' in page.text
    for bank in ("BCA", "Mandiri", "BNI", "BRI", "Permata", "OVO", "GoPay", "DANA", "ShopeePay"):
        assert f':{bank}"' in page.text
    response = hosted(sandbox, session["id"], "/method", method="va:BNI")
    assert response.status_code == 303
    english = hosted(sandbox, session["id"], lang="en-US")
    assert "BNI virtual account" in english.text and "IDR 250,000" in english.text
    assert 'data-testid="va-number"' in english.text
    indonesian = hosted(sandbox, session["id"], lang="id")
    assert "virtual account BNI" in indonesian.text and "Simulasikan pembayaran" in indonesian.text
    response = hosted(sandbox, session["id"], "/simulate", outcome="succeeded")
    assert response.headers["Location"].startswith("https://shop.test/ok?session_id=")


def test_hosted_qr_svg_and_ewallet_approval(sandbox, session_factory, control):
    session = session_factory(methods=ALL_METHODS)
    hosted(sandbox, session["id"], "/method", method="qris")
    svg = hosted(sandbox, session["id"], "/qr.svg")
    assert svg.headers["Content-Type"] == "image/svg+xml" and svg.text.count("<rect") > 100
    other = session_factory(methods=ALL_METHODS)
    hosted(sandbox, other["id"], "/method", method="ewallet:DANA")
    approval = hosted(sandbox, other["id"], "/ewallet")
    assert "DANA" in approval.text and 'value="failed"' in approval.text
    hosted(sandbox, other["id"], "/simulate", outcome="failed")
    state = control("GET", "state")[1]["data"]
    assert next(s for s in state["sessions"] if s["id"] == other["id"])["status"] == "open"


def test_hosted_manual_transfer_with_proof_upload(sandbox, session_factory, sdk):
    session = session_factory(methods=ALL_METHODS)
    response = hosted(sandbox, session["id"], "/method", method="manual")
    assert response.headers["Location"].endswith("/manual")
    page = hosted(sandbox, session["id"], "/manual", lang="id")
    assert "1234567890" in page.text and "Saya sudah mentransfer uangnya" in page.text
    url = f"{sandbox.base_url}/c/{session['id']}/claim"
    bad = requests.post(url, files={"proof": ("x.png", b"GIF89a....")}, timeout=10)
    assert bad.status_code == 400 and "PNG, JPEG or WEBP" in bad.text
    big = requests.post(url, files={"proof": ("x.png", PNG + b"\0" * 4_000_000)}, timeout=10)
    assert big.status_code == 413
    ok = requests.post(url, files={"proof": ("x.png", PNG)}, allow_redirects=False, timeout=10)
    assert ok.status_code == 303
    info = sdk.checkout_sessions.get(session["id"])["instructions"]
    proof = requests.get(info["proofUrl"], timeout=10)
    assert proof.headers["Content-Type"] == "image/png" and proof.content == PNG
    assert "Menunggu konfirmasi penjual" in hosted(sandbox, session["id"], lang="id").text


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xd8\xff\xe0rest", "image/jpeg"),
        (b"RIFF\0\0\0\0WEBPVP8 ", "image/webp"),
        (PNG, "image/png"),
        (b"%PDF-1.4", None),
    ],
)
def test_proof_types_by_magic_bytes(data, expected):
    assert proof_type(data) == expected


def test_public_charge_and_buyer_claim(sandbox, session_factory):
    session = session_factory(methods=ALL_METHODS)
    base = f"{sandbox.base_url}/api/v1/public/checkout/sessions/{session['id']}"
    manual = requests.post(f"{base}/charge", json={"method": "manual"}, timeout=10).json()["data"]
    assert manual["kind"] == "instructions" and manual["bankAccounts"][0]["accountHolder"]
    upload = requests.post(f"{base}/proof-image", files={"file": ("p.png", PNG)}, timeout=10)
    proof_url = upload.json()["data"]["url"]
    claimed = requests.post(f"{base}/buyer-claim", json={"proofUrl": proof_url}, timeout=10)
    assert claimed.json()["data"]["status"] == "pending_review"


@pytest.mark.parametrize(
    ("header", "query", "expected"),
    [
        (None, None, "en"),
        ("id", None, "id"),
        ("in-ID", None, "id"),
        ("en;q=0.4,id;q=0.8", None, "id"),
        ("fr, en;q=0.1", None, "en"),
        ("id", "en", "en"),
        ("id;q=0", None, "en"),
    ],
)
def test_language_choice(header, query, expected):
    assert i18n.language_of(query, header) == expected


def test_money_per_language():
    assert i18n.money(250_000, "IDR", "id") == "Rp 250.000"
    assert i18n.money(250_000, "IDR", "en") == "IDR 250,000"
    assert i18n.money(123_450, "USD", "id") == "USD 1.234,50"


def test_invoice_page_follows_accept_language(sdk):
    customer = sdk.customers.create(email="ani@example.test", name="Ani")
    lines = [{"description": "Setup", "quantity": 1, "unitAmount": 250_000}]
    draft = sdk.invoices.create(customer_id=customer["id"], currency="IDR", lines=lines)
    url = sdk.invoices.finalize(draft["id"])["hostedInvoiceUrl"]
    indonesian = requests.get(url, headers={"Accept-Language": "id-ID"}, timeout=10).text
    assert "Rp 250.000" in indonesian and "Bayar dengan kartu" in indonesian
    assert "Jatuh tempo" in indonesian and "Faktur" in indonesian
    english = requests.get(url, timeout=10).text
    assert "IDR 250,000" in english and "Pay by card" in english
