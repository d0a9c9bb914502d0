"""The write-transaction helper: the SQLite lock at BEGIN, whole-transaction retries."""

from __future__ import annotations

import datetime as dt
import threading
import warnings

import pytest
from django.apps import apps
from django.db import InterfaceError, OperationalError, connection, transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from django_plugipay import db
from django_plugipay.models import SyncCursor


@pytest.fixture
def fast_backoff(monkeypatch):
    monkeypatch.setattr(db, "BACKOFF_BASE", 0.0)


class Locked:
    """A function failing with ``error`` the first ``times`` calls, then counting a row."""

    def __init__(self, times, error="database is locked", name="attempt"):
        self.times, self.error, self.name = times, error, name
        self.calls, self.committed = 0, []

    def __call__(self):
        self.calls += 1
        transaction.on_commit(lambda: self.committed.append(self.calls))
        SyncCursor.objects.create(name=f"{self.name}-{self.calls}")
        if self.calls <= self.times:
            raise OperationalError(self.error)
        return self.calls


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "error", ["database is locked", "database table is locked", "database schema is locked"]
)
def test_transient_errors_rerun_the_whole_transaction(error, fast_backoff):
    work = Locked(2, error)
    assert db.run_atomic(work) == 3
    # the failed attempts rolled back: their rows and on_commit callbacks are gone
    assert list(SyncCursor.objects.values_list("name", flat=True)) == ["attempt-3"]
    assert work.committed == [3]


@pytest.mark.django_db(transaction=True)
def test_retries_are_bounded(fast_backoff):
    work = Locked(100)
    with pytest.raises(OperationalError):
        db.run_atomic(work)
    assert work.calls == db.MAX_ATTEMPTS
    assert not SyncCursor.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_other_errors_are_not_retried(fast_backoff):
    work = Locked(1, "no such table: nowhere")
    with pytest.raises(OperationalError):
        db.run_atomic(work)
    assert work.calls == 1


@pytest.mark.django_db(transaction=True)
def test_inside_an_enclosing_transaction_nothing_is_retried(fast_backoff):
    work = Locked(1)
    with pytest.raises(OperationalError), transaction.atomic():
        db.run_atomic(work)
    assert work.calls == 1


@pytest.mark.django_db(transaction=True)
def test_the_decorator_retries_too(fast_backoff):
    work = Locked(1)
    assert db.write_atomic(work)() == 2
    assert db.write_atomic(savepoint=False)(Locked(1, name="other"))() == 2


@pytest.mark.parametrize(
    ("sqlstate", "transient"),
    [
        ("40001", True),
        ("40P01", True),
        ("55P03", True),
        ("23505", False),
        ("57P01", True),  # pg_terminate_backend / a fast shutdown
        ("57P03", True),  # the server is starting
        ("08006", True),  # connection failure
        ("08001", True),
        ("57014", False),  # query canceled: not a lost connection
    ],
)
def test_postgresql_transient_states(sqlstate, transient):
    class PgError(Exception):
        pass

    cause = PgError("boom")
    cause.sqlstate = sqlstate
    exc = OperationalError("boom")
    exc.__cause__ = cause
    assert db.is_transient(exc) is transient
    assert db.is_transient(ValueError("database is locked")) is False


@pytest.mark.parametrize(
    ("error", "lost"),
    [
        (InterfaceError("connection already closed"), True),
        (OperationalError("the connection is closed"), True),
        (OperationalError("FATAL:  the database system is starting up"), True),
        (OperationalError("server closed the connection unexpectedly"), True),
        (OperationalError("no such table: x"), False),
    ],
)
def test_a_lost_connection_without_a_sqlstate_is_transient(error, lost):
    assert db.is_connection_lost(error) is lost
    assert db.is_transient(error) is lost


@pytest.mark.django_db(transaction=True)
def test_a_lost_connection_is_retried_on_a_fresh_connection(fast_backoff):
    seen = []

    def work():
        seen.append(connection.vendor)
        if len(seen) == 1:
            raise OperationalError("the connection is closed")
        return len(seen)

    assert db.run_atomic(work) == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's BEGIN modes")
def test_sqlite_begins_immediate_and_restores_the_configured_mode():
    statements = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    connection.ensure_connection()
    configured = connection.transaction_mode
    with connection.execute_wrapper(record):
        db.run_atomic(SyncCursor.objects.create, name="a")
        with db.write_atomic():
            SyncCursor.objects.create(name="b")
        with transaction.atomic():
            SyncCursor.objects.create(name="c")
    assert statements.count("BEGIN IMMEDIATE") == 2
    assert connection.transaction_mode == configured
    assert "BEGIN" in statements or configured  # plain atomic() kept Django's own BEGIN


@pytest.mark.django_db(transaction=True)
def test_concurrent_read_then_write_transactions_all_commit():
    """Threads that read then write the same row: none surfaces a lock error."""
    SyncCursor.objects.create(name="counter", last_event_id="0")
    errors = []

    def bump():
        cursor = SyncCursor.objects.select_for_update().get(name="counter")
        cursor.last_event_id = str(int(cursor.last_event_id) + 1)
        cursor.save()

    def worker():
        try:
            for _ in range(5):
                db.run_atomic(bump)
        except Exception as exc:  # collected, asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert SyncCursor.objects.get(name="counter").last_event_id == "20"


@pytest.mark.django_db
def test_save_fields_writes_the_fields_stamps_auto_now_and_leaves_the_rest(
    django_assert_num_queries,
):
    from tests.factories import PaymentFactory

    payment = PaymentFactory(status="pending", amount=5000)
    before = payment.updated_at
    payment.status, payment.amount = "succeeded", 1  # only status is saved
    with django_assert_num_queries(1):
        db.save_fields(payment, ["status", "updated_at"])
    payment.refresh_from_db()
    assert (payment.status, payment.amount) == ("succeeded", 5000)
    assert payment.updated_at > before


