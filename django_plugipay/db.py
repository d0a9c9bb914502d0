"""SQL helpers: write transactions that survive contention, row locks in the lock order, and the
insert, upsert and claim statements of the apply path.

Every write path of the app runs its transaction through :func:`write_atomic` (as a decorator)
or :func:`run_atomic`. Both behave like Django's ``transaction.atomic`` with two additions, and
only when they open the *outermost* transaction:

* **SQLite: the write lock is taken at ``BEGIN``.** In Django's default (deferred) mode a
  transaction that reads first and writes later must upgrade its lock; if another connection
  wrote in between, SQLite answers "database is locked" at once, without waiting for the
  ``timeout``. Beginning with ``BEGIN IMMEDIATE`` makes such a transaction wait its turn (up to
  the connection's ``timeout``) instead. Only this transaction is affected: the connection's
  configured mode is restored right after the ``BEGIN``.
* **Transient errors retry the whole transaction**, bounded (:data:`MAX_ATTEMPTS`), with
  exponential backoff and full jitter: SQLite busy/locked (including the in-memory shared
  cache's "database table is locked"), PostgreSQL deadlock (``40P01``), serialization failure
  (``40001``) and lock timeout (``55P03``), and a lost connection (``08xxx``, the server's
  restart or ``pg_terminate_backend`` — ``57P01``/``57P02`` — and "starting up" ``57P03``):
  that attempt's connection is closed first, so the retry runs on a fresh one. Inside an
  enclosing transaction nothing is retried — the error propagates to whoever owns the
  outermost block, whose work must be redone as a whole.

Without ``using``, the transaction is on the database of the account acting
(``PLUGIPAY["ACCOUNT_DATABASE"]``), else the default one.

Signals are still sent inside the transaction. A retry calls the function again, so a receiver
may run more than once — but every run except the last happened in a transaction that was rolled
back, so its database writes were undone and the deliveries its durable receivers recorded with
them (which is why email and HTTP calls go in durable receivers).

The ``with write_atomic():`` form takes the SQLite lock up front but cannot retry (a ``with``
body cannot be run again); use the decorator or :func:`run_atomic` where a retry is wanted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import random
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar, cast, overload

from django.db import (
    DEFAULT_DB_ALIAS,
    Error,
    IntegrityError,
    InterfaceError,
    connections,
    models,
    router,
    transaction,
)
from django.db.models import F
from django.db.models import signals as model_signals

from django_plugipay.context import acting_database, current_account_pk

logger = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=models.Model)

#: Attempts of one outermost transaction before a transient error propagates.
MAX_ATTEMPTS = 8
#: Backoff of the n-th retry: uniform in ``[0, min(BACKOFF_CAP, BACKOFF_BASE * 2**n))`` seconds.
BACKOFF_BASE = 0.05
BACKOFF_CAP = 1.0

#: PostgreSQL SQLSTATEs worth a retry: serialization failure, deadlock, lock not available.
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
#: PostgreSQL SQLSTATEs of a lost connection (class 08, and the server shutting down, crashing or
#: still starting): worth a retry on a fresh connection.
CONNECTION_SQLSTATES = frozenset({"57P01", "57P02", "57P03"})
#: What drivers say, without a SQLSTATE, when the connection went away or cannot be made yet.
CONNECTION_LOST_MESSAGES = (
    "connection is closed",
    "connection already closed",
    "server closed the connection",
    "terminating connection",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "connection refused",
    "connection reset",
    "consuming input failed",
)
#: SQLite messages worth a retry: SQLITE_BUSY ("database is locked") and SQLITE_LOCKED
#: ("database table is locked", "database schema is locked").
TRANSIENT_SQLITE_MESSAGES = ("database is locked", "table is locked", "schema is locked")


def storable_text(text: str) -> str:
    """``text`` as any database can store it: no NUL, no lone surrogate (both escaped)."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def error_text(exc: BaseException) -> str:
    """``"Type: message"`` for an error stored on a row, whatever the exception holds: its
    ``str()`` (or, when that raises, its arguments'; else its type alone), made storable."""
    said = f"{type(exc).__name__} (its message could not be read)"
    for text in (
        lambda: f"{type(exc).__name__}: {exc}",
        lambda: f"{type(exc).__name__}: {exc.args!r}",
    ):
        try:
            said = text()
        except Exception:  # noqa: BLE001, S112 - its __str__, or an argument's __repr__, fails
            continue
        break
    return storable_text(said)


def traceback_text(exc: BaseException) -> str:
    """The traceback of ``exc`` as stored on a row (its :func:`error_text` when it cannot
    be formatted)."""
    try:
        return storable_text("".join(traceback.format_exception(exc)))
    except Exception:  # noqa: BLE001
        return error_text(exc)


def is_transient(exc: BaseException) -> bool:
    """Would running the same transaction again (on a fresh connection) probably succeed?"""
    if not isinstance(exc, Error):
        return False
    if is_connection_lost(exc):
        return True
    sqlstate = _sqlstate(exc)
    if sqlstate:
        return sqlstate in TRANSIENT_SQLSTATES
    message = str(exc).lower()
    return any(text in message for text in TRANSIENT_SQLITE_MESSAGES)


def is_connection_lost(exc: BaseException) -> bool:
    """Did the database connection go away (or could it not be made yet)?

    True for SQLSTATE class ``08``, ``57P01`` (``pg_terminate_backend``, a fast shutdown),
    ``57P02``, ``57P03`` (the server is starting), and for the driver's errors about a closed
    connection, which carry no SQLSTATE.
    """
    if not isinstance(exc, Error):
        return False
    sqlstate = _sqlstate(exc)
    if sqlstate:
        return sqlstate.startswith("08") or sqlstate in CONNECTION_SQLSTATES
    if isinstance(exc, InterfaceError):
        return True
    message = str(exc).lower()
    return any(text in message for text in CONNECTION_LOST_MESSAGES)


def _sqlstate(exc: BaseException) -> str | None:
    cause = exc.__cause__ or exc
    return getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)


def discard_lost_connection(exc: BaseException, using: str | None = None) -> None:
    """After a lost connection, close it so the next query connects afresh.

    Django only drops an unusable connection at a request's start and end; until then every
    query on it fails the same way. Closing a broken connection may itself fail: ignored.
    """
    if not is_connection_lost(exc):
        return
    connection = transaction.get_connection(using)
    if connection.in_atomic_block:
        return  # the owner of the outermost block closes it when it unwinds
    with contextlib.suppress(Error):
        connection.close()


