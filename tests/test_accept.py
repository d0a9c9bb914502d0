"""Queued acceptance: one INSERT outside a transaction, one batch message per window, no event
stranded behind a 200."""

from __future__ import annotations

import pytest
from django.db import connection

from django_plugipay import services
from django_plugipay.models import EventSource, EventStatus, WebhookEvent
from django_plugipay.services import _queue, sweeper
from django_plugipay.services import events as service
from django_plugipay.testing import build_event
from django_plugipay.webhooks import parse_event
from tests.test_apply_cost import session_completed
from tests.test_tasks_mode import DB_BACKEND, drain_db_queue
from tests.test_webhook_view import post

pytestmark = pytest.mark.django_db

QUEUED = {"TASKS": "django", "WEBHOOK_PROCESSING": "celery"}


@pytest.fixture
def queued(settings, monkeypatch):
    """The queued mode on django-tasks-db; one coalescing window for the whole test."""
    pytest.importorskip("django_tasks_db")
    settings.TASKS = DB_BACKEND
    settings.PLUGIPAY = {**settings.PLUGIPAY, **QUEUED}
    monkeypatch.setattr(_queue, "COALESCE_WINDOW", 3600.0)
    monkeypatch.setattr(_queue, "_coalescers", {})
    monkeypatch.setattr(sweeper, "_last_sweep", float("inf"))  # no sweep behind the test's back


def messages() -> list[str]:
    from django_tasks_db.models import DBTaskResult

    return [r.args_kwargs["args"][0] for r in DBTaskResult.objects.order_by("enqueued_at")]


def completed_event(n: int) -> dict:
    obj = {
        "id": f"cs_{n}",
        "status": "completed",
        "amount": 5000 + n,
        "currency": "IDR",
        "paymentId": f"pay_{n}",
        "paymentMethod": "card",
        "mode": "test",
    }
    return build_event("checkout_session.completed", obj, event_id=f"evt_{n}")


