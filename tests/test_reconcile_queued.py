"""Reconciliation in the queued mode: each page is recorded in one statement and handed to the
workers, who apply it as they apply queued webhooks; the run itself applies nothing."""

from __future__ import annotations

import sys

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_plugipay import services, signals
from django_plugipay.models import EventSource, EventStatus, Payment, SyncCursor, WebhookEvent
from tests.factories import paid_sessions
from tests.test_accept import QUEUED, messages, queued  # noqa: F401 - the fixture
from tests.test_tasks_mode import drain_db_queue

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


def test_an_event_stored_failed_is_sent_to_its_own_task_when_read_again(
    plugipay_sandbox,
    queued,  # noqa: F811
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
        result = services.reconcile(since=min(event.occurred_at for event in failed))
        assert result.events_queued == len(failed)  # sent again, as a redelivery's is
        assert messages()[-1] == "django_plugipay.process_webhook_event"
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
