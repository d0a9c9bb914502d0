"""The one seam for background work: a Celery task, a Django task, or in-process.

Services never import :mod:`django_plugipay.tasks` (which imports the services); they hand this
module the task's name, its primitive arguments and the same work as an in-process callable.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction

from django_plugipay.conf import app_settings
from django_plugipay.context import acting_database
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
    candidates = [_state.default_app, getattr(_state._tls, "current_app", None)]
    candidates.extend(_state._get_active_apps())
    for app in candidates:
        if app is not None and not (app.main == "default" and not app.set_as_current):
            return app
    return None


def tasks_framework() -> Any | None:
    """Django's tasks framework: ``django.tasks`` (Django 6.0+), else the ``django_tasks``
    backport, else None."""
    for name in ("django.tasks", "django_tasks"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


#: Backends that do not queue: ``auto`` does not count them as "a queue is configured".
NOT_QUEUED = ("ImmediateBackend", "DummyBackend")


def task_backend() -> Any | None:
    """The project's default ``django.tasks`` backend when it queues work for a worker (the
    project set ``TASKS`` and its default is neither the immediate nor the dummy backend)."""
    from django.conf import settings

    framework = tasks_framework()
    if framework is None or not getattr(settings, "TASKS", None):
        return None
    backend = framework.task_backends[getattr(framework, "DEFAULT_TASK_BACKEND_ALIAS", "default")]
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
) -> None:
    """After the current transaction commits, send task ``name`` or run ``inline()``.

    Never raises into the caller (after commit, the caller's work is done and its response is
    due): if the broker cannot be reached or the in-process work fails, the error is logged as a
    warning and ``on_failure(exc)`` records it where staff and the sweeper will see it. If
    recording fails too (the database is gone), that is logged and the row's own state —
    an event still ``received``, a refund still ``requested`` — is what the sweeper finds.
    """
    transaction.on_commit(
        lambda: _dispatch(name, args, inline, on_failure), using=acting_database()
    )


def _dispatch(name, args, inline, on_failure) -> None:
    current = mode()
    try:
        if current == "celery":
            _send(name, args)
        elif current == "django":
            _enqueue_django(name, args)
        else:
            inline()
    except Exception as exc:
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
        if on_failure is not None:
            _record(name, args, on_failure, exc)


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


def _send(name: str, args: tuple) -> None:
    from celery import current_app

    # The shared tasks are registered with every app: the AppConfig imports the tasks module.
    app = celery_app() or current_app
    app.tasks[name].apply_async(args)


#: the one Django task, handed over by :mod:`django_plugipay.tasks` when it is imported (the
#: AppConfig imports it): this module never imports the tasks, which import the services
_django_task: list[Any] = []


def use_django_task(task: Any) -> None:
    """Register the Django task that runs every piece of work by name."""
    _django_task[:] = [task]


def _enqueue_django(name: str, args: tuple) -> None:
    # The one Django task runs every piece of work by name, with JSON-only arguments.
    if not _django_task:
        raise RuntimeError("django_plugipay.tasks is not imported: is the app installed?")
    _django_task[0].enqueue(name, list(args))
