"""Reconciliation in the queued mode: each page is recorded in one statement and handed to the
workers, who apply it as they apply queued webhooks; the run itself applies nothing."""

from __future__ import annotations

import datetime as dt
import sys

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_plugipay import accounts, datetimes, services, signals, tasks
from django_plugipay.client import PlugipayClient, get_client
from django_plugipay.models import (
    CheckoutSession,
    EventSource,
    EventStatus,
    Payment,
    SyncCursor,
    WebhookEvent,
)
from django_plugipay.services import _queue, sweeper
from django_plugipay.services import events as events_service
from django_plugipay.services.events import record_event
from django_plugipay.testing import build_event
from django_plugipay.webhooks import parse_event
from tests.factories import paid_sessions
from tests.test_accept import QUEUED, completed_event, messages, queued  # noqa: F401
from tests.test_accounts_background import TWO, completed
from tests.test_end_to_end import start
from tests.test_tasks_mode import drain_db_queue
from tests.test_webhook_view import post

pytestmark = pytest.mark.django_db

reconciliation = sys.modules["django_plugipay.services.reconcile"]


def test_the_run_records_each_page_and_the_workers_apply_it(
    plugipay_sandbox,
    queued,  # noqa: F811
    signal_log,
    monkeypatch,
):
    monkeypatch.setattr(reconciliation, "PAGE_SIZE", 4)
    paid_sessions(plugipay_sandbox, 3)
    assert reconciliation.queued()
    with CaptureQueriesContext(connection) as run:
        result = services.reconcile()
    events = WebhookEvent.objects.order_by("pk")
    assert result.events_queued == result.events_seen == events.count() > 4
    assert result.events_applied == result.events_failed == 0
    assert {e.status for e in events} == {EventStatus.RECEIVED}
    assert {e.source for e in events} == {EventSource.RECONCILE}
    assert all(e.queued_at is not None for e in events)
    assert not Payment.objects.exists()  # nothing applied in the run
    assert set(signal_log.names()) <= {"receipt_issued"}  # the receipts it mirrors after
    sql = [query["sql"] for query in run.captured_queries]
    inserts = [text for text in sql if "INSERT INTO" in text and "webhookevent" in text]
    assert len(inserts) == -(-events.count() // 4)  # one statement per page
    assert "django_plugipay.process_pending_events" in messages()
    # the cursor passed what was recorded: the next run reads nothing again
    assert SyncCursor.objects.get(name="events").last_event_id == events.last().event_id

    drain_db_queue()
    assert Payment.objects.filter(status="succeeded").count() == 3
    assert set(WebhookEvent.objects.values_list("status", flat=True)) <= {"processed", "ignored"}
    assert signal_log.names().count("payment_succeeded") == 3
    again = services.reconcile()
    assert again.events_queued == 0 and again.events_applied == 0
    drain_db_queue()
    assert signal_log.names().count("payment_succeeded") == 3


def test_an_event_stored_failed_is_queued_again_when_read_again(
    plugipay_sandbox,
    queued,  # noqa: F811
    monkeypatch,
):
    paid_sessions(plugipay_sandbox, 1)
    down, fulfilled = [True], []

    def fulfil(sender, instance, **kwargs):
        if down[0]:
            raise RuntimeError("the warehouse is down")
        transaction.on_commit(lambda: fulfilled.append(instance.plugipay_id))

    signals.payment_succeeded.connect(fulfil)
    try:
        services.reconcile()
        drain_db_queue()  # the batch stores it failed; its own task waits out its backoff
        failed = list(WebhookEvent.objects.filter(status=EventStatus.FAILED).order_by("pk"))
        assert failed and all("warehouse" in event.last_error for event in failed)
        down[0] = False
        monkeypatch.setattr(_queue, "_coalescers", {})  # a new window: a message sent at once
        result = services.reconcile(since=min(event.occurred_at for event in failed))
        assert result.events_queued == len(failed)  # queued again, received
        requeued = WebhookEvent.objects.filter(pk__in=[event.pk for event in failed])
        assert {event.status for event in requeued} == {EventStatus.RECEIVED}
        assert "warehouse" in requeued[0].last_error  # why it failed stays visible meanwhile
        assert messages()[-1] == "django_plugipay.process_pending_events"
        drain_db_queue()
    finally:
        signals.payment_succeeded.disconnect(fulfil)
    assert not WebhookEvent.objects.exclude(status__in=("processed", "ignored")).exists()
    assert fulfilled == [Payment.objects.get().plugipay_id]  # once, committed


def test_an_event_still_queued_is_left_to_the_drain(
    plugipay_sandbox,
    queued,  # noqa: F811
):
    paid_sessions(plugipay_sandbox, 1)
    first = services.reconcile()
    sent = len(messages())
    again = services.reconcile(since=WebhookEvent.objects.order_by("pk").first().occurred_at)
    assert again.events_queued == 0 and again.events_already_known == first.events_seen
    assert len(messages()) == sent
    drain_db_queue()
    assert Payment.objects.get().status == "succeeded"


def test_without_a_queue_the_run_applies_each_page_itself(plugipay_sandbox, settings):
    settings.PLUGIPAY = {**settings.PLUGIPAY, **QUEUED, "TASKS": "inline"}
    assert not reconciliation.queued()
    paid_sessions(plugipay_sandbox, 2)
    result = services.reconcile()
    assert result.events_queued == 0 and result.events_applied == result.events_seen
    assert Payment.objects.filter(status="succeeded").count() == 2


def test_the_inline_mode_applies_each_page_itself(plugipay_sandbox, settings):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_PROCESSING": "inline", "TASKS": "django"}
    assert not reconciliation.queued()


def test_the_sync_command_says_what_it_queued(
    plugipay_sandbox,
    queued,  # noqa: F811
    capsys,
):
    paid_sessions(plugipay_sandbox, 1)
    call_command("plugipay_sync")
    out = capsys.readouterr().out
    count = WebhookEvent.objects.count()
    assert f"{count} read, 0 applied, {count} queued for the workers, 0 already known" in out


def test_an_account_s_events_are_recorded_and_applied_as_that_account_s(
    two_accounts,
    queued,  # noqa: F811
):
    from django_plugipay.models import Customer

    sandbox, _secret = two_accounts
    sandbox.hold()
    for n in range(3):
        services.create_customer(email=f"buyer{n}@merchant.test", account="merchant")
    Customer.objects.all().delete()
    result = services.reconcile(account="merchant")
    assert result.events_queued == 3 and not Customer.objects.exists()
    merchant = {event.account.alias for event in WebhookEvent.objects.select_related("account")}
    assert merchant == {"merchant"}
    drain_db_queue()
    assert {c.account.alias for c in Customer.objects.select_related("account")} == {"merchant"}
    assert Customer.objects.count() == 3


def celery_mode(settings, monkeypatch):
    """The queued mode on a Celery app whose sends the test replaces (``_queue._send``), with
    no sweep behind the test's back and a fresh coalescing window."""
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "SYNC_RECEIPTS": False,
        "WEBHOOK_PROCESSING": "celery",
        "TASKS": "celery",
    }
    monkeypatch.setattr(sweeper, "_last_sweep", float("inf"))
    monkeypatch.setattr(_queue, "_coalescers", {})