def _begins_transaction(connection) -> bool:
    return not connection.in_atomic_block and connection.get_autocommit()


@contextmanager
def _write_block(using: str | None = None, savepoint: bool = True) -> Iterator[None]:
    """``transaction.atomic`` that begins an outermost SQLite transaction ``IMMEDIATE``."""
    connection = transaction.get_connection(using)
    if connection.vendor != "sqlite" or not _begins_transaction(connection):
        with transaction.atomic(using=using, savepoint=savepoint):
            yield
        return
    connection.ensure_connection()  # connecting resets transaction_mode from OPTIONS
    configured = connection.transaction_mode
    block = transaction.atomic(using=using, savepoint=savepoint)
    connection.transaction_mode = configured if configured == "EXCLUSIVE" else "IMMEDIATE"
    try:
        block.__enter__()
    finally:
        connection.transaction_mode = configured
    try:
        yield
    except BaseException as exc:
        block.__exit__(type(exc), exc, exc.__traceback__)  # Atomic never suppresses
        raise
    else:
        block.__exit__(None, None, None)


def run_atomic(fn: Callable[..., T], /, *args: Any, using: str | None = None, **kwargs: Any) -> T:
    """Call ``fn(*args, **kwargs)`` in a write transaction and return its result.

    When this opens the outermost transaction, a transient database error rolls it back and
    ``fn`` runs again from the start, at most :data:`MAX_ATTEMPTS` times in all; inside an
    enclosing transaction ``fn`` runs once in a savepoint and errors propagate.
    """
    return _run(fn, args, kwargs, using, savepoint=True)


def run_statement(
    fn: Callable[..., T], /, *args: Any, using: str | None = None, **kwargs: Any
) -> T:
    """Call ``fn`` — one statement, atomic on its own — outside any transaction (autocommit:
    no ``BEGIN``/``COMMIT`` round trips), retried on transient errors as :func:`run_atomic`
    retries a transaction; inside an enclosing transaction, call it once."""
    using = using if using is not None else acting_database()  # where ``fn`` writes
    connection = transaction.get_connection(using)
    if not _begins_transaction(connection):
        return fn(*args, **kwargs)
    attempt = 1
    while True:
        try:
            return fn(*args, **kwargs)
        except Error as exc:
            discard_lost_connection(exc, using)
            if attempt >= MAX_ATTEMPTS or not is_transient(exc):
                raise
            time.sleep(random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)))  # noqa: S311
            attempt += 1


def _run(fn, args, kwargs, using, savepoint: bool):
    using = using if using is not None else acting_database()
    connection = transaction.get_connection(using)
    if not _begins_transaction(connection):
        with transaction.atomic(using=using, savepoint=savepoint):
            return fn(*args, **kwargs)
    attempt = 1
    while True:
        try:
            with _write_block(using=using, savepoint=savepoint):
                return fn(*args, **kwargs)
        except Error as exc:  # InterfaceError (a closed connection) is no DatabaseError
            discard_lost_connection(exc, using)
            if attempt >= MAX_ATTEMPTS or not is_transient(exc):
                raise
            delay = random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))  # noqa: S311
            logger.info(
                "retrying %s after a transient database error (attempt %s): %s",
                getattr(fn, "__qualname__", fn),
                attempt,
                exc,
                extra={"attempt": attempt, "function": getattr(fn, "__qualname__", "")},
            )
            time.sleep(delay)
            attempt += 1


@overload
def write_atomic(func: Callable[..., T], /) -> Callable[..., T]: ...
@overload
def write_atomic(
    func: None = None, /, *, using: str | None = None, savepoint: bool = True
) -> Any: ...
def write_atomic(func=None, /, *, using=None, savepoint=True):
    """Run a function as one write transaction, retried whole on transient errors.

    ``@write_atomic`` / ``@write_atomic(savepoint=False)`` decorate a function (retried when it
    opens the outermost transaction, see :func:`run_atomic`); ``with write_atomic():`` is a
    block that takes the SQLite write lock up front but cannot be retried.
    """
    if func is not None:
        return _decorate(func, using, savepoint)
    return _WriteAtomic(using, savepoint)


def _decorate(func, using, savepoint):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return _run(func, args, kwargs, using, savepoint)

    return wrapper


class _WriteAtomic:
    """What ``write_atomic(...)`` returns: a decorator, or a context manager (no retry)."""

    def __init__(self, using: str | None, savepoint: bool) -> None:
        self.using, self.savepoint = using, savepoint
        self._blocks: list[Any] = []

    def __call__(self, func):
        return _decorate(func, self.using, self.savepoint)

    def __enter__(self) -> None:
        using = self.using if self.using is not None else acting_database()
        block = _write_block(using, self.savepoint)
        block.__enter__()
        self._blocks.append(block)

    def __exit__(self, exc_type, exc, tb) -> bool | None:
        return self._blocks.pop().__exit__(exc_type, exc, tb)


# ── row locks in the lock order ────────────────────────────────────────────────


class LockOrderError(AssertionError):
    """A row of a lower lock rank was locked after a higher one in the same apply step."""


_held = threading.local()


@contextlib.contextmanager
def lock_scope() -> Iterator[None]:
    """One apply step (one event): rows are locked in increasing ``lock_rank`` within it."""
    previous = getattr(_held, "ranks", None)
    _held.ranks = []
    try:
        yield
    finally:
        _held.ranks = previous


def in_lock_scope() -> bool:
    return getattr(_held, "ranks", None) is not None


def take_lock(spec: Ranked) -> None:
    """Note that a row of ``spec`` is locked now; raise :class:`LockOrderError` when a row of
    a higher rank was locked before it in this scope."""
    ranks = getattr(_held, "ranks", None)
    if ranks is None:
        return
    if ranks and spec.lock_rank < ranks[-1]:
        raise LockOrderError(
            f"{spec.name} (rank {spec.lock_rank}) locked after rank {ranks[-1]}: "
            "see the lock order in docs/explanation/exactly-once.md"
        )
    ranks.append(spec.lock_rank)


class Ranked(Protocol):
    """What the lock order needs of a resource spec."""

    @property
    def name(self) -> str: ...
    @property
    def lock_rank(self) -> int: ...
    @property
    def model(self) -> Any: ...


