"""The dashboard, invoice and portal pages in Bahasa Indonesia: every page rendered with
``Accept-Language: id`` looks up only texts ``i18n.ID`` translates, and shows no English."""

import html
import re

import pytest
import requests

from plugipay_sandbox import cards
from plugipay_sandbox.hosted import dashboard, i18n, invoice, portal
from tests.sandbox.test_billing_rules import DAY, FEATURES

INDONESIAN = {"Accept-Language": "id-ID,id;q=0.9,en;q=0.8"}
#: Words of English sentences that Indonesian never uses on its own.
ENGLISH = {
    *("the", "a", "an", "this", "that", "is", "are", "was", "be", "it", "its", "you", "your"),
    *("and", "or", "of", "to", "for", "with", "on", "in", "at", "by", "from", "no", "not"),
    *("yet", "has", "have", "will", "can", "here", "after", "until", "again", "only"),
}


def english_words(page: str) -> list[str]:
    """English words in the text of ``page`` (code, JSON and styles left out), in context."""
    page = re.sub(r"<(style|pre|code|script)\b.*?</\1>", " ", page, flags=re.S)
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    return [
        text[max(0, m.start() - 30) : m.end() + 30]
        for m in re.finditer(r"(?<![\w-])[A-Za-z]+(?![\w-])", text)
        if m.group().lower() in ENGLISH
    ]


def test_a_missing_entry_and_english_text_are_caught():
    token = i18n.activate("id")
    try:
        with i18n.recording_misses() as misses:
            assert i18n.gettext("Payments") == "Pembayaran"
            assert i18n.gettext("Not in the table") == "Not in the table"
    finally:
        i18n.reset(token)
    assert misses == {"Not in the table"}
    assert english_words("<p>Pay <b>the</b> invoice</p><pre>the json</pre>") == ["Pay the invoice"]
    assert english_words("<p>Bayar faktur ini</p>") == []


def test_every_label_table_is_translated():
    texts = [
        *dashboard.LABELS.values(),
        *(label for _key, _href, label in dashboard.NAV),
        *dashboard.NOTICES.values(),
        *invoice.STATUS_LABELS.values(),
        *invoice.MONTHS,
        *portal.NOTICES.values(),
        *portal.SUB_STATUS.values(),
        *(word for pair in portal.INTERVAL_WORDS.values() for word in pair),
        *cards.FAILURE_MESSAGES.values(),
        *(card.description for card in cards.TEST_CARDS),
    ]
    assert [text for text in texts if text not in i18n.ID] == []


