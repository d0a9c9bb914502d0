"""Drop the ``…_like`` indexes PostgreSQL got for this app's indexed and unique text columns.

Django creates one beside the index of every ``db_index=True`` or ``unique=True`` text column on
PostgreSQL (``varchar_pattern_ops``), for ``LIKE 'prefix%'`` lookups. Nothing here makes one:
the admin's searches are ``icontains``, which no btree serves. Each cost every insert, and every
update that changes an indexed column (a status change, a webhook event marked processed), one
more index entry to write.

Only ``DROP INDEX``, so nothing is rebuilt; outside a transaction, one index at a time and
``CONCURRENTLY``, so no table is locked against reads or writes while it waits for a long query
to end. Migrating back leaves them dropped (no query needs them).
"""

from django.db import migrations

#: the ``…_like`` indexes Django made on ``tables``: named after their table with its suffix, not
#: unique, with a pattern operator class
LIKE_INDEXES = """
SELECT x.indexrelid::regclass::text
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
WHERE x.indrelid IN (SELECT to_regclass(name) FROM unnest(%s::text[]) AS name)
  AND NOT x.indisunique
  AND starts_with(i.relname, t.relname || '_')
  AND i.relname LIKE '%%\\_like'
  AND EXISTS (
    SELECT 1 FROM pg_opclass o
    WHERE o.oid = ANY(x.indclass::oid[])
      AND o.opcname IN ('varchar_pattern_ops', 'text_pattern_ops')
  )
"""


def like_indexes(connection, tables: list[str]) -> list[str]:
    """The names (qualified as the search path needs) of ``tables``' ``…_like`` indexes."""
    with connection.cursor() as cursor:
        cursor.execute(LIKE_INDEXES, [tables])
        return [name for (name,) in cursor.fetchall()]


def drop_like_indexes(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":  # only PostgreSQL makes them
        return
    tables = [model._meta.db_table for model in apps.get_app_config("django_plugipay").get_models()]
    # CONCURRENTLY cannot run inside a transaction (a caller's atomic block, a test's)
    how = "" if connection.in_atomic_block else "CONCURRENTLY "
    for name in like_indexes(connection, tables):
        schema_editor.execute(f"DROP INDEX {how}IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("django_plugipay", "0012_payment_invoice_ref"),
    ]

    operations = [
        migrations.RunPython(drop_like_indexes, migrations.RunPython.noop),
    ]
