"""The one seam for background work: a Celery task, a Django task, or in-process.

Services never import :mod:`django_plugipay.tasks` (which imports the services); they hand this
module the task's name, its primitive arguments and the same work as an in-process callable.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import importlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import transaction

from django_plugipay.conf import app_settings
from django_plugipay.context import acting, acting_database
from django_plugipay.db import discard_lost_connection

logger = logging.getLogger(__name__)


def celery_app() -> Any | None:
    """The Celery app the project created, or None.

    Celery makes a fallback app (named ``default``, not set as current) the first time anything
    asks for ``current_app``; that one is not configured by anybody and does not count. A
    project's app becomes Celery's default app through its Django fix-up, so it is found from
    every thread.
    """
    try:
        from celery import _state as celery_state
    except ImportError:  # pragma: no cover - celery is a dependency
        return None
    # Celery's private module: its stubs (celery-types) describe only the public names.
    _state: Any = celery_state
    # The usual answer first: the project's app is the default one (every request asks).
    for app in (_state.default_app, getattr(_state._tls, "current_app", None)):
        if app is not None and not (app.main == "default" and not app.set_as_current):
            return app
    for app in _state._get_active_apps():
        if not (app.main == "default" and not app.set_as_current):
            return app
    return None


@functools.cache
def tasks_framework() -> Any | None:
    """Django's tasks framework: ``django.tasks`` (Django 6.0+), else the ``django_tasks``
    backport, else None. Looked up once per process: a failed import is not cached by Python,
    and a commit asks for every task it sends."""
    for name in ("django.tasks", "django_tasks"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


#: Backends that do not queue: ``auto`` does not count them as "a queue is configured".
NOT_QUEUED = ("ImmediateBackend", "DummyBackend")


def task_backend() -> Any | None:
    """The project's ``django.tasks`` backend (``PLUGIPAY["TASKS_BACKEND"]``, the default one
    unless set) when it queues work for a worker: the project set ``TASKS``, the backend is
    neither the immediate nor the dummy one, and it took the app's task (see
    :func:`django_task_refusal`)."""
    from django.conf import settings

    if not getattr(settings, "TASKS", None) or tasks_framework() is None:
        return None
    try:
        backend = current_django_task().get_backend()
    except Exception:  # noqa: BLE001 - refused: django_task_refusal() says why
        return None
    return None if type(backend).__name__ in NOT_QUEUED else backend


def mode() -> str:
    """``"celery"``, ``"django"`` or ``"inline"``: how task work runs now, per
    ``PLUGIPAY["TASKS"]`` (``auto``: Celery when the project has a Celery app, else a queuing
    ``django.tasks`` backend when one is configured, else in-process)."""
    setting = app_settings.TASKS
    if setting == "auto":
        if celery_app() is not None:
            return "celery"
        return "django" if task_backend() is not None else "inline"
    return setting


def enqueue(
    name: str,
    *args: Any,
    inline: Callable[[], Any],
    on_failure: Callable[[Exception], None] | None = None,
    countdown: float = 0,
) -> None:
    """After the current transaction commits, send task ``name`` (to run ``countdown``
    seconds later at the earliest, where the backend can defer) or run ``inline()``.

    Never raises into the caller (after commit, the caller's work is done and its response is
    due): if the broker cannot be reached or the in-process work fails, the error is logged as a
    warning and ``on_failure(exc)`` records it where staff and the sweeper will see it. If
    recording fails too (the database is gone), that is logged and the row's own state —
    an event still ``received``, a refund still ``requested`` — is what the sweeper finds.
    """
    transaction.on_commit(
        _as_acting(lambda: _dispatch(name, args, inline, on_failure, countdown)),
        using=acting_database(),
    )


def row_args(pk: int) -> tuple[Any, ...]:
    """A task's arguments for one row: its pk and, with ``ACCOUNT_DATABASE`` while an account
    acts, the account's alias (the row is in that account's database, which a worker acting for
    no account would not look in; with one database the pk alone finds it, as it always did)."""
    now = acting.get()
    if now is None or app_settings.raw("ACCOUNT_DATABASE") is None:
        return (pk,)
    return (pk, now.alias)


def _as_acting(callback: Callable[[], None]) -> Callable[[], None]:
    """``callback``, run for the account acting now (its commit may come after the service's
    ``acting_for`` ended: the caller's own transaction on that database)."""
    now = acting.get()

    def run() -> None:
        token = acting.set(now)
        try:
            callback()
        finally:
            acting.reset(token)

    return run


#: per thread, (database alias, task name) → the keys gathered in the open transaction and the
#: commit callback that sends them
_gathering = threading.local()


def enqueue_gathered(
    name: str,
    key: Any,
    *,
    inline: Callable[[list[Any]], Any],
    on_failure: Callable[[Exception, list[Any]], None],
    args: tuple = (),
) -> None:
    """As :func:`enqueue`, for work that takes a list of keys: every key gathered in one
    transaction goes into one message, ``name(keys, *args)``, sent after it commits
    (in-process: ``inline(keys)``). A key of a rolled-back savepoint may ride along: the work
    must find nothing to do for it."""
    using = acting_database()
    connection = transaction.get_connection(using)
    gathered: dict[tuple[str | None, str, tuple], tuple[list[Any], Callable[[], None]]] = vars(
        _gathering
    ).setdefault("open", {})
    slot = (using, name, args)
    current = gathered.get(slot)
    if (
        current is not None
        and connection.in_atomic_block
        and any(entry[1] is current[1] for entry in connection.run_on_commit)
    ):
        current[0].append(key)
        return
    keys = [key]

    def dispatch() -> None:
        entry = gathered.get(slot)
        if entry is not None and entry[1] is callback:
            del gathered[slot]
        _dispatch(name, (keys, *args), lambda: inline(keys), lambda exc: on_failure(exc, keys))

    callback = _as_acting(dispatch)
    gathered[slot] = (keys, callback)
    transaction.on_commit(callback, using=using)


#: messages this process could not send, since it started (see :func:`failed_sends`)
_failed_sends = 0
_failed_sends_lock = threading.Lock()


def failed_sends() -> int:
    """How many task messages this process could not send so far (the broker did not answer):
    a command reads it before and after its work to tell whether a send failed meanwhile."""
    return _failed_sends


def _count_failed_send() -> None:
    global _failed_sends
    with _failed_sends_lock:
        _failed_sends += 1


def _dispatch(name, args, inline, on_failure, countdown: float = 0) -> None:
    current = mode()
    try:
        if current == "celery":
            _send(name, args, countdown)
        elif current == "django":
            _enqueue_django(name, args, countdown)
        else:
            inline()
        return
    except Exception as exc:
        if current != "inline":
            _count_failed_send()
        logger.warning(
            "plugipay %s %s failed (%s mode): %s: %s",
            name,
            args,
            current,
            type(exc).__name__,
            exc,
            extra={"task": name, "task_args": args, "tasks_mode": current},
        )
        discard_lost_connection(exc)  # what runs next in this request connects afresh
        failure = exc
    # Out of the ``except`` block: what recording the failure runs (a durable receiver, say)
    # raises errors of its own, not chained to this one.
    if on_failure is not None:
        _record(name, args, on_failure, failure)


def _record(
    name: str, args: tuple, on_failure: Callable[[Exception], None], exc: Exception
) -> None:
    try:
        on_failure(exc)
    except Exception as failure:
        discard_lost_connection(failure)
        logger.warning(
            "plugipay %s %s: its failure could not be recorded either (%s: %s); the sweeper "
            "takes it over after STRANDED_AFTER",
            name,
            args,
            type(failure).__name__,
            failure,
            extra={"task": name, "task_args": args},
        )


#: Celery's own default ``task_publish_retry_policy``: up to 0.6 s of retries, then kombu's
#: connection attempts, on every message a request sends while the broker is down
CELERY_DEFAULT_RETRY = {
    "max_retries": 3,
    "interval_start": 0,
    "interval_max": 1,
    "interval_step": 0.2,
}
#: What a message sent from a request retries instead, unless the project set its own policy:
#: once, at once. A message that still cannot be sent is marked, and the sweeper sends it, so
#: a broker outage does not add a second to every request.
PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0, "interval_max": 0.1, "interval_step": 0.1}


