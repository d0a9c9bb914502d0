"""Statements per applied event, in-process: ``python benchmarks/statements.py [N]``.

Applies N synthetic sessions' events (customer created, session completed, payment succeeded,
refund created, refund succeeded) through ``process_event`` and counts the SQL statements
(and, apart, the transaction control: BEGIN/COMMIT/SAVEPOINT/RELEASE) each event costs.
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
                    for q in ctx.captured_queries[start:]:
                        sql = q["sql"].lstrip().upper()
                        counts["control" if sql.startswith(CONTROL) else "sql"] += 1
        total = sum(per_kind.values(), Counter())
        print(f"{connection.vendor}, {n} sessions, {total['events']} events")
        for kind, c in [*per_kind.items(), ("all", total)]:
            print(
                f"  {kind:28} sql/event {c['sql'] / c['events']:.2f}"
                f"  control/event {c['control'] / c['events']:.2f}"
            )
    finally:
        connection.creation.destroy_test_db(old, verbosity=0)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 50)