def lock(spec: Ranked, *, only: tuple[str, ...] | None = None, **lookups: Any) -> Any:
    """Lock and return the row of ``spec``'s model matching ``lookups`` (equality lookups
    on a unique key), or None; ``only`` names the fields to read (the rest are deferred).

    The statement (``SELECT <columns> … FOR NO KEY UPDATE``, no ORDER BY) is compiled once
    per connection and lookup shape, then only executed.
    """
    take_lock(spec)
    if list(lookups) == ["plugipay_id"]:
        held = _held_row(spec.model, lookups["plugipay_id"])
        if held is not None or _take_absent(spec.model, lookups["plugipay_id"]):
            return held
    row = _select_one(spec.model, lookups, only, locking=True)
    if row is None:
        return None
    held = _held_by_pk(spec.model, row.pk)  # found another way (by pk, by its session)
    if held is not None:
        return held
    if only is None:
        _remember(row)
    return row


def find(model: type[M], *, only: tuple[str, ...] = (), **lookups: Any) -> M | None:
    """The row of ``model`` matching ``lookups`` (equality lookups on a unique key), reading
    only the fields ``only`` names (the pk when none), or None; compiled once like
    :func:`lock`, without the lock. Within :func:`remembered_ids`, a row's pk found by its
    Plugipay id is read once."""
    ids = getattr(_remembered, "ids", None)
    if ids is None or only or list(lookups) != ["plugipay_id"]:
        return _select_one(model, lookups, only, locking=False)
    key = (model, current_account_pk(), lookups["plugipay_id"])
    if key in ids:
        return cast(M, model.from_db(None, [model._meta.pk.attname], [ids[key]]))
    if _take_absent(model, lookups["plugipay_id"]):
        return None
    found = _select_one(model, lookups, only, locking=False)
    if found is not None:
        ids[key] = found.pk
    return found


def read(model: type[M], pk: Any) -> M | None:
    """The whole row of ``model`` with primary key ``pk``, or None: one statement compiled once
    per connection (the ORM's ``filter(pk=…).first()`` compiles a query, with an ORDER BY,
    on each call)."""
    return cast("M | None", _select_one(model, {"pk": pk}, None, locking=False))


def read_many(model: type[M], pks: Iterable[Any], parents: tuple[str, ...] = ()) -> dict[Any, M]:
    """pk → the whole row of ``model`` for each of ``pks`` that exists (None skipped): one
    statement, compiled once per connection, number of rows and ``parents``, on the database
    ``model``'s rows are written to (what a commit just wrote: never a replica that may not
    have it yet). ``parents`` names foreign keys whose rows are read in the same statement,
    joined, and cached on each row (its own copy, as ``select_related`` gives), so reading
    ``row.checkout_session`` costs no query. The ORM's ``in_bulk`` and ``select_related``
    compile a query on each call."""
    connection = connections[router.db_for_write(model)]
    field = model._meta.pk
    # as the database stores them (a UUID given as text or as a UUID), so that the statement
    # compiled for one call serves the next
    wanted = sorted({field.get_db_prep_value(pk, connection) for pk in pks if pk is not None})
    if not wanted:
        return {}
    key = ("select many", model, len(wanted), parents)
    cache = _statements(connection)
    statement = cache.get(key)
    params = wanted
    if statement is None:
        queryset = model._default_manager.filter(pk__in=wanted).order_by()
        if parents:
            queryset = queryset.select_related(*parents)
        statement, params = _compile_select(queryset, connection)
        if params == wanted:  # else pks the ORM converts: not cached
            cache[key] = statement
    sql_text, reader = statement
    return {row.pk: row for row in reader.many(_fetch_all(connection, sql_text, params))}


_remembered = threading.local()


@contextmanager
def remembered_ids() -> Iterator[None]:
    """Within one transaction that applies many events (a reconciliation page, a worker's
    batch): remember the pk of each row :func:`find` found, or :func:`upsert_locked` wrote, by
    its Plugipay id, so the next event linking to it (the invoices of one customer, one plan)
    reads nothing; and hold each row read whole and locked (by :func:`upsert_locked`,
    :func:`lock` or :func:`remember_locked`), so the next event of the same object locks and
    reads nothing either and changes the same object. The apply path never deletes a row; a
    savepoint that rolls back must call :func:`forget_ids`, as what it wrote is gone, and a
    statement that changes rows other than through their objects, :func:`forget_rows`.
    :func:`insert_locking` also notes the rows it looked for and did not find: the next lock
    or find of one of them reads nothing either, unless this transaction wrote it meanwhile
    (:func:`upsert_locked`)."""
    names = ("ids", "by_pk", "absent")
    previous = [getattr(_remembered, name, None) for name in names]
    for name in names:
        setattr(_remembered, name, {})
    try:
        yield
    finally:
        for name, value in zip(names, previous, strict=True):
            setattr(_remembered, name, value)


def forget_ids() -> None:
    """Drop what :func:`remembered_ids` holds (a savepoint rolled back)."""
    for name in ("ids", "by_pk", "absent"):
        held = getattr(_remembered, name, None)
        if held is not None:
            held.clear()


def forget_rows(model: type[models.Model]) -> None:
    """Drop the locked rows of ``model`` :func:`remembered_ids` holds: a statement changed
    some of them without going through their objects."""
    held = getattr(_remembered, "by_pk", None)
    if held:
        for key in [key for key in held if key[0] is model]:
            del held[key]


def remember_locked(rows: Iterable[models.Model]) -> None:
    """Within :func:`remembered_ids`, hold these rows, read whole and locked by this
    transaction: :func:`lock` and :func:`upsert_locked` hand them out again, without a
    statement, for as long as the transaction lasts."""
    for row in rows:
        _remember(row)


def _remember(row: models.Model) -> None:
    ids = getattr(_remembered, "ids", None)
    plugipay_id = getattr(row, "plugipay_id", None)
    if ids is None or not plugipay_id:
        return
    model = type(row)
    key = (model, row.__dict__.get("account_id"), plugipay_id)
    ids[key] = row.pk
    # A row read whole and locked is the one object of that row the transaction changes: every
    # later lock or upsert of it gets this object, so what it changed is what they see. Not
    # where save() itself writes (pre_save/post_save receivers may change other objects).
    if row.get_deferred_fields() or _save_signals(model):
        return
    _remembered.by_pk[(model, row.pk)] = row


def _save_signals(model: type[models.Model]) -> bool:
    return model_signals.pre_save.has_listeners(model) or model_signals.post_save.has_listeners(
        model
    )


