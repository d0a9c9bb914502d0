"""Reconciliation in the queued mode racing, on PostgreSQL: shuffled duplicated webhooks of the
same events, two threads draining the queue, refunds asked for here and at Plugipay, a broker
that fails while the run records, and a receiver that fails and recovers while the run reads the
log again. After each race: nothing left without a message or the sweeper's mark to take it,
every event applied once, each row in Plugipay's state, each signal's effect committed once, and
the cursor at the log's last event. ``RACE_ITERATIONS``, ``RACE_BROKER_ITERATIONS`` and
``RACE_FAIL_ITERATIONS`` set how many seeds each scenario runs."""

from __future__ import annotations

import os
import random
import sys
import threading
import time
import traceback
from collections import Counter

import pytest
from django.db import connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_plugipay import services, tasks
from django_plugipay.client import get_client
from django_plugipay.models import (
    CheckoutSession,
    EventStatus,
    Payment,
    Refund,
    SyncCursor,
    WebhookEvent,
)
from django_plugipay.services import _queue
from django_plugipay.services import events as events_module
from django_plugipay.testing import DEFAULT_WEBHOOK_SECRET, signed_webhook, wait_for
from tests.factories import paid_sessions
from tests.test_accept import queued  # noqa: F401 - the fixture
from tests.test_tasks_mode import drain_db_queue

reconciliation = sys.modules["django_plugipay.services.reconcile"]
PENDING = "django_plugipay.process_pending_events"
ONE = "django_plugipay.process_webhook_event"
ITERATIONS = int(os.environ.get("RACE_ITERATIONS", "6"))
BROKER_ITERATIONS = int(os.environ.get("RACE_BROKER_ITERATIONS", "5"))


def stagger(seconds: float) -> None:
    """Hold this thread for ``seconds`` (small and random): the delays make the interleavings
    the races explore and wait for nothing, so there is no condition to poll (the suite's one
    other sleep, ``testing.wait_for``, polls one)."""
    time.sleep(seconds)


# ── helpers ─────────────────────────────────────────────────────────────────────────


class Threads:
    def __init__(self):
        self.errors: list[str] = []
        self.threads: list[threading.Thread] = []

    def start(self, name, fn, *args):
        def run():
            try:
                fn(*args)
            except BaseException:  # noqa: BLE001
                self.errors.append(f"{name}: {traceback.format_exc()}")
            finally:
                connections.close_all()

        t = threading.Thread(target=run, name=name, daemon=True)
        t.start()
        self.threads.append(t)
        return t

    def finish(self, stop: threading.Event) -> None:
        """Wait for every thread but the drainers, then stop the drainers and wait for them;
        fail with what any thread raised."""
        for thread in [t for t in self.threads if not t.name.startswith("drain")]:
            thread.join(120)
        stop.set()
        self.join()
        assert not self.errors, "\n".join(self.errors)

    def join(self, timeout=120):
        for t in self.threads:
            t.join(timeout)
            assert not t.is_alive(), f"thread {t.name} hung"
        self.threads = []


def held_bodies(sandbox) -> list[bytes]:
    return [d["body"].encode() for d in sandbox.state()["deliveries"] if d["status"] == "pending"]


def post_all(bodies: list[bytes], rng: random.Random, delay: float) -> None:
    stagger(delay)
    client = Client()
    url = reverse("plugipay:webhook")
    for body in bodies:
        body_, headers = signed_webhook(body, DEFAULT_WEBHOOK_SECRET)
        response = client.post(url, body_, content_type="application/json", headers=headers)
        assert response.status_code in (200, 202), (response.status_code, response.content[:300])
        if rng.random() < 0.1:
            stagger(rng.random() * 0.01)


def drainer(stop: threading.Event, rng: random.Random, taken: list[int]) -> None:
    while not stop.is_set():
        n = services.apply_queued_events(batch_size=rng.choice([1, 2, 3, 5, 8, 100]))
        taken.append(n)
        if n == 0:
            stop.wait(0.005)  # the queue is empty for now


