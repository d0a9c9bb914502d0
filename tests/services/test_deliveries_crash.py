"""A process killed between the commit and its durable receiver's run loses nothing."""

import json
import os
import signal
import subprocess
import sys

import pytest
from django.db import connection

from django_plugipay import services, signals
from django_plugipay.models import Delivery
from django_plugipay.services import deliveries
from django_plugipay.testing import build_event, wait_for
from tests.services.conftest import ROOT


def shipped(path):
    if not path.exists():
        return []
    return path.read_text().split("\n")[:-1]


@pytest.fixture
def ship_log(tmp_path, monkeypatch):
    path = tmp_path / "shipped.log"
    monkeypatch.setenv("PLUGIPAY_SHIP_LOG", str(path))
    return path


@pytest.fixture
def receiver_here(ship_log):
    """This process knows the receiver too (a restarted web process would)."""
    from tests import durable_crash

    deliveries.durable_receiver(signals.payment_succeeded, name=durable_crash.NAME)(
        durable_crash.ship
    )
    yield
    deliveries.disconnect(signals.payment_succeeded, name=durable_crash.NAME)


#: The process that applies one event and dies: right after the commit, before its durable
#: receiver ran (a plain receiver connected first queues the kill ahead of the run), or in the
#: middle of the receiver's first run.
CHILD = """
import os, signal, sys
import django

django.setup()
from django.conf import settings
from django.db import transaction
from django_plugipay import services, signals
from django_plugipay.webhooks import parse_event

settings.PLUGIPAY = {**settings.PLUGIPAY, "DELIVERY_LEASE": 1}
when = os.environ["PLUGIPAY_CRASH"]
if when == "before-run":
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)
    signals.payment_succeeded.connect(
        lambda **kwargs: transaction.on_commit(die), weak=False, dispatch_uid="crash"
    )
import tests.durable_crash  # registers the durable receiver after the killer

services.process_event(parse_event(os.environ["PLUGIPAY_CRASH_EVENT"]), source="webhook")
"""


def apply_and_die(when, event):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PLUGIPAY_TEST_DB_NAME": connection.settings_dict["NAME"],
        "PLUGIPAY_CRASH_EVENT": json.dumps(event),
        "PLUGIPAY_CRASH": when,
    }
    env.pop("CELERY_BROKER_URL", None)  # the dying process runs its work in-process
    proc = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()


def payment_event(n=1):
    obj = {"id": f"pay_crash_{n}", "status": "succeeded", "amount": 50_000, "currency": "IDR"}
    return build_event("payment.succeeded", obj)


def test_killed_after_commit_before_the_run(postgres, ship_log, receiver_here):
    apply_and_die("before-run", payment_event())
    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and delivery.attempts == 0  # committed, never run
    assert shipped(ship_log) == []
    assert services.run_deliveries() == 1
    assert services.run_deliveries(force=True) == 0
    [line] = shipped(ship_log)
    assert line.split()[:3] == ["pay_crash_1", delivery.key, "1"]
    assert Delivery.objects.get().status == "succeeded"


def test_killed_while_the_receiver_runs(postgres, ship_log, receiver_here):
    apply_and_die("while-running", payment_event(2))
    delivery = Delivery.objects.get()
    assert delivery.status == "running" and delivery.attempts == 1
    # Nothing takes it over while its 1 s lease holds; after that, run_deliveries does.
    wait_for(lambda: services.run_deliveries() == 1, message="the lease to expire")
    [line] = shipped(ship_log)
    assert line.split()[:3] == ["pay_crash_2", delivery.key, "2"]
    assert services.run_deliveries(force=True) == 0


def test_the_worker_on_its_own_runs_it_once(postgres, ship_log, celery_beat_worker):
    apply_and_die("before-run", payment_event(3))
    wait_for(lambda: shipped(ship_log), timeout=60, message="beat's run_deliveries")
    # Beat keeps firing every second; the delivery never runs again.
    wait_for(
        lambda: Delivery.objects.filter(status="succeeded").exists(), message="the success mark"
    )
    count = celery_beat_worker.beats(3)
    assert count >= 3 and len(shipped(ship_log)) == 1
