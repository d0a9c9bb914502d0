"""Background work for every account (DESIGN §6 rule 14): the sweeper, due deliveries,
reconciliation and ``plugipay_sync`` cover each account the project serves, in its own
database and with its own credentials, without a task scheduled per account; queued
acceptance applies each account's events into its own rows."""

from __future__ import annotations

import datetime as dt
import logging
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from django_plugipay import accounts, services
from django_plugipay.models import (
    Account,
    CheckoutSession,
    Customer,
    EventStatus,
    Payment,
    SyncCursor,
    WebhookEvent,
)
from django_plugipay.services import sweeper
from django_plugipay.services.events import record_event
from django_plugipay.testing import build_event
from django_plugipay.webhooks import parse_event

TWO = {
    "WEBHOOK_SECRETS": ["whsec_one"],
    "ACCOUNTS": {"t": {"API_KEY": "sk_test_t", "WEBHOOK_SECRETS": ["whsec_t"]}},
}


def completed(n: int, account_id: str | None = None) -> dict:
    obj = {
        "id": f"cs_{n}",
        "status": "completed",
        "amount": 5000 + n,
        "currency": "IDR",
        "paymentId": f"pay_{n}",
        "paymentMethod": "card",
        "mode": "test",
        "metadata": {"order": "A-1"},  # the same order reference in both accounts
    }
    event = build_event("checkout_session.completed", obj, event_id=f"evt_{n}")
    if account_id:
        event["accountId"] = account_id
    return event


def stranded(n: int, account: str) -> WebhookEvent:
    """An event of ``account`` recorded behind a 200 whose task was never sent."""
    with accounts.acting_for(account):
        row, _created = record_event(parse_event(completed(n)), source="webhook")
        WebhookEvent.objects.filter(pk=row.pk).update(queued_at=None)
    return row


@pytest.mark.django_db(transaction=True)
def test_one_sweep_takes_over_every_accounts_stranded_events(settings, signal_log):
    settings.PLUGIPAY = {**settings.PLUGIPAY, **TWO}
    stranded(1, "default")
    stranded(2, "t")
    assert services.sweep()["events"] == 2
    payments = dict(Payment.objects.values_list("plugipay_id", "account__alias"))
    assert payments == {"pay_1": "default", "pay_2": "t"}
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {EventStatus.PROCESSED}
    assert signal_log.names().count("payment_succeeded") == 2
    assert services.sweep()["events"] == 0


@pytest.mark.django_db(transaction=True)
def test_one_accounts_failing_step_is_logged_and_the_others_are_swept(
    settings, monkeypatch, caplog
):
    settings.PLUGIPAY = {**settings.PLUGIPAY, **TWO}
    stranded(1, "default")
    stranded(2, "t")
    real = sweeper.STEPS[0][1]

    def events():
        if accounts.current().alias == "default":
            raise RuntimeError("the default account's database is away")
        return real()

    monkeypatch.setattr(sweeper, "STEPS", [("events", events), *sweeper.STEPS[1:]])
    with caplog.at_level(logging.WARNING):
        assert services.sweep()["events"] == 1
    assert "step events failed for account default" in caplog.text
    statuses = dict(WebhookEvent.objects.values_list("event_id", "status"))
    assert statuses == {"evt_1": EventStatus.RECEIVED, "evt_2": EventStatus.PROCESSED}


def test_a_single_account_projects_sweep_costs_what_it_did(db, django_assert_num_queries, settings):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.PLUGIPAY = {**settings.PLUGIPAY, "SYNC_RECEIPTS": True}  # every step reads

    accounts.default_account_pk()  # what the process read once
    with CaptureQueriesContext(connection) as steps:  # the steps alone, as before accounts
        for _name, step in sweeper.STEPS:
            step()
    assert len(steps) >= len(sweeper.STEPS)  # one statement at least per step
    with django_assert_num_queries(len(steps)):
        assert services.sweep() == {name: 0 for name, _step in sweeper.STEPS}


