"""Failed events and deliveries in a tenant's database (``ACCOUNT_DATABASE``): counted once,
never left out, dismissed and replayed where they live, announced after their own commit."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.db import OperationalError, connections
from django.utils import timezone

from django_plugipay import accounts, services
from django_plugipay.management.commands.plugipay_doctor import Doctor
from django_plugipay.models import Delivery, EventSource, Payment, WebhookEvent
from django_plugipay.services import _queue
from django_plugipay.services import events as service
from django_plugipay.webhooks import parse_event
from tests.conftest import TENANTS
from tests.factories import WebhookEventFactory
from tests.test_accounts_background import TWO, completed, stranded

pytestmark = pytest.mark.django_db(databases=["default", "tenant"], transaction=True)


def _failed_long_ago(account: str, n: int) -> WebhookEvent:
    row = stranded(n, account)
    with accounts.acting_for(account):
        WebhookEvent.objects.filter(pk=row.pk).update(
            status="failed", last_error="boom", received_at=timezone.now() - dt.timedelta(hours=3)
        )
    return row


def test_a_database_several_accounts_share_is_counted_once(tenancy):
    _failed_long_ago("default", 1)
    Delivery.objects.create(
        signal="payment_succeeded",
        receiver="shop.receivers.ship",
        content_type_id=ContentType.objects.get_for_model(Payment).pk,
        object_id=1,
        key="k-default",
        status="dead",
    )
    assert services.event_health().failed == 1  # not once per account living there
    assert services.deliveries.delivery_health().dead == 1


def test_the_doctor_names_the_account_of_a_tenants_failed_event(tenancy):
    _failed_long_ago("t", 2)
    line = Doctor(url=None, wait=0).events()
    assert line.ok is False
    assert "evt_" in line.detail and "account t" in line.detail
    assert "--dismiss" in line.fix


def test_a_tenant_database_that_cannot_be_read_is_never_reported_as_all_well(tenancy, monkeypatch):
    _failed_long_ago("t", 2)

    def down(*args, **kwargs):
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(connections["tenant"], "cursor", down)
    line = Doctor(url=None, wait=0).events()
    assert line.ok is None  # "the database cannot be read", not "none failed"
    assert "account 't'" in line.detail and "Connection refused" in line.detail
    deliveries = Doctor(url=None, wait=0).deliveries()
    assert deliveries.ok is None and "account 't'" in deliveries.detail


def test_a_tenants_event_is_dismissed_in_its_database_not_one_of_the_same_pk(tenancy):
    mine = WebhookEventFactory(status="failed", last_error="the default account's")
    with accounts.acting_for("t"):
        theirs = WebhookEventFactory(status="failed", last_error="the tenant's")
        WebhookEvent.objects.filter(pk=theirs.pk).update(id=mine.pk)  # the same pk elsewhere
    selected = list(WebhookEvent.objects.using("tenant").filter(status="failed"))
    assert [event.pk for event in selected] == [mine.pk]
    assert services.dismiss_events(events=selected) == 1
    assert WebhookEvent.objects.using("tenant").get().status == "ignored"
    assert WebhookEvent.objects.using("default").get().status == "failed"


def test_plugipay_replay_reaches_the_event_the_doctor_names(tenancy, capsys):
    row = _failed_long_ago("t", 2)
    call_command("plugipay_replay", row.event_id)
    assert "1 applied, 0 still failing" in capsys.readouterr().out
    assert services.event_health().failed == 0
    assert WebhookEvent.objects.using("tenant").get().status == "processed"


def test_plugipay_replay_dismisses_a_tenants_event(tenancy, capsys):
    theirs = _failed_long_ago("t", 2)
    mine = _failed_long_ago("default", 3)
    with pytest.raises(CommandError, match="--dismiss takes the ids"):
        call_command("plugipay_replay", "--dismiss")
    with pytest.raises(CommandError, match="Unknown event ids: evt_nope"):
        call_command("plugipay_replay", "--dismiss", theirs.event_id, "evt_nope")
    call_command("plugipay_replay", "--dismiss", theirs.event_id)
    assert "1 dismissed." in capsys.readouterr().out
    assert WebhookEvent.objects.using("tenant").get(pk=theirs.pk).status == "ignored"
    assert WebhookEvent.objects.using("default").get(pk=mine.pk).status == "failed"
    call_command("plugipay_replay", "--dismiss", theirs.event_id)  # no longer failed
    assert "0 dismissed; 1 not failed, left as they are." in capsys.readouterr().out
    assert services.event_health().failed == 1


def test_plugipay_replay_for_one_account_leaves_the_others(tenancy, capsys):
    theirs = _failed_long_ago("t", 2)
    mine = _failed_long_ago("default", 3)
    with pytest.raises(CommandError, match="Unknown event ids"):
        call_command("plugipay_replay", "--account", "t", mine.event_id)
    with pytest.raises(CommandError, match="--account"):
        call_command("plugipay_replay", "--account", "nope")
    call_command("plugipay_replay", "--account", "t")
    assert "1 applied" in capsys.readouterr().out
    assert WebhookEvent.objects.using("tenant").get(pk=theirs.pk).status == "processed"
    assert WebhookEvent.objects.using("default").get(pk=mine.pk).status == "failed"


def test_a_tenants_requeued_event_is_announced_after_its_transaction_commits(settings, monkeypatch):
    settings.DATABASE_ROUTERS = ["django_plugipay.routers.AccountRouter"]
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        **TWO,
        "WEBHOOK_PROCESSING": "celery",
        "ACCOUNT_DATABASE": TENANTS,
    }
    sent = []
    monkeypatch.setattr(_queue, "mode", lambda: "celery")
    monkeypatch.setattr(
        _queue,
        "_send",
        lambda name, args, countdown=0: sent.append((name, connections["tenant"].in_atomic_block)),
    )
    parsed = parse_event(completed(7))
    with accounts.acting_for("t"):
        service.record_event(parsed, source=EventSource.RECONCILE)
        WebhookEvent.objects.update(status="failed", last_error="boom")
        sent.clear()
        handed, _already, _failed = service.queue_page([parsed], source=EventSource.RECONCILE)
        assert [h.id for h in handed] == [parsed.id]
    # (task, was the tenant's transaction still open when the message went out?)
    assert sent == [("django_plugipay.process_pending_events", False)]


def test_plugipay_replay_exits_non_zero_while_an_event_still_fails(tenancy, capsys, monkeypatch):
    _failed_long_ago("t", 2)

    def still_broken(*, event):
        raise RuntimeError("the receiver is still broken")

    monkeypatch.setattr(service, "apply_event", still_broken)
    with pytest.raises(CommandError, match="1 events still fail"):
        call_command("plugipay_replay")
    assert "0 applied, 1 still failing" in capsys.readouterr().out