class _Log:
    """The real client, but Plugipay's event log is ``events`` (filtered by time as Plugipay
    filters it: ``occurredAfter`` includes the instant)."""

    def __init__(self, events):
        self.real, self.events = get_client(), events

    def list_events(self, occurredAfter=None, **filters):  # noqa: N803 - Plugipay's name
        start = datetimes.parse(occurredAfter) if occurredAfter else None
        return iter(
            e for e in self.events if start is None or datetimes.parse(e["occurredAt"]) >= start
        )

    def __getattr__(self, name):
        return getattr(self.real, name)


def invalid_customer_event(n=1):
    """An event whose object is invalid (its email is a number)."""
    return build_event(
        "customer.created",
        {"id": f"cus_bad{n}", "email": 12},
        event_id=f"evt_bad{n}",
        occurred_at="2026-01-01T00:00:00Z",
    )


def test_an_invalid_event_is_stored_failed_and_counted_so_as_the_webhook_view_does(
    plugipay_sandbox,
    queued,  # noqa: F811
    monkeypatch,
):
    monkeypatch.setattr(reconciliation, "get_client", lambda: _Log([invalid_customer_event()]))
    result = services.reconcile()
    event = WebhookEvent.objects.get(event_id="evt_bad1")
    assert (result.events_failed, result.events_queued) == (1, 0)
    assert event.status == EventStatus.FAILED and "email" in event.last_error
    drain_db_queue()
    assert "django_plugipay.process_webhook_event" not in messages()  # no retry in vain
    again = services.reconcile(since=event.occurred_at)
    assert (again.events_failed, again.events_queued) == (1, 0)
    assert "django_plugipay.process_webhook_event" not in messages()
    assert WebhookEvent.objects.get().status == EventStatus.FAILED


