"""The apply engine at its edges: refunds Plugipay made twice under one reference, rows of
one account never linked to another account's, and events that arrive before their parent."""

from __future__ import annotations

import logging
import threading

import pytest
from django.db import connection, connections

from django_plugipay import accounts
from django_plugipay.client import get_client
from django_plugipay.exceptions import APIError, TransientError
from django_plugipay.models import CheckoutSession, EventSource, Payment, Refund, WebhookEvent
from django_plugipay.resources.refunds import REFUND_REFERENCE_KEY
from django_plugipay.services import apply as engine
from django_plugipay.services import events as service
from django_plugipay.services.apply import advance, upsert_customer, upsert_payment
from django_plugipay.specs import registered
from django_plugipay.testing import DECLINE_CARD, build_event, wait_for
from django_plugipay.webhooks import parse_event
from tests.factories import PaymentFactory
from tests.test_apply_cost import fetching_subscription, session_completed
from tests.test_specs import post

pytestmark = pytest.mark.django_db


def refund_obj(refund_id, amount, when):
    return {
        "id": refund_id,
        "status": "succeeded",
        "amount": amount,
        "currency": "IDR",
        "chargeId": "pay_x",
        "metadata": {REFUND_REFERENCE_KEY: "idem_ref"},
        "updatedAt": when,
        "mode": "test",
    }


def test_a_second_plugipay_refund_under_our_reference_is_a_refund_of_its_own(signal_log):
    """Our requested refund is matched to Plugipay's by the reference it carries; a second
    refund Plugipay made under the same reference (the double refund this app guards
    against, made all the same) gets a row of its own: mirrored, counted in the payment's
    ``amount_refunded`` and signalled, not folded into the first row."""
    paid = PaymentFactory(plugipay_id="pay_x", amount=5000)
    paid.refunds.create(amount=1000, currency="IDR", idempotency_key="idem_ref", status="requested")
    engine.upsert_refund(refund_obj("rfd_1", 1000, "2026-01-01T00:00:00Z"))
    engine.upsert_refund(refund_obj("rfd_2", 1500, "2026-01-02T00:00:00Z"))
    engine.upsert_refund(refund_obj("rfd_1", 1000, "2026-01-03T00:00:00Z"))  # news of the first
    paid.refresh_from_db()
    rows = dict(Refund.objects.values_list("plugipay_id", "amount"))
    assert rows == {"rfd_1": 1000, "rfd_2": 1500}
    assert Refund.objects.get(plugipay_id="rfd_1").idempotency_key == "idem_ref"
    assert paid.amount_refunded == 2500
    assert [name for name, _ in signal_log] == ["refund_succeeded", "refund_succeeded"]


def test_a_paid_invoice_never_links_another_accounts_payment(settings):
    """A paid invoice links the payments heard of before it (by their ``invoiceId``) of its
    own account only: another account's payment naming the same id keeps no invoice."""
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "ACCOUNTS": {"m": {"ON_BEHALF_OF": "acc_m", "WEBHOOK_SECRETS": ["whsec_m"]}},
    }
    with accounts.acting_for("m"):
        theirs = upsert_payment(
            {
                "id": "pay_m",
                "status": "succeeded",
                "amount": 5000,
                "currency": "IDR",
                "invoiceId": "inv_d",
                "mode": "test",
            }
        )
    assert theirs.invoice_id is None  # account m has no such invoice
    customer = upsert_customer({"id": "cus_d", "email": "d@shop.test", "mode": "test"})
    invoice = advance(
        registered("invoice"),
        {
            "id": "inv_d",
            "status": "paid",
            "customerId": "cus_d",
            "currency": "IDR",
            "total": 5000,
            "amountPaid": 5000,
            "mode": "test",
        },
    )
    theirs = Payment.objects.get(pk=theirs.pk)
    assert theirs.account_id != invoice.account_id
    assert (theirs.invoice_id, theirs.customer_id) == (None, None), (
        "account m's payment was linked to the default account's invoice and customer",
        theirs.invoice_id == invoice.pk,
        theirs.customer_id == customer.pk,
    )


def test_a_receipt_never_links_another_accounts_invoice(settings):
    """A receipt links the invoice it names in its own account only."""
    upsert_customer({"id": "cus_d", "email": "d@shop.test", "mode": "test"})
    invoice = advance(
        registered("invoice"),
        {
            "id": "inv_d",
            "status": "open",
            "customerId": "cus_d",
            "currency": "IDR",
            "total": 5000,
            "mode": "test",
        },
    )
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "ACCOUNTS": {"m": {"ON_BEHALF_OF": "acc_m", "WEBHOOK_SECRETS": ["whsec_m"]}},
    }
    with accounts.acting_for("m"):
        receipt = advance(
            registered("receipt"),
            {
                "id": "rcpt_m",
                "number": "R-1",
                "sourceType": "invoice",
                "sourceId": "inv_d",
                "total": 5000,
                "currency": "IDR",
                "mode": "test",
            },
        )
    assert receipt.account_id != invoice.account_id
    assert receipt.invoice_id is None, "account m's receipt links the default account's invoice"


