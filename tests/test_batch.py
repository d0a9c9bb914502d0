"""Batch application: a worker applies the queued events a batch per transaction."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_plugipay import services, signals
from django_plugipay.models import CheckoutSession, EventSource, Payment, WebhookEvent
from django_plugipay.services import events as service
from django_plugipay.testing import build_event
from django_plugipay.webhooks import parse_event
from tests.test_apply_cost import session_completed, split

pytestmark = pytest.mark.django_db


def queue(*bodies):
    """Record events as the queued webhook mode does (``received``, not applied)."""
    return [service.record_event(parse_event(b), source=EventSource.WEBHOOK)[0] for b in bodies]


def test_queued_events_are_applied_a_batch_per_transaction(signal_log):
    events = queue(*(session_completed(n) for n in range(5)), build_event("thing.happened", {}))
    with CaptureQueriesContext(connection) as ctx:
        taken = services.apply_queued_events(batch_size=4)
    assert taken == 6
    statuses = dict(WebhookEvent.objects.values_list("pk", "status"))
    assert statuses == {e.pk: "processed" for e in events[:5]} | {events[5].pk: "ignored"}
    assert set(WebhookEvent.objects.values_list("attempts", flat=True)) == {1}
    assert Payment.objects.filter(status="succeeded").count() == 5
    assert signal_log.names().count("payment_succeeded") == 5
    assert signal_log.names().count("webhook_received") == 6
    _statements, control = split(ctx.captured_queries)
    assert control.count("SAVEPOINT") == 2  # one per batch (the test's own transaction)

    assert services.apply_queued_events() == 0  # nothing left; a second run changes nothing
    assert signal_log.names().count("payment_succeeded") == 5


def test_a_failing_event_is_stored_failed_and_the_rest_of_its_batch_commits(signal_log):
    def refuse(sender, instance, **kwargs):
        if instance.plugipay_id == "cs_2":
            raise RuntimeError("the shop refused cs_2")

    bad_amount = build_event("payment.succeeded", {"id": "pay_x", "amount": "NaN"})
    events = queue(*(session_completed(n) for n in range(4)), bad_amount)
    signals.checkout_session_completed.connect(refuse)
    try:
        assert services.apply_queued_events(batch_size=10) == 5
    finally:
        signals.checkout_session_completed.disconnect(refuse)
    rows = {e.event_id: e for e in WebhookEvent.objects.all()}
    failed = {event_id for event_id, row in rows.items() if row.status == "failed"}
    assert failed == {events[2].event_id, events[4].event_id}
    assert "the shop refused cs_2" in rows[events[2].event_id].last_error
    assert "amount must be an integer" in rows[events[4].event_id].last_error
    assert rows[events[2].event_id].attempts == 1
    assert set(CheckoutSession.objects.values_list("plugipay_id", flat=True)) == {
        "cs_0",
        "cs_1",
        "cs_3",
    }
    # (the batch's first attempt, without savepoints, ran the receivers of a transaction
    # that rolled back, as a retry does: what counts is what committed)
    assert Payment.objects.filter(status="succeeded").count() == 3

    # a failed event waits for a replay, which applies it once
    assert services.apply_queued_events() == 0
    signal_log.clear()
    services.replay_failed_events(event_ids=[events[2].event_id])
    assert WebhookEvent.objects.get(event_id=events[2].event_id).status == "processed"
    assert signal_log.names().count("payment_succeeded") == 1
    assert Payment.objects.filter(status="succeeded").count() == 4


def test_limit_takes_no_more_than_asked():
    queue(*(session_completed(n) for n in range(5)))
    assert services.apply_queued_events(batch_size=2, limit=3) == 3
    assert WebhookEvent.objects.filter(status="received").count() == 2


def test_a_batch_inserts_its_deliveries_together_without_those_of_a_failed_event(fulfilled):
    """The batch's deliveries go in one ``INSERT`` before it commits; the event that failed
    (a plain receiver raising after the durable one was recorded) leaves none."""
    from django_plugipay.models import Delivery

    def refuse(sender, instance, **kwargs):
        if instance.plugipay_id == "pay_1":
            raise RuntimeError("the shop refused pay_1")

    queue(*(session_completed(n) for n in range(3)))
    signals.payment_succeeded.connect(refuse, dispatch_uid="tests.refuse")  # after the durable
    try:
        with CaptureQueriesContext(connection) as ctx:
            assert services.apply_queued_events(batch_size=10) == 3
    finally:
        signals.payment_succeeded.disconnect(dispatch_uid="tests.refuse")
    table = Delivery._meta.db_table
    inserts = [q for q in ctx.captured_queries if q["sql"].startswith(f'INSERT INTO "{table}"')]
    assert len(inserts) == 1
    assert services.run_deliveries() == 2  # (the test's transaction never commits)
    assert sorted(fulfilled) == ["pay_0", "pay_2"]


def test_a_receiver_swallowing_a_database_error_fails_its_event_not_the_page():
    """The event whose receiver caught a database error without its own ``atomic`` is stored
    failed (its changes are rolled back); the rest of the page is applied."""
    from django.db import IntegrityError

    from django_plugipay.models import Customer

    def remember_customer(sender, instance, **kwargs):
        if instance.plugipay_id != "pay_1":
            return
        try:
            Customer.objects.create(plugipay_id="cus_dup", email="a@shop.test")
            Customer.objects.create(plugipay_id="cus_dup", email="a@shop.test")
        except IntegrityError:
            pass

    page = [parse_event(session_completed(n)) for n in range(3)]
    signals.payment_succeeded.connect(remember_customer, dispatch_uid="tests.swallow")
    try:
        applied, _known, left = service.apply_page(page, source=EventSource.RECONCILE)
    finally:
        signals.payment_succeeded.disconnect(dispatch_uid="tests.swallow")
    assert applied == 2 and [e.object_id for e in left] == ["cs_1"]
    failed = WebhookEvent.objects.get(event_id=left[0].id)
    assert failed.status == "failed" and "caught a database error" in failed.last_error
    assert set(Payment.objects.values_list("plugipay_id", flat=True)) == {"pay_0", "pay_2"}
    assert not Customer.objects.exists()


def test_a_batchs_renewals_fetch_their_subscription_once_and_apply_with_it(monkeypatch):
    """Renewals carry only the period: the batch leaves them to be applied one by one after
    its commit, and fetches each subscription once for all of them (not once per event, nor
    after a first attempt that could not apply without it)."""
    from tests.test_apply_cost import fetching_subscription, renewed

    spec, fetched = fetching_subscription(monkeypatch, month=4)
    events = queue(*(renewed("sub_v", n).payload for n in (1, 2, 3)))
    with CaptureQueriesContext(connection) as ctx:
        assert services.apply_queued_events() == 3
    assert fetched == ["sub_v"]
    statuses = set(
        WebhookEvent.objects.filter(pk__in=[e.pk for e in events]).values_list("status", "attempts")
    )
    assert statuses == {("processed", 1)}
    assert spec.model.objects.get().current_period_end.month == 5
    _statements, control = split(ctx.captured_queries)
    assert control.count("SAVEPOINT") == 1 + 3  # the batch, then each renewal once


def test_an_event_that_fails_its_batchs_first_pass_is_logged_even_when_it_then_applies(caplog):
    """The batch is applied again with a savepoint per event after one fails: a receiver that
    failed once then succeeds leaves the event processed, and its first failure in the log."""
    calls = []

    def flaky(sender, instance, **kwargs):
        calls.append(instance.plugipay_id)
        if calls.count("cs_1") == 1 and instance.plugipay_id == "cs_1":
            raise RuntimeError("the warehouse hiccuped")

    events = queue(*(session_completed(n) for n in range(3)))
    signals.checkout_session_completed.connect(flaky)
    try:
        with caplog.at_level("WARNING", logger="django_plugipay.services.events"):
            assert services.apply_queued_events() == 3
    finally:
        signals.checkout_session_completed.disconnect(flaky)
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
    [record] = [r for r in caplog.records if "failed in its batch" in r.getMessage()]
    assert events[1].event_id in record.getMessage()
    assert "RuntimeError: the warehouse hiccuped" in record.getMessage()
    assert record.exc_info is not None  # the receiver's traceback


def test_a_batch_asks_plugipay_once_for_an_object_it_cannot_fetch(monkeypatch):
    """Plugipay times out: the batch asks once for the subscription its renewals need, not
    again for each of them; they are stored failed with the error, for their own tasks."""
    from django_plugipay.exceptions import TransientError
    from django_plugipay.specs import registered
    from tests.factories import CustomerFactory, PlanFactory
    from tests.test_apply_cost import renewed

    spec = registered("subscription")
    CustomerFactory(plugipay_id="cus_v"), PlanFactory(plugipay_id="plan_v")
    calls = []

    def down(self, oid):
        calls.append(oid)
        raise TransientError("Plugipay timed out", code="timeout")

    monkeypatch.setattr(type(spec), "fetch", down)
    queue(*(renewed("sub_v", n).payload for n in (1, 2, 3)))
    services.apply_queued_events()
    assert calls == ["sub_v"]
    rows = WebhookEvent.objects.values_list("status", "attempts", "last_error")
    assert {(status, attempts) for status, attempts, _error in rows} == {("failed", 1)}
    assert all("Plugipay timed out" in error for _status, _attempts, error in rows)