@pytest.mark.django_db(transaction=True)
def test_a_failed_event_read_while_the_broker_is_down_is_left_for_the_sweeper(
    settings, monkeypatch
):
    """The failed event read again is queued ``received``: when its message cannot be sent
    it is marked, and the first sweep after the broker is back sends it."""
    celery_mode(settings, monkeypatch)
    down, sent = [True], []

    def send(name, args, countdown=0):
        if down[0]:
            raise ConnectionError("the broker is down")
        sent.append((name, args))

    monkeypatch.setattr(_queue, "_send", send)
    first = completed(1)
    first["occurredAt"] = "2026-01-01T00:00:00Z"
    later = build_event(
        "customer.created",
        {"id": "cus_1", "email": "a@b.test"},
        event_id="evt_later",
        occurred_at="2026-01-01T01:00:00Z",
    )
    row, _ = record_event(parse_event(first), source="webhook")
    WebhookEvent.objects.filter(pk=row.pk).update(
        status=EventStatus.FAILED, last_error="RuntimeError: the warehouse was down"
    )
    monkeypatch.setattr(reconciliation, "get_client", lambda: _Log([first, later]))
    assert services.reconcile().events_queued == 2
    assert WebhookEvent.objects.get(pk=row.pk).queued_at is None  # marked for the sweeper
    down[0] = False  # the broker is back
    sweeper.sweep()
    for name, args in sent:  # the worker runs what was sent
        tasks.WORK[name].function(*args)
    assert WebhookEvent.objects.get(pk=row.pk).status == EventStatus.PROCESSED
    assert Payment.objects.filter(plugipay_id="pay_1").exists()


@pytest.mark.django_db(databases=["default", "tenant"], transaction=True)
def test_a_tenants_failed_event_read_again_is_applied_in_its_database(settings, monkeypatch):
    settings.DATABASE_ROUTERS = ["django_plugipay.routers.AccountRouter"]
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        **TWO,
        "SYNC_RECEIPTS": False,
        "WEBHOOK_PROCESSING": "celery",
        "TASKS": "celery",
        "ACCOUNT_DATABASE": "tests.test_accounts_background.tenant_database",
    }
    monkeypatch.setattr(sweeper, "_last_sweep", float("inf"))
    sent = []
    monkeypatch.setattr(_queue, "_send", lambda name, args, countdown=0: sent.append((name, args)))
    body = completed(2, "acc_t")
    with accounts.acting_for("t"):
        row, _ = record_event(parse_event(body), source="webhook")
        WebhookEvent.objects.filter(pk=row.pk).update(
            status=EventStatus.FAILED, last_error="RuntimeError: the warehouse was down"
        )
    monkeypatch.setattr(reconciliation, "get_client", lambda: _Log([body]))
    assert services.reconcile(account="t").events_queued == 1
    for name, args in sent:  # as a worker runs them: no account acting
        tasks.WORK[name].function(*args)
    assert WebhookEvent.objects.using("tenant").get().status == EventStatus.PROCESSED
    assert Payment.objects.using("tenant").filter(plugipay_id="pay_2").exists()


