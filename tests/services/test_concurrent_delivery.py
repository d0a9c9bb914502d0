"""Real sandbox events, each delivered three times in shuffled order by 16 concurrent senders."""

import json
import queue
import random
import threading
from collections import Counter

import requests
from django.db import connections

from django_plugipay import services
from django_plugipay.client import get_client
from django_plugipay.models import CheckoutSession, Customer, Payment, Refund, WebhookEvent
from django_plugipay.testing import signed_webhook

SESSIONS = 33
SENDERS = 16
COPIES = 3
DECLINE = "4000000000000002"


def make_history(sandbox):
    """Customers, sessions paid after declines, declined-only sessions, partial and full
    refunds (some failing): every change recorded as an event at the sandbox, none delivered."""
    client = get_client()
    customers = [client.create_customer({"email": f"c{i}@example.com"}) for i in range(4)]
    for i in range(SESSIONS):
        options = {"customer": Customer(plugipay_id=customers[i % 4]["id"])} if i % 2 else {}
        session = services.create_checkout_session(
            amount=10_000 + i,
            currency="IDR",
            success_url="https://shop.test/ok",
            cancel_url="https://shop.test/no",
            **options,
        )
        if i % 3 == 0:
            sandbox.pay(session, DECLINE, deliver=False)
        if i % 5 == 4:
            continue  # declined (or never paid) only
        sandbox.pay(session, deliver=False)
        if i % 3 == 1:
            for part, amount in enumerate((3_000, None)):
                body = {"sourceType": "checkout_session", "sourceId": session.plugipay_id}
                if amount:
                    body["amount"] = amount
                refund = client.create_refund(body, idempotency_key=f"r{i}-{part}")
                if refund["status"] == "pending":
                    sandbox.settle_refund(
                        refund["id"],
                        succeed=bool(part or i % 2),
                        code="declined",
                        message="The bank refused the refund.",
                        deliver=False,
                    )


def test_shuffled_triplicated_concurrent_delivery(
    postgres, plugipay_sandbox, live_server, signal_log
):
    plugipay_sandbox.configure(refundDelay=3600)
    plugipay_sandbox.hold()
    make_history(plugipay_sandbox)
    events = list(get_client().list_events(order="asc", limit=100))
    deliveries = [event for event in events for _ in range(COPIES)]
    random.Random(1404).shuffle(deliveries)
    assert len(events) >= 100 and len(deliveries) >= 300

    url = live_server.url + "/plugipay/webhook/"
    work: queue.Queue = queue.Queue()
    for event in deliveries:
        work.put(event)
    codes: list[int] = []
    lock = threading.Lock()

    def sender():
        http = requests.Session()
        try:
            while True:
                try:
                    event = work.get_nowait()
                except queue.Empty:
                    return
                body, headers = signed_webhook(json.dumps(event), plugipay_sandbox.webhook_secret)
                headers["Content-Type"] = "application/json"
                code = http.post(url, data=body, headers=headers, timeout=60).status_code
                with lock:
                    codes.append(code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(codes) == len(deliveries)
    failures = list(WebhookEvent.objects.exclude(last_error="").values_list("kind", "last_error"))
    assert Counter(codes) == {200: len(deliveries)}, failures
    assert WebhookEvent.objects.count() == len(events)
    assert set(WebhookEvent.objects.values_list("status", flat=True)) <= {"processed", "ignored"}

    state = plugipay_sandbox.state()
    for remote in state["sessions"]:
        local = CheckoutSession.objects.get(plugipay_id=remote["id"])
        assert (local.status, local.amount) == (remote["status"], remote["amount"])
    for remote in state["payments"]:
        local = Payment.objects.get(plugipay_id=remote["id"])
        assert (local.status, local.amount) == (remote["status"], remote["amount"])
    refunded = Counter()
    for remote in state["refunds"]:
        local = Refund.objects.get(plugipay_id=remote["id"])
        assert (local.status, local.amount) == (remote["status"], remote["amount"])
        if remote["status"] == "succeeded":
            refunded[remote["chargeId"]] += remote["amount"]
    for payment in Payment.objects.all():
        assert payment.amount_refunded == refunded[payment.plugipay_id]
    assert Customer.objects.count() >= 4

    watched = {
        f"{kind}_{status}" for kind in ("payment", "refund") for status in ("succeeded", "failed")
    }
    watched.add("checkout_session_completed")
    lines = [(name, ident) for name, ident in signal_log.committed() if name in watched]
    sent = Counter(lines)
    assert set(sent.values()) == {1}, [k for k, v in sent.items() if v > 1]
    expected = Counter()
    for remote in state["sessions"]:
        if remote["status"] == "completed":
            expected["checkout_session_completed"] += 1
    for remote in state["payments"]:
        expected[f"payment_{remote['status']}"] += 1
    for remote in state["refunds"]:
        if remote["status"] in ("succeeded", "failed"):
            expected[f"refund_{remote['status']}"] += 1
    assert Counter(name for name, _ in lines) == expected
    assert expected["refund_succeeded"] and expected["refund_failed"] and expected["payment_failed"]
    print(f"{len(events)} events, {len(deliveries)} deliveries, signals {dict(expected)}")