@pytest.mark.django_db
def test_save_fields_is_save_while_model_signals_listen():
    from django.db.models.signals import post_save

    from django_plugipay.models import Payment
    from tests.factories import PaymentFactory

    payment = PaymentFactory(status="pending")
    seen = []

    def listen(sender, instance, update_fields=None, **kwargs):
        seen.append(sorted(update_fields or ()))

    post_save.connect(listen, sender=Payment)
    try:
        payment.status = "succeeded"
        db.save_fields(payment, ["status", "updated_at"])
    finally:
        post_save.disconnect(listen, sender=Payment)
    assert seen == [["status", "updated_at"]]


@pytest.mark.django_db
def test_insert_many_splits_what_one_statement_could_not_bind(
    django_assert_num_queries, monkeypatch
):
    from django_plugipay.models import Customer

    fields = len(Customer._meta.concrete_fields)
    monkeypatch.setattr(db, "INSERT_PARAMETERS", 2 * fields)  # two rows a statement
    rows = [Customer(plugipay_id=f"cus_{n}", email=f"{n}@shop.test") for n in range(5)]
    with django_assert_num_queries(3):
        inserted = db.insert_many(rows, "plugipay_id")
    assert sorted(row.plugipay_id for row in inserted) == [f"cus_{n}" for n in range(5)]
    assert all(row.pk for row in inserted)
    again = [Customer(plugipay_id=f"cus_{n}", email="x@shop.test") for n in (4, 5)]
    assert [row.plugipay_id for row in db.insert_many(again, "plugipay_id")] == ["cus_5"]


@pytest.mark.django_db(databases=["default", "tenant"], transaction=True)
def test_a_statement_for_an_account_with_its_own_database_is_retried_there(
    fast_backoff, monkeypatch
):
    """``run_statement`` without ``using`` runs where the acting account's rows are written:
    a lost connection is discarded there (not the default database's), so the retry
    reconnects the connection that failed."""
    discarded, calls = [], []
    monkeypatch.setattr(db, "acting_database", lambda: "tenant")
    monkeypatch.setattr(
        db, "discard_lost_connection", lambda exc, using=None: discarded.append(using)
    )

    def statement():
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("database is locked")
        return "done"

    assert db.run_statement(statement) == "done"
    assert discarded == ["tenant"]


# ── db_value: the database value of a field, without Django's calls where it is the value ──

_FIELDS = [
    field
    for model in apps.get_app_config("django_plugipay").get_models()
    for field in model._meta.concrete_fields
]
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=20),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.dates(),
)


def _comparable(value):
    return (type(value), getattr(value, "obj", value))  # a JSON adapter: what it wraps


def _prepared(prepare, field, value):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a naive datetime, as Django warns
            return _comparable(prepare(field, value))
    except Exception as exc:  # noqa: BLE001 - both must refuse it alike
        return type(exc)


@pytest.mark.django_db
@settings(max_examples=3000, deadline=None)
@given(field=st.sampled_from(_FIELDS), value=_VALUES)
def test_db_value_is_what_django_prepares_for_every_field_of_the_app(field, value):
    """The apply path's shortcut gives each column the value Django's own preparation would
    (on the database the suite runs on: SQLite, then PostgreSQL in CI), or refuses it alike."""
    django_way = _prepared(lambda f, v: f.get_db_prep_save(v, connection), field, value)
    assert _prepared(lambda f, v: db.db_value(f, v, connection), field, value) == django_way


class _NoOffset(dt.tzinfo):
    """A tzinfo that gives no UTC offset: naive to Django, whatever ``tzinfo`` says."""

    def utcoffset(self, moment):
        return None

    def dst(self, moment):
        return None


@pytest.mark.django_db
def test_db_value_takes_a_datetime_whose_tzinfo_gives_no_offset_as_naive(settings):
    from django_plugipay.models import WebhookEvent

    settings.TIME_ZONE = "Asia/Jakarta"
    field = WebhookEvent._meta.get_field("received_at")
    value = dt.datetime(2026, 1, 1, 12, 0, tzinfo=_NoOffset())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a naive datetime, as Django warns
        assert db.db_value(field, value, connection) == field.get_db_prep_save(value, connection)


@pytest.mark.django_db
def test_the_compiled_statements_are_seen_as_any_query_with_their_values():
    """The app's compiled statements pass through Django's cursor: execute wrappers and query
    capture see them, with their values in the captured SQL (the debug log, the toolbar), and
    a text value with quotes, backslashes and placeholders arrives as written."""
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from django_plugipay.context import current_account_pk
    from django_plugipay.models import WebhookEvent

    wrapped: list[str] = []

    def wrapper(execute, sql, params, many, context):
        wrapped.append(sql)
        return execute(sql, params, many, context)

    awkward = "evt_'; DROP TABLE x; --\\ %s %(a)s"
    with CaptureQueriesContext(connection) as captured, connection.execute_wrapper(wrapper):
        pk = db.insert_values(
            WebhookEvent,
            {
                "event_id": awkward,
                "payload": {"q": awkward},
                "received_at": timezone.now(),
                "account": current_account_pk(),
            },
            "event_id",
        )
    assert pk is not None and len(captured) == 1 and len(wrapped) == 1
    assert "DROP TABLE x" in captured[0]["sql"]  # the value, not a placeholder
    row = WebhookEvent.objects.get(pk=pk)
    assert (row.event_id, row.payload) == (awkward, {"q": awkward})