def _held_row(model: type[models.Model], plugipay_id: Any) -> Any:
    """The locked row of ``model`` with ``plugipay_id`` in the account acting, if this
    transaction holds it (see :func:`remember_locked`)."""
    ids = getattr(_remembered, "ids", None)
    if not ids or not plugipay_id:
        return None
    pk = ids.get((model, current_account_pk() if _has_account(model) else None, plugipay_id))
    return None if pk is None else _held_by_pk(model, pk)


def _absent_key(model: type[models.Model], plugipay_id: Any) -> tuple:
    return (model, current_account_pk() if _has_account(model) else None, plugipay_id)


def _take_absent(model: type[models.Model], plugipay_id: Any) -> bool:
    """Take the note that :func:`insert_locking` found no row of ``model`` with
    ``plugipay_id`` (in the account acting); True when there was one. A note answers one
    lookup, the one that follows the statement in the event's apply (a parent's lock, the
    row's own), and every note left goes before the apply sends a signal
    (:func:`forget_absent`): a row that gets this id later another way (a refund matched by its
    reference), or that another transaction commits meanwhile, is read again."""
    absent = getattr(_remembered, "absent", None)
    if not absent:
        return False
    return absent.pop(_absent_key(model, plugipay_id), None) is not None


def forget_absent() -> None:
    """Drop every note of a row :func:`insert_locking` did not find (the event's own lookups
    are done: what runs next, receivers included, reads the database again)."""
    absent = getattr(_remembered, "absent", None)
    if absent:
        absent.clear()


def _held_by_pk(model: type[models.Model], pk: Any) -> Any:
    by_pk = getattr(_remembered, "by_pk", None)
    return _handed_out(by_pk.get((model, pk))) if by_pk else None


def _handed_out(row: Any) -> Any:
    """A held row as it is handed out again: without the related objects an earlier event
    cached on it (they may be other objects of rows the page holds since, or have moved)."""
    if row is not None:
        row._state.fields_cache.clear()
    return row


def _select_one(model, lookups: dict[str, Any], only, *, locking: bool) -> Any:
    lookups = _in_acting_account(model, lookups)
    connection = connections[router.db_for_write(model)]
    key = ("select", locking, model, tuple(sorted(lookups)), only)
    cache = _statements(connection)
    statement = cache.get(key)
    params = [lookups[name] for name in sorted(lookups)]
    if statement is None:
        queryset = model._default_manager.filter(**lookups).order_by()
        if only is not None:
            queryset = queryset.only(*(only or ("pk",)))
        queryset = queryset[:1]
        if locking:
            queryset = queryset.select_for_update(no_key=True)
        statement, compiled = _compile_select(queryset, connection)
        if compiled != params:  # a lookup whose value the ORM converts: not cached
            return statement[1].one(_fetch(connection, statement[0], compiled))
        cache[key] = statement
    sql_text, reader = statement
    return reader.one(_fetch(connection, sql_text, params))


def _compile_select(queryset, connection) -> tuple[tuple[str, _RowReader], list[Any]]:
    """``((sql, reader), params)``: a query of whole rows compiled once, the reader making
    its rows into instances (with the rows of a ``select_related`` one level deep cached on
    them)."""
    compiler = queryset.query.get_compiler(connection.alias)
    sql_text, compiled = compiler.as_sql()
    klass_info = compiler.klass_info or {"select_fields": []}

    def reader(model, info) -> _RowReader:
        columns = [compiler.select[i][0] for i in info["select_fields"]]
        return _RowReader(model, connection, columns, positions=info["select_fields"])

    main = reader(queryset.model, klass_info)
    for related in klass_info.get("related_klass_infos", ()):
        main.parents.append((related["field"], reader(related["model"], related)))
    return (sql_text, main), list(compiled)


def _in_acting_account(model: Any, lookups: dict[str, Any]) -> dict[str, Any]:
    """A row named by a Plugipay id (its own, a related row's, or our idempotency key) is
    looked for in the account acting now: another account's row with that id is not this
    news's, and linking to it would mix accounts (a pk names a row we chose: left alone)."""
    if "account_id" in lookups or not _has_account(model):
        return lookups
    if not any("plugipay_id" in name or name == "idempotency_key" for name in lookups):
        return lookups
    return {**lookups, "account_id": current_account_pk()}


@functools.cache
def _has_account(model: Any) -> bool:
    return any(f.name == "account" for f in model._meta.concrete_fields)


def connection_for(model: type[models.Model]) -> Any:
    """The connection ``model``'s rows are written through."""
    return connections[router.db_for_write(model)]


def execute(
    model: type[models.Model], name: str, build: Callable[[Any], str], params: list[Any]
) -> int:
    """Run statement ``name`` on ``model``'s database: its SQL is ``build(connection)``,
    called once per connection; return the number of rows it changed."""
    connection = connections[router.db_for_write(model)]
    cache = _statements(connection)
    key = ("execute", name)
    if key not in cache:
        cache[key] = build(connection)
    with connection.cursor() as cursor:
        cursor.execute(cache[key], params)
        return cursor.rowcount


def execute_returning(
    model: type[models.Model],
    name: str,
    build: Callable[[Any], str],
    params: list[Any],
    *,
    pk: Any,
    returning: str,
) -> Any:
    """Run statement ``name`` (an UPDATE of row ``pk``, built once per connection as
    :func:`execute` does) and return the value of field ``returning`` it left in the row: by
    ``RETURNING`` where the backend has it, else by reading it back."""
    connection = connections[router.db_for_write(model)]
    field = cast(models.Field, model._meta.get_field(returning))
    column = connection.ops.quote_name(field.column or field.name)
    if not _supports_insert_returning(connection):
        execute(model, name, build, params)
        return (
            model._default_manager.using(connection.alias)
            .values_list(returning, flat=True)
            .get(pk=pk)
        )
    cache = _statements(connection)
    key = ("execute_returning", name)
    if key not in cache:
        cache[key] = f"{build(connection)} RETURNING {column}"
    row = _fetch(connection, cache[key], params)
    return None if row is None else row[0]


def _fetch(connection, sql_text: str, params) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(sql_text, params)
        return cursor.fetchone()


def _fetch_all(connection, sql_text: str, params) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql_text, params)
        return cursor.fetchall()


def _statements(connection) -> dict[Any, Any]:
    """This connection's compiled statements (a connection belongs to one thread)."""
    return connection.__dict__.setdefault("_plugipay_statements", {})