@pytest.mark.django_db(databases=["default", "tenant"], transaction=True)
def test_a_tenants_event_its_batch_failed_is_retried_in_its_database(settings, monkeypatch):
    """The per-event task a failed batch event is sent to names the account acting, whose
    database holds the row (before, a worker looked for its pk in the default database)."""
    settings.DATABASE_ROUTERS = ["django_plugipay.routers.AccountRouter"]
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        **TWO,
        "WEBHOOK_PROCESSING": "celery",
        "TASKS": "celery",
        "ACCOUNT_DATABASE": "tests.test_accounts_background.tenant_database",
    }
    sent = []
    monkeypatch.setattr(_queue, "_send", lambda name, args, countdown=0: sent.append((name, args)))
    down = [True]

    def fulfil(sender, instance, **kwargs):
        if down[0]:
            raise RuntimeError("the warehouse is down")

    with accounts.acting_for("t"):
        record_event(parse_event(completed(3, "acc_t")), source="webhook")
    signals.payment_succeeded.connect(fulfil)
    try:
        services.apply_queued_events()  # each account's database in turn
        assert WebhookEvent.objects.using("tenant").get().status == EventStatus.FAILED
        retries = [args for name, args in sent if name == "django_plugipay.process_webhook_event"]
        assert len(retries) == 1 and retries[0][1:] == ("t",)
        down[0] = False
        tasks.WORK["django_plugipay.process_webhook_event"].function(*retries[0])
    finally:
        signals.payment_succeeded.disconnect(fulfil)
    assert WebhookEvent.objects.using("tenant").get().status == EventStatus.PROCESSED


@pytest.mark.parametrize("mode", ["inline", "queued"])
def test_a_session_whose_completion_the_run_reads_is_left_to_its_events(
    plugipay_sandbox, monkeypatch, mode, request
):
    """A session open here past its expiry whose completion is in the log: the events move
    it (applied by the run, or handed to the workers), not a sync of its own."""
    if mode == "queued":
        request.getfixturevalue("queued")
    session = start()  # its creation is delivered: open here
    plugipay_sandbox.hold()  # the completion's webhooks are lost
    plugipay_sandbox.pay(session)
    CheckoutSession.objects.filter(pk=session.pk).update(
        expires_at=timezone.now() - dt.timedelta(minutes=1)
    )
    gets = []
    real = PlugipayClient.request

    def counting(self, method, path, **kwargs):
        if path.startswith("/checkout"):
            gets.append(path)
        return real(self, method, path, **kwargs)

    monkeypatch.setattr(PlugipayClient, "request", counting)
    result = services.reconcile()
    assert (result.synced.get("checkout_session", 0), gets) == (0, [])
    if mode == "queued":
        drain_db_queue()
    assert CheckoutSession.objects.get(pk=session.pk).status == "completed"


@pytest.mark.django_db(transaction=True)
def test_a_single_account_project_sends_the_per_event_task_as_before(client, settings, monkeypatch):
    """One database: a redelivered failed event's task is ``process_webhook_event(pk)``, as
    before the task took an account (a worker of an older release, still running during a
    deploy, takes one argument)."""
    settings.PLUGIPAY = {**settings.PLUGIPAY, "TASKS": "celery", "WEBHOOK_PROCESSING": "celery"}
    monkeypatch.setattr(sweeper, "_last_sweep", float("inf"))
    monkeypatch.setattr(_queue, "_coalescers", {})
    sent = []
    monkeypatch.setattr(
        _queue, "_send", lambda name, args, countdown=0: sent.append((name, tuple(args)))
    )
    assert post(client, completed_event(1)).status_code == 200
    WebhookEvent.objects.update(status=EventStatus.FAILED, last_error="RuntimeError: boom")
    assert post(client, completed_event(1)).status_code == 200
    pk = WebhookEvent.objects.get().pk
    retries = [args for name, args in sent if name == "django_plugipay.process_webhook_event"]
    assert retries == [(pk,)]


@pytest.mark.django_db(transaction=True)
def test_the_sync_command_fails_when_no_task_could_be_sent(settings, monkeypatch, capsys):
    """Events recorded while the broker is down are safe (marked for the sweep), but nothing
    applies them until it answers: the command says so and exits non-zero, for cron to tell."""
    celery_mode(settings, monkeypatch)
    down = [True]

    def send(name, args, countdown=0):
        if down[0]:
            raise ConnectionError("the broker is down")

    monkeypatch.setattr(_queue, "_send", send)
    monkeypatch.setattr(reconciliation, "get_client", lambda: _Log([completed(1), completed(2)]))
    with pytest.raises(CommandError, match="2 events are recorded but no task could be sent"):
        call_command("plugipay_sync")
    out = capsys.readouterr().out
    assert "2 queued for the workers" in out
    assert "Not sent: 2 events recorded wait for a task that could not be sent" in out
    assert set(WebhookEvent.objects.values_list("status", "queued_at")) == {("received", None)}
    down[0] = False  # the broker is back: the sweep sends them, and the command is content
    call_command("plugipay_sync")
    assert "Not sent" not in capsys.readouterr().out
    assert not services.events_not_sent().exists()