def session_made_elsewhere():
    """A checkout session created at Plugipay and not mirrored here (another service made it):
    its ``checkout_session.created`` is all this project hears of it."""
    return get_client().create_checkout_session(
        {
            "amount": 9000,
            "currency": "IDR",
            "methods": ["va", "card"],
            "successUrl": "https://shop.test/ok",
            "cancelUrl": "https://shop.test/no",
        }
    )


def test_a_pending_payment_heard_of_before_its_session_leaves_the_session_waiting(
    plugipay_sandbox, signal_log
):
    """A VA's ``payment.updated`` (pending) delivered before its session's
    ``checkout_session.created``: the session is fetched and applied first, so the payment
    is linked to it and the session waits for the money (``checkout_session_pending`` once),
    as in order."""
    plugipay_sandbox.hold()
    made = session_made_elsewhere()
    plugipay_sandbox.start_async(made["id"], "va", deliver=False)
    plugipay_sandbox.release(order="reverse")
    session = CheckoutSession.objects.get(plugipay_id=made["id"])
    assert Payment.objects.get().checkout_session_id == session.pk
    assert session.status == "pending"
    assert signal_log.names().count("checkout_session_pending") == 1


def test_a_declined_attempt_heard_of_before_its_session_ends_linked_to_it(plugipay_sandbox):
    """The whole life delivered last to first: the declined attempt and the payment that
    completed the session both end linked to it."""
    plugipay_sandbox.hold()
    made = session_made_elsewhere()
    plugipay_sandbox.pay(made["id"], card=DECLINE_CARD, deliver=False)
    plugipay_sandbox.pay(made["id"], deliver=False)
    plugipay_sandbox.release(order="reverse")
    session = CheckoutSession.objects.get(plugipay_id=made["id"])
    assert session.status == "completed"
    linked = dict(Payment.objects.values_list("status", "checkout_session_id"))
    assert linked == {"failed": session.pk, "succeeded": session.pk}


def renewal():
    return build_event(
        "subscription.renewed",
        {
            "id": "sub_v",
            "currentPeriodStart": "2026-04-01T00:00:00Z",
            "currentPeriodEnd": "2026-05-01T00:00:00Z",
        },
    )


def test_a_duplicate_of_an_applied_renewal_is_acknowledged_without_asking_plugipay(
    client, monkeypatch
):
    """A partial event (a renewal: the id and the period) fetches its whole object first;
    delivered again once applied, it is acknowledged (200) without that fetch, so Plugipay
    being away then is no 500."""
    spec, fetched = fetching_subscription(monkeypatch, month=4)
    event = renewal()
    assert post(client, event).status_code == 200
    assert WebhookEvent.objects.get(event_id=event["id"]).status == "processed"
    assert fetched == ["sub_v"]

    def down(self, oid):
        fetched.append(oid)
        raise TransientError("Plugipay timed out", status=None)

    monkeypatch.setattr(type(spec), "fetch", down)
    response = post(client, event)  # Plugipay delivers the same event again
    assert (response.status_code, fetched) == (200, ["sub_v"]), response.content


def test_renewal_of_a_subscription_plugipay_does_not_know_is_not_a_5xx(client, monkeypatch):
    """The renewal's subscription is one Plugipay answers 404 for: the event is stored
    failed and answered 409, as for a referenced object Plugipay does not know."""
    spec = registered("subscription")

    def fetch(self, oid):
        raise APIError("No such subscription", status=404, code="not_found")

    monkeypatch.setattr(type(spec), "fetch", fetch)
    event = build_event(
        "subscription.renewed",
        {
            "id": "sub_gone",
            "currentPeriodStart": "2026-02-01T00:00:00Z",
            "currentPeriodEnd": "2026-03-01T00:00:00Z",
        },
    )
    response = post(client, event)
    row = WebhookEvent.objects.get(event_id=event["id"])
    assert row.status == "failed"
    assert response.status_code == 409, (response.status_code, response.content)


def test_a_refund_naming_its_payment_only_by_source_names_no_row_to_lock_ahead():
    """The rows an event's insert locks ahead of applying it: a refund with ``chargeId``
    names its payment and itself; one naming only ``sourceId`` names neither, so its spec
    locks the payment (found through the session) before the refund."""
    with_charge = build_event("refund.succeeded", {"id": "rfd_1", "chargeId": "pay_1"})
    by_source = build_event("refund.succeeded", {"id": "rfd_2", "sourceId": "cs_1"})
    assert service.locked_ahead(parse_event(with_charge)) == [
        ("refund", "rfd_1"),
        ("payment", "pay_1"),
    ]
    assert service.locked_ahead(parse_event(by_source)) == []