def publish_timeout() -> float:
    """Seconds a request waits for the broker to take a message (``PUBLISH_TIMEOUT``).

    A broker that accepts the connection and never answers (stuck, or cut off midway) would
    hold the request for as long as the connection lasts: past this, the message is given up
    as unsent (the sweeper sends it), and while a publish of this process has waited longer,
    the next messages are too, at once."""
    return app_settings.PUBLISH_TIMEOUT


class BrokerSilent(Exception):
    """The broker took no message within :func:`publish_timeout`."""


#: this process's publishes under way: their thread → when each began (``time.monotonic``)
_publishing: dict[threading.Thread, float] = {}
_publishing_lock = threading.Lock()


def _send(name: str, args: tuple, countdown: float = 0) -> None:
    from celery import current_app

    # The shared tasks are registered with every app: the AppConfig imports the tasks module.
    app = celery_app() or current_app
    options: dict[str, Any] = {"countdown": countdown} if countdown else {}
    if app.conf.task_publish_retry_policy == CELERY_DEFAULT_RETRY:
        options["retry_policy"] = PUBLISH_RETRY
    task = app.tasks[name]
    # Eagerly, the task runs here and now, in this thread's transaction; from a task, the
    # worker (not a request) waits, and Celery links the message to the task it sends from.
    if app.conf.task_always_eager or app.current_worker_task is not None:
        task.apply_async(args, **options)
        return
    _within_timeout(lambda: task.apply_async(args, **options))


