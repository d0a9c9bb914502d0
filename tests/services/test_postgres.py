"""Concurrency on PostgreSQL: row locks, duplicate inserts, refunds racing, reconcile racing."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.db import IntegrityError, connection, connections, transaction

from django_plugipay import services, signals
from django_plugipay.exceptions import RefundError
from django_plugipay.models import CheckoutSession, EventSource, Payment, Refund, WebhookEvent
from django_plugipay.services import apply as engine
from django_plugipay.services import events
from django_plugipay.testing import build_event, signed_webhook, wait_for
from django_plugipay.webhooks import parse_event
from tests.factories import PaymentFactory


def in_threads(count, target):
    """Run ``target(i)`` in ``count`` threads released together; close their connections."""
    barrier = threading.Barrier(count)

    def run(i):
        barrier.wait()
        try:
            return target(i)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def completed_event():
    return build_event(
        "checkout_session.completed",
        {
            "id": "cs_race",
            "status": "completed",
            "amount": 5000,
            "currency": "IDR",
            "paymentId": "pay_race",
            "paymentMethod": "card",
            "mode": "test",
            "updatedAt": "2026-01-01T00:00:00Z",
        },
    )


def test_constraints_hold_on_postgres(postgres):
    payment = PaymentFactory(amount=1000)
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.filter(pk=payment.pk).update(amount_refunded=1001)
    with pytest.raises(IntegrityError), transaction.atomic():
        Refund.objects.create(payment=payment, amount=0, currency="IDR")


def test_same_event_eight_times_concurrently(postgres, live_server, signal_log):
    body, headers = signed_webhook(completed_event(), "whsec_plugipay_testing")
    url = live_server.url + "/plugipay/webhook/"
    codes = in_threads(
        8,
        lambda i: (
            requests.post(
                url, data=body, headers={**headers, "Content-Type": "application/json"}, timeout=30
            ).status_code
        ),
    )
    assert codes == [200] * 8
    assert WebhookEvent.objects.count() == 1
    assert WebhookEvent.objects.get().status == "processed"
    names = [n for n, _ in signal_log]
    assert names.count("checkout_session_completed") == 1
    assert names.count("payment_succeeded") == 1


def test_concurrent_upserts_of_one_transition_signal_once(postgres, signal_log):
    obj = completed_event()["data"]["object"]
    in_threads(6, lambda i: engine.upsert_checkout_session(obj))
    assert CheckoutSession.objects.count() == 1 and Payment.objects.count() == 1
    assert [n for n, _ in signal_log] == ["checkout_session_completed", "payment_succeeded"]


def test_a_concurrent_apply_waits_for_the_row_lock_and_signals_once(postgres, signal_log):
    """The second apply of one transition blocks on the first one's row lock, then sees it done.

    Deterministic: the first transaction is held open (in its signal receiver) until the second
    is seen waiting on a lock in ``pg_stat_activity``. Without the lock, the second reads the
    stale open row, waits only at its UPDATE and announces the transition a second time.
    """
    done = completed_event()["data"]["object"]
    engine.upsert_checkout_session({**done, "status": "open", "paymentId": None})

    def apply(i):
        with transaction.atomic():
            engine.upsert_checkout_session(done)

    _second_waits_for_the_first(apply, signals.checkout_session_completed)
    assert signal_log.names().count("checkout_session_completed") == 1
    assert signal_log.names().count("payment_succeeded") == 1


def test_two_events_of_one_transition_wait_on_the_rows_their_inserts_lock(postgres, signal_log):
    """Two events of one change (``completed`` and ``async_payment_succeeded`` of a session)
    delivered at once: the second's insert, which locks the rows it names, waits for the
    first's transaction, then reads the session completed and announces nothing again.

    Deterministic as above. Without the lock, the second would hold the stale open row it read
    with its insert and announce the completion a second time."""
    done = completed_event()["data"]["object"]
    engine.upsert_checkout_session({**done, "status": "open", "paymentId": None})
    bodies = [
        completed_event(),
        build_event("checkout_session.async_payment_succeeded", done),
    ]

    def deliver(i):
        events.process_event(parse_event(bodies[i]), source=EventSource.WEBHOOK)

    _second_waits_for_the_first(deliver, signals.checkout_session_completed)
    assert list(WebhookEvent.objects.values_list("status", flat=True)) == ["processed"] * 2
    assert signal_log.names().count("checkout_session_completed") == 1
    assert signal_log.names().count("payment_succeeded") == 1


def _second_waits_for_the_first(apply, signal):
    """Run ``apply(0)`` in a thread, held open in its ``signal`` receiver until ``apply(1)``,
    in another thread, is seen waiting on a lock in ``pg_stat_activity``; then let both end."""
    holding, release = threading.Event(), threading.Event()

    def hold(sender, **kwargs):
        if not holding.is_set():
            holding.set()
            release.wait(30)

    def lock_waiters():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            return cursor.fetchone()[0]

    signal.connect(hold, weak=False)
    try:
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(lambda: _closing(apply, 0))
            wait_for(holding.is_set, message="the first to hold its transaction open")
            second = pool.submit(lambda: _closing(apply, 1))
            wait_for(lock_waiters, message="the second to wait on a lock")
            release.set()
            first.result(timeout=30)
            second.result(timeout=30)
    finally:
        release.set()
        signal.disconnect(hold)


def _closing(target, i):
    try:
        return target(i)
    finally:
        connections.close_all()


def test_two_refunds_racing_past_the_remainder(postgres, plugipay_sandbox, monkeypatch):
    from tests.celery import app

    # The winner's on-commit task runs in its own thread, against the sandbox: what reached
    # Plugipay is the on-commit effect, seen whichever thread committed.
    monkeypatch.setitem(app.conf, "task_always_eager", True)
    payment = plugipay_sandbox.paid_payment(amount=10_000)

    def attempt(i):
        try:
            services.refund_payment(payment=payment, amount=6_000, reason="duplicate")
            return "ok"
        except RefundError as exc:
            return exc.code

    outcomes = in_threads(2, attempt)
    assert sorted(outcomes) == ["ok", "over_refund"]
    refund = Refund.objects.get(payment=payment)
    payment.refresh_from_db()  # the winner's refund may have settled already (amount_refunded)
    assert services.refundable_amount(payment) == 4_000
    sent = plugipay_sandbox.state()["refunds"]
    assert [(r["id"], r["amount"]) for r in sent] == [(refund.plugipay_id, 6_000)]


def test_reconcile_racing_live_webhooks_signals_once(postgres, plugipay_sandbox, signal_log):
    plugipay_sandbox.hold()
    sessions = [
        services.create_checkout_session(
            amount=1000 + i,
            currency="IDR",
            success_url="https://a.test",
            cancel_url="https://b.test",
        )
        for i in range(10)
    ]
    for session in sessions:
        plugipay_sandbox.pay(session, deliver=False)

    def run(i):
        if i == 0:
            services.reconcile()
        else:
            plugipay_sandbox.release(order="shuffle", duplicate=2)

    in_threads(2, run)

    def settled():  # a delivery that failed is retried, as Plugipay would, once it is due
        plugipay_sandbox.retry_deliveries()
        return all(d["status"] != "pending" for d in plugipay_sandbox.state()["deliveries"])

    wait_for(settled, timeout=60, interval=0.01, message="every delivery to settle")
    errors = list(WebhookEvent.objects.exclude(last_error="").values_list("kind", "last_error"))
    names = [n for n, _ in signal_log]
    assert names.count("checkout_session_completed") == 10, errors
    assert names.count("payment_succeeded") == 10, errors
    assert CheckoutSession.objects.filter(status="completed").count() == 10


def test_two_workers_drain_one_queue_at_once_and_apply_each_event_once(postgres, signal_log):
    """Batches claimed with SKIP LOCKED: the workers take different events, and two events
    about one session (in both workers' batches) wait on its row lock instead of racing."""
    from django_plugipay.models import EventSource
    from django_plugipay.services.events import record_event
    from django_plugipay.webhooks import parse_event

    def body(n, status):
        return build_event(
            f"checkout_session.{status}" if status == "completed" else "checkout_session.updated",
            {
                "id": f"cs_q{n}",
                "status": status,
                "amount": 5000,
                "currency": "IDR",
                "paymentId": f"pay_q{n}" if status == "completed" else None,
                "updatedAt": f"2026-01-01T00:00:0{0 if status == 'open' else 1}Z",
            },
        )

    bodies = [body(n, "open") for n in range(20)] + [body(n, "completed") for n in range(20)]
    for item in bodies:
        record_event(parse_event(item), source=EventSource.WEBHOOK)
    taken = in_threads(2, lambda i: services.apply_queued_events(batch_size=3))
    assert sum(taken) == 40
    assert set(WebhookEvent.objects.values_list("status", "attempts")) == {("processed", 1)}
    assert set(CheckoutSession.objects.values_list("status", flat=True)) == {"completed"}
    assert Payment.objects.filter(status="succeeded").count() == 20
    committed = [name for name, _ident in signal_log.committed()]
    assert committed.count("checkout_session_completed") == 20
    assert committed.count("payment_succeeded") == 20
    assert committed.count("webhook_received") == 40


def test_a_batch_leaves_the_events_of_objects_another_workers_batch_holds(postgres, signal_log):
    """Worker 1's batch moves payment pay_c1 and holds its transaction open. Worker 2's batch
    takes a refund of pay_c1 and two other payments: it applies and commits the other two
    without waiting for worker 1 (their objects are free), leaves the refund queued, and
    applies it in its next batch once worker 1 commits. Every event is applied once."""
    from django_plugipay.models import EventSource
    from django_plugipay.services.events import process_event, record_event
    from django_plugipay.webhooks import parse_event

    def paid(n, status="succeeded"):
        obj = {"id": f"pay_c{n}", "status": status, "amount": 5000, "currency": "IDR"}
        return build_event(f"payment.{status}", {**obj, "mode": "test"})

    process_event(parse_event(paid(1, "pending")), source=EventSource.WEBHOOK)
    refund = build_event(
        "refund.succeeded",
        {"id": "rfd_c1", "status": "succeeded", "amount": 100, "chargeId": "pay_c1"},
    )
    for item in (paid(1), refund, paid(2), paid(3)):
        record_event(parse_event(item), source=EventSource.WEBHOOK)
    holding, release = threading.Event(), threading.Event()

    def hold(sender, instance, **kwargs):
        if instance.plugipay_id == "pay_c1" and not holding.is_set():
            holding.set()
            release.wait(30)

    def committed(name):
        return [ident for signal, ident in signal_log.committed() if signal == name]

    signals.payment_succeeded.connect(hold, weak=False)
    try:
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(
                lambda: _closing(lambda i: services.apply_queued_events(batch_size=1, limit=1), 1)
            )
            wait_for(holding.is_set, message="worker 1's batch to hold its transaction open")
            second = pool.submit(
                lambda: _closing(lambda i: services.apply_queued_events(batch_size=3), 2)
            )
            wait_for(
                lambda: sorted(committed("payment_succeeded")) == ["pay_c2", "pay_c3"],
                message="worker 2 to commit the payments worker 1 does not hold",
            )
            assert committed("refund_succeeded") == []
            release.set()
            assert first.result(timeout=30) + second.result(timeout=30) == 4
    finally:
        release.set()
        signals.payment_succeeded.disconnect(hold)
    assert set(WebhookEvent.objects.values_list("status", "attempts")) == {("processed", 1)}
    assert sorted(committed("payment_succeeded")) == ["pay_c1", "pay_c2", "pay_c3"]
    assert committed("refund_succeeded") == ["rfd_c1"]
    assert Payment.objects.get(plugipay_id="pay_c1").amount_refunded == 100


def test_a_refund_whose_payment_another_workers_batch_creates_waits_for_that_batch(
    postgres, signal_log
):
    """Worker 1's batch creates a payment and holds its transaction open; worker 2's batch
    takes the refund of that payment (SKIP LOCKED), finds the payment unknown, and waits for
    the running batches to commit instead of fetching it (no Plugipay answers here: the
    fetch would store the refund's event ``failed``). Both events are applied once."""
    from django_plugipay.models import EventSource
    from django_plugipay.services.events import record_event
    from django_plugipay.webhooks import parse_event

    payment = build_event(
        "payment.succeeded",
        {"id": "pay_b1", "status": "succeeded", "amount": 5000, "currency": "IDR", "mode": "test"},
    )
    refund = build_event(
        "refund.succeeded",
        {"id": "rfd_b1", "status": "succeeded", "amount": 100, "chargeId": "pay_b1"},
    )
    for item in (payment, refund):
        record_event(parse_event(item), source=EventSource.WEBHOOK)
    holding, release = threading.Event(), threading.Event()

    def hold(sender, **kwargs):
        if not holding.is_set():
            holding.set()
            release.wait(30)

    def lock_waiters():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            return cursor.fetchone()[0]

    def drain(i):
        return services.apply_queued_events(batch_size=1, limit=1)

    signals.payment_succeeded.connect(hold, weak=False)
    try:
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(lambda: _closing(drain, 1))
            wait_for(holding.is_set, message="worker 1's batch to hold its transaction open")
            second = pool.submit(lambda: _closing(drain, 2))
            wait_for(lock_waiters, message="worker 2 to wait for worker 1's batch")
            release.set()
            assert first.result(timeout=30) == second.result(timeout=30) == 1
    finally:
        release.set()
        signals.payment_succeeded.disconnect(hold)
    assert set(WebhookEvent.objects.values_list("status", "attempts")) == {("processed", 1)}
    assert Refund.objects.get(plugipay_id="rfd_b1").payment.plugipay_id == "pay_b1"
    committed = [name for name, _ident in signal_log.committed()]
    assert committed.count("refund_succeeded") == 1