def reconcile_runs(rng: random.Random, results: list, delay: float, times: int = 2) -> None:
    stagger(delay)
    for _ in range(times):
        results.append(services.reconcile())
        stagger(rng.random() * 0.05)


def pending_cover_times() -> tuple[list, set[int]]:
    """When each READY batch message runs (enqueued now, or due later), and the event pks a
    READY per-event task names."""
    from django_tasks_db.models import DBTaskResult

    far = timezone.now() + timezone.timedelta(days=3650)
    covers, own = [], set()
    for t in DBTaskResult.objects.filter(status="READY"):
        name, args = t.args_kwargs["args"][0], t.args_kwargs["args"][1]
        if name == PENDING:
            covers.append(t.enqueued_at if t.run_after > far else t.run_after)
        elif name == ONE:
            own.update(args)
    return covers, own


def uncovered_events() -> list[tuple]:
    """Events left ``received`` (or ``failed``) with nothing queued that would take them, and
    not marked for the sweeper (``queued_at`` empty)."""
    covers, own = pending_cover_times()
    latest = max(covers, default=None)
    bad = []
    for e in WebhookEvent.objects.exclude(status__in=(EventStatus.PROCESSED, EventStatus.IGNORED)):
        if e.pk in own:
            continue
        if e.status == EventStatus.RECEIVED:
            if e.queued_at is None:
                continue  # the sweeper's
            if latest is not None and latest >= e.received_at:
                continue
        bad.append(
            (
                e.pk,
                e.event_id,
                e.kind,
                e.status,
                e.source,
                e.queued_at,
                e.received_at,
                latest,
                e.last_error[:200],
            )
        )
    return bad


def drain_everything() -> None:
    """Run what the queue holds, as a worker would, until nothing is left (the short
    deferrals coming due meanwhile)."""
    from django_tasks_db.models import DBTaskResult

    def drained() -> bool:
        drain_db_queue()
        return not DBTaskResult.objects.filter(status="READY").exists()

    wait_for(drained, timeout=30, interval=0.1, message="the queue to empty")


def committed_signals(signal_log) -> Counter:
    return Counter(signal_log.committed())


def check_all(sandbox, signal_log, label: str) -> None:
    state = sandbox.state()
    problems = []
    left = list(
        WebhookEvent.objects.exclude(
            status__in=(EventStatus.PROCESSED, EventStatus.IGNORED)
        ).values_list("event_id", "kind", "status", "last_error")
    )
    if left:
        problems.append(f"events not done: {left}")
    ids = Counter(WebhookEvent.objects.values_list("event_id", flat=True))
    plugipay_ids = [e["id"] for e in state["events"]]
    missing = set(plugipay_ids) - set(ids)
    if missing:
        problems.append(f"events never recorded: {sorted(missing)}")
    # each event applied once (attempts count each claim that committed a processed state)
    signals_ = committed_signals(signal_log)
    for s in state["sessions"]:
        row = CheckoutSession.objects.filter(plugipay_id=s["id"]).first()
        if row is None or row.status != s["status"]:
            problems.append(f"session {s['id']}: {row and row.status} != {s['status']}")
        n = signals_[("checkout_session_completed", s["id"])]
        if n != (1 if s["status"] == "completed" else 0):
            problems.append(f"checkout_session_completed {s['id']} committed {n} times")
    for p in state["payments"]:
        row = Payment.objects.filter(plugipay_id=p["id"]).first()
        refunded = sum(
            r["amount"]
            for r in state["refunds"]
            if r["chargeId"] == p["id"] and r["status"] == "succeeded"
        )
        if row is None or row.status != p["status"] or row.amount_refunded != refunded:
            problems.append(
                f"payment {p['id']}: {row and (row.status, row.amount_refunded)} != "
                f"{(p['status'], refunded)}"
            )
        n = signals_[("payment_succeeded", p["id"])]
        if n != (1 if p["status"] == "succeeded" else 0):
            problems.append(f"payment_succeeded {p['id']} committed {n} times")
    for r in state["refunds"]:
        row = Refund.objects.filter(plugipay_id=r["id"]).first()
        if row is None or row.status != r["status"] or row.amount != r["amount"]:
            problems.append(
                f"refund {r['id']}: {row and (row.status, row.amount)} != {r['status']}"
            )
        n = signals_[("refund_succeeded", r["id"])]
        if n != (1 if r["status"] == "succeeded" else 0):
            problems.append(f"refund_succeeded {r['id']} committed {n} times")
    extra_refunds = Refund.objects.exclude(plugipay_id__in=[r["id"] for r in state["refunds"]])
    if extra_refunds.exists():
        problems.append(f"local refunds unknown to Plugipay: {list(extra_refunds.values())}")
    cursor = SyncCursor.objects.get(name="events")
    if cursor.last_event_id != plugipay_ids[-1]:
        problems.append(f"cursor at {cursor.last_event_id}, log ends at {plugipay_ids[-1]}")
    assert not problems, f"[{label}] " + "\n".join(problems)


