"""Reconciliation's lease and cursor: the lease is renewed after each page and given back
only by the run that holds it, the cursor is read from the database it is written to, and
``last_reconciled()`` (the doctor's "last ran") moves with every run."""

from __future__ import annotations

import datetime as dt
import sys

import pytest
from django import db
from django.utils import timezone

from django_plugipay import services, signals
from django_plugipay.models import SyncCursor, WebhookEvent
from django_plugipay.services.reconcile import last_reconciled
from tests.factories import paid_sessions
from tests.routers import LaggingReplica
from tests.test_end_to_end import start

reconcile_module = sys.modules["django_plugipay.services.reconcile"]


def test_last_reconciled_is_when_the_latest_run_took_its_cursor(plugipay_sandbox):
    paid_sessions(plugipay_sandbox, 1)
    services.reconcile()
    long_ago = timezone.now() - dt.timedelta(days=3)
    SyncCursor.objects.filter(name="events").update(updated_at=long_ago)
    assert last_reconciled() == long_ago
    before = timezone.now()
    services.reconcile()
    last = last_reconciled()
    assert last is not None and last >= before


def test_the_lease_is_renewed_after_each_page(plugipay_sandbox, monkeypatch):
    paid_sessions(plugipay_sandbox, 2)
    monkeypatch.setattr(reconcile_module, "PAGE_SIZE", 2)
    held = []

    def progress(seen):
        held.append(SyncCursor.objects.get(name="events").locked_until)

    services.reconcile(progress=progress)
    assert len(set(held)) > 1  # a later page ran under a lease renewed after the first
    assert SyncCursor.objects.get(name="events").locked_until is None  # given back at the end


def test_a_run_whose_lease_another_run_took_stops_and_leaves_that_runs_lease(
    plugipay_sandbox, monkeypatch
):
    """A run held its lease past ``LEASE`` (a very slow page) and another run claimed it: the
    first stops after the page it was applying, writes no cursor, and does not give back the
    lease it no longer holds (which would let a third run start beside the second)."""
    paid_sessions(plugipay_sandbox, 2)
    monkeypatch.setattr(reconcile_module, "PAGE_SIZE", 2)
    theirs = timezone.now() + reconcile_module.LEASE

    def progress(seen):
        if seen == 2:  # the first page applied: meanwhile another run took the lease
            SyncCursor.objects.filter(name="events").update(locked_until=theirs)

    result = services.reconcile(progress=progress)
    assert result.skipped_locked and result.events_seen == 2
    cursor = SyncCursor.objects.get(name="events")
    assert cursor.locked_until == theirs
    assert (cursor.occurred_at, cursor.last_event_id) == (None, "")


class CursorsFromTheReplica(LaggingReplica):
    """The replica has no sync cursor yet."""

    lagging = (SyncCursor,)


@pytest.mark.django_db(databases=["default", "tenant"], transaction=True)
def test_the_cursor_is_read_from_the_database_it_is_written_to(plugipay_sandbox, settings):
    paid_sessions(plugipay_sandbox, 1)
    settings.DATABASE_ROUTERS = [f"{__name__}.CursorsFromTheReplica"]
    result = services.reconcile()
    assert result.events_applied > 0 and not result.skipped_locked
    assert SyncCursor.objects.using("default").get(name="events").last_event_id
    assert not SyncCursor.objects.using("tenant").exists()


def test_an_event_that_failed_is_read_again_by_the_next_run(plugipay_sandbox, monkeypatch):
    """Its webhook went missing, so nothing else applies it: the cursor stays at it (a
    receiver failed on it here), and the next run reads it again and applies it."""
    from django_plugipay import signals
    from django_plugipay.models import Payment

    paid_sessions(plugipay_sandbox, 3)
    monkeypatch.setattr(reconcile_module, "PAGE_SIZE", 2)
    down = [True]

    def ship(sender, instance, **kwargs):
        if down[0] and instance.amount == 10_001:
            raise RuntimeError("the warehouse is down")

    signals.payment_succeeded.connect(ship, weak=False, dispatch_uid="tests.lease.ship")
    try:
        first = services.reconcile()
        assert first.events_failed >= 1  # its events that make the payment succeed
        assert sorted(Payment.objects.values_list("amount", flat=True)) == [10_000, 10_002]
        down[0] = False
        again = services.reconcile()
    finally:
        signals.payment_succeeded.disconnect(dispatch_uid="tests.lease.ship")
    assert again.events_failed == 0 and again.events_applied >= 1
    assert sorted(Payment.objects.values_list("amount", flat=True)) == [10_000, 10_001, 10_002]


