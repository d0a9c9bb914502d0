"""Reconciliation: apply every event the sandbox holds, from an empty database."""

from __future__ import annotations

import sys
import time

from benchmarks.harness import (
    free_port,
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
    from plugipay_sandbox import SandboxConfig, SandboxServer
    from plugipay_sandbox.state import checkout
    from plugipay_sandbox.state.core import Fault

    truncate()
    server = SandboxServer(SandboxConfig(port=free_port())).start()
    try:
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