def test_the_recorded_row_holds_every_value_given(settings):
    parsed = parse_event(session_completed(7))
    row, created = service.record_event(parsed, source=EventSource.RECONCILE)
    assert created
    stored = WebhookEvent.objects.get(pk=row.pk)
    for name in ("event_id", "type", "kind", "mode", "object_id", "payload", "source"):
        assert getattr(stored, name) == getattr(row, name), name
    assert stored.source == EventSource.RECONCILE and stored.payload == dict(parsed.payload)
    assert stored.status == EventStatus.RECEIVED and stored.attempts == 0
    assert stored.last_error == "" and stored.processed_at is None
    assert stored.received_at == row.received_at and stored.queued_at == row.received_at
    again, created = service.record_event(parsed, source=EventSource.WEBHOOK)
    assert not created and again.pk == row.pk and again.status == EventStatus.RECEIVED
    assert WebhookEvent.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_queued_event_is_one_statement_outside_any_transaction(client, queued):
    assert post(client, completed_event(1)).status_code == 200  # sends the window's message
    assert post(client, completed_event(2)).status_code == 200  # the message due at its end
    seen = []

    def record(execute, sql, params, many, context):
        seen.append((sql.split()[0].upper(), context["connection"].get_autocommit()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        response = post(client, completed_event(3))
    assert response.status_code == 200 and response.json()["status"] == "received"
    assert seen == [("INSERT", True)]  # no BEGIN, SAVEPOINT or COMMIT around it, no message
    with connection.execute_wrapper(record):
        duplicate = post(client, completed_event(3))
    assert duplicate.status_code == 200 and duplicate.json()["status"] == "received"
    assert [verb for verb, _ in seen[1:]] == ["INSERT", "SELECT"]  # told by the INSERT


@pytest.mark.django_db(transaction=True)
def test_a_hundred_events_make_two_messages_and_each_is_applied_once(client, queued, signal_log):
    for n in range(100):
        assert post(client, completed_event(n)).status_code == 200
    # one sent at once, one due at the window's end: not one per event
    assert messages() == ["django_plugipay.process_pending_events"] * 2
    drain_db_queue()  # the first claims every event recorded before it ran
    assert not WebhookEvent.objects.exclude(status=EventStatus.PROCESSED).exists()
    assert signal_log.names().count("checkout_session_completed") == 100
    from django.utils import timezone
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.filter(status="READY").update(run_after=timezone.now())
    drain_db_queue()  # the window's last message finds nothing left
    assert signal_log.names().count("checkout_session_completed") == 100


@pytest.mark.django_db(transaction=True)
def test_a_redelivered_failed_event_gets_its_own_retrying_task(client, queued):
    assert post(client, completed_event(1)).status_code == 200
    WebhookEvent.objects.update(status=EventStatus.FAILED, last_error="RuntimeError: boom")
    assert post(client, completed_event(1)).status_code == 200
    assert messages() == [
        "django_plugipay.process_pending_events",
        "django_plugipay.process_webhook_event",
    ]
    drain_db_queue()
    assert WebhookEvent.objects.get().status == EventStatus.PROCESSED


@pytest.mark.django_db(transaction=True)
def test_a_lost_message_marks_every_event_relying_on_it_and_the_sweeper_applies_them(
    client, settings, monkeypatch, signal_log
):
    """Celery mode: the window's first message is sent; the one due at its end is lost, and
    an event committed while it was being sent relied on it too."""
    settings.PLUGIPAY = {**settings.PLUGIPAY, "TASKS": "celery", "WEBHOOK_PROCESSING": "celery"}
    monkeypatch.setattr(_queue, "COALESCE_WINDOW", 3600.0)
    monkeypatch.setattr(_queue, "_coalescers", {})
    monkeypatch.setattr(sweeper, "_last_sweep", float("inf"))
    sent = []

    def send(name, args, countdown=0):
        if not sent:
            sent.append((name, countdown))
            return
        # while the second message is on its way, another delivery is recorded and relies on it
        assert post(client, completed_event(3)).status_code == 200
        raise ConnectionRefusedError("the broker is down")

    monkeypatch.setattr(_queue, "_send", send)
    assert post(client, completed_event(1)).status_code == 200
    assert post(client, completed_event(2)).status_code == 200
    assert sent == [("django_plugipay.process_pending_events", 0)]
    queued_at = dict(WebhookEvent.objects.values_list("event_id", "queued_at"))
    assert queued_at["evt_1"] is not None  # its message went out
    assert queued_at["evt_2"] is None and queued_at["evt_3"] is None  # the sweeper's to send
    assert "the broker is down" in WebhookEvent.objects.get(event_id="evt_3").last_error

    # the broker is back (here: in-process); the sweeper finds them by their own state
    settings.PLUGIPAY = {**settings.PLUGIPAY, "TASKS": "inline"}
    assert services.sweep()["events"] == 2
    statuses = dict(WebhookEvent.objects.values_list("event_id", "status"))
    assert statuses == {"evt_1": "received", "evt_2": "processed", "evt_3": "processed"}
    assert signal_log.names().count("checkout_session_completed") == 2


@pytest.mark.django_db(transaction=True)
def test_an_event_its_batch_stored_failed_is_retried_by_its_own_task(client, queued, signal_log):
    from django.utils import timezone
    from django_tasks_db.models import DBTaskResult

    from django_plugipay import signals

    def refuse(sender, instance, **kwargs):
        if instance.plugipay_id == "cs_2":
            raise RuntimeError("the shop refused cs_2")

    for n in range(4):
        assert post(client, completed_event(n)).status_code == 200
    signals.checkout_session_completed.connect(refuse)
    try:
        drain_db_queue()
    finally:
        signals.checkout_session_completed.disconnect(refuse)
    failed = WebhookEvent.objects.get(status=EventStatus.FAILED)
    assert failed.event_id == "evt_2" and "the shop refused cs_2" in failed.last_error
    retry = DBTaskResult.objects.get(status="READY", args_kwargs__args__0=RETRY_TASK)
    assert retry.args_kwargs["args"][1] == [failed.pk]
    assert retry.run_after is not None and retry.run_after > timezone.now()  # after a pause

    DBTaskResult.objects.filter(pk=retry.pk).update(run_after=timezone.now())
    drain_db_queue()
    assert not WebhookEvent.objects.exclude(status=EventStatus.PROCESSED).exists()
    assert signal_log.committed().count(("checkout_session_completed", "cs_2")) == 1


RETRY_TASK = "django_plugipay.process_webhook_event"