def test_a_dry_run_counts_what_the_run_then_hands_over(
    plugipay_sandbox,
    queued,  # noqa: F811
):
    paid_sessions(plugipay_sandbox, 1)
    services.reconcile()  # recorded, queued; the workers have not drained yet
    since = WebhookEvent.objects.order_by("occurred_at").first().occurred_at
    dry = services.reconcile(since=since, dry_run=True)
    real = services.reconcile(since=since)
    assert real.events_queued == real.events_applied == 0  # left to the drain
    assert (dry.events_applied, dry.events_already_known) == (0, real.events_already_known)
    assert dry.events_queued == real.events_queued


@pytest.mark.django_db(transaction=True)
def test_a_failed_event_its_task_applies_meanwhile_is_not_queued_again(settings, monkeypatch):
    """The run reads a failed event again while its own retrying task applies it: the event
    keeps what the task did, and the run neither counts it queued nor sends a message."""
    celery_mode(settings, monkeypatch)
    sent = []
    monkeypatch.setattr(_queue, "_send", lambda name, args, countdown=0: sent.append(name))
    body = completed(1)
    body["occurredAt"] = "2026-01-01T00:00:00Z"
    row, _ = record_event(parse_event(body), source="webhook")
    WebhookEvent.objects.filter(pk=row.pk).update(
        status=EventStatus.FAILED, last_error="RuntimeError: the warehouse was down"
    )
    real_valid = events_service._valid

    def valid_while_the_task_applies_it(payload):
        # the per-event retry task commits between the run's read and its update
        events_service.apply_recorded_event(row.pk)
        return real_valid(payload)

    monkeypatch.setattr(events_service, "_valid", valid_while_the_task_applies_it)
    monkeypatch.setattr(reconciliation, "get_client", lambda: _Log([body]))
    result = services.reconcile()
    assert WebhookEvent.objects.get(pk=row.pk).status == EventStatus.PROCESSED
    assert Payment.objects.filter(plugipay_id="pay_1").count() == 1
    assert (result.events_queued, result.events_already_known) == (0, 1)
    assert sent == []


def customer_event(n, at="2026-01-01T00:00:00Z"):
    return build_event(
        "customer.created",
        {"id": f"cus_{n}", "email": f"c{n}@shop.test"},
        event_id=f"evt_c{n}",
        occurred_at=at,
    )


@pytest.mark.parametrize("recorded_by", ["reconciliation", "webhook"])
def test_the_event_an_inline_run_waits_at_is_queued_once_the_project_queues(
    recorded_by, client, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """The inline mode stops its cursor AT a failing event, which no task retries: recorded
    by that run, or by a webhook while the tasks ran in-process (``queued_at`` set then too).
    Once the project turns the queued mode on, the next run queues it again."""
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "SYNC_RECEIPTS": False,
        "WEBHOOK_PROCESSING": "celery",
        "TASKS": "inline",
    }
    monkeypatch.setattr(sweeper, "_last_sweep", float("inf"))
    down = [True]

    def crm(sender, instance, **kwargs):
        if down[0] and instance.event_id == "evt_c2":
            raise RuntimeError("the CRM is down")

    log = [customer_event(1, "2026-01-01T00:00:00Z"), customer_event(2, "2026-01-01T01:00:00Z")]
    monkeypatch.setattr(reconciliation, "get_client", lambda: _Log(log))
    signals.webhook_received.connect(crm)
    try:
        if recorded_by == "webhook":
            with django_capture_on_commit_callbacks(execute=True):
                assert post(client, log[1]).status_code == 200  # applied in-process: fails
            assert WebhookEvent.objects.get(event_id="evt_c2").queued_at is not None
        services.reconcile()
        assert SyncCursor.objects.get(name="events").last_event_id == "evt_c2"  # waits there
        assert WebhookEvent.objects.get(event_id="evt_c2").status == EventStatus.FAILED
        down[0] = False
        celery_mode(settings, monkeypatch)  # the project adopts Celery
        monkeypatch.setattr(_queue, "_send", lambda name, args, countdown=0: None)
        result = services.reconcile()
    finally:
        signals.webhook_received.disconnect(crm)
    assert result.events_queued == 1, result  # the event the inline cursor waited at
    assert WebhookEvent.objects.get(event_id="evt_c2").status == EventStatus.RECEIVED


