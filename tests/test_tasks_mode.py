"""TASKS: in-process without a Celery app, Celery with one, no 500 when the broker is down."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from django_plugipay import services
from django_plugipay.checks import check_tasks
from django_plugipay.models import Refund
from django_plugipay.services import _queue
from django_plugipay.services.refunds import NOT_SUBMITTED
from tests.test_admin import CHANGELIST, staff

DOWN_BROKER = "redis://127.0.0.1:1/0"
REPO = Path(__file__).resolve().parent.parent


def request_refund(payment):
    return services.refund_payment(payment=payment, reason="requested_by_customer")


def test_without_a_celery_app_the_refund_is_sent_in_process(plugipay_sandbox, celery_runs):
    assert _queue.celery_app() is None and _queue.mode() == "inline"
    refund = request_refund(plugipay_sandbox.paid_payment(30_000))
    refund.refresh_from_db()
    assert refund.plugipay_id and refund.status in ("pending", "succeeded")
    assert refund.failure_code == "" and celery_runs == []


@pytest.mark.plugipay_worker  # the project's Celery app, not in-process
def test_auto_uses_the_project_celery_app(plugipay_sandbox, make_celery_app, celery_runs):
    payment = plugipay_sandbox.paid_payment(30_000)
    make_celery_app(task_always_eager=True)
    assert _queue.mode() == "celery"
    refund = request_refund(payment)
    refund.refresh_from_db()
    assert celery_runs == ["django_plugipay.create_refund"] and refund.plugipay_id


def test_celery_forced(plugipay_sandbox, settings, make_celery_app, celery_runs):
    payment = plugipay_sandbox.paid_payment(30_000)
    make_celery_app(task_always_eager=True)
    settings.PLUGIPAY = {**settings.PLUGIPAY, "TASKS": "celery"}
    request_refund(payment)
    assert celery_runs == ["django_plugipay.create_refund"]


def test_inline_forced_ignores_the_celery_app(
    plugipay_sandbox, settings, make_celery_app, celery_runs
):
    payment = plugipay_sandbox.paid_payment(30_000)
    make_celery_app(broker_url=DOWN_BROKER)
    settings.PLUGIPAY = {**settings.PLUGIPAY, "TASKS": "inline"}
    refund = request_refund(payment)
    refund.refresh_from_db()
    assert celery_runs == [] and refund.plugipay_id and refund.failure_code == ""


@pytest.mark.plugipay_worker  # the project's Celery app, not in-process
def test_broker_down_admin_refund_waits_visibly_then_sync_sends_it(
    plugipay_sandbox, client, make_celery_app
):
    payment = plugipay_sandbox.paid_payment(40_000)
    make_celery_app(broker_url=DOWN_BROKER, broker_connection_timeout=1)
    client.force_login(staff("refund_payment"))
    data = {"action": "refund_payments", "_selected_action": [payment.pk], "reason": "duplicate"}
    response = client.post(CHANGELIST, {**data, "amount": "40000", "post": "yes"})
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "Not sent to Plugipay yet" in page and "Requested 1 refund" not in page

    refund = Refund.objects.get()
    assert refund.status == "requested" and refund.plugipay_id is None
    assert refund.failure_code == NOT_SUBMITTED and "Connection refused" in refund.failure_message

    call_command("plugipay_sync", stdout=open("/dev/null", "w"))  # noqa: SIM115
    refund.refresh_from_db()
    assert refund.plugipay_id and refund.status == "succeeded"
    assert refund.failure_code == "" and refund.failure_message == ""
    # the same idempotency key went to Plugipay: one refund there
    assert len(plugipay_sandbox.state()["refunds"]) == 1


def test_in_process_failure_is_visible_too(plugipay_sandbox, settings):
    payment = plugipay_sandbox.paid_payment(30_000)
    plugipay_sandbox.fault("http_500", count=10, path_prefix="/api/v1/refunds")
    settings.PLUGIPAY = {**settings.PLUGIPAY, "MAX_RETRIES": 0}
    refund = request_refund(payment)
    refund.refresh_from_db()
    assert refund.status == "requested" and refund.failure_code == NOT_SUBMITTED


@pytest.mark.parametrize(
    ("tasks", "with_app", "expected"),
    [
        ("auto", False, "django_plugipay.I001"),
        ("inline", True, "django_plugipay.I001"),
        ("auto", True, "django_plugipay.I002"),
        ("celery", True, "django_plugipay.I002"),
        ("celery", False, "django_plugipay.W005"),
        ("sometimes", False, "django_plugipay.E011"),
    ],
)
def test_the_check_says_which_mode_is_in_force(
    settings, make_celery_app, tasks, with_app, expected
):
    if with_app:
        make_celery_app()
    settings.PLUGIPAY = {**settings.PLUGIPAY, "TASKS": tasks}
    assert [m.id for m in check_tasks()] == [expected]


DB_BACKEND = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def drain_db_queue():
    """What `manage.py db_worker --batch` does in production, here in-process."""
    call_command("db_worker", batch=True, startup_delay=False, reload=False, verbosity=0)


@pytest.mark.plugipay_worker  # the project's Celery app, not in-process
def test_auto_uses_a_queuing_django_tasks_backend(plugipay_sandbox, settings, celery_runs):
    from django_tasks_db.models import DBTaskResult

    payment = plugipay_sandbox.paid_payment(30_000)
    settings.TASKS = DB_BACKEND
    assert _queue.mode() == "django"
    refund = request_refund(payment)
    queued = DBTaskResult.objects.get()
    assert queued.task_path == "django_plugipay.tasks.run_task"
    assert queued.args_kwargs == {
        "args": ["django_plugipay.create_refund", [refund.pk]],
        "kwargs": {},
    }
    assert Refund.objects.get(pk=refund.pk).status == "requested"  # nothing ran in the request
    drain_db_queue()
    refund.refresh_from_db()
    assert refund.plugipay_id and refund.status in ("pending", "succeeded") and celery_runs == []


def test_django_tasks_retry_with_backoff_and_one_refund(plugipay_sandbox, settings):
    from django_tasks_db.models import DBTaskResult

    payment = plugipay_sandbox.paid_payment(30_000)
    settings.TASKS = DB_BACKEND
    settings.PLUGIPAY = {**settings.PLUGIPAY, "TASKS": "django", "MAX_RETRIES": 0}
    plugipay_sandbox.fault("http_429", path_prefix="/api/v1/refunds", retry_after=3600)
    refund = request_refund(payment)
    drain_db_queue()  # the first attempt fails; the app enqueues attempt 1 for later
    retry = DBTaskResult.objects.get(status="READY")
    assert retry.args_kwargs["args"] == ["django_plugipay.create_refund", [refund.pk], 1]
    assert retry.run_after is not None and retry.run_after > timezone.now()  # Retry-After
    assert Refund.objects.get(pk=refund.pk).status == "requested"  # still visible, waiting
    drain_db_queue()  # not due: nothing runs
    assert Refund.objects.get(pk=refund.pk).plugipay_id is None
    DBTaskResult.objects.filter(pk=retry.pk).update(run_after=timezone.now())  # backoff over
    drain_db_queue()
    refund.refresh_from_db()
    assert refund.plugipay_id and len(plugipay_sandbox.state()["refunds"]) == 1


def test_queued_webhook_events_are_applied_by_the_django_task(plugipay_sandbox, settings):
    from django_tasks_db.models import DBTaskResult

    from django_plugipay.models import Payment, WebhookEvent

    settings.TASKS = DB_BACKEND
    settings.PLUGIPAY = {**settings.PLUGIPAY, "TASKS": "django", "WEBHOOK_PROCESSING": "celery"}
    session = services.create_checkout_session(
        amount=30_000, currency="IDR", success_url="https://s.test/", cancel_url="https://s.test/"
    )
    plugipay_sandbox.pay(session)
    names = [r.args_kwargs["args"][0] for r in DBTaskResult.objects.all()]
    # one batch task covers the events recorded together: none is sent per event
    assert "django_plugipay.process_pending_events" in names
    assert "django_plugipay.process_webhook_event" not in names
    assert WebhookEvent.objects.filter(status="received").exists()  # recorded, not applied
    drain_db_queue()
    assert not WebhookEvent.objects.filter(status__in=("received", "failed")).exists()
    assert Payment.objects.filter(status="succeeded").count() == 1


@pytest.mark.parametrize("policy", [None, {"max_retries": 5, "interval_start": 1}])
def test_a_message_retries_once_at_once_unless_the_project_says_otherwise(
    make_celery_app, monkeypatch, policy
):
    """With the broker down, Celery's default publish retries add most of a second to every
    request that sends a message; the app retries once (the sweeper sends what is left). A
    project's own task_publish_retry_policy stands."""
    from django_plugipay.services import _queue

    app = make_celery_app(broker_url=DOWN_BROKER, task_always_eager=False)
    if policy is not None:
        app.conf.task_publish_retry_policy = policy
    sent = []
    task = app.tasks["django_plugipay.sweep"]
    monkeypatch.setattr(type(task), "apply_async", lambda self, args, **opts: sent.append(opts))
    _queue._send("django_plugipay.sweep", ())
    _queue._send("django_plugipay.sweep", (), countdown=5)
    expected = {} if policy is not None else {"retry_policy": _queue.PUBLISH_RETRY}
    assert sent == [expected, {**expected, "countdown": 5}]


