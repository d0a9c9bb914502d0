"""A tenant database that is away (or not migrated yet) does not stop the accounts whose rows
live elsewhere ("One account's failure (its Plugipay key refused, its database away) is logged
with the account's alias and does not stop the others"), and its own accounts pick up once it
is back."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connections, transaction
from django.urls import reverse

from django_plugipay import accounts
from django_plugipay.models import Account, Payment
from django_plugipay.testing import signed_webhook
from tests.test_accounts_background import completed

pytestmark = pytest.mark.django_db(databases=["default", "tenant"], transaction=True)


def _tenant_database_away(monkeypatch):
    def down(*args, **kwargs):
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(connections["tenant"], "cursor", down)
    accounts.forget(tables=False)  # a worker (re)started during the outage


@pytest.mark.parametrize("secret", ["whsec_one", "whsec_u"])  # default account, account u
def test_a_webhook_of_an_account_in_the_default_database_is_applied_while_a_tenant_db_is_away(
    tenancy, client, monkeypatch, secret
):
    _tenant_database_away(monkeypatch)
    body, headers = signed_webhook(completed(1), secret)
    response = client.post(
        reverse("plugipay:webhook"), body, content_type="application/json", headers=headers
    )
    assert response.status_code == 200, response.content
    assert Payment.objects.using("default").filter(plugipay_id="pay_1").exists()


def test_reconciling_every_account_goes_on_past_a_tenant_database_that_is_away(
    tenancy, monkeypatch
):
    from django_plugipay import services, tasks

    ran = []
    monkeypatch.setattr(
        services, "reconcile", lambda **kwargs: ran.append(accounts.current().alias) or {}
    )
    _tenant_database_away(monkeypatch)
    tasks.WORK["django_plugipay.reconcile"].function()
    assert {"default", "u"} <= set(ran)


def test_the_tenant_s_own_work_picks_up_once_its_database_is_back(tenancy, client, monkeypatch):
    from django_plugipay.models import Account

    Account.objects.using("tenant").all().delete()  # as in a database not migrated yet
    _tenant_database_away(monkeypatch)
    accounts.every()  # the account rows read: the tenant's copy is missed
    monkeypatch.undo()  # the database is back
    body, headers = signed_webhook(completed(2), "whsec_t")
    response = client.post(
        reverse("plugipay:webhook"), body, content_type="application/json", headers=headers
    )
    assert response.status_code == 200, response.content
    assert Payment.objects.using("tenant").filter(plugipay_id="pay_2").exists()


def test_a_copy_rolled_back_with_the_caller_s_transaction_is_made_again(tenancy):
    accounts.every()
    Account.objects.using("tenant").all().delete()  # as a missed copy leaves it
    accounts._cache["uncopied"] = {"tenant"}
    with (
        pytest.raises(RuntimeError),
        transaction.atomic(using="tenant"),
        accounts.acting_for("t"),  # copies into "tenant", inside the block
    ):
        raise RuntimeError("the caller's work fails: its transaction rolls back")
    # the copy went with the rollback: it is still owed, and made again
    with accounts.acting_for("t"):
        pass
    assert Account.objects.using("tenant").filter(alias="t").exists()


def test_a_lost_tenant_connection_is_closed_not_the_default_one(tenancy, monkeypatch):
    accounts.every()
    accounts._cache["uncopied"] = {"tenant"}
    closed = []
    for alias in ("default", "tenant"):
        monkeypatch.setattr(connections[alias], "close", lambda alias=alias: closed.append(alias))

    def lost(database, rows):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(accounts, "_copy_into", lost)
    with accounts.acting_for("t"):
        pass
    assert closed == ["tenant"]


def test_a_copy_failing_inside_the_caller_s_block_leaves_its_transaction_usable(
    tenancy, monkeypatch
):
    """On PostgreSQL a failed statement aborts the whole transaction: the swallowed copy
    error must not leave the caller's block on the tenant database unusable."""
    accounts.every()
    accounts._cache["uncopied"] = {"tenant"}
    real = accounts._copy_into

    def failing(database, rows):
        real(database, rows)
        Account.objects.db_manager(database).filter(pk=rows[0].pk).update(
            alias=rows[1].alias  # a unique alias taken: IntegrityError, as any failed copy
        )

    monkeypatch.setattr(accounts, "_copy_into", failing)
    with transaction.atomic(using="tenant"):
        with accounts.acting_for("t"):
            pass
        assert Account.objects.using("tenant").count() >= 1  # the caller's next query