class _RowReader:
    """Makes model instances from raw rows of ``columns`` (at ``positions`` of each row, all
    of it by default), converted as a query would; then each of ``parents``, a (foreign key,
    reader) pair, makes the row the key points to from the same raw row and caches it."""

    def __init__(
        self,
        model: type[models.Model],
        connection,
        columns: list,
        positions: list[int] | None = None,
    ) -> None:
        self.model, self.alias = model, connection.alias
        self.attnames = [column.target.attname for column in columns]
        compiler = model._default_manager.none().query.get_compiler(connection.alias)
        self.compiler = compiler
        self.converters = compiler.get_converters(columns)
        whole = positions is None or positions == list(range(len(positions)))
        self.positions = None if whole else positions
        self.parents: list[tuple[models.ForeignKey, _RowReader]] = []

    def _make(self, row) -> Any:
        if self.positions is not None:
            row = [row[i] for i in self.positions]
        if self.converters:
            row = next(iter(self.compiler.apply_converters([row], self.converters)))
        return self.model.from_db(self.alias, self.attnames, row)

    def _with_parents(self, row) -> Any:
        instance = self._make(row)
        for field, reader in self.parents:
            parent = reader._make(row)  # all NULL where the key joins no row: None cached
            field.set_cached_value(instance, None if parent.pk is None else parent)
        return instance

    def one(self, row) -> Any:
        return None if row is None else self._with_parents(row)

    def many(self, rows: list) -> list[Any]:
        if not self.parents and self.positions is None:
            if self.converters:
                rows = self.compiler.apply_converters(rows, self.converters)
            return [self.model.from_db(self.alias, self.attnames, row) for row in rows]
        return [self._with_parents(row) for row in rows]


def _reader(model: type[models.Model], connection, fields: list) -> _RowReader:
    key = ("reader", model, tuple(f.attname for f in fields))
    cache = _statements(connection)
    if key not in cache:
        table = model._meta.db_table
        cache[key] = _RowReader(model, connection, [f.get_col(table) for f in fields])
    return cache[key]


# ── rows ─────────────────────────────────────────────────────────────────────────


def _column(field: Any) -> str:
    """A concrete field's column (the stubs also allow relations and column-less fields)."""
    if not isinstance(field, models.Field) or field.column is None:
        raise TypeError(f"{field!r} has no database column")
    return field.column


def _supports_insert_returning(connection) -> bool:
    return connection.vendor in ("postgresql", "sqlite") and bool(
        connection.features.can_return_columns_from_insert
    )


def insert_new(instance: models.Model, conflict: str) -> bool:
    """Insert ``instance`` unless a row with the same ``conflict`` value exists.

    One statement where the backend has it (``INSERT … ON CONFLICT DO NOTHING RETURNING``,
    PostgreSQL and SQLite ≥ 3.35); elsewhere a savepoint around a plain insert. Returns True
    (and sets the pk) when this call inserted the row.
    """
    model = type(instance)
    connection = connections[router.db_for_write(model)]
    if not _supports_insert_returning(connection):
        try:
            with transaction.atomic(using=connection.alias):
                instance.save(force_insert=True)
        except IntegrityError:
            return False
        return True
    qn = connection.ops.quote_name
    returned = _insert(
        instance, connection, "DO NOTHING", f"RETURNING {qn(_column(model._meta.pk))}", conflict
    )
    if returned is None:
        return False
    instance.pk = returned[0]
    instance._state.adding, instance._state.db = False, connection.alias
    return True


def insert_values(model: type[models.Model], values: dict[str, Any], conflict: str) -> Any:
    """Insert one row of ``model`` from ``values`` (field name → value) unless a row with the
    same ``conflict`` value exists; return the new row's pk, or None for a duplicate.

    The columns ``values`` does not name take their field's constant default, written into
    the statement, so only the varying values are sent as parameters. One statement
    (``INSERT … ON CONFLICT DO NOTHING RETURNING pk``) compiled once per connection and
    shape; without ``RETURNING``, a savepoint around a plain insert.
    """
    connection = connections[router.db_for_write(model)]
    if not _supports_insert_returning(connection):
        instance = model(**values)
        return instance.pk if insert_new(instance, conflict) else None
    key = ("insert_values", model._meta.label, frozenset(values), conflict)
    cache = _statements(connection)
    if key not in cache:
        cache[key] = _compile_insert_values(model, connection, set(values), conflict)
    sql_text, fields = cache[key]
    params = [db_value(field, values[field.name], connection) for field in fields]
    row = _fetch(connection, sql_text, params)
    return None if row is None else row[0]


#: field classes (exactly these) whose column takes a value of these types as it is (an
#: integer field's int is not: on PostgreSQL, Django sends it typed, as ``Int4`` or ``Int8``)
_AS_IS: dict[type, tuple[type, ...]] = {
    **dict.fromkeys((models.CharField, models.TextField), (str, type(None))),
    models.BooleanField: (bool, type(None)),
    **dict.fromkeys((models.AutoField, models.BigAutoField), (int, type(None))),
}


def _as_is(field: models.Field) -> tuple[type, ...]:
    """The value types ``field`` sends to the database unchanged (a foreign key: its target's),
    found once per field and kept on it."""
    try:
        return field.__dict__["_plugipay_as_is"]
    except KeyError:
        pass
    if isinstance(field, models.ForeignKey) and (
        type(field).get_db_prep_save is models.ForeignKey.get_db_prep_save
    ):
        kinds = _as_is(field.target_field)
    else:
        kinds = _AS_IS.get(type(field), ())
    field.__dict__["_plugipay_as_is"] = kinds
    return kinds


def db_value(field: models.Field, value: Any, connection) -> Any:
    """``field.get_db_prep_save(value, connection)``, without its calls where the value goes
    to the database as it is: a string or NULL for a text column, an int (not a bool) or NULL
    for an automatic key (and a foreign key to one), and an aware datetime on PostgreSQL. The
    apply path's statements send every value through here."""
    kind = type(value)
    if kind in _as_is(field) or (
        kind is dt.datetime
        and value.utcoffset() is not None  # aware, as Django tells it
        and type(field) is models.DateTimeField
        and connection.vendor == "postgresql"
    ):
        return value
    return field.get_db_prep_save(value, connection)