def dashboard_refunds(sandbox, rng: random.Random) -> None:
    """Refunds made at Plugipay (the dashboard): none, one partial, or two."""
    client = get_client()
    for p in sandbox.state()["payments"]:
        choice = rng.random()
        if choice < 0.4:
            continue
        client.create_refund({"chargeId": p["id"], "amount": 1000, "reason": "duplicate"})
        if choice > 0.8:
            client.create_refund({"chargeId": p["id"], "amount": 2000, "reason": "duplicate"})


def seeded_history(sandbox, monkeypatch, seed: int, sessions: list[int], pages: list[int]):
    """``(rng, bodies)``: a generator seeded with ``seed`` (the sandbox's shuffle too), and the
    held webhooks of one of ``sessions`` paid sessions with refunds made at Plugipay, the run's
    page size one of ``pages``."""
    rng = random.Random(seed)
    random.seed(seed)  # the sandbox's shuffle
    monkeypatch.setattr(reconciliation, "PAGE_SIZE", rng.choice(pages))
    paid_sessions(sandbox, rng.choice(sessions))
    dashboard_refunds(sandbox, rng)
    return rng, held_bodies(sandbox)


@pytest.fixture
def fast(monkeypatch, queued):  # noqa: F811
    """Short coalescing windows and retries, so the queue's messages matter."""
    monkeypatch.setattr(_queue, "COALESCE_WINDOW", 0.05)
    monkeypatch.setattr(_queue, "_coalescers", {})
    monkeypatch.setattr(events_module, "RETRY_FAILED_AFTER", 0.05)
    monkeypatch.setattr(tasks, "backoff", lambda retries, retry_after=None: 0.05)


# ── scenario 1: queued reconcile + shuffled duplicated webhooks + two drainers + refunds ──


