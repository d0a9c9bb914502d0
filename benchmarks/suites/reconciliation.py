"""Reconciliation: apply every event the sandbox holds, from an empty database — in this
process (the run applies each page itself), or in the queued mode (the run records each page
and a Celery worker applies it; measured in a child process with its own Celery app)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from benchmarks.harness import (
    ROOT,
    broker,
    free_port,
    server_env,
    signal_figures,
    timed_reconcile,
    truncate,
    without_receivers,
)


def run(
    count: int, receivers: bool = True, page_delay: float = 0.0, read_ahead: bool = True
) -> dict:
    """``receivers=False``: with every receiver of the app's signals disconnected (the shop's
    and the benchmark's signal ledger), the app's own work alone. ``page_delay``: seconds
    the sandbox waits before answering each page of events (a slower link to Plugipay);
    ``read_ahead=False``: each page read only once the one before is applied."""
    from django.conf import settings

    from benchmarks.baseline.receivers import in_memory
    from django_plugipay.models import Payment
    from plugipay_sandbox.state.core import Fault

    truncate()
    server = _sandbox_with(count)
    try:
        store = server.store
        if page_delay:
            store.add_fault(Fault("delay", 10**9, "/api/v1/events", delay=page_delay))
        settings.PLUGIPAY = {**settings.PLUGIPAY, "BASE_URL": server.base_url}
        module = sys.modules["django_plugipay.services.reconcile"]
        waiting, reading = _Waits(module), module.READ_AHEAD
        module.READ_AHEAD = read_ahead
        restore = (lambda: None) if receivers else without_receivers()
        try:
            with in_memory() as ledger:
                result, seconds, counter = timed_reconcile()
        finally:
            restore()
            waiting.restore()
            module.READ_AHEAD = reading
        payments = Payment.objects.count()
        signals = signal_figures(ledger)
    finally:
        server.stop()
    truncate()
    return {
        "events": result.events_seen,
        "applied": result.events_applied,
        "failed": result.events_failed,
        "seconds": round(seconds, 2),
        "events_per_s": round(result.events_seen / seconds, 1),
        "queries_per_event": round(counter.statements / result.events_seen, 2),
        "transaction_control_per_event": round(
            (counter.round_trips - counter.statements) / result.events_seen, 2
        ),
        "payments_created": payments,
        **signals,
        # the apply loop's waits for the next page of events (read ahead in a thread)
        "page_wait_seconds": round(waiting.seconds, 2),
        "apply_ms_per_event": round(1000 * (seconds - waiting.seconds) / result.events_seen, 2),
    }


def _sandbox_with(count: int):
    """A sandbox server on a free port holding at least ``count`` events: paid sessions."""
    from plugipay_sandbox import SandboxConfig, SandboxServer
    from plugipay_sandbox.state import checkout

    server = SandboxServer(SandboxConfig(port=free_port())).start()
    store = server.store
    with store.lock:
        while len(store.events) < count:
            session = checkout.create_session(
                store,
                "test",
                {
                    "amount": 99_000,
                    "currency": "IDR",
                    "methods": ["card"],
                    "successUrl": "https://a.test",
                    "cancelUrl": "https://b.test",
                },
            )
            checkout.pay_card(store, session["id"], "4242424242424242")
    return server


def queued(count: int, concurrency: int) -> dict:
    """Reconciliation in the queued mode (``WEBHOOK_PROCESSING = "celery"``, a Celery app):
    the run records each page and one Celery worker of ``concurrency`` processes applies the
    events, with the shop's receivers and the benchmark's signal ledger (a row per signal).
    Timed from the start of ``reconcile()`` until every event is applied, the worker started
    and answering before. Runs in a child process, which has a Celery app of its own."""
    child = subprocess.run(
        [sys.executable, "-m", "benchmarks.suites.reconciliation", str(count), str(concurrency)],
        cwd=ROOT,
        env=server_env("celery"),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(f"queued reconciliation failed:\n{child.stderr[-4000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def _queued_child(count: int, concurrency: int) -> dict:
    import django

    django.setup()
    import redis
    from celery import current_app
    from django.conf import settings

    from benchmarks.load import check_applied
    from django_plugipay.models import WebhookEvent
    from django_plugipay.services import reconcile
    from django_plugipay.services._queue import mode

    redis.Redis.from_url(broker()).flushdb()
    truncate()
    server = _sandbox_with(count)
    settings.PLUGIPAY = {**settings.PLUGIPAY, "BASE_URL": server.base_url}
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-c", str(concurrency)]
        + ["-l", "warning", "--without-gossip", "--without-mingle"],
        cwd=ROOT,
        env={**server_env("celery"), "PLUGIPAY_BASE_URL": server.base_url},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert mode() == "celery", mode()
        deadline = time.perf_counter() + 120
        while not current_app.control.ping(timeout=0.5):  # started and answering
            if time.perf_counter() > deadline:
                raise RuntimeError("the Celery worker did not start")
        done = ("processed", "ignored")
        began = time.perf_counter()
        result = reconcile()
        recorded = time.perf_counter() - began
        deadline = began + 600
        while WebhookEvent.objects.exclude(status__in=done).exists():
            if time.perf_counter() > deadline:
                raise RuntimeError("the worker did not apply every event in 10 minutes")
            time.sleep(0.02)
        seconds = time.perf_counter() - began
        check = check_applied(result.events_queued)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
        server.stop()
    truncate()
    return {
        "events": result.events_seen,
        "queued": result.events_queued,
        "concurrency": concurrency,
        "record_seconds": round(recorded, 2),
        "seconds": round(seconds, 2),
        "events_per_s": round(result.events_seen / seconds, 1),
        "check": check,
    }


def over_a_slow_link(count: int, page_delay: float) -> dict:
    """The same reconciliation with each page of events answered ``page_delay`` seconds late,
    read ahead and one page after another."""
    return {
        "page_delay_ms": round(1000 * page_delay),
        "read_ahead": run(count, page_delay=page_delay),
        "one_after_another": run(count, page_delay=page_delay, read_ahead=False),
    }


class _Waits:
    """Add up the time reconciliation waits for its next page until :meth:`restore`."""

    def __init__(self, module) -> None:
        self.module, self.seconds = module, 0.0
        self.original = original = module._pages

        def pages(items):
            pages = original(items)
            while True:
                began = time.perf_counter()
                page = next(pages, None)
                self.seconds += time.perf_counter() - began
                if page is None:
                    return
                yield page

        module._pages = pages

    def restore(self) -> None:
        self.module._pages = self.original


if __name__ == "__main__":  # the child process of :func:`queued`
    sys.path.insert(0, str(ROOT))
    print(json.dumps(_queued_child(int(sys.argv[1]), int(sys.argv[2]))), flush=True)