def _compile_insert_values(
    model, connection, names: set[str], conflict: str
) -> tuple[str, list[models.Field]]:
    """The statement and the fields whose values are its parameters, in order."""
    meta, qn = model._meta, connection.ops.quote_name
    columns, placeholders, fields = [], [], []
    for field in meta.concrete_fields:
        if field.primary_key and field.name not in names:
            continue
        columns.append(qn(_column(field)))
        if field.name in names:
            placeholders.append("%s")
            fields.append(field)
        elif (field.has_default() and callable(field.default)) or getattr(
            field, "auto_now_add", False
        ):
            raise ValueError(f"{meta.label}.{field.name} has no constant default: pass a value")
        else:  # its default, or what Django stores without one ('' or NULL)
            placeholders.append(_literal(field.get_default()))
    unknown = names - {field.name for field in fields}
    if unknown:
        raise ValueError(f"{meta.label} has no concrete fields {sorted(unknown)}")
    sql_text = (
        f"INSERT INTO {qn(meta.db_table)} ({', '.join(columns)}) "
        f"VALUES ({', '.join(placeholders)}) "
        f"ON CONFLICT ({qn(_column(meta.get_field(conflict)))}) DO NOTHING "
        f"RETURNING {qn(_column(meta.pk))}"
    )
    return sql_text, fields


def _literal(value: Any) -> str:
    """A constant default as SQL: NULL, a number or a plain string."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and "%" not in value and "\\" not in value:
        return "'" + value.replace("'", "''") + "'"
    raise ValueError(f"{value!r} cannot be written into a statement: pass it as a value")


def _insert_columns(meta) -> list[models.Field]:
    """The columns an insert writes: every concrete field but the pk."""
    return [f for f in meta.concrete_fields if not f.primary_key]


def _insert_params(instance: models.Model, columns: list[models.Field], connection) -> list[Any]:
    """The values of ``instance``'s ``columns`` (:func:`_insert_columns`), as an insert
    writes them."""
    return [db_value(f, f.pre_save(instance, True), connection) for f in columns]


def _insert(instance, connection, action: str, returning: str, conflict: str):
    """``INSERT … ON CONFLICT (<conflict>) <action> <returning>``; the returned row or None."""
    rows = _insert_rows([instance], connection, action, returning, conflict)
    return rows[0] if rows else None


def _insert_rows(instances, connection, action: str, returning: str, conflict: str) -> list:
    meta = instances[0]._meta
    columns = _insert_columns(meta)
    params = [
        value for instance in instances for value in _insert_params(instance, columns, connection)
    ]
    key = ("insert", meta.label, action, returning, conflict, len(instances))
    cache = _statements(connection)
    if key not in cache:
        qn = connection.ops.quote_name
        row = f"({', '.join(['%s'] * len(columns))})"
        cache[key] = (
            f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in columns)}) "
            f"VALUES {', '.join([row] * len(instances))} "
            f"ON CONFLICT ({qn(_column(meta.get_field(conflict)))}) {action} {returning}"
        )
    with connection.cursor() as cursor:
        cursor.execute(cache[key], params)
        return cursor.fetchall()


#: bound parameters one multi-row insert may send (SQLite allows 32,766, PostgreSQL 65,535)
INSERT_PARAMETERS = 30_000


def insert_many(instances: list[M], conflict: str) -> list[M]:
    """Insert every instance whose ``conflict`` value is not taken yet; return those inserted
    (pk set). One statement where the backend has ``ON CONFLICT … RETURNING`` (one per
    :data:`INSERT_PARAMETERS` bound values, for very many rows)."""
    if not instances:
        return []
    model = type(instances[0])
    rows = max(1, INSERT_PARAMETERS // len(model._meta.concrete_fields))
    if len(instances) > rows:
        return [
            inserted
            for start in range(0, len(instances), rows)
            for inserted in insert_many(instances[start : start + rows], conflict)
        ]
    connection = connections[router.db_for_write(model)]
    if not _supports_insert_returning(connection):
        return [instance for instance in instances if insert_new(instance, conflict)]
    qn, key = connection.ops.quote_name, model._meta.get_field(conflict)
    if not isinstance(key, models.Field):
        raise TypeError(f"{conflict!r} is not a concrete field of {model.__name__}")
    returned = _insert_rows(
        instances,
        connection,
        "DO NOTHING",
        f"RETURNING {qn(_column(model._meta.pk))}, {qn(_column(key))}",
        conflict,
    )
    by_key = {getattr(instance, key.attname): instance for instance in instances}
    inserted = []
    for pk, value in returned:
        instance = by_key[value]
        instance.pk = pk
        instance._state.adding, instance._state.db = False, connection.alias
        inserted.append(instance)
    return inserted


def upsert_locked(instance: M, conflict: str) -> tuple[M, bool]:
    """Insert ``instance``, or lock and return the row that holds its ``conflict`` value.

    PostgreSQL: one statement (``INSERT … ON CONFLICT DO UPDATE SET synced_at … RETURNING``;
    the update locks the existing row, ``xmax = 0`` tells an insert). Elsewhere: an insert that
    ignores the conflict, then a locking read only when the row already existed. A row this
    transaction holds already (:func:`remember_locked`) is returned as it is, with no statement.
    """
    if conflict == "plugipay_id":
        plugipay_id = getattr(instance, "plugipay_id", None)
        held = _held_row(type(instance), plugipay_id)
        if held is not None:
            return held, False
        _take_absent(type(instance), plugipay_id)  # about to be written: no longer absent
    row, created = _upsert_locked(instance, conflict)
    held = None if created else _held_by_pk(type(row), row.pk)
    if held is not None:
        return held, False
    _remember(row)
    if created:
        _announce_created(row)
    return row, created


def _announce_created(row: models.Model) -> None:
    """``post_save`` (``created=True``) for a row inserted here, as ``save()`` would send it,
    while anything listens (nothing is sent otherwise), its receivers run as the app's own
    signals' are (:func:`run_receivers`)."""
    model = type(row)
    if model_signals.post_save.has_listeners(model):
        run_receivers(
            model_signals.post_save,
            model,
            instance=row,
            created=True,
            update_fields=None,
            raw=False,
            using=row._state.db or router.db_for_write(model),
        )