def _started_with(tmp_path, extra: str) -> subprocess.CompletedProcess:
    """A fresh process set up with the suite's settings plus ``extra``, printing the app's
    system check ids and its task mode."""
    (tmp_path / "tasks_settings.py").write_text(
        "from tests.settings import *  # noqa: F403\n" + textwrap.dedent(extra)
    )
    script = (
        "import django; django.setup()\n"
        "from django.core.checks import run_checks\n"
        "from django_plugipay.services import _queue\n"
        "print(sorted(m.id for m in run_checks() if m.id.startswith('django_plugipay.')))\n"
        "print(_queue.mode())\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tasks_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
    }
    return subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("mode", "said", "runs"),
    [("inline", None, "inline"), ("auto", "W080", "inline"), ("django", "E080", "django")],
)
def test_a_tasks_backend_without_the_default_queue_still_starts(tmp_path, mode, said, runs):
    """A django.tasks backend listing its own QUEUES (without "default") does not stop the
    project from starting: with TASKS = "django" a check says the backend refuses the app's
    task and how to choose its queue (PLUGIPAY["TASKS_QUEUE"]); with "auto" it warns and
    the work runs in-process; with "inline" nothing is said."""
    pytest.importorskip("django_tasks_db")
    done = _started_with(
        tmp_path,
        f"""
        TASKS = {{"default": {{
            "BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["payments", "emails"],
        }}}}
        PLUGIPAY = {{**PLUGIPAY, "TASKS": {mode!r}}}
        """,
    )
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1]
    ids, current = done.stdout.splitlines()[-2:]
    assert (f"django_plugipay.{said}" in ids) if said else ("080" not in ids), ids
    assert current == (runs if mode != "django" else "django")


