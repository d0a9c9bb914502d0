"""Migration 0008: existing rows belong to the default account it creates."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("django_plugipay", "0007_webhookevent_queued_at")]
AFTER = [("django_plugipay", "0008_accounts")]


@pytest.mark.django_db(transaction=True)
def test_existing_rows_and_cursors_go_to_the_default_account():
    executor = MigrationExecutor(connection)
    try:
        check(executor)
    finally:  # back to the latest migrations for the tests that follow
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


def check(executor):
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    old.get_model("django_plugipay", "Customer").objects.create(
        plugipay_id="cus_old", email="old@shop.test"
    )
    old.get_model("django_plugipay", "SyncCursor").objects.create(name="events")
    old.get_model("django_plugipay", "WebhookEvent").objects.create(
        event_id="evt_old", type="customer.created", kind="customer.created", payload={}
    )
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    default = new.get_model("django_plugipay", "Account").objects.get(alias="default")
    for name in ("Customer", "SyncCursor", "WebhookEvent"):
        rows = new.get_model("django_plugipay", name).objects.all()
        assert [row.account_id for row in rows] == [default.pk], name
