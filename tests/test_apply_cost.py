"""The apply path's round trips: one transaction per event, a page per transaction."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_plugipay import signals
from django_plugipay.exceptions import InvalidObject
from django_plugipay.models import EventSource, Payment, WebhookEvent
from django_plugipay.services import events as service
from django_plugipay.specs import UnresolvedReference
from django_plugipay.testing import build_event
from django_plugipay.webhooks import parse_event

pytestmark = pytest.mark.django_db
CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def session_completed(n, **extra):
    return build_event(
        "checkout_session.completed",
        {
            "id": f"cs_{n}",
            "status": "completed",
            "amount": 5000,
            "currency": "IDR",
            "paymentId": f"pay_{n}",
            "paymentMethod": "card",
            "updatedAt": "2026-01-01T00:00:00Z",
            **extra,
        },
    )


def split(queries):
    sql = [q["sql"].lstrip().upper() for q in queries]
    control = [s.split()[0] for s in sql if s.startswith(CONTROL)]
    return [s for s in sql if not s.startswith(CONTROL)], control


def test_a_new_session_and_its_payment_cost_three_statements_in_one_transaction():
    parsed = parse_event(session_completed(1))
    with CaptureQueriesContext(connection) as ctx:
        service.process_event(parsed, source=EventSource.WEBHOOK)
    statements, control = split(ctx.captured_queries)
    # the event, the session, the payment: inserts, no read before them
    assert [s.split()[0] for s in statements] == ["INSERT", "INSERT", "INSERT"], statements
    assert len(control) == 2, control  # one transaction (a savepoint in the test's own)
    assert Payment.objects.get().status == "succeeded"


def test_a_duplicate_costs_one_statement_and_a_read():
    parsed = parse_event(session_completed(2))
    service.process_event(parsed, source=EventSource.WEBHOOK)
    with CaptureQueriesContext(connection) as ctx:
        event, applied = service.process_event(parsed, source=EventSource.WEBHOOK)
    statements, _control = split(ctx.captured_queries)
    assert not applied and event.status == "processed"
    assert len(statements) == 2, statements  # the insert that did nothing, the read of the row


def test_a_page_is_one_transaction_without_a_savepoint_per_event(signal_log):
    page = [parse_event(session_completed(n)) for n in range(10)]
    with CaptureQueriesContext(connection) as ctx:
        applied, known, left = service.apply_page(page, source=EventSource.RECONCILE)
    assert (applied, known, left) == (10, 0, [])
    _statements, control = split(ctx.captured_queries)
    # the page's transaction (a savepoint inside the test's own), none per event
    assert control.count("SAVEPOINT") + control.count("BEGIN") == 1, control
    names = [name for name, _ in signal_log]
    assert names.count("checkout_session_completed") == names.count("payment_succeeded") == 10
    again = service.apply_page(page, source=EventSource.RECONCILE)
    assert again == (0, 10, [])


def test_a_failing_event_leaves_the_rest_of_its_page_applied(
    signal_log, django_capture_on_commit_callbacks
):
    bad_receiver = build_event("customer.created", {"id": "cus_raise"})
    invalid = build_event("payment.succeeded", {"id": "pay_bad", "amount": "NaN"})
    orphan = build_event("refund.succeeded", {"id": "rfd_1", "amount": 100, "chargeId": "pay_x"})
    page = [
        parse_event(e)
        for e in (session_completed(1), bad_receiver, invalid, orphan, session_completed(2))
    ]

    def receiver(sender, instance, event, **kwargs):
        if instance.event_id == bad_receiver["id"]:
            raise RuntimeError("the shop's receiver failed")

    signals.webhook_received.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            applied, known, left = service.apply_page(page, source=EventSource.RECONCILE)
        assert (applied, known) == (2, 0)
        assert [e.id for e in left] == [bad_receiver["id"], invalid["id"], orphan["id"]]
        for parsed in left:
            with pytest.raises((RuntimeError, InvalidObject, UnresolvedReference)):
                service.process_event(parsed, source=EventSource.RECONCILE)
    finally:
        signals.webhook_received.disconnect(receiver)
    failed = dict(
        WebhookEvent.objects.filter(status="failed").values_list("event_id", "last_error")
    )
    assert set(failed) == {bad_receiver["id"], invalid["id"], orphan["id"]}
    assert failed[invalid["id"]].startswith("Invalid object: amount must be an integer")
    assert "RuntimeError" in failed[bad_receiver["id"]]
    assert Payment.objects.filter(status="succeeded").count() == 2
    # The page was applied without savepoints, rolled back at the failing event and applied
    # again with one savepoint per event: what the rolled-back attempt sent never committed.
    committed = [n for n, _ in signal_log.committed() if n == "payment_succeeded"]
    assert len(committed) == 2, signal_log.committed()