def run_receivers(signal: Any, sender: Any, **kwargs: Any) -> None:
    """Send ``signal`` inside the change's transaction. What a receiver raises is marked as
    the receiver's (``services.apply.raised_by_receiver``): it is the project's code failing,
    not the event's values, however it failed (a receiver's own ``IntegrityError`` included).

    For an account whose rows are kept in a database of its own (``ACCOUNT_DATABASE``), the
    change's transaction is on that database: receivers run in a transaction on the default
    database too (the project's own rows: an order a receiver locks and marks paid), which
    commits when they return, just before the change's."""
    routed = acting_database()
    try:
        if routed is None or routed == DEFAULT_DB_ALIAS or not signal.has_listeners(sender):
            signal.send(sender=sender, **kwargs)
        else:
            with transaction.atomic(using=DEFAULT_DB_ALIAS):
                signal.send(sender=sender, **kwargs)
    except Exception as exc:
        with contextlib.suppress(AttributeError):  # an exception class with __slots__
            exc.plugipay_receiver = True  # type: ignore[attr-defined]
        raise


def _upsert_locked(instance: M, conflict: str) -> tuple[M, bool]:
    model = type(instance)
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        if insert_new(instance, conflict):
            return instance, True
        locked = model._default_manager.select_for_update(no_key=True)
        return locked.get(**{conflict: getattr(instance, conflict)}), False
    qn = connection.ops.quote_name
    fields = list(model._meta.concrete_fields)
    # Set a column no unique index covers, so the existing row is locked FOR NO KEY UPDATE
    # (setting the key itself would take FOR UPDATE and block foreign-key checks).
    touched = qn(_column(model._meta.get_field("synced_at")))
    *values, created = _insert(
        instance,
        connection,
        f"DO UPDATE SET {touched} = EXCLUDED.{touched}",
        f"RETURNING {', '.join(qn(_column(f)) for f in fields)}, (xmax = 0)",
        conflict,
    )
    return _reader(model, connection, fields).one(values), created


#: how a named row's account is matched in :func:`insert_locking`'s statement
_NO_ACCOUNT, _NULL_ACCOUNT, _ACCOUNT = "no account column", "account IS NULL", "account = %s"


def insert_locking(
    instance: models.Model,
    conflict: str,
    named: Sequence[tuple[type[models.Model], str]],
    *,
    recorded: tuple[str, ...] = (),
) -> tuple[bool, dict[str, Any] | None]:
    """Insert ``instance`` unless a row with the same ``conflict`` value exists and, when it
    inserted it, lock and read whole the rows ``named`` (``(model, Plugipay id)`` in the
    account acting, given in the lock order), all in one statement.

    Within :func:`remembered_ids`, the rows found are held for the transaction and those not
    found are noted as absent, so the lookups that follow read nothing again (an event's apply
    then sends only the statements that change rows). Returns ``(inserted, existing)``:
    ``existing`` holds the ``recorded`` fields of the row that already had the ``conflict``
    value, when one did and it was committed before the statement began (None otherwise: a
    concurrent insert, or none asked for).

    PostgreSQL only (a data-modifying ``WITH``); elsewhere the insert alone, as
    :func:`insert_new`, and the rows are locked and read as the apply reaches them.
    """
    model = type(instance)
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        return insert_new(instance, conflict), None
    meta = model._meta
    params = _insert_params(instance, _insert_columns(meta), connection)
    targets = []
    for other, plugipay_id in named:
        lookups = _in_acting_account(other, {"plugipay_id": plugipay_id})
        if "account_id" not in lookups:
            match = _NO_ACCOUNT
        else:
            match = _NULL_ACCOUNT if lookups["account_id"] is None else _ACCOUNT
        targets.append((other, match))
        params += [lookups["account_id"], plugipay_id] if match == _ACCOUNT else [plugipay_id]
    if recorded:
        params.append(getattr(instance, cast(models.Field, meta.get_field(conflict)).attname))
    key = ("insert_locking", meta.label, conflict, recorded, tuple(targets))
    cache = _statements(connection)
    if key not in cache:
        cache[key] = _compile_insert_locking(model, connection, conflict, recorded, targets)
    row = _fetch(connection, cache[key], params)
    if row is None:  # the statement answers one row, whatever it found
        raise RuntimeError("insert_locking's statement answered no row")
    pk, rest = row[0], list(row[1:])
    if recorded:
        values, rest = rest[: len(recorded)], rest[len(recorded) :]
        if pk is None:
            found = values[recorded.index(meta.pk.attname)] is not None
            return False, dict(zip(recorded, values, strict=True)) if found else None
    if pk is None:
        return False, None
    instance.pk = pk
    instance._state.adding, instance._state.db = False, connection.alias
    absent = getattr(_remembered, "absent", None)
    for other, plugipay_id in named:
        fields = list(other._meta.concrete_fields)
        values, rest = rest[: len(fields)], rest[len(fields) :]
        if values[fields.index(other._meta.pk)] is not None:
            _remember(_reader(other, connection, fields).one(values))
        elif absent is not None:
            absent[_absent_key(other, plugipay_id)] = True
    return True, None


def _compile_insert_locking(model, connection, conflict: str, recorded, targets) -> str:
    """The statement of :func:`insert_locking`: the insert in a ``WITH`` (``inserted``), each
    named row's locking read after it (``n0``, ``n1``…: run only when it inserted, in the
    order given), and the existing row's ``recorded`` fields when it did not (``earlier``)."""
    meta, qn = model._meta, connection.ops.quote_name
    columns = _insert_columns(meta)
    conflict_column = qn(_column(meta.get_field(conflict)))
    parts = [
        f"inserted AS (INSERT INTO {qn(meta.db_table)} "
        f"({', '.join(qn(f.column) for f in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT ({conflict_column}) DO NOTHING RETURNING {qn(_column(meta.pk))})"
    ]
    selected, joins = ["(SELECT * FROM inserted)"], ["(SELECT 1) AS one"]
    for i, (other, match) in enumerate(targets):
        other_meta = other._meta
        fields = ", ".join(qn(_column(f)) for f in other_meta.concrete_fields)
        conditions = [f"{qn(_column(other_meta.get_field('plugipay_id')))} = %s"]
        if match != _NO_ACCOUNT:
            account = qn(_column(other_meta.get_field("account")))
            conditions.insert(0, f"{account} = %s" if match == _ACCOUNT else f"{account} IS NULL")
        conditions.append("EXISTS (SELECT 1 FROM inserted)")
        if i:
            # Reading the row locked before makes this read wait for it: the rows are locked
            # in the order given (the planner may otherwise scan the reads in any order).
            conditions.append(f"(SELECT count(*) FROM n{i - 1}) >= 0")
        parts.append(
            f"n{i} AS (SELECT {fields} FROM {qn(other_meta.db_table)} "
            f"WHERE {' AND '.join(conditions)} FOR NO KEY UPDATE)"
        )
        joins.append(f"LEFT JOIN n{i} ON true")
    if recorded:
        fields = ", ".join(qn(_column(meta.get_field(name))) for name in recorded)
        parts.append(
            f"earlier AS (SELECT {fields} FROM {qn(meta.db_table)} "
            f"WHERE {conflict_column} = %s AND NOT EXISTS (SELECT 1 FROM inserted))"
        )
        joins.insert(1, "LEFT JOIN earlier ON true")
        selected.append("earlier.*")
    selected += [f"n{i}.*" for i in range(len(targets))]
    return f"WITH {', '.join(parts)} SELECT {', '.join(selected)} FROM {' '.join(joins)}"


