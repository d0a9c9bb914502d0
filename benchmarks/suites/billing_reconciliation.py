"""Billing reconciliation: apply the events of subscriptions renewing month after month (trial
ends, invoices, charges, renewals whose event carries only the period and is completed by a
fetch), from an empty database."""

from __future__ import annotations

from benchmarks.harness import free_port, signal_figures, timed_reconcile, truncate

DAY = 86400
#: at most this many subscriptions, fewer on a small run so that every run sees renewals
SUBSCRIPTIONS = 50


def run(count: int) -> dict:
    from django.conf import settings
    from django.db import connection

    from benchmarks.baseline.receivers import in_memory
    from django_plugipay.models import Invoice, Subscription
    from django_plugipay.specs import registered
    from plugipay_sandbox import SandboxConfig, SandboxServer
    from plugipay_sandbox.state import customers, plans, subscriptions

    _truncate_billing(connection)
    truncate()
    server = SandboxServer(SandboxConfig(port=free_port())).start()
    try:
        store = server.store
        with store.lock:
            plan = plans.create_plan(
                store,
                "test",
                {
                    "name": "Member",
                    "trialDays": 7,
                    "prices": [{"currency": "IDR", "model": "flat", "unitAmount": 99_000}],
                },
            )
            for n in range(max(1, min(SUBSCRIPTIONS, count // 30))):
                customer = customers.create_customer(
                    store, "test", {"email": f"member{n}@bench.test"}
                )
                subscriptions.create_subscription(
                    store,
                    "test",
                    {
                        "customerId": customer["id"],
                        "planId": plan["id"],
                        "priceId": plan["prices"][0]["id"],
                        "collectionMethod": "charge_automatically",
                        "paymentTokenId": "ptok_test_success",
                    },
                )
            while len(store.events) < count:
                store.advance(31 * DAY)
        settings.PLUGIPAY = {**settings.PLUGIPAY, "BASE_URL": server.base_url}
        spec = type(registered("subscription"))
        fetch, fetches = spec.fetch, []

        def counted(self, plugipay_id):
            fetches.append(plugipay_id)
            return fetch(self, plugipay_id)

        spec.fetch = counted
        try:
            with in_memory() as ledger:
                result, seconds, counter = timed_reconcile()
        finally:
            spec.fetch = fetch
        renewals = sum(1 for e in store.events.values() if e["kind"] == "subscription.renewed")
        rows = {"subscriptions": Subscription.objects.count(), "invoices": Invoice.objects.count()}
        signals = signal_figures(ledger)
    finally:
        server.stop()
    _truncate_billing(connection)
    truncate()
    return {
        "events": result.events_seen,
        "applied": result.events_applied,
        "failed": result.events_failed,
        "renewals_fetched": renewals,
        "subscriptions_fetched": len(fetches),
        "seconds": round(seconds, 2),
        "events_per_s": round(result.events_seen / seconds, 1),
        "queries_per_event": round(counter.statements / result.events_seen, 2),
        **rows,
        **signals,
    }


def _truncate_billing(connection) -> None:
    with connection.cursor() as cursor:
        cursor.execute("""TRUNCATE django_plugipay_invoice, django_plugipay_subscription,
            django_plugipay_price, django_plugipay_plan CASCADE""")
