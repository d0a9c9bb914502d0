"""Events that need someone: failed or left unapplied for over an hour are named by the doctor
and checks W042/W043; staff dismiss a failed event they will not apply."""

from __future__ import annotations

import datetime as dt
import socket
import threading

import pytest
from django.utils import timezone

from django_plugipay import services
from django_plugipay.checks import check_events
from django_plugipay.management.commands.plugipay_doctor import Doctor
from django_plugipay.models import WebhookEvent
from tests.factories import WebhookEventFactory
from tests.test_admin import staff
from tests.test_tasks_mode import DOWN_BROKER

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/django_plugipay/webhookevent/"


def event(status, *, hours_ago, error=""):
    made = WebhookEventFactory(status=status, last_error=error)
    received = timezone.now() - dt.timedelta(hours=hours_ago)
    WebhookEvent.objects.filter(pk=made.pk).update(received_at=received, occurred_at=received)
    made.refresh_from_db()
    return made


def test_fresh_failures_and_applied_events_are_nobodys_business_yet():
    event("failed", hours_ago=0.5, error="still being retried")
    event("received", hours_ago=0.2)
    event("processed", hours_ago=30)
    event("ignored", hours_ago=30)
    health = services.event_health()
    assert (health.failed, health.waiting, health.oldest_failed) == (0, 0, None)
    assert check_events(databases=["default"]) == []
    line = Doctor(url=None, wait=0).events()
    assert line.ok is True and line.detail == "none failed or waiting for over an hour"


def test_the_doctor_and_the_checks_name_old_failures_and_events_nothing_applies():
    event("failed", hours_ago=3, error="KeyError: 'order'")
    oldest = event("failed", hours_ago=26, error="IntegrityError: duplicate key")
    event("received", hours_ago=2)
    health = services.event_health()
    assert (health.failed, health.waiting, health.oldest_failed) == (2, 1, oldest)
    assert [m.id for m in check_events(databases=["default"])] == [
        "django_plugipay.W042",
        "django_plugipay.W043",
    ]
    assert check_events(databases=None) == []  # only with the database checks
    line = Doctor(url=None, wait=0).events()
    assert line.ok is False
    assert line.detail == (
        f"2 failed (the oldest {oldest.event_id}, payment.succeeded: IntegrityError: "
        "duplicate key); 1 recorded over an hour ago and not applied yet"
    )
    assert "plugipay_replay" in line.fix and "'Dismiss'" in line.fix
    assert "django_plugipay.sweep" in line.fix


def test_dismissing_leaves_all_but_failed_events_as_they_are():
    failed = event("failed", hours_ago=5, error="bad values")
    applied = event("processed", hours_ago=5)
    queued = event("received", hours_ago=0)
    assert services.dismiss_events(events=[failed, applied, queued]) == 1
    statuses = dict(WebhookEvent.objects.values_list("pk", "status"))
    assert statuses == {failed.pk: "ignored", applied.pk: "processed", queued.pk: "received"}
    assert WebhookEvent.objects.get(pk=failed.pk).last_error == "bad values"
    assert services.event_health().failed == 0
    services.replay_failed_events()  # applies the queued one, never the dismissed one
    assert WebhookEvent.objects.get(pk=failed.pk).status == "ignored"


def test_admin_dismiss_needs_the_permission_and_a_confirmation(client):
    failed = event("failed", hours_ago=2, error="boom")
    applied = event("processed", hours_ago=2)
    selected = {"action": "dismiss_events", "_selected_action": [failed.pk, applied.pk]}

    client.force_login(staff())  # may view events, not reprocess them
    client.post(CHANGELIST, {**selected, "post": "yes"})
    assert WebhookEvent.objects.get(pk=failed.pk).status == "failed"

    client.force_login(staff("change_webhookevent"))
    confirm = client.post(CHANGELIST, selected)
    html = confirm.content.decode()
    assert "Dismiss these failed events?" in html
    assert failed.event_id in html and applied.event_id not in html  # only failed ones listed
    assert WebhookEvent.objects.get(pk=failed.pk).status == "failed"  # nothing until "yes"

    client.post(CHANGELIST, {**selected, "post": "yes"})
    assert WebhookEvent.objects.get(pk=failed.pk).status == "ignored"
    assert WebhookEvent.objects.get(pk=applied.pk).status == "processed"


def test_a_dismissed_event_stays_dismissed_when_a_retry_fails_meanwhile(monkeypatch):
    """Staff dismiss the event between a failing retry's rollback and its marking failed."""
    from django_plugipay.services import events as service
    from tests.test_apply_cost import session_completed
    from tests.test_batch import queue

    [queued] = queue(session_completed(0))
    WebhookEvent.objects.filter(pk=queued.pk).update(status="failed", last_error="boom")
    real_discard = service.discard_lost_connection

    def staff_dismiss_now(exc):  # runs right after the retry's rollback
        real_discard(exc)
        assert services.dismiss_events(events=[queued]) == 1

    def refuse(*args, **kwargs):
        raise RuntimeError("the shop refused it again")

    monkeypatch.setattr(service, "discard_lost_connection", staff_dismiss_now)
    monkeypatch.setattr(service, "_apply", refuse)
    with pytest.raises(RuntimeError):
        service.apply_recorded_event(queued.pk)
    assert WebhookEvent.objects.get(pk=queued.pk).status == "ignored"


