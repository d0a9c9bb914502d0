"""Work done for a tenant whose rows live in its own database (``ACCOUNT_DATABASE``): tasks
that find its rows, commit callbacks that act for it, checks that catch a misrouted setup."""

from __future__ import annotations

import pytest

from django_plugipay import accounts, services
from django_plugipay.models import Payment, Refund
from django_plugipay.routers import AccountRouter
from django_plugipay.services import _queue
from tests.conftest import TENANTS
from tests.test_accounts_background import TWO, stranded

pytestmark = pytest.mark.django_db(databases=["default", "tenant"], transaction=True)


def test_the_create_refund_task_finds_a_tenants_refund_in_its_database(
    tenancy, settings, monkeypatch
):
    """The message a refund's commit sends carries only the refund's pk: a worker (acting for
    no account) looks for it in the default database and never submits it."""
    from django_plugipay import tasks

    stranded(2, "t")
    services.sweep()  # applied in the tenant's database: pay_2 succeeded there
    theirs = Payment.objects.using("tenant").get()
    settings.PLUGIPAY = {**settings.PLUGIPAY, "TASKS": "celery"}
    sent = []
    monkeypatch.setattr(_queue, "_send", lambda name, args, countdown=0: sent.append((name, args)))
    refund = services.refund_payment(payment=theirs, amount=100, reason="duplicate")
    assert Refund.objects.using("tenant").filter(pk=refund.pk).exists()
    [args] = [args for name, args in sent if name == "django_plugipay.create_refund"]
    submitted = []
    monkeypatch.setattr(
        services,
        "submit_refund",
        lambda *, refund: submitted.append((refund.pk, accounts.current().alias)) or refund,
    )
    tasks.WORK["django_plugipay.create_refund"].function(*args)  # as a worker runs it
    assert submitted == [(refund.pk, "t")]


def test_the_account_router_behind_a_router_that_answers_first_is_reported(settings):
    """A project router listed before AccountRouter that answers every write ("default", as a
    primary/replica router does) takes every tenant row to the default database."""
    from django_plugipay.checks import check_accounts
    from django_plugipay.models import WebhookEvent

    settings.DATABASE_ROUTERS = [
        "tests.routers.LaggingReplica",
        "django_plugipay.routers.AccountRouter",
    ]
    settings.PLUGIPAY = {**settings.PLUGIPAY, **TWO, "ACCOUNT_DATABASE": TENANTS}
    stranded(2, "t")
    assert WebhookEvent.objects.using("default").filter(event_id="evt_2").exists()  # misrouted
    assert not WebhookEvent.objects.using("tenant").exists()
    assert [m.id for m in check_accounts()] == ["django_plugipay.W044"]


def unknown_database(alias):
    return "tenant_t" if alias == "t" else None  # not in DATABASES


def test_a_hook_naming_a_database_the_project_does_not_have_is_reported(settings):
    from django_plugipay.checks import check_accounts

    settings.DATABASE_ROUTERS = ["django_plugipay.routers.AccountRouter"]
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        **TWO,
        "ACCOUNT_DATABASE": "tests.test_tenant_work.unknown_database",
    }
    [problem] = check_accounts()
    assert problem.id == "django_plugipay.E078" and "t → 'tenant_t'" in problem.msg


def test_the_scheduled_plan_sync_covers_every_account(tenancy, monkeypatch):
    """``django_plugipay.sync_plans`` (scheduled "next to reconcile") takes no account and
    syncs the default account's catalog alone: a tenant's plans are never mirrored."""
    from django_plugipay import tasks

    synced = []
    monkeypatch.setattr(
        services, "sync_plans", lambda **kwargs: synced.append(accounts.current().alias) or []
    )
    tasks.WORK["django_plugipay.sync_plans"].function()
    assert sorted(synced) == ["default", "t", "u"]


