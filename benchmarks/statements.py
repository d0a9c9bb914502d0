"""Statements per applied event, in-process: ``python benchmarks/statements.py [N]``.

Applies N synthetic sessions' events (customer created, session completed, payment succeeded,
refund created, refund succeeded) through ``process_event`` (the webhook path) and again, for
another N sessions, in pages of 100 through ``apply_page`` (reconciliation), and counts the SQL
statements (and, apart, the transaction control: BEGIN/COMMIT/SAVEPOINT/RELEASE) per event.
Uses ``DATABASE_URL`` (PostgreSQL) or an in-memory SQLite database.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402

CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def events(i: int):
    from django_plugipay.testing import build_event

    cus, cs, pay, re_ = f"cus_b{i}", f"cs_b{i}", f"pay_b{i}", f"re_b{i}"
    at = "2026-01-01T00:00:00Z"
    yield build_event("customer.created", {"id": cus, "email": f"b{i}@example.com"})
    session = {
        "id": cs,
        "status": "completed",
        "amount": 10_000,
        "currency": "IDR",
        "customerId": cus,
        "paymentId": pay,
        "paymentMethod": "card",
        "updatedAt": at,
    }
    yield build_event("checkout_session.completed", session)
    payment = {
        "id": pay,
        "status": "succeeded",
        "amount": 10_000,
        "currency": "IDR",
        "checkoutSessionId": cs,
        "customerId": cus,
        "method": "card",
        "updatedAt": at,
    }
    yield build_event("payment.succeeded", payment)
    refund = {"id": re_, "chargeId": pay, "amount": 4_000, "currency": "IDR", "updatedAt": at}
    yield build_event("refund.created", {**refund, "status": "pending"})
    yield build_event("refund.succeeded", {**refund, "status": "succeeded"})


def count(queries, counts: Counter) -> None:
    for q in queries:
        sql = q["sql"].lstrip().upper()
        counts["control" if sql.startswith(CONTROL) else "sql"] += 1


def main(n: int) -> None:
    from django_plugipay.models import EventSource
    from django_plugipay.services.events import process_event
    from django_plugipay.webhooks import parse_event

    setup_test_environment()
    old = connection.creation.create_test_db(verbosity=0, keepdb=False)
    try:
        call_command("migrate", verbosity=0)
        per_kind: dict[str, Counter] = {}
        with CaptureQueriesContext(connection) as ctx:
            for i in range(n):
                for body in events(i):
                    parsed = parse_event(body)
                    start = len(ctx.captured_queries)
                    process_event(parsed, source=EventSource.WEBHOOK)
                    counts = per_kind.setdefault(parsed.kind, Counter())
                    counts["events"] += 1
                    count(ctx.captured_queries[start:], counts)
        total = sum(per_kind.values(), Counter())
        print(f"{connection.vendor}, webhook path, {n} sessions, {total['events']} events")
        for kind, c in [*per_kind.items(), ("all", total)]:
            print(
                f"  {kind:28} sql/event {c['sql'] / c['events']:.2f}"
                f"  control/event {c['control'] / c['events']:.2f}"
            )
        pages(n)
    finally:
        connection.creation.destroy_test_db(old, verbosity=0)


def pages(n: int) -> None:
    """The same events for sessions n…2n-1, applied as reconciliation applies them."""
    from django_plugipay.models import EventSource
    from django_plugipay.services import events as service
    from django_plugipay.webhooks import parse_event

    apply_page = getattr(service, "apply_page", None)
    parsed = [parse_event(body) for i in range(n, 2 * n) for body in events(i)]
    counts = Counter(events=len(parsed))
    with CaptureQueriesContext(connection) as ctx:
        for start in range(0, len(parsed), 100):
            page = parsed[start : start + 100]
            if apply_page is None:  # before pages: one transaction per event
                for event in page:
                    service.process_event(event, source=EventSource.RECONCILE)
                continue
            _applied, _known, left = apply_page(page, source=EventSource.RECONCILE)
            for event in left:
                service.process_event(event, source=EventSource.RECONCILE)
    count(ctx.captured_queries, counts)
    print(
        f"{connection.vendor}, reconciliation path, {len(parsed)} events: sql/event "
        f"{counts['sql'] / counts['events']:.2f}  control/event "
        f"{counts['control'] / counts['events']:.2f}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