def test_the_admin_reports_and_logs_only_the_events_it_dismissed(client, monkeypatch):
    from django.contrib.admin.models import LogEntry

    failed = event("failed", hours_ago=2, error="boom")
    real = services.dismiss_events

    def retry_wins_first(*, events):
        WebhookEvent.objects.filter(pk=failed.pk).update(status="processed")  # the retry
        return real(events=events)

    monkeypatch.setattr(services, "dismiss_events", retry_wins_first)
    client.force_login(staff("change_webhookevent"))
    page = client.post(
        CHANGELIST,
        {"action": "dismiss_events", "_selected_action": [failed.pk], "post": "yes"},
        follow=True,
    )
    html = page.content.decode()
    assert WebhookEvent.objects.get(pk=failed.pk).status == "processed"
    assert "1 event dismissed." not in html and "no longer failed" in html
    assert f"Webhook event {failed.event_id} (" in html  # the id as staff copy it, not "Evt_…"
    assert not LogEntry.objects.filter(object_id=str(failed.pk)).exists()


def test_an_old_failed_event_queued_again_just_now_is_in_flight_not_waiting(settings):
    from django_plugipay.models import EventSource
    from django_plugipay.services import events as service
    from django_plugipay.webhooks import parse_event
    from tests.test_apply_cost import session_completed

    settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_PROCESSING": "celery"}
    parsed = parse_event(session_completed(0))
    service.record_event(parsed, source=EventSource.RECONCILE)
    received = timezone.now() - dt.timedelta(days=2)
    WebhookEvent.objects.update(status="failed", last_error="boom", received_at=received)
    service.queue_page([parsed], source=EventSource.RECONCILE)  # queued again just now
    row = WebhookEvent.objects.get()
    assert row.status == "received" and row.queued_at > timezone.now() - dt.timedelta(minutes=1)
    assert services.event_health().waiting == 0
    assert check_events(databases=["default"]) == []
    WebhookEvent.objects.update(queued_at=timezone.now() - dt.timedelta(minutes=5))
    assert services.event_health().waiting == 1  # handed over minutes ago, still not applied


def test_the_doctors_tasks_line_says_where_task_work_goes(settings, make_celery_app):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "TASKS": "inline"}
    line = Doctor(url=None, wait=0).tasks()
    assert line.ok is True and "in this process" in line.detail

    settings.PLUGIPAY = {**settings.PLUGIPAY, "TASKS": "celery"}
    line = Doctor(url=None, wait=0).tasks()
    assert line.ok is False and "no Celery app" in line.detail

    make_celery_app(broker_url=DOWN_BROKER)
    line = Doctor(url=None, wait=0).tasks()
    assert line.ok is False
    assert "the Celery broker redis://127.0.0.1:1/0 cannot be reached" in line.detail
    assert "start the broker" in line.fix


@pytest.fixture
def silent_broker():
    """A TCP port that accepts connections and never answers (a hung Redis, a stuck proxy)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


def test_the_tasks_line_does_not_hang_on_a_broker_that_never_answers(
    settings, make_celery_app, silent_broker
):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "TASKS": "celery"}
    make_celery_app(broker_url=f"redis://127.0.0.1:{silent_broker}/0")
    lines = []
    worker = threading.Thread(target=lambda: lines.append(Doctor(url=None, wait=0).tasks()))
    worker.daemon = True
    worker.start()
    worker.join(15)
    assert lines, "plugipay_doctor's tasks line still waiting after 15 s"
    assert lines[0].ok is False


def test_the_tasks_line_with_routes_by_exchange_does_not_crash(settings, make_celery_app):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "TASKS": "celery"}
    make_celery_app(
        broker_url="memory://",
        task_routes={"django_plugipay.*": {"exchange": "payments", "routing_key": "pay"}},
    )
    line = Doctor(url=None, wait=0).tasks()
    assert "crashed" not in line.detail, line


def test_the_tasks_line_with_eager_celery_does_not_fail(settings, make_celery_app):
    """task_always_eager: every task runs in the sending process, no broker or worker."""
    settings.PLUGIPAY = {**settings.PLUGIPAY, "TASKS": "celery"}
    make_celery_app(broker_url=DOWN_BROKER, task_always_eager=True)
    line = Doctor(url=None, wait=0).tasks()
    assert line.ok is not False, line


@pytest.mark.django_db(databases=["default", "tenant"], transaction=True)
def test_the_doctor_and_the_checks_read_every_accounts_database(settings):
    """With ACCOUNT_DATABASE a tenant's events and deliveries live in its own database: asked
    for no account, the health adds every account's up."""
    from django.contrib.contenttypes.models import ContentType

    from django_plugipay import accounts
    from django_plugipay.checks import check_deliveries
    from django_plugipay.models import Delivery, Payment
    from tests.test_accounts_background import TWO, stranded

    settings.DATABASE_ROUTERS = ["django_plugipay.routers.AccountRouter"]
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        **TWO,
        "ACCOUNT_DATABASE": "tests.test_accounts_background.tenant_database",
    }
    row = stranded(2, "t")
    long_ago = timezone.now() - dt.timedelta(hours=3)
    WebhookEvent.objects.using("tenant").filter(pk=row.pk).update(
        status="failed", last_error="boom", received_at=long_ago
    )
    with accounts.acting_for("t"):
        Delivery.objects.create(
            signal="payment_succeeded",
            receiver="shop.receivers.ship",
            content_type_id=ContentType.objects.db_manager("tenant").get_for_model(Payment).pk,
            object_id=1,
            key="k-tenant",
            status="dead",
        )
    health = services.event_health()
    assert (health.failed, health.oldest_failed.event_id) == (1, "evt_2")
    assert [m.id for m in check_events(databases=["default"])] == ["django_plugipay.W042"]
    assert [m.id for m in check_deliveries(databases=["default"])] == ["django_plugipay.W040"]
    assert Doctor(url=None, wait=0).events().ok is False
    with accounts.acting_for("default"):  # one account asked: its own database only
        assert services.event_health().failed == 0