def test_a_failed_event_at_the_cursor_is_queued_again_by_each_run_until_dismissed(
    settings, monkeypatch
):
    """Every run reads the events at the cursor's instant again (occurredAfter includes it):
    one failed there is queued again, whoever recorded it (no state tells reliably whether a
    task still retries it), and a dry run counts it so; a dismissed one is left alone."""
    celery_mode(settings, monkeypatch)
    monkeypatch.setattr(_queue, "_send", lambda name, args, countdown=0: None)
    monkeypatch.setattr(reconciliation, "get_client", lambda: _Log([customer_event(1)]))
    services.reconcile()
    WebhookEvent.objects.update(status=EventStatus.FAILED, last_error="boom")
    dry = services.reconcile(dry_run=True)
    real = services.reconcile()
    assert (dry.events_applied, dry.events_queued, real.events_queued) == (0, 1, 1)
    WebhookEvent.objects.update(status=EventStatus.FAILED, last_error="boom")
    services.dismiss_events(events=WebhookEvent.objects.all())
    assert services.reconcile().events_queued == 0


@pytest.mark.django_db(transaction=True)
def test_sync_does_not_report_unsent_events_when_the_broker_took_every_message(
    settings, monkeypatch
):
    """A busy site's broker outage marked 501 events not sent. The broker is back: the
    sweep sends 500 (its limit) and the command reports the 501st as 'could not be sent
    (is the broker up?)' and exits non-zero, though no send failed."""
    celery_mode(settings, monkeypatch)
    sent = []
    monkeypatch.setattr(_queue, "_send", lambda name, args, countdown=0: sent.append(name))
    monkeypatch.setattr(reconciliation, "get_client", lambda: _Log([]))
    for n in range(501):
        record_event(parse_event(customer_event(n)), source="webhook")
    WebhookEvent.objects.update(queued_at=None, last_error="Not queued yet: broker down")
    call_command("plugipay_sync")  # raises CommandError: "1 events are recorded but ..."


def test_a_dry_run_of_the_sync_changes_nothing(settings, monkeypatch):
    """commands.md: --dry-run 'changes nothing'. It takes the lease, which stamps when
    reconciliation last ran: the doctor's reconciliation line then reports a run."""
    monkeypatch.setattr(reconciliation, "get_client", lambda: _Log([customer_event(1)]))
    assert reconciliation.last_reconciled() is None
    call_command("plugipay_sync", "--dry-run")
    assert reconciliation.last_reconciled() is None


@pytest.mark.django_db(transaction=True)
def test_plugipay_sync_s_dry_run_says_it_would_queue_what_the_run_queues(
    settings, monkeypatch, capsys
):
    celery_mode(settings, monkeypatch)
    monkeypatch.setattr(_queue, "_send", lambda name, args, countdown=0: None)
    monkeypatch.setattr(reconciliation, "get_client", lambda: _Log([completed(1), completed(2)]))
    call_command("plugipay_sync", "--dry-run")
    dry = capsys.readouterr().out
    call_command("plugipay_sync")
    real = capsys.readouterr().out
    assert "2 read, 0 would apply, 2 would be queued for the workers" in dry
    assert "2 read, 0 applied, 2 queued for the workers" in real


@pytest.mark.django_db(transaction=True)
def test_plugipay_sync_does_not_say_it_queued_what_the_broker_refused(
    settings, monkeypatch, capsys
):
    celery_mode(settings, monkeypatch)

    def send(name, args, countdown=0):
        raise ConnectionError("the broker is down")

    monkeypatch.setattr(_queue, "_send", send)
    monkeypatch.setattr(reconciliation, "get_client", lambda: _Log([]))
    for n in (1, 2):
        record_event(parse_event(completed(n)), source="webhook")
    WebhookEvent.objects.update(queued_at=None, last_error="Not queued yet: broker down")
    with pytest.raises(CommandError):
        call_command("plugipay_sync")
    out = capsys.readouterr().out
    assert "Swept: 2 stranded events found, their tasks not sent" in out
    assert "queued again" not in out
    assert "Not sent: 2 events" in out