def test_the_doctor_reports_a_tenants_payout_left_without_an_answer(tenancy):
    """``left_unanswered()`` reads the default database alone: a tenant's payout sent an hour
    ago and never answered is reported as "every payout sent is known to Plugipay"."""
    import datetime as dt

    from django.utils import timezone

    from django_plugipay.management.commands.plugipay_doctor import Doctor
    from django_plugipay.models import Payout, PayoutStatus

    with accounts.acting_for("t"):
        Payout.objects.create(
            amount=50_000,
            currency="IDR",
            status=PayoutStatus.PENDING,
            idempotency_key="payout_lost",
            submitted_at=timezone.now() - dt.timedelta(hours=1),
        )
    assert Payout.objects.using("tenant").filter(plugipay_id=None).count() == 1
    line = Doctor(url=None, wait=0).unanswered_payouts()
    assert line.ok is False, line.detail


def test_a_tenants_subscriptions_are_not_synced_from_plugipay_inside_its_transaction(
    tenancy, monkeypatch
):
    """``billing.subscriptions`` makes no HTTP call inside a transaction: it asks the default
    database's connection whether one is open, while a tenant's reads and the sync's writes
    and row locks are on the tenant's."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from django_plugipay import billing
    from django_plugipay.services import billing as billing_services
    from tests.factories import CustomerFactory, SubscriptionFactory

    user = get_user_model().objects.create(username="ana")
    same = get_user_model().objects.using("tenant").create(pk=user.pk, username="ana")
    synced = []
    monkeypatch.setattr(
        billing_services, "sync_subscription", lambda *, subscription: synced.append(subscription)
    )
    with accounts.acting_for("t"):
        SubscriptionFactory(customer=CustomerFactory(user=same), status="past_due")
        with transaction.atomic(using="tenant"):
            assert len(billing.subscriptions(user)) == 1
    assert synced == []  # answered from the mirror, as in the default database


def test_a_refund_whose_task_could_not_be_sent_is_marked_in_its_tenants_database(
    tenancy, settings, monkeypatch
):
    """The commit callbacks run when the tenant's transaction commits, which may be after the
    service's ``acting_for`` ended (the caller's own ``atomic(using=...)``, as the docs invite):
    ``_note_not_submitted`` then writes to the default database."""
    from django.db import transaction

    from django_plugipay.models.querysets import NOT_SUBMITTED

    stranded(2, "t")
    services.sweep()
    theirs = Payment.objects.using("tenant").get()
    settings.PLUGIPAY = {**settings.PLUGIPAY, "TASKS": "celery"}

    def broker_down(name, args, countdown=0):
        raise ConnectionError("broker down")

    monkeypatch.setattr(_queue, "_send", broker_down)
    with transaction.atomic(using="tenant"):
        refund = services.refund_payment(payment=theirs, amount=100, reason="duplicate")
    refund = Refund.objects.using("tenant").get(pk=refund.pk)
    assert refund.failure_code == NOT_SUBMITTED, "not marked: the sweeper waits STRANDED_AFTER"


def _hook_reading_the_database(alias):
    from django.db import OperationalError

    raise OperationalError("no such table: shop_tenant")  # a fresh database, before migrate


def test_a_hook_that_reads_tables_not_migrated_yet_does_not_stop_migrate(settings):
    """check_accounts runs before migrate: a hook that fails there is a warning, not an error
    that would keep migrate from making the hook's table, and the accounts are still checked."""
    from django_plugipay.checks import check_accounts

    settings.DATABASE_ROUTERS = ["django_plugipay.routers.AccountRouter"]
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "ACCOUNTS": {"t": {"API_KEY": "sk_test_t"}},  # no WEBHOOK_SECRETS: W070 still said
        "ACCOUNT_DATABASE": "tests.test_tenant_work._hook_reading_the_database",
    }
    found = check_accounts()
    assert not [problem for problem in found if problem.is_serious()]
    assert {problem.id for problem in found} == {"django_plugipay.W046", "django_plugipay.W070"}


class TenantRouter(AccountRouter):
    """A project's own router built on the account router."""


def test_a_router_built_on_the_account_router_counts_as_it(settings):
    from django_plugipay.checks import check_accounts

    settings.DATABASE_ROUTERS = [
        "tests.test_tenant_work.TenantRouter",
        "tests.routers.LaggingReplica",
    ]
    settings.PLUGIPAY = {**settings.PLUGIPAY, **TWO, "ACCOUNT_DATABASE": TENANTS}
    assert check_accounts() == []