def _within_timeout(publish: Callable[[], Any]) -> None:
    """``publish()`` in a thread of its own (with this one's context variables), waited for
    :func:`publish_timeout` at most: past it, :class:`BrokerSilent`; the publish goes on
    alone, and a message it then sends is one the sweeper would send again (the work runs
    once all the same). While any publish has waited longer, raise at once: requests sending
    at the same moment leave a waiting thread each, later ones none."""
    began, timeout = time.monotonic(), publish_timeout()
    context = contextvars.copy_context()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            context.run(publish)
        except BaseException as exc:  # noqa: BLE001 - raised again in the waiting thread
            failed.append(exc)
        finally:
            with _publishing_lock:
                _publishing.pop(threading.current_thread(), None)

    with _publishing_lock:
        # alive: a process forked while a publish waited inherits its entry, not its thread
        waited = (began - since for thread, since in _publishing.items() if thread.is_alive())
        if any(seconds > timeout for seconds in waited):
            raise BrokerSilent("an earlier message of this process still waits for the broker")
        thread = threading.Thread(target=run, name="plugipay-publish", daemon=True)
        _publishing[thread] = began
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise BrokerSilent(f"the broker took no message in {timeout:g} s")
    if failed:
        raise failed[0]


#: the one Django task, handed over by :mod:`django_plugipay.tasks` when it is imported (the
#: AppConfig imports it): this module never imports the tasks, which import the services
_django_task: list[Any] = []


_django_task_refused: list[Exception] = []


def use_django_task(task: Any) -> None:
    """Register the Django task that runs every piece of work by name."""
    _django_task[:] = [task]
    _django_task_refused.clear()


def refuse_django_task(exc: Exception) -> None:
    """The project's ``TASKS`` refused the app's task (no such backend alias, a queue it does
    not list): work does not go to ``django.tasks``, and a system check says why."""
    _django_task[:] = []
    _django_task_refused[:] = [exc]


def current_django_task() -> Any:
    """The app's Django task on ``PLUGIPAY["TASKS_BACKEND"]`` and ``["TASKS_QUEUE"]`` as they
    are now (the task is defined with them when the app loads; a test may change them since).
    Raises what the backend refuses it for (check ``E080`` says it at start-up)."""
    if not _django_task:
        if _django_task_refused:
            raise _django_task_refused[0]
        raise RuntimeError("django_plugipay.tasks is not imported: is the app installed?")
    task = _django_task[0]
    wanted = (app_settings.TASKS_BACKEND, app_settings.raw("TASKS_QUEUE"))
    if (task.backend, task.queue_name) != wanted:
        task = task.using(backend=wanted[0], queue_name=wanted[1])
    return task


def django_task_refusal() -> Exception | None:
    """Why the project's ``django.tasks`` backend refuses the app's task, or None."""
    try:
        current_django_task()
    except Exception as exc:  # noqa: BLE001 - what the backend said, for the check to say
        return exc
    return None


