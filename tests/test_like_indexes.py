"""On PostgreSQL the app's text columns keep no ``…_like`` index (migration 0013): nothing
queries them with ``LIKE 'prefix%'``, and each cost every write one more index entry."""

import importlib

import pytest
from django.apps import apps
from django.db import connection

pytestmark = [
    pytest.mark.skipif("connection.vendor != 'postgresql'"),
    pytest.mark.django_db,
]

migration = importlib.import_module("django_plugipay.migrations.0013_drop_like_indexes")


def tables() -> list[str]:
    return [model._meta.db_table for model in apps.get_app_config("django_plugipay").get_models()]


def pattern_indexes() -> list[str]:
    """Read from ``pg_indexes``, apart from the migration's own query."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = ANY(%s) "
            "AND indexdef LIKE '%%_pattern_ops%%' ORDER BY indexname",
            [tables()],
        )
        return [name for (name,) in cursor.fetchall()]


def test_the_migrated_schema_has_no_like_index():
    assert pattern_indexes() == []
    with connection.cursor() as cursor:  # the unique and plain indexes beside them stay
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'django_plugipay_webhookevent'"
        )
        names = {name for (name,) in cursor.fetchall()}
    assert "django_plugipay_webhookevent_event_id_key" in names
    assert any(name.startswith("django_plugipay_webhookevent_status_") for name in names)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("atomic", [False, True])
def test_the_migration_drops_what_django_made_and_leaves_a_projects_own(atomic):
    """Outside a transaction (as ``migrate`` runs it) each index is dropped ``CONCURRENTLY``;
    inside one, plainly. An index of the project's, even one named ``…_like``, stays."""
    own = ["shop_payment_prefix", "shop_payment_reference_like"]
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE INDEX django_plugipay_payment_status_0_like "
            "ON django_plugipay_payment (status varchar_pattern_ops)"
        )
        for name in own:  # a project's own, for its prefix searches: not the app's to drop
            cursor.execute(
                f"CREATE INDEX {name} ON django_plugipay_payment (plugipay_id varchar_pattern_ops)"
            )
    try:
        assert pattern_indexes() == ["django_plugipay_payment_status_0_like", *own]
        with connection.schema_editor(atomic=atomic) as editor:
            statements = []
            editor.execute = lambda sql, params=(), _run=editor.execute: (
                statements.append(sql) or _run(sql, params)
            )
            migration.drop_like_indexes(apps, editor)
        assert pattern_indexes() == own
        assert statements == [
            "DROP INDEX "
            + ("" if atomic else "CONCURRENTLY ")
            + "IF EXISTS django_plugipay_payment_status_0_like"
        ]
    finally:
        with connection.cursor() as cursor:
            for name in own:
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