def tenant_database(alias):
    return "tenant" if alias == "t" else None


@pytest.mark.django_db(databases=["default", "tenant"], transaction=True)
def test_the_sweep_reaches_a_tenants_database(settings, signal_log):
    settings.DATABASE_ROUTERS = ["django_plugipay.routers.AccountRouter"]
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        **TWO,
        "ACCOUNT_DATABASE": "tests.test_accounts_background.tenant_database",
    }
    stranded(1, "default")
    stranded(2, "t")
    assert WebhookEvent.objects.using("tenant").get().event_id == "evt_2"
    assert services.sweep()["events"] == 2
    assert list(Payment.objects.using("tenant").values_list("plugipay_id", flat=True)) == ["pay_2"]
    assert list(Payment.objects.using("default").values_list("plugipay_id", flat=True)) == ["pay_1"]
    assert WebhookEvent.objects.using("tenant").get().status == EventStatus.PROCESSED
    assert signal_log.names().count("payment_succeeded") == 2


@pytest.mark.django_db(databases=["default", "tenant"], transaction=True)
def test_due_deliveries_of_every_account_run_without_naming_one(settings):
    from django_plugipay import durable_receiver, signals

    settings.DATABASE_ROUTERS = ["django_plugipay.routers.AccountRouter"]
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        **TWO,
        "ACCOUNT_DATABASE": "tests.test_accounts_background.tenant_database",
    }
    ran = []
    failing = [True]

    def ship(instance, **kwargs):
        if failing[0]:
            raise RuntimeError("the warehouse is down")
        ran.append((instance.plugipay_id, accounts.current().alias))

    durable_receiver(signals.payment_succeeded, name="tests.background.ship")(ship)
    try:
        stranded(1, "default")
        stranded(2, "t")
        services.sweep()  # applied; the first attempts fail
        failing[0] = False
        assert services.run_deliveries(force=True) == 2
    finally:
        from django_plugipay.services import deliveries

        deliveries.disconnect(signals.payment_succeeded, name="tests.background.ship")
    assert sorted(ran) == [("pay_1", "default"), ("pay_2", "t")]


def test_reconcile_task_and_plugipay_sync_cover_every_account(two_accounts):
    from django_plugipay import tasks

    sandbox, _secret = two_accounts
    sandbox.hold()  # nothing delivered: reconciliation brings it
    own = services.create_customer(email="same@shop.test")
    theirs = services.create_customer(email="same@shop.test", account="merchant")
    Customer.objects.all().delete()
    result = tasks.WORK["django_plugipay.reconcile"].function()
    assert set(result) == {"default", "merchant"}
    assert dict(Customer.objects.values_list("plugipay_id", "account__alias")) == {
        own.plugipay_id: "default",
        theirs.plugipay_id: "merchant",
    }
    assert set(SyncCursor.objects.values_list("account__alias", flat=True)) == {
        "default",
        "merchant",
    }
    Customer.objects.all().delete()
    SyncCursor.objects.all().delete()
    WebhookEvent.objects.all().delete()
    out = StringIO()
    call_command("plugipay_sync", stdout=out)
    assert "[default] Events:" in out.getvalue() and "[merchant] Events:" in out.getvalue()
    assert Customer.objects.count() == 2


def test_one_accounts_failing_reconciliation_does_not_stop_the_others(
    two_accounts, monkeypatch, caplog
):
    from django_plugipay import tasks
    from django_plugipay.exceptions import PlugipayError

    sandbox, _secret = two_accounts
    sandbox.hold()
    services.create_customer(email="same@shop.test", account="merchant")
    Customer.objects.all().delete()
    real = services.reconcile

    def reconcile(**kwargs):
        if accounts.current().alias == "default":
            raise PlugipayError("Plugipay answered 503")
        return real(**kwargs)

    monkeypatch.setattr(services, "reconcile", reconcile)
    with caplog.at_level(logging.WARNING):
        result = tasks.WORK["django_plugipay.reconcile"].function()
    assert set(result) == {"merchant"}
    assert "reconcile failed for account default" in caplog.text
    assert Customer.objects.get().account.alias == "merchant"