def test_an_item_that_is_no_event_is_counted_and_skipped(plugipay_sandbox, monkeypatch):
    """One broken item in Plugipay's list does not stop every run at its page."""
    from django_plugipay.exceptions import InvalidPayload
    from django_plugipay.models import Payment

    paid_sessions(plugipay_sandbox, 2)
    real = reconcile_module.parse_event
    broken = []

    def parse_event(item):
        if not broken:
            broken.append(item["id"])
            raise InvalidPayload("The webhook body has no type.", code="invalid_payload")
        return real(item)

    monkeypatch.setattr(reconcile_module, "parse_event", parse_event)
    result = services.reconcile()
    assert result.events_failed == 1 and result.events_applied == result.events_seen - 1
    assert Payment.objects.count() == 2


def test_a_run_since_a_time_after_the_cursor_leaves_the_cursor_for_the_events_between(
    plugipay_sandbox,
):
    """``since`` later than the stored cursor skips the events between them in that run only:
    the cursor stays, and the next run reads from it and applies them (it moved to the run's
    newest event, and those events were never read by any run)."""
    from django_plugipay import datetimes
    from django_plugipay.models import Payment

    paid_sessions(plugipay_sandbox, 1)
    services.reconcile()
    cursor = SyncCursor.objects.get(name="events")
    plugipay_sandbox.advance(3600)
    paid_sessions(plugipay_sandbox, 1)  # between the cursor and ``since``
    plugipay_sandbox.advance(3600)
    paid_sessions(plugipay_sandbox, 1)
    since = datetimes.parse(plugipay_sandbox.events()[-1]["occurredAt"])
    plugipay_sandbox.advance(3600)
    result = services.reconcile(since=since)
    assert result.events_seen >= 1 and Payment.objects.count() == 2
    after = SyncCursor.objects.get(name="events")
    assert (after.occurred_at, after.last_event_id) == (cursor.occurred_at, cursor.last_event_id)
    services.reconcile()
    assert Payment.objects.count() == 3


def test_the_doctor_names_the_failed_event_every_run_reads_again_from(db):
    """A failure that lasts (for any reason but the event's own invalid object) holds the
    cursor: runs still happen, but each reads the log again from that event. After a day the
    doctor's reconciliation line fails, naming the event, its error and the replay."""
    from django_plugipay.management.commands.plugipay_doctor import Doctor
    from tests.factories import WebhookEventFactory

    now = timezone.now()
    SyncCursor.objects.create(name="events", occurred_at=now - dt.timedelta(days=3))
    WebhookEventFactory(status="failed", occurred_at=now - dt.timedelta(days=4))  # passed
    held = WebhookEventFactory(
        status="failed", occurred_at=now - dt.timedelta(days=2), last_error="RuntimeError: boom"
    )
    WebhookEventFactory(status="failed", occurred_at=now - dt.timedelta(hours=30))  # later one
    assert reconcile_module.held_at() == held
    line = Doctor(url=None, wait=0).reconciliation()
    assert line.ok is False
    assert held.event_id in line.detail and "RuntimeError: boom" in line.detail
    assert f"plugipay_replay {held.event_id}" in line.fix
    held.status = "processed"
    held.save()
    later = reconcile_module.held_at()
    assert later is not None and later.occurred_at > held.occurred_at
    later.occurred_at = now - dt.timedelta(hours=2)  # failing for two hours only: may pass
    later.save()
    assert Doctor(url=None, wait=0).reconciliation().ok is True


@pytest.mark.parametrize("error", [RuntimeError, db.IntegrityError])
def test_reconcile_reads_again_an_event_a_receivers_own_database_error_failed(
    plugipay_sandbox, error
):
    broken = [True]

    def ship(sender, instance, **kwargs):
        if broken[0]:  # the project's bug (or race) in its own tables, fixed before the next run
            raise error('duplicate key value violates unique constraint "shop_shipment_order"')

    plugipay_sandbox.hold()  # the webhooks are lost: reconciliation alone brings the events
    signals.payment_succeeded.connect(ship)
    try:
        plugipay_sandbox.pay(start())
        plugipay_sandbox.advance(120)
        start(amount=1000)  # a later event: the cursor may move up to it
        services.reconcile()
        assert WebhookEvent.objects.filter(status="failed").exists()
        broken[0] = False
        services.reconcile()  # the next run reads it again
    finally:
        signals.payment_succeeded.disconnect(ship)
    assert list(WebhookEvent.objects.failed().values_list("type", "last_error")) == []