def test_the_apps_task_goes_to_the_queue_and_backend_chosen(tmp_path):
    """PLUGIPAY["TASKS_BACKEND"] and ["TASKS_QUEUE"] put the app's task on a backend alias
    other than "default" and a queue the backend lists: the work goes there (I031)."""
    pytest.importorskip("django_tasks_db")
    done = _started_with(
        tmp_path,
        """
        TASKS = {"jobs": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["payments"]}}
        PLUGIPAY = {**PLUGIPAY, "TASKS": "auto", "TASKS_BACKEND": "jobs", "TASKS_QUEUE": "payments"}
        """,
    )
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1]
    ids, current = done.stdout.splitlines()[-2:]
    assert "django_plugipay.I031" in ids and current == "django"
    from django_plugipay import tasks

    assert tasks.run_task.queue_name == "default"  # this process's settings: unchanged


def test_a_tasks_setting_without_a_default_backend_still_starts(tmp_path):
    """settings.TASKS naming no "default" backend, the app told to run work in-process:
    the project starts and the app says nothing about it."""
    pytest.importorskip("django_tasks_db")
    done = _started_with(
        tmp_path,
        """
        TASKS = {"jobs": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
        PLUGIPAY = {**PLUGIPAY, "TASKS": "inline"}
        """,
    )
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1]
    ids, current = done.stdout.splitlines()[-2:]
    assert "080" not in ids and current == "inline"


@pytest.mark.django_db(transaction=True)
def test_the_work_goes_to_the_backend_the_settings_name_now(plugipay_sandbox, settings):
    """``PLUGIPAY["TASKS_BACKEND"]`` changed after start-up (a test's settings): the work goes
    to the backend ``mode()`` chose by it, not to the one the task was defined with."""
    pytest.importorskip("django_tasks_db")
    from django_tasks_db.models import DBTaskResult

    payment = plugipay_sandbox.paid_payment(30_000)
    settings.TASKS = {
        "default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"},
        "jobs": {"BACKEND": "django_tasks_db.DatabaseBackend"},
    }
    settings.PLUGIPAY = {**settings.PLUGIPAY, "TASKS": "auto", "TASKS_BACKEND": "jobs"}
    assert _queue.mode() == "django"
    refund = request_refund(payment)
    assert Refund.objects.get(pk=refund.pk).status == "requested"
    assert list(DBTaskResult.objects.values_list("backend_name", flat=True)) == ["jobs"]