@pytest.mark.parametrize("seed", range(ITERATIONS))
def test_reconcile_webhooks_and_two_drainers(
    postgres, plugipay_sandbox, fast, signal_log, monkeypatch, seed
):
    rng, bodies = seeded_history(
        plugipay_sandbox, monkeypatch, seed, [2, 4, 7, 12], [2, 3, 5, 8, 50]
    )
    assert reconciliation.queued()

    # ── round 1 ──
    stop = threading.Event()
    threads, results, taken = Threads(), [], []
    for n in range(2):
        threads.start(f"drain{n}", drainer, stop, random.Random(seed * 10 + n), taken)
    threads.start("reconcile", reconcile_runs, rng, results, rng.random() * 0.05)
    for n in range(2):
        mine = bodies * rng.choice([1, 2])
        rng.shuffle(mine)
        threads.start(f"post{n}", post_all, mine, random.Random(seed * 7 + n), rng.random() * 0.05)
    if rng.random() < 0.5:  # the workers stop early: what is left relies on the queue
        threading.Timer(rng.random() * 0.3, stop.set).start()
    stagger(rng.random() * 0.1)
    released = plugipay_sandbox.release(order="shuffle", duplicate=rng.choice([1, 3]))
    producers = [t for t in threads.threads if not t.name.startswith("drain")]
    for t in producers:
        t.join(120)
    plugipay_sandbox.flush()
    stagger(rng.random() * 0.05)
    stop.set()
    threads.join()
    assert not threads.errors, "\n".join(threads.errors)
    assert released == len(bodies)
    # the cursor after the concurrent run(s), before anything else reads the log
    log = [e["id"] for e in plugipay_sandbox.state()["events"]]
    cursor = SyncCursor.objects.get(name="events")
    assert cursor.last_event_id == log[-1], (seed, cursor.last_event_id, log[-1])
    assert not any(r.skipped_locked for r in results[:1]), results
    bad = uncovered_events()
    assert not bad, f"seed {seed}: received with nothing queued: {bad}"
    drain_everything()
    check_all(plugipay_sandbox, signal_log, f"seed {seed} round 1")

    # ── round 2: refunds asked for here, sent while reconcile, webhooks and drainers run ──
    plugipay_sandbox.hold()
    asked = []
    for payment in Payment.objects.filter(status="succeeded"):
        if rng.random() < 0.6 and payment.amount - payment.amount_refunded >= 500:
            asked.append(
                services.refund_payment(payment=payment, amount=500, reason="requested_by_customer")
            )
    stop = threading.Event()
    results = []

    def submit(refunds, delay):
        stagger(delay)
        for refund in refunds:
            services.submit_refund(refund=refund)

    def release_later(delay):
        stagger(delay)
        plugipay_sandbox.release(order="shuffle", duplicate=3)

    for n in range(2):
        threads.start(f"drain{n}", drainer, stop, random.Random(seed * 11 + n), taken)
    threads.start("submit", submit, asked, rng.random() * 0.05)
    threads.start("reconcile", reconcile_runs, rng, results, rng.random() * 0.1, 3)
    threads.start("release", release_later, rng.random() * 0.15)
    if rng.random() < 0.5:
        threading.Timer(rng.random() * 0.3, stop.set).start()
    producers = [t for t in threads.threads if not t.name.startswith("drain")]
    for t in producers:
        t.join(120)
    plugipay_sandbox.flush()
    stop.set()
    threads.join()
    assert not threads.errors, "\n".join(threads.errors)
    bad = uncovered_events()
    assert not bad, f"seed {seed} round 2: received with nothing queued: {bad}"
    drain_everything()
    final = services.reconcile()  # reads what the concurrent runs may have missed
    drain_everything()
    check_all(plugipay_sandbox, signal_log, f"seed {seed} round 2 (final reconcile {final})")


# ── scenario 2: the broker fails while reconcile records; the sweeper recovers ──────


@pytest.mark.parametrize("seed", range(BROKER_ITERATIONS))
def test_broker_down_while_reconcile_records_then_the_sweeper(
    postgres, plugipay_sandbox, fast, signal_log, monkeypatch, seed
):
    rng, bodies = seeded_history(
        plugipay_sandbox, monkeypatch, 1000 + seed, [2, 5, 9], [2, 3, 5, 50]
    )
    real = _queue._enqueue_django
    down = threading.Event()
    down.set()
    fails = []

    def flaky(name, args, countdown=0):
        if down.is_set() and (name in (PENDING, ONE)):
            fails.append(name)
            raise ConnectionRefusedError("the broker is down")
        return real(name, args, countdown)

    monkeypatch.setattr(_queue, "_enqueue_django", flaky)
    stop = threading.Event()
    threads, results, taken = Threads(), [], []
    with_drainers = rng.random() < 0.6
    if with_drainers:
        for n in range(2):
            threads.start(f"drain{n}", drainer, stop, random.Random(seed * 13 + n), taken)
    threads.start("reconcile", reconcile_runs, rng, results, 0.0, 1)
    mine = bodies * 2
    rng.shuffle(mine)
    threads.start("post", post_all, mine, random.Random(seed), rng.random() * 0.05)

    def broker_back(delay):
        stagger(delay)
        down.clear()

    threads.start("broker", broker_back, rng.random() * 0.3)
    threads.finish(stop)
    down.clear()
    bad = uncovered_events()
    assert not bad, f"seed {seed}: received with nothing queued and not marked: {bad}"
    # the sweeper (racing a drainer) sends again what the outage stranded
    stop = threading.Event()
    threads.start("drain", drainer, stop, random.Random(seed), taken)
    from django_plugipay.services import sweeper

    swept = sweeper.sweep()
    stop.set()
    threads.join()
    assert not threads.errors, "\n".join(threads.errors)
    drain_everything()
    check_all(
        plugipay_sandbox,
        signal_log,
        f"broker seed {seed} fails={len(fails)} swept={swept} results={results}",
    )