# -- queued acceptance with several accounts --------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_queued_events_of_two_accounts_are_applied_into_each_accounts_rows(
    settings, client, signal_log, monkeypatch
):
    from django.urls import reverse

    from django_plugipay.services import _queue
    from django_plugipay.testing import signed_webhook

    settings.PLUGIPAY = {**settings.PLUGIPAY, **TWO, "WEBHOOK_PROCESSING": "celery"}
    monkeypatch.setattr(sweeper, "_last_sweep", float("inf"))
    sent = []
    # no worker: the batch messages are counted, the batch is run here afterwards
    monkeypatch.setattr(_queue, "_dispatch", lambda name, args, *rest: sent.append(name))
    for n, account_id, secret in ((1, None, "whsec_one"), (2, "acc_t", "whsec_t")):
        for _attempt in range(2):  # Plugipay's redelivery: recorded once
            body, headers = signed_webhook(completed(n, account_id), secret)
            response = client.post(
                reverse("plugipay:webhook"), body, content_type="application/json", headers=headers
            )
            assert response.status_code == 200, response.content
    events = dict(WebhookEvent.objects.values_list("event_id", "account__alias"))
    assert events == {"evt_1": "default", "evt_2": "t"}
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {EventStatus.RECEIVED}
    assert set(sent) == {"django_plugipay.process_pending_events"}

    assert services.apply_queued_events() == 2
    payments = dict(Payment.objects.values_list("plugipay_id", "account__alias"))
    assert payments == {"pay_1": "default", "pay_2": "t"}
    sessions = CheckoutSession.objects.filter(metadata__order="A-1")
    assert sorted(sessions.values_list("account__alias", flat=True)) == ["default", "t"]
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {EventStatus.PROCESSED}
    assert sorted(signal_log.names()).count("payment_succeeded") == 2
    assert Account.objects.get(alias="t").plugipay_id == "acc_t"  # learned from its event
    assert services.apply_queued_events() == 0


def test_stranded_refunds_are_submitted_with_their_accounts_credentials(two_accounts):
    from django_plugipay.models import Refund, RefundStatus
    from django_plugipay.services.refunds import NOT_SUBMITTED
    from tests.test_accounts import remote, shop

    sandbox, _secret = two_accounts
    _customer, session = shop("merchant")
    sandbox.pay(session)
    payment = Payment.objects.get(checkout_session=session)
    refund = services.refund_payment(payment=payment, amount=10_000, reason="duplicate")
    sandbox.flush()
    refund.refresh_from_db()
    sent = refund.plugipay_id
    Refund.objects.filter(pk=refund.pk).update(
        plugipay_id=None,
        status=RefundStatus.REQUESTED,
        failure_code=NOT_SUBMITTED,
        created_at=timezone.now() - dt.timedelta(hours=1),
    )
    assert services.sweep()["refunds"] == 1
    refund.refresh_from_db()
    assert refund.plugipay_id == sent
    assert remote(sandbox, "refunds", sent)["accountId"] == "acc_merchant_iso"
    assert len(sandbox.state()["refunds"]) == 1