def waiting_on_a_lock() -> bool:
    """Does another connection to this database wait for a lock (PostgreSQL)?"""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


def source_only_refund(status, when):
    return {
        "id": "rfd_d",
        "status": status,
        "amount": 1000,
        "currency": "IDR",
        "sourceType": "checkout_session",
        "sourceId": "cs_d",
        "updatedAt": when,
        "mode": "test",
    }


@pytest.mark.django_db(transaction=True)
def test_a_source_only_refund_event_and_a_sync_of_it_do_not_deadlock(monkeypatch, caplog):
    """A refund event naming its payment only by ``sourceId`` (no ``chargeId``) and a sync of
    the same refund at once: both lock the payment before the refund (the lock order), so
    neither deadlocks (the event's insert no longer locks the refund row ahead of them)."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    payment = PaymentFactory(plugipay_id="pay_d", amount=5000, checkout_session__plugipay_id="cs_d")
    engine.upsert_refund(source_only_refund("pending", "2026-01-01T00:00:00Z"))
    assert Refund.objects.get().payment_id == payment.pk

    spec = registered("refund")
    original = type(spec).lock_parent
    webhook_thread, holds_refund, other_waits = [], threading.Event(), threading.Event()

    def lock_parent(self, values, refs, context):
        if threading.current_thread() in webhook_thread and not holds_refund.is_set():
            holds_refund.set()  # the webhook's insert has locked the refund row by now
            other_waits.wait(10)
        return original(self, values, refs, context)

    monkeypatch.setattr(type(spec), "lock_parent", lock_parent)
    errors = []

    def webhook():
        try:
            body = build_event(
                "refund.succeeded", source_only_refund("succeeded", "2026-01-01T00:02:00Z")
            )
            service.process_event(parse_event(body), source=EventSource.WEBHOOK)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    def sync():
        try:
            holds_refund.wait(10)
            engine.upsert_refund(source_only_refund("succeeded", "2026-01-01T00:01:00Z"))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    first = threading.Thread(target=webhook)
    webhook_thread.append(first)
    second = threading.Thread(target=sync)
    with caplog.at_level(logging.INFO, logger="django_plugipay.db"):
        first.start()
        second.start()
        holds_refund.wait(10)
        # the sync ends, or has locked the payment and waits for a row the webhook holds
        wait_for(lambda: not second.is_alive() or waiting_on_a_lock(), timeout=10)
        other_waits.set()
        first.join(30)
        second.join(30)
    assert not errors, errors
    deadlocks = [r.getMessage() for r in caplog.records if "deadlock" in r.getMessage()]
    assert deadlocks == [], deadlocks


def test_post_save_hears_the_creation_of_the_rows_a_webhook_makes():
    """A project's ``post_save`` receiver hears of a mirror row the engine creates
    (``created=True``), not only of its later updates: the engine inserts in one statement,
    then sends the signal as ``save()`` would."""
    from django.db.models.signals import post_save

    seen = []

    def listen(sender, instance, created, **kwargs):
        seen.append((sender.__name__, instance.plugipay_id, created))

    post_save.connect(listen, sender=Payment)
    post_save.connect(listen, sender=CheckoutSession)
    try:
        service.process_event(parse_event(session_completed(1)), source=EventSource.WEBHOOK)
    finally:
        post_save.disconnect(listen, sender=Payment)
        post_save.disconnect(listen, sender=CheckoutSession)
    assert ("CheckoutSession", "cs_1", True) in seen, seen
    assert ("Payment", "pay_1", True) in seen, seen


def test_a_post_save_receivers_own_error_is_the_receivers(client):
    """A project's ``post_save`` receiver the engine runs for a row it creates is a receiver
    like the app's signals': its own ``IntegrityError`` fails the event as a receiver's (500,
    applied again on the next delivery), not as the event's values refused (422)."""
    import django.db
    from django.db.models.signals import post_save

    from django_plugipay.models import Customer

    def receiver(sender, instance, created, **kwargs):
        if created:
            raise django.db.IntegrityError('duplicate key value violates "shop_profile_pkey"')

    post_save.connect(receiver, sender=Customer, dispatch_uid="test_post_save_error")
    try:
        example = dict(registered("customer").example)
        response = post(client, build_event("customer.created", example, event_id="evt_ps"))
    finally:
        post_save.disconnect(sender=Customer, dispatch_uid="test_post_save_error")
    assert response.status_code == 500, response.content
    assert WebhookEvent.objects.get(event_id="evt_ps").status == "failed"
