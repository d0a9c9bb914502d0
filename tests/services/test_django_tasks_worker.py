"""TASKS = "django": refunds through a real django-tasks-db ``db_worker`` process, on
PostgreSQL and on SQLite (a file: ``PLUGIPAY_SQLITE_TEST_FILE``, as ``make test-services`` sets);
a worker killed mid-task loses nothing that the periodic ``plugipay_sync`` recipe does not heal,
and Plugipay holds one refund."""

import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.db import connection

from django_plugipay import services
from django_plugipay.models import Refund
from django_plugipay.services import _queue
from django_plugipay.testing import wait_for
from tests.services.conftest import ROOT, ProcessGroup, missing

BACKEND = "django_tasks_db.DatabaseBackend"


class DbWorker(ProcessGroup):
    """`manage.py db_worker` in its own process group, sharing the test's database."""

    def __init__(self, env, log_path):
        self.env, self.log_path, self.proc = env, log_path, None

    def start(self):
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the worker
        command = ["db_worker", "--interval", "0.1", "--no-startup-delay", "--no-reload"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "django", *command, "-v", "3"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(
            lambda: "Starting worker" in self.log_path.read_text(errors="replace"),
            timeout=60,
            message="db_worker to start",
        )


@pytest.fixture
def shared_database(transactional_db):
    """A test database another process can open: PostgreSQL, or SQLite in a file."""
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        missing("needs PostgreSQL or PLUGIPAY_SQLITE_TEST_FILE: run `make test-services`")


@pytest.fixture
def db_worker(shared_database, plugipay_sandbox, settings, tmp_path):
    settings.TASKS = {"default": {"BACKEND": BACKEND}}
    # "django", not "auto": under `make test-services` this process has a Celery app too.
    settings.PLUGIPAY = {**settings.PLUGIPAY, "TASKS": "django"}
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PLUGIPAY_TASKS_BACKEND": BACKEND,
        "PLUGIPAY_BASE_URL": plugipay_sandbox.base_url,
        "PLUGIPAY_TEST_DB_NAME": connection.settings_dict["NAME"],
        "PLUGIPAY_MAX_RETRIES": "0",
        "PLUGIPAY_TIMEOUT": "3",
    }
    env.pop("CELERY_BROKER_URL", None)  # no Celery app there: TASKS = "auto" picks the backend
    worker = DbWorker(env, tmp_path / "db_worker.log")
    worker.start()
    yield worker
    worker.stop()


def settled(refund_pk):
    return lambda: Refund.objects.get(pk=refund_pk).status == "succeeded"


def test_refund_through_a_db_worker(plugipay_sandbox, db_worker):
    assert _queue.mode() == "django"
    payment = plugipay_sandbox.paid_payment()
    refund = services.refund_payment(payment=payment, amount=25_000, reason="duplicate")
    wait_for(settled(refund.pk), message="the db_worker to create the refund")
    assert len(plugipay_sandbox.state()["refunds"]) == 1


def test_db_worker_killed_mid_task_then_sync_sends_the_same_refund(plugipay_sandbox, db_worker):
    payment = plugipay_sandbox.paid_payment()
    # The sandbox commits the refund 2 s after the request arrives; the worker dies meanwhile.
    plugipay_sandbox.fault("delay", path_prefix="/api/v1/refunds", delay=2)
    plugipay_sandbox.hold()  # only our own retry can tell us about this refund
    refund = services.refund_payment(payment=payment, amount=7_000, reason="fraudulent")
    wait_for(
        lambda: plugipay_sandbox.state()["faults"] == [],
        message="the task's request to reach the sandbox",
    )
    db_worker.kill()
    wait_for(
        lambda: len(plugipay_sandbox.state()["refunds"]) == 1,
        timeout=10,
        message="the sandbox to commit the refund",
    )
    assert Refund.objects.get(pk=refund.pk).status == "requested"  # visible, not lost
    # django-tasks-db leaves a killed task RUNNING; the cron recipe (plugipay_sync) resends
    # the requested refund with its idempotency key.
    db_worker.start()
    call_command("plugipay_sync", verbosity=0)
    wait_for(settled(refund.pk), timeout=30, message="the healed refund")
    assert len(plugipay_sandbox.state()["refunds"]) == 1
    payment.refresh_from_db()
    assert payment.amount_refunded == 7_000
