"""Write transactions that survive contention: the SQLite lock up front, transient errors retried.

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

Signals are still sent inside the transaction. A retry calls the function again, so a receiver
may run more than once — but every run except the last happened in a transaction that was rolled
back, so its database writes were undone and the deliveries its durable receivers recorded with
them (which is why email and HTTP calls go in durable receivers).

The ``with write_atomic():`` form takes the SQLite lock up front but cannot retry (a ``with``
body cannot be run again); use the decorator or :func:`run_atomic` where a retry is wanted.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, overload

from django.db import Error, InterfaceError, transaction

logger = logging.getLogger(__name__)

T = TypeVar("T")

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


def _run(fn, args, kwargs, using, savepoint: bool):
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
        block = _write_block(self.using, self.savepoint)
        block.__enter__()
        self._blocks.append(block)

    def __exit__(self, exc_type, exc, tb) -> bool | None:
        return self._blocks.pop().__exit__(exc_type, exc, tb)