# ── scenario 3: a receiver fails for a while; failed events are read again by reconcile
#    (queue_page queues each again) while redeliveries send each to its own task ──────────────

FAIL_ITERATIONS = int(os.environ.get("RACE_FAIL_ITERATIONS", "4"))


@pytest.mark.parametrize("seed", range(FAIL_ITERATIONS))
def test_failed_events_queued_again_by_reconcile_and_redeliveries(
    postgres, plugipay_sandbox, fast, signal_log, monkeypatch, seed
):
    from django_plugipay import signals

    rng, bodies = seeded_history(
        plugipay_sandbox, monkeypatch, 2000 + seed, [2, 4, 8], [2, 3, 5, 50]
    )
    down = threading.Event()
    down.set()

    def fulfil(sender, instance, **kwargs):
        if down.is_set():
            raise RuntimeError("the warehouse is down")

    signals.payment_succeeded.connect(fulfil, weak=False, dispatch_uid="race-fulfil")
    signals.refund_succeeded.connect(fulfil, weak=False, dispatch_uid="race-fulfil-r")
    try:
        # phase A: everything arrives by webhook while the receiver fails
        plugipay_sandbox.release(order="shuffle", duplicate=1)
        plugipay_sandbox.flush()
        stop = threading.Event()
        threads, taken = Threads(), []
        for n in range(2):
            threads.start(f"drain{n}", drainer, stop, random.Random(seed * 17 + n), taken)
        wait_for(  # every event tried once (applied, or failed by the receiver)
            lambda: not WebhookEvent.objects.filter(status=EventStatus.RECEIVED).exists(),
            message="the drainers to try every event",
        )
        stop.set()
        threads.join()
        # phase B: the receiver recovers while reconcile reads the log again from the start,
        # the same events are redelivered, two drainers run and a worker runs the tasks
        start = WebhookEvent.objects.order_by("occurred_at").first().occurred_at
        results = []
        stop = threading.Event()
        for n in range(2):
            threads.start(f"drain{n}", drainer, stop, random.Random(seed * 19 + n), taken)

        def recover(delay):
            stagger(delay)
            down.clear()

        threads.start("recover", recover, rng.random() * 0.1)

        def read_again(delay):
            stagger(delay)
            results.append(services.reconcile(since=start))

        threads.start("reconcile", read_again, rng.random() * 0.1)
        mine = bodies * 2
        rng.shuffle(mine)
        threads.start("post", post_all, mine, random.Random(seed), rng.random() * 0.05)
        threads.finish(stop)
        down.clear()
        bad = uncovered_events()
        assert not bad, f"seed {seed}: left with nothing queued: {bad}"
        drain_everything()
        services.reconcile()
        drain_everything()
    finally:
        signals.payment_succeeded.disconnect(dispatch_uid="race-fulfil")
        signals.refund_succeeded.disconnect(dispatch_uid="race-fulfil-r")
    check_all(plugipay_sandbox, signal_log, f"fail seed {seed}")
