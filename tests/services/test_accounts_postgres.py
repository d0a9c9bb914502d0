"""Two accounts on PostgreSQL (DESIGN §6 rule 14): each account's real sandbox events, with the
same customer e-mails and order references in both, delivered twice in one shuffled stream by
concurrent senders to the one webhook URL; every signal once, each mirror its account's."""

import json
import queue
import random
import threading
from collections import Counter

import requests
from django.db import connections

from django_plugipay import services
from django_plugipay.models import Account, CheckoutSession, Customer, Payment, Refund, WebhookEvent
from django_plugipay.testing import signed_webhook
from tests.conftest import MERCHANT

SESSIONS = 12
SENDERS = 8
COPIES = 2
DECLINE = "4000000000000002"


def make_history(sandbox, account):
    """Customers, paid and declined sessions and refunds of one account, none delivered."""
    customers = [
        services.create_customer(email=f"c{i}@shop.test", account=account) for i in range(2)
    ]
    for i in range(SESSIONS):
        session = services.create_checkout_session(
            amount=10_000 + i,
            currency="IDR",
            customer=customers[i % 2],
            metadata={"order": f"A-{i}"},
            success_url="https://shop.test/ok",
            cancel_url="https://shop.test/no",
            account=account,
        )
        if i % 3 == 0:
            sandbox.pay(session, DECLINE, deliver=False)
        if i % 4 == 3:
            continue
        sandbox.pay(session, deliver=False)
        if i % 3 == 1:
            body = {"sourceType": "checkout_session", "sourceId": session.plugipay_id}
            services.client_for(account).create_refund(
                {**body, "amount": 2_000}, idempotency_key=f"{account}-r{i}"
            )


def test_two_accounts_shuffled_together(postgres, two_accounts, live_server, signal_log):
    sandbox, merchant_secret = two_accounts
    sandbox.hold()
    secrets = {"default": sandbox.webhook_secret, "merchant": merchant_secret}
    stream = []
    for alias, secret in secrets.items():
        make_history(sandbox, alias)
        events = list(services.client_for(alias).list_events(order="asc", limit=100))
        assert events and {e["accountId"] for e in events} == {
            MERCHANT if alias == "merchant" else events[0]["accountId"]
        }
        stream += [(event, secret) for event in events for _ in range(COPIES)]
    random.Random(29).shuffle(stream)

    url = live_server.url + "/plugipay/webhook/"
    work: queue.Queue = queue.Queue()
    for item in stream:
        work.put(item)
    codes: list[int] = []
    lock = threading.Lock()

    def sender():
        http = requests.Session()
        try:
            while True:
                try:
                    event, secret = work.get_nowait()
                except queue.Empty:
                    return
                body, headers = signed_webhook(json.dumps(event), secret)
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

    failures = list(WebhookEvent.objects.exclude(last_error="").values_list("kind", "last_error"))
    assert Counter(codes) == {200: len(stream)}, failures
    assert WebhookEvent.objects.count() == len(stream) // COPIES
    accounts = {a.plugipay_id or "": a for a in Account.objects.all()}
    own = Account.objects.get(alias="default")
    for event in WebhookEvent.objects.all():
        assert event.account == accounts.get(event.payload["accountId"], own)

    state = sandbox.state()
    for kind, model in (("sessions", CheckoutSession), ("payments", Payment), ("refunds", Refund)):
        for remote in state[kind]:
            local = model.objects.get(plugipay_id=remote["id"])
            assert (local.status, local.amount) == (remote["status"], remote["amount"])
            assert local.account == accounts.get(remote["accountId"], own), remote["id"]
    for remote in state["customers"]:
        local = Customer.objects.filter(plugipay_id=remote["id"]).first()
        if local is not None:
            assert local.account == accounts.get(remote["accountId"], own)
    # the same e-mail and order reference exist once per account
    assert Customer.objects.filter(email="c0@shop.test").count() == 2
    assert CheckoutSession.objects.filter(metadata__order="A-1").count() == 2

    watched = {"checkout_session_completed", "payment_succeeded", "payment_failed"}
    watched |= {"refund_succeeded", "refund_failed"}
    lines = [(name, ident) for name, ident in signal_log.committed() if name in watched]
    assert set(Counter(lines).values()) == {1}
    expected = Counter()
    for remote in state["sessions"]:
        expected["checkout_session_completed"] += remote["status"] == "completed"
    for remote in state["payments"]:
        expected[f"payment_{remote['status']}"] += 1
    for remote in state["refunds"]:
        if remote["status"] in ("succeeded", "failed"):
            expected[f"refund_{remote['status']}"] += 1
    assert Counter(name for name, _ in lines) == +expected