@pytest.mark.django_db(databases=["default", "tenant"], transaction=True)
def test_the_batch_task_applies_the_queued_events_of_a_tenants_database(
    settings, client, signal_log, monkeypatch
):
    from django.urls import reverse

    from django_plugipay.services import _queue
    from django_plugipay.testing import signed_webhook

    settings.DATABASE_ROUTERS = ["django_plugipay.routers.AccountRouter"]
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        **TWO,
        "WEBHOOK_PROCESSING": "celery",
        "ACCOUNT_DATABASE": "tests.test_accounts_background.tenant_database",
    }
    monkeypatch.setattr(sweeper, "_last_sweep", float("inf"))
    monkeypatch.setattr(_queue, "_dispatch", lambda *args: None)  # no worker: run here after
    for n, account_id, secret in ((1, None, "whsec_one"), (2, "acc_t", "whsec_t")):
        body, headers = signed_webhook(completed(n, account_id), secret)
        response = client.post(
            reverse("plugipay:webhook"), body, content_type="application/json", headers=headers
        )
        assert response.status_code == 200, response.content
    assert WebhookEvent.objects.using("tenant").get().status == EventStatus.RECEIVED
    assert services.apply_queued_events() == 2
    assert list(Payment.objects.using("tenant").values_list("plugipay_id", flat=True)) == ["pay_2"]
    assert list(Payment.objects.using("default").values_list("plugipay_id", flat=True)) == ["pay_1"]
    assert WebhookEvent.objects.using("tenant").get().status == EventStatus.PROCESSED
    assert signal_log.names().count("payment_succeeded") == 2


@pytest.mark.django_db(databases=["default", "tenant"], transaction=True)
def test_a_receiver_acting_for_a_tenant_inside_a_page_records_its_delivery_there_at_once(
    settings, durable
):
    """A page gathers the deliveries recorded in its own transaction; a receiver acting for an
    account with a database of its own records in that database, at once, as anywhere."""
    from django.db import transaction

    from django_plugipay import signals
    from django_plugipay.models import Delivery
    from django_plugipay.services import deliveries

    settings.DATABASE_ROUTERS = ["django_plugipay.routers.AccountRouter"]
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        **TWO,
        "ACCOUNT_DATABASE": "tests.test_accounts_background.tenant_database",
    }
    stranded(2, "t")
    services.sweep()
    theirs = Payment.objects.using("tenant").get()
    ran = []
    durable(signals.payment_succeeded, lambda instance, **kwargs: ran.append(instance.pk))
    with transaction.atomic(), deliveries.recorded_together():
        with accounts.acting_for("t"):
            signals.payment_succeeded.send(sender=Payment, instance=theirs, event=None)
        assert Delivery.objects.using("tenant").count() == 1
    assert ran == [theirs.pk]
    assert not Delivery.objects.using("default").exists()


@pytest.mark.django_db(databases=["default", "tenant"], transaction=True)
def test_the_task_a_commit_queues_runs_a_tenants_deliveries_in_its_database(settings, monkeypatch):
    """In a worker nothing acts for an account: the message names the account that recorded
    the deliveries, so their ids are looked up in its database, not the default one."""
    from django_plugipay import durable_receiver, signals, tasks
    from django_plugipay.models import Delivery
    from django_plugipay.services import _queue, deliveries

    settings.DATABASE_ROUTERS = ["django_plugipay.routers.AccountRouter"]
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        **TWO,
        "TASKS": "celery",
        "ACCOUNT_DATABASE": "tests.test_accounts_background.tenant_database",
    }
    sent, ran = [], []
    monkeypatch.setattr(_queue, "_send", lambda name, args, countdown=0: sent.append((name, args)))
    durable_receiver(signals.payment_succeeded, name="tests.background.ship")(
        lambda instance, **kwargs: ran.append(instance.plugipay_id)
    )
    try:
        stranded(2, "t")
        services.apply_queued_events()  # applied in the tenant's database: delivery queued
        queued = [args for name, args in sent if name == deliveries.TASK]
        assert queued and ran == []
        for args in queued:  # as a worker runs them: no account acting
            tasks.WORK[deliveries.TASK].function(*args)
    finally:
        deliveries.disconnect(signals.payment_succeeded, name="tests.background.ship")
    assert ran == ["pay_2"]
    assert Delivery.objects.using("tenant").get().status == "succeeded"
