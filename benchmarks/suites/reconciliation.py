"""Reconciliation: apply every event the sandbox holds, from an empty database."""

from __future__ import annotations

import time

from benchmarks.harness import free_port, timed_reconcile, truncate, without_receivers


def run(count: int, receivers: bool = True) -> dict:
    """``receivers=False``: with every receiver of the app's signals disconnected (the shop's
    and the benchmark's signal counter), the app's own work alone."""
    from django.conf import settings

    from django_plugipay.client import PlugipayClient
    from django_plugipay.models import Payment
    from plugipay_sandbox import SandboxConfig, SandboxServer
    from plugipay_sandbox.state import checkout

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
        settings.PLUGIPAY = {**settings.PLUGIPAY, "BASE_URL": server.base_url}
        fetching = _timed(PlugipayClient, "request")
        restore = (lambda: None) if receivers else without_receivers()
        try:
            result, seconds, counter = timed_reconcile()
        finally:
            restore()
            fetching.restore()
        payments = Payment.objects.count()
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
        # the event pages read from the sandbox (served by a thread of this same process)
        "fetch_seconds": round(fetching.seconds, 2),
        "apply_ms_per_event": round(1000 * (seconds - fetching.seconds) / result.events_seen, 2),
    }


class _timed:
    """Add up the wall time spent in ``cls.name`` until :meth:`restore`."""

    def __init__(self, cls, name: str) -> None:
        self.cls, self.name, self.seconds = cls, name, 0.0
        self.original = getattr(cls, name)
        original = self.original

        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - began

        setattr(cls, name, timed)

    def restore(self) -> None:
        setattr(self.cls, self.name, self.original)
