"""A refund requested longer ago than Plugipay keeps its idempotency key is looked for at
Plugipay before it is sent again; while one process looks and sends, no other process does
(two sweeps at once would both find nothing and both send: two refunds)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from django_plugipay.client import RESEND_WINDOW
from django_plugipay.models import Refund
from django_plugipay.resources.refunds import REFUND_REFERENCE_KEY
from django_plugipay.services import refunds as service
from tests.factories import PaymentFactory

pytestmark = pytest.mark.django_db


class ForgetfulPlugipay:
    """Plugipay past the key's window: every create makes a refund. ``while_looking`` runs
    inside the look (another process's sweep arriving meanwhile)."""

    def __init__(self, while_looking=None):
        self.made: list[dict] = []
        self.while_looking = while_looking

    def list_refunds(self, **filters):
        made = list(self.made)
        if self.while_looking is not None:
            arriving, self.while_looking = self.while_looking, None
            arriving()
        return iter(made)

    def create_refund(self, body, idempotency_key=None):
        obj = {
            "id": f"rfd_{len(self.made) + 1}",
            "status": "pending",
            "amount": body["amount"],
            "currency": "IDR",
            "chargeId": "pay_r",
            "metadata": body["metadata"],
            "mode": "test",
        }
        self.made.append(obj)
        return dict(obj)


def old_refund():
    payment = PaymentFactory(plugipay_id="pay_r", amount=5000)
    refund = Refund.objects.create(
        payment=payment,
        amount=1000,
        currency="IDR",
        idempotency_key="idem_old",
        status="requested",
        mode="test",
    )
    long_ago = timezone.now() - RESEND_WINDOW - dt.timedelta(minutes=5)
    Refund.objects.filter(pk=refund.pk).update(created_at=long_ago)
    return refund


def test_a_sweep_arriving_while_another_looks_sends_nothing(monkeypatch):
    refund = old_refund()
    arrived = []

    def second_sweep():
        arrived.append(service.submit_refund(refund=Refund.objects.get(pk=refund.pk)))

    plugipay = ForgetfulPlugipay(while_looking=second_sweep)
    monkeypatch.setattr(service, "get_client", lambda *a, **k: plugipay)
    done = service.submit_refund(refund=refund)
    assert [r["metadata"][REFUND_REFERENCE_KEY] for r in plugipay.made] == ["idem_old"]
    assert arrived[0].status == "requested" and arrived[0].plugipay_id is None
    assert (done.plugipay_id, done.status) == ("rfd_1", "pending")
    assert Refund.objects.get(pk=refund.pk).submitting_until is None  # the mark is let go


def test_a_mark_left_by_a_process_that_died_lapses(monkeypatch):
    refund = old_refund()
    plugipay = ForgetfulPlugipay()
    monkeypatch.setattr(service, "get_client", lambda *a, **k: plugipay)
    Refund.objects.filter(pk=refund.pk).update(
        submitting_until=timezone.now() + dt.timedelta(minutes=1)
    )
    assert service.submit_refund(refund=refund).plugipay_id is None
    assert plugipay.made == []
    Refund.objects.filter(pk=refund.pk).update(
        submitting_until=timezone.now() - dt.timedelta(seconds=1)
    )
    assert service.submit_refund(refund=refund).plugipay_id == "rfd_1"
    assert len(plugipay.made) == 1


def test_a_failed_send_lets_the_mark_go_for_the_retry(monkeypatch):
    """A transient error propagates for the task to retry; the retry may send at once."""
    refund = old_refund()
    plugipay = ForgetfulPlugipay()

    def down(body, idempotency_key=None):
        raise ConnectionError("Plugipay is away")

    monkeypatch.setattr(plugipay, "create_refund", down)
    monkeypatch.setattr(service, "get_client", lambda *a, **k: plugipay)
    with pytest.raises(ConnectionError):
        service.submit_refund(refund=refund)
    assert Refund.objects.get(pk=refund.pk).submitting_until is None


@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_on_postgresql_send_once(monkeypatch):
    """The same with two threads, each on its own connection, both looking before either
    sends (PostgreSQL: concurrent transactions)."""
    import contextlib
    import threading

    from django.db import connection, connections

    if connection.vendor != "postgresql":
        pytest.skip("concurrent transactions: PostgreSQL")
    refund = old_refund()
    looked = threading.Barrier(2, timeout=5)

    class Racing(ForgetfulPlugipay):
        def list_refunds(self, **filters):
            made = list(self.made)
            with contextlib.suppress(threading.BrokenBarrierError):
                looked.wait()  # both look before either sends (without the mark)
            return iter(made)

    plugipay = Racing()
    monkeypatch.setattr(service, "get_client", lambda *a, **k: plugipay)

    def sweep():
        try:
            service.submit_refund(refund=Refund.objects.get(pk=refund.pk))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [r["metadata"][REFUND_REFERENCE_KEY] for r in plugipay.made] == ["idem_old"]


def test_a_refund_plugipay_refuses_because_the_payment_was_refunded_elsewhere_ends_failed(
    plugipay_sandbox,
):
    """A refund made outside this app (the dashboard) took the whole payment, its webhook
    still on its way: Plugipay refuses ours with 409 ``conflict`` (already fully refunded).
    That refuses the refund itself: ours ends ``failed`` (``refund_failed``), not
    ``requested`` and sent again by every sweep."""
    from django_plugipay import services
    from django_plugipay.client import get_client

    payment = plugipay_sandbox.paid_payment(amount=10_000)
    plugipay_sandbox.hold()  # the dashboard refund's webhooks are on their way
    get_client().create_refund(
        {
            "amount": 10_000,
            "sourceType": "checkout_session",
            "sourceId": payment.checkout_session.plugipay_id,
            "reason": "duplicate",
        },
        idempotency_key="dashboard-refund",
    )
    ours = services.refund_payment(payment=payment, amount=5_000, reason="duplicate")
    ours.refresh_from_db()
    assert (ours.status, ours.failure_code) == ("failed", "conflict")
    plugipay_sandbox.release()
    payment.refresh_from_db()
    assert payment.amount_refunded == 10_000


def test_a_sweep_during_a_slow_but_normal_look_and_send_does_not_send_again(monkeypatch):
    """The mark outlasts the longest look and send: every request retried, each retry after
    the longest wait Plugipay may ask for. A sweep arriving while a slow send is retried (its
    time well past one call's timeouts) leaves it alone."""
    from django_plugipay.client import RETRY_AFTER_CAP
    from django_plugipay.conf import app_settings

    refund = old_refund()
    plugipay = ForgetfulPlugipay()
    real_now = timezone.now
    one_call = (app_settings.MAX_RETRIES + 1) * (app_settings.TIMEOUT + RETRY_AFTER_CAP)
    elapsed = dt.timedelta(seconds=2 * one_call)  # a look of a page, then the send, both slow
    create, arrived = plugipay.create_refund, []

    def slow_create(body, idempotency_key=None):
        if not arrived:  # another process's sweep arrives while this send is retried
            monkeypatch.setattr(service.timezone, "now", lambda: real_now() + elapsed)
            arrived.append(service.submit_refund(refund=Refund.objects.get(pk=refund.pk)))
        return create(body, idempotency_key=idempotency_key)

    monkeypatch.setattr(plugipay, "create_refund", slow_create)
    monkeypatch.setattr(service, "get_client", lambda *a, **k: plugipay)
    service.submit_refund(refund=refund)
    assert len(plugipay.made) == 1


def test_a_process_lets_go_of_its_own_mark_only(monkeypatch):
    """A process whose mark lapsed (it was that slow) and was taken over does not clear the
    mark of the process that took over when it ends."""
    refund = old_refund()
    taken_over = timezone.now() + dt.timedelta(hours=1)

    def overtaken(**filters):
        Refund.objects.filter(pk=refund.pk).update(submitting_until=taken_over)
        return iter([])

    plugipay = ForgetfulPlugipay()
    monkeypatch.setattr(plugipay, "list_refunds", overtaken)
    monkeypatch.setattr(service, "get_client", lambda *a, **k: plugipay)
    service.submit_refund(refund=refund)
    assert Refund.objects.get(pk=refund.pk).submitting_until == taken_over


def test_the_same_key_asking_for_the_whole_remainder_at_once_is_answered_with_one_refund(
    plugipay_sandbox, monkeypatch
):
    """Two requests for the whole remainder with one key (a double click, a client's retry
    while the first runs): the second, which looked the key up before the first stored its
    refund, finds that refund under the payment's lock and returns it (``replayed``),
    instead of refusing the request because nothing is left to refund."""
    from django_plugipay import services

    payment = plugipay_sandbox.paid_payment(amount=30_000)
    real, raced = service.refund_refusal, []

    def refusal(**kwargs):
        if not raced and kwargs.get("remaining") is None:  # the outer request's first check
            raced.append(True)
            services.refund_payment(
                payment=payment, reason="requested_by_customer", idempotency_key="dbl"
            )
        return real(**kwargs)

    monkeypatch.setattr(service, "refund_refusal", refusal)
    again = services.refund_payment(
        payment=payment, reason="requested_by_customer", idempotency_key="dbl"
    )
    assert again.replayed and Refund.objects.count() == 1