def claim(
    model: type[M],
    pk: Any,
    values: dict[str, Any],
    *,
    increment: tuple[str, ...] = (),
    unless: dict[str, tuple[Any, ...]],
) -> M | None:
    """Set ``values`` on row ``pk`` and add one to each ``increment`` field (the update locks
    the row) unless one of ``unless``'s fields holds one of its values; return the updated
    row, or None when no row matched.

    One statement, compiled once per connection and shape, where the backend has
    ``UPDATE … RETURNING`` (PostgreSQL, SQLite ≥ 3.35); elsewhere a locking read, then the
    update.
    """
    connection = connections[router.db_for_write(model)]
    meta, manager = model._meta, model._default_manager
    if not _supports_insert_returning(connection):
        matching = manager.filter(pk=pk).exclude(
            **{f"{name}__in": list(choices) for name, choices in unless.items()}
        )
        if not matching.select_for_update().exists():
            return None
        matching.update(**values, **{name: F(name) + 1 for name in increment})
        return manager.get(pk=pk)
    shape = tuple((name, len(choices)) for name, choices in unless.items())
    key = ("claim", meta.label, tuple(values), increment, shape)
    cache = _statements(connection)
    fields = list(meta.concrete_fields)
    if key not in cache:
        qn = connection.ops.quote_name

        def column(name: str) -> str:
            return qn(_column(meta.get_field(name)))

        sets = [f"{column(name)} = %s" for name in values]
        sets += [f"{column(name)} = {column(name)} + 1" for name in increment]
        where = [f"{qn(_column(meta.pk))} = %s"]
        where += [f"NOT ({column(name)} IN ({', '.join(['%s'] * count)}))" for name, count in shape]
        cache[key] = (
            f"UPDATE {qn(meta.db_table)} SET {', '.join(sets)} WHERE {' AND '.join(where)} "
            f"RETURNING {', '.join(qn(_column(f)) for f in fields)}"
        )
    params = [
        db_value(cast(models.Field, meta.get_field(name)), value, connection)
        for name, value in values.items()
    ]
    params.append(db_value(cast(models.Field, meta.pk), pk, connection))
    params += [choice for choices in unless.values() for choice in choices]
    return _reader(model, connection, fields).one(_fetch(connection, cache[key], params))


def update_returning(
    model: type[M],
    name: str,
    pks: list[Any],
    values: dict[str, Any],
    *,
    increment: tuple[str, ...] = (),
    where: Callable[[Callable[[str], str]], str],
    where_params: list[Any],
) -> list[M] | None:
    """``UPDATE … SET values, increment + 1 WHERE pk IN pks AND <where> RETURNING *`` as
    one statement (compiled once per connection, name and number of pks): the updated rows,
    in no order. ``where(column)`` writes the extra condition (``column(name)`` quotes a
    field's column); ``where_params`` are its parameters, as the database takes them. None
    where the backend has no ``UPDATE … RETURNING``: the caller does it another way."""
    connection = connections[router.db_for_write(model)]
    if not _supports_insert_returning(connection):
        return None
    if not pks:
        return []
    meta = model._meta
    fields = list(meta.concrete_fields)
    key = ("update_returning", meta.label, name, tuple(values), increment, len(pks))
    cache = _statements(connection)
    if key not in cache:
        qn = connection.ops.quote_name

        def column(field_name: str) -> str:
            return qn(_column(meta.get_field(field_name)))

        sets = [f"{column(n)} = %s" for n in values]
        sets += [f"{column(n)} = {column(n)} + 1" for n in increment]
        cache[key] = (
            f"UPDATE {qn(meta.db_table)} SET {', '.join(sets)} "
            f"WHERE {qn(_column(meta.pk))} IN ({', '.join(['%s'] * len(pks))}) "
            f"AND ({where(column)}) RETURNING {', '.join(qn(_column(f)) for f in fields)}"
        )
    params = [
        db_value(cast(models.Field, meta.get_field(n)), value, connection)
        for n, value in values.items()
    ]
    params += [db_value(cast(models.Field, meta.pk), pk, connection) for pk in pks]
    params += where_params
    reader = _reader(model, connection, fields)
    with connection.cursor() as cursor:
        cursor.execute(cache[key], params)
        return [reader.one(row) for row in cursor.fetchall()]


def save_fields(instance: models.Model, names: list[str]) -> None:
    """``instance.save(update_fields=names)`` for an existing row, as one compiled
    ``UPDATE … WHERE pk = %s`` (each field's ``pre_save`` still runs: ``auto_now`` stamps).
    While anything listens to the model's ``pre_save`` or ``post_save``, it is ``save()``
    itself, so those receivers run as before (a row the engine creates sends ``post_save``
    with ``created=True``: :func:`upsert_locked`)."""
    model = type(instance)
    if _save_signals(model):
        instance.save(update_fields=names)
        return
    connection = connections[router.db_for_write(model)]
    meta = model._meta
    fields = [cast(models.Field, meta.get_field(name)) for name in names]
    key = ("save_fields", meta.label, tuple(names))
    cache = _statements(connection)
    if key not in cache:
        qn = connection.ops.quote_name
        sets = ", ".join(f"{qn(_column(field))} = %s" for field in fields)
        cache[key] = f"UPDATE {qn(meta.db_table)} SET {sets} WHERE {qn(_column(meta.pk))} = %s"
    params = [db_value(field, field.pre_save(instance, False), connection) for field in fields]
    params.append(db_value(cast(models.Field, meta.pk), instance.pk, connection))
    with connection.cursor() as cursor:
        cursor.execute(cache[key], params)