class Pages:
    """Requests in Indonesian (redirects followed), every page kept for the checks."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.seen = []

    def __call__(self, method, path, expect=200, **kwargs):
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        headers = {**INDONESIAN, **kwargs.pop("headers", {})}
        response = requests.request(method, url, headers=headers, timeout=10, **kwargs)
        assert response.status_code == expect, (path, response.status_code, response.text[:300])
        if response.headers.get("Content-Type", "").startswith("text/html"):
            self.seen.append((path, response.text))
        return response

    def api(self, method, path, body=None):
        response = requests.request(
            method,
            f"{self.base_url}/api/v1{path}",
            json=body,
            headers={"Authorization": "Bearer pk_test_sandbox_bearer"},
            timeout=10,
        )
        assert response.status_code < 300, response.text
        return response.json()["data"]


@pytest.fixture
def pages(sandbox):
    with i18n.recording_misses() as misses:
        found = Pages(sandbox.base_url)
        yield found
    assert sorted(misses) == [], "add these to plugipay_sandbox.hosted.i18n.ID"
    assert found.seen
    for path, page in found.seen:
        assert re.search("pembayaran|faktur|portal", page, re.I), path
        assert english_words(page) == [], path


def test_dashboard_pages_are_indonesian(pages, sdk, control, receiver, session_factory):
    for section in ("payments", "customers", "checkout-sessions", "events", "webhooks"):
        pages("GET", f"/dashboard/{section}")
    pages("GET", "/dashboard/webhooks/new")
    pages("GET", "/dashboard/payments/pay_nope", expect=404)
    evil = {"Origin": "https://evil.test"}
    pages("POST", "/dashboard/webhooks", 403, data={"url": "https://x.test"}, headers=evil)
    pages("POST", "/dashboard/webhooks", 400, data={"url": "https://shop.test/hook"})

    customer = sdk.customers.create(email="budi@example.com", metadata={"tingkat": "emas"})
    session = session_factory(customer_id=customer["id"])
    _, paid = control(
        "POST", f"checkout-sessions/{session['id']}/pay", {"card": "4242424242424242"}
    )
    payment = paid["data"]["payment"]
    sdk.refunds.create(source_type="checkout_session", source_id=session["id"], amount=50_000)
    added = pages("POST", "/dashboard/webhooks", 201, data={"url": receiver.url, "events": "*"})
    endpoint = re.search(r'href="/dashboard/webhooks/(\w+)"', added.text).group(1)
    receiver.status = 500
    sdk.customers.create(email="sari@example.com")
    control("POST", "deliveries/flush")
    assert "Percobaan berikutnya" in pages("GET", f"/dashboard/webhooks/{endpoint}").text
    for seconds in (60, 120, 180, 600):
        control("POST", "clock/advance", {"seconds": seconds})
        control("POST", "deliveries/flush")
    receiver.status = 200
    for path in (
        "/dashboard/payments?status=partially_refunded",
        f"/dashboard/payments/{payment['id']}",
        f"/dashboard/customers/{customer['id']}",
        f"/dashboard/checkout-sessions/{session['id']}",
    ):
        pages("GET", path)
    events = pages("GET", "/dashboard/events").text
    pages("GET", "/dashboard/events/" + re.search(r"/dashboard/events/(evt_\w+)", events).group(1))
    deliveries = pages("GET", f"/dashboard/webhooks/{endpoint}").text
    assert "Coba lagi" in deliveries
    for action in ("pause", "enable"):
        pages("POST", f"/dashboard/webhooks/{endpoint}/{action}")
    for delivery in re.findall(r"/dashboard/deliveries/(\w+)/retry", deliveries)[:1]:
        pages("POST", f"/dashboard/deliveries/{delivery}/retry")
    pages("POST", f"/dashboard/webhooks/{endpoint}/delete")


def test_invoice_pages_are_indonesian(pages):
    customer = pages.api("POST", "/customers", {"email": "budi@example.com", "name": "Budi"})
    lines = [{"description": "Biaya pemasangan", "quantity": 2, "unitAmount": 25_000}]

    def new_invoice():
        body = {"customerId": customer["id"], "currency": "IDR", "lines": lines, "status": "open"}
        return pages.api("POST", "/invoices", body)

    def pay(invoice, number, expect):
        form = {"number": number, "expiry": "12/39", "cvc": "123"}
        return pages("POST", f"/i/{invoice['id']}/pay", expect, data=form)

    card = new_invoice()
    pages("GET", f"/i/{card['id']}")
    pay(card, "1234", 400)
    pay(card, "4000 0000 0000 0002", 402)
    pay(card, "4000 0027 6000 3184", 200)  # redirected to the 3-D Secure step
    pages("POST", f"/i/{card['id']}/3ds", 402, data={"action": "fail"})
    pay(card, "4242 4242 4242 4242", 200)
    pages("GET", f"/i/{card['id']}/invoice.pdf")
    voided = new_invoice()
    pages.api("POST", f"/invoices/{voided['id']}/void")
    pages("GET", f"/i/{voided['id']}")
    paid = [p for p in pages.seen if "Pembayaran diterima" in p[1]]
    assert paid and "Lunas pada" in paid[-1][1]


def test_portal_pages_are_indonesian(pages, control):
    customer = pages.api("POST", "/customers", {"email": "budi@example.com", "name": "Budi"})

    def plan(name, amount, **extra):
        body = {
            "name": name,
            "interval": "month",
            "portalFeatures": FEATURES,
            "prices": [{"currency": "IDR", "model": "flat", "unitAmount": amount}],
            **extra,
        }
        created = pages.api("POST", "/plans", body)
        return created, created["prices"][0]["id"]

    def subscribe(plan_and_price, token="ptok_test_success"):
        body = {
            "customerId": customer["id"],
            "planId": plan_and_price[0]["id"],
            "priceId": plan_and_price[1],
            "paymentTokenId": token,
        }
        return pages.api("POST", "/subscriptions", body)

    basic = plan("Dasar", 100_000)
    plan("Premium", 250_000, intervalCount=3)
    subscribe(basic)
    paused = subscribe(plan("Kuartal", 150_000, trialDays=7))
    overdue = subscribe(basic, token="ptok_test_decline")
    url = pages.api(
        "POST",
        "/portal-sessions",
        {"customerId": customer["id"], "returnUrl": "https://shop.test/akun"},
    )["url"]
    pages("POST", f"{url}/subscriptions/{paused['id']}/pause")
    pages("POST", f"{url}/subscriptions/{overdue['id']}/cancel")
    for done in portal.NOTICES:
        pages("GET", f"{url}?done={done}")
    bad_card = {"number": "1234", "expiry": "12/39", "cvc": "123"}
    pages("POST", f"{url}/payment-method", 400, data=bad_card)
    [past_due] = [
        i
        for i in pages.api("GET", f"/invoices?customerId={customer['id']}")
        if i["status"] == "past_due"
    ]
    pages("GET", f"/i/{past_due['id']}?portal={url.rsplit('/', 1)[1]}")
    control("POST", "clock/advance", {"seconds": 0.02 * DAY})
    pages("GET", url, 410)