def _enqueue_django(name: str, args: tuple | list, countdown: float = 0, attempt: int = 0) -> None:
    """Send the one Django task for the work ``name`` (JSON-only arguments), held
    ``countdown`` seconds where the backend can; ``attempt``: the retries before this one."""
    task = current_django_task()
    if countdown and _can_defer():
        from django.utils import timezone

        task = task.using(run_after=timezone.now() + dt.timedelta(seconds=countdown))
    task.enqueue(name, list(args), *([attempt] if attempt else []))  # a first: two arguments


def _can_defer() -> bool:
    """Whether the Django task backend can hold a task until a given time (``run_after``)."""
    try:
        return bool(current_django_task().get_backend().supports_defer)
    except Exception:  # noqa: BLE001 - refused: nothing is sent to it anyway
        return False


# ── coalesced work: one message covers every row recorded in a short window ───────────


#: seconds: a process sends the work of :func:`enqueue_coalesced` at most twice per window
COALESCE_WINDOW = 0.25


class _Message:
    """One coalesced send: the keys of the rows that rely on it while it is under way."""

    def __init__(self, key: Any) -> None:
        self.relying = [key]
        self.sent = False


class _Coalescer:
    """Per task name and process: when the window is over, send at once and open a new
    window; within it, send one more message due at the window's end (which covers every row
    committed before then) and nothing else."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.window_end = float("-inf")
        self.trailing: _Message | None = None


_coalescers: dict[str, _Coalescer] = {}
_coalescers_lock = threading.Lock()


def enqueue_coalesced(
    name: str,
    key: Any,
    *,
    inline: Callable[[], Any],
    on_failure: Callable[[Exception, list[Any]], None],
) -> None:
    """After commit, make sure task ``name`` (no arguments: it takes whatever rows are
    waiting) runs after this commit, sending at most two messages per
    :data:`COALESCE_WINDOW` per process; in-process (no queue), run ``inline()``.

    A message sent earlier in the window and due at its end covers this commit, so nothing
    is sent for it. If a message that rows rely on cannot be sent, ``on_failure(exc, keys)``
    is called with every such row's ``key`` (recorded where the sweeper finds them) and the
    next commit sends again. Never raises into the caller. "This commit" is the acting
    account's database's (its own database under ``ACCOUNT_DATABASE``), as for :func:`enqueue`.
    """
    transaction.on_commit(
        _as_acting(lambda: _dispatch_coalesced(name, key, inline, on_failure)),
        using=acting_database(),
    )


def _dispatch_coalesced(name, key, inline, on_failure) -> None:
    current = mode()
    if current == "inline" or (current == "django" and not _can_defer()):
        # No queue to coalesce into (or no way to send a message due later): as enqueue.
        _dispatch(name, (), inline, lambda exc: on_failure(exc, [key]))
        return
    with _coalescers_lock:
        state = _coalescers.setdefault(name, _Coalescer())
    with state.lock:
        now = time.monotonic()
        if now >= state.window_end:
            state.window_end, state.trailing = now + COALESCE_WINDOW, None
            message, countdown = _Message(key), 0.0
        elif state.trailing is None:
            message = state.trailing = _Message(key)
            countdown = state.window_end - now
        else:
            if not state.trailing.sent:  # under way: if it fails, this row is reported too
                state.trailing.relying.append(key)
            return
    try:
        if current == "celery":
            _send(name, (), countdown)
        else:
            _enqueue_django(name, (), countdown)
    except Exception as exc:
        _count_failed_send()
        with state.lock:
            keys, message.relying = message.relying, []
            state.window_end = float("-inf")  # the next commit sends again
            if state.trailing is message:
                state.trailing = None
        logger.warning(
            "plugipay %s failed (%s mode, %s rows waiting): %s: %s",
            name,
            current,
            len(keys),
            type(exc).__name__,
            exc,
            extra={"task": name, "tasks_mode": current, "count": len(keys)},
        )
        discard_lost_connection(exc)
        failure = exc
    else:
        with state.lock:
            message.sent, message.relying = True, []
        return
    # out of the ``except`` block, as in :func:`_dispatch`
    _record(name, (), lambda error: on_failure(error, keys), failure)
