"""Faults on PostgreSQL, Redis and a real Celery worker: nothing lost, doubled or stuck.

Every scenario ends with the automatic healing only (Plugipay's own redelivery schedule, task
retries, the sweeper); no command is run. It then audits what the sandbox sent against what the
database holds: every event recorded and applied (0 lost, 0 stuck), every transition signal
committed once (0 doubled), and no answer claiming a record that does not exist.

The database is never restarted (other suites share the server): this test database's own
connections are killed with ``pg_terminate_backend``, which fails them exactly as a restart
does (``57P01`` AdminShutdown). Redis is a private ``redis-server`` on a free port, stopped and
started at will.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Callable

import pytest
from celery import Celery, _state
from django.db import connection
from django.utils import timezone

from django_plugipay.admin import tokens
from django_plugipay.models import EventStatus, Refund, WebhookEvent
from django_plugipay.services import sweeper
from django_plugipay.testing import wait_for
from tests.factories import paid_sessions
from tests.services.conftest import Worker, missing, worker_env
from tests.test_admin import CHANGELIST, staff

SESSIONS = 8
#: seconds the sweeper waits before taking over an event whose task was sent (test value)
STRANDED_AFTER = 2.0
#: what the figures in docs/explanation/faults.md are printed from (``pytest -s``)
FIGURES: dict[str, dict] = {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Killer:
    """Terminates every other backend of this test database (never its own)."""

    def __init__(self, spare_own: bool = False) -> None:
        settings = connection.settings_dict
        import psycopg  # the services group's: the default suite only collects this module

        self.conn = psycopg.connect(
            host=settings["HOST"] or "127.0.0.1",
            port=settings["PORT"] or 5432,
            user=settings["USER"],
            password=settings["PASSWORD"] or None,
            dbname=settings["NAME"],
            autocommit=True,
        )
        self.spare = None
        if spare_own:  # the test thread's own connection (it audits afterwards)
            connection.ensure_connection()
            self.spare = connection.connection.info.backend_pid
        self.killed = 0

    def kill_once(self) -> None:
        rows = self.conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
            "current_database() AND pid <> pg_backend_pid() AND pid IS DISTINCT FROM %s",
            [self.spare],
        ).fetchall()
        self.killed += sum(1 for (done,) in rows if done)

    def recorded(self) -> int:
        return self.conn.execute("SELECT count(*) FROM django_plugipay_webhookevent").fetchone()[0]

    def on_each_record(self) -> Callable[[], None]:
        """In a background thread, kill every other backend each time one more event has been
        recorded (mid-ingestion, wherever the next one is); call the result to stop and join."""
        stop = threading.Event()

        def run():
            seen = self.recorded()
            while not stop.is_set():
                wait_for(lambda seen=seen: stop.is_set() or self.recorded() > seen, interval=0.01)
                seen = self.recorded()
                self.kill_once()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()

        def finish() -> None:
            stop.set()
            thread.join()
            self.conn.close()

        return finish


class Redis:
    """A private redis-server on a free loopback port (never the shared one)."""

    def __init__(self, directory) -> None:
        if shutil.which("redis-server") is None:
            missing("needs redis-server")
        self.port, self.dir, self.proc = free_port(), directory, None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
            + ["--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.up, timeout=10, interval=0.1, message="redis-server to start")

    def up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class PrivateWorker(Worker):
    """The suite's worker, on the private Redis (it answers the ping there)."""

    def __init__(self, env, log_path, app) -> None:
        super().__init__(env, log_path)
        self.app = app

    def ready(self) -> bool:
        return bool(self.app.control.ping(destination=[self.name], timeout=0.5))


@pytest.fixture
def private_redis(tmp_path):
    redis = Redis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def celery_on(
    private_redis, postgres, plugipay_sandbox, signal_log, tmp_path, settings, monkeypatch
):
    """Celery mode on the private Redis: this process sends, a real worker applies."""
    queue = f"plugipay-faults-{os.getpid()}"
    monkeypatch.setenv("CELERY_BROKER_URL", private_redis.url)  # Celery prefers it to conf
    saved = (_state.default_app, getattr(_state._tls, "current_app", None))
    app = Celery("faults", set_as_current=True)
    app.conf.update(
        broker_url=private_redis.url,
        task_default_queue=queue,
        broker_connection_timeout=1,
        broker_connection_retry=False,
        broker_transport_options={"max_retries": 0},  # a web process fails fast, never waits
        task_publish_retry=False,
    )
    app.set_default()
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "WEBHOOK_PROCESSING": "celery",
        "TASKS": "celery",
        "STRANDED_AFTER": STRANDED_AFTER,
    }
    env = worker_env(
        plugipay_sandbox,
        signal_log,
        queue,
        private_redis.url,
        PLUGIPAY_STRANDED_AFTER=str(STRANDED_AFTER),
    )
    worker = PrivateWorker(env, tmp_path / "worker.log", app)
    try:
        worker.start()
        yield worker
    finally:
        worker.stop()
        _state._deregister_app(app)
        _state.default_app, _state._tls.current_app = saved


@pytest.fixture
def inline(postgres, plugipay_sandbox, settings):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "TASKS": "inline", "STRANDED_AFTER": STRANDED_AFTER}


@pytest.fixture(autouse=True)
def sweep_unthrottled(monkeypatch):
    """Each test starts with the in-process trigger armed (it is per process, not per test)."""
    monkeypatch.setattr(sweeper, "_last_sweep", float("-inf"))


def heal(sandbox, rounds: int = 6) -> None:
    """Plugipay's redelivery schedule, nothing else: retry what failed until nothing is due."""
    for _ in range(rounds):
        if not sandbox.retry_deliveries():
            return


def applied(sandbox) -> bool:
    ids = [event["id"] for event in sandbox.state()["events"]]
    done = WebhookEvent.objects.filter(
        event_id__in=ids, status__in=(EventStatus.PROCESSED, EventStatus.IGNORED)
    )
    return done.count() == len(ids)


def succeeded(signal_log) -> int:
    return sum(1 for name, _ in signal_log.committed() if name == "payment_succeeded")


def audit(name: str, sandbox, signal_log, **figures) -> dict:
    """0 lost, 0 stuck, 0 doubled, 0 answers claiming a record that does not exist."""
    state = sandbox.state()
    paid = sum(1 for e in state["events"] if e["kind"] == "checkout_session.completed")
    # A worker appends its signals to the log after its commit, so the rows can be visible a
    # moment before the lines are written: wait for them (a doubled line shows up all the same).
    with contextlib.suppress(AssertionError):
        wait_for(lambda: succeeded(signal_log) >= paid, timeout=15, interval=0.05)
    ids = {event["id"] for event in state["events"]}
    rows = dict(WebhookEvent.objects.filter(event_id__in=ids).values_list("event_id", "status"))
    lost = ids - set(rows)
    stuck = {i for i, status in rows.items() if status not in ("processed", "ignored")}
    transitions = Counter(item for item in signal_log.committed() if item[0] != "webhook_received")
    doubled = {item: n for item, n in transitions.items() if n > 1}
    codes: Counter = Counter()
    claims = set()
    for delivery in state["deliveries"]:
        for attempt in delivery["attemptLog"]:
            codes[attempt["responseCode"]] += 1
            body = attempt.get("responseBody") or ""
            if (attempt["responseCode"] or 0) < 300 or "was recorded" in body:
                claims.add(delivery["eventId"])
    false_claims = claims - set(rows)
    report = {
        "events": len(ids),
        "lost": len(lost),
        "stuck": len(stuck),
        "doubled": len(doubled),
        "false claims": len(false_claims),
        "payment_succeeded": Counter(n for n, _ in transitions)["payment_succeeded"],
        "answers": dict(sorted((str(k), v) for k, v in codes.items())),
        **figures,
    }
    FIGURES[name] = report
    print(f"\nfaults {name}: {report}")
    assert (lost, stuck, doubled, false_claims) == (set(), set(), {}, set()), report
    assert report["payment_succeeded"] == paid
    return report


@pytest.mark.parametrize("mode", ["inline", "celery_on"])
def test_connections_killed_mid_ingestion(request, mode, plugipay_sandbox, signal_log):
    request.getfixturevalue(mode)
    paid_sessions(plugipay_sandbox, SESSIONS)
    killer = Killer(spare_own=True)  # the web threads' and the worker's connections die
    stop = killer.on_each_record()
    plugipay_sandbox.release()
    stop()
    heal(plugipay_sandbox)
    wait_for(lambda: applied(plugipay_sandbox), timeout=60, message="the healing")
    audit(
        f"{mode.removesuffix('_on')}, connections killed",
        plugipay_sandbox,
        signal_log,
        kills=killer.killed,
    )
    assert killer.killed > 0


def test_redis_stopped_then_started(celery_on, private_redis, plugipay_sandbox, signal_log):
    private_redis.stop()
    paid_sessions(plugipay_sandbox, 4)
    plugipay_sandbox.release()  # every delivery answered: recorded, its task not sent
    stranded = WebhookEvent.objects.filter(status=EventStatus.RECEIVED, queued_at=None).count()
    assert stranded > 0
    private_redis.start()  # the worker reconnects by itself
    # The next delivery arms the sweeper; no command is run.
    paid_sessions(plugipay_sandbox, 1)
    plugipay_sandbox.release()
    wait_for(lambda: applied(plugipay_sandbox), timeout=60, message="the sweeper to re-queue")
    audit("redis stopped", plugipay_sandbox, signal_log, stranded=stranded)


def test_worker_sigkilled_mid_drain(celery_on, private_redis, plugipay_sandbox, signal_log):
    celery_on.stop()
    paid_sessions(plugipay_sandbox, SESSIONS)
    plugipay_sandbox.release()  # all recorded and queued; nobody consumes them yet
    celery_on.start()
    wait_for(
        lambda: WebhookEvent.objects.filter(status=EventStatus.PROCESSED).exists(),
        timeout=30,
        interval=0.02,
        message="the worker to start draining",
    )
    celery_on.kill()
    left = WebhookEvent.objects.filter(status=EventStatus.RECEIVED).count()
    # Its messages are gone too (the broker lost them, or they sit unacked for an hour).
    subprocess.run(
        ["redis-cli", "-p", str(private_redis.port), "FLUSHALL"], check=True, capture_output=True
    )
    celery_on.start()
    # The lease the sweeper gives a sent task before it takes over.
    lease = dt.timedelta(seconds=STRANDED_AFTER)
    wait_for(
        lambda: not WebhookEvent.objects.filter(queued_at__gt=timezone.now() - lease).exists(),
        message="the lease of the lost tasks to run out",
    )
    paid_sessions(plugipay_sandbox, 1)  # the next delivery arms the sweeper
    plugipay_sandbox.release()
    wait_for(lambda: applied(plugipay_sandbox), timeout=60, message="the sweeper to take over")
    audit("worker killed", plugipay_sandbox, signal_log, left_received=left)


def test_refund_in_flight_while_connections_are_killed_then_resubmitted(
    inline, plugipay_sandbox, client
):
    payment = plugipay_sandbox.paid_payment(20_000)
    client.force_login(staff("refund_payment"))
    data = {"action": "refund_payments", "_selected_action": [payment.pk]}
    token = client.post(CHANGELIST, data).context["token"]
    confirm = {**data, "post": "yes", "amount": "8000", "reason": "duplicate", tokens.FIELD: token}
    # Plugipay takes 1 s to answer; meanwhile every connection of the database dies, the
    # request's own included (as in a restart of PostgreSQL).
    plugipay_sandbox.fault("delay", path_prefix="/api/v1/refunds", delay=1.0)
    plugipay_sandbox.hold()  # no webhook may link the refund: the request itself must
    killer = Killer()

    def kill_while_at_plugipay():
        wait_for(
            lambda: plugipay_sandbox.state()["faults"] == [],
            timeout=30,
            interval=0.01,
            message="the refund to reach the sandbox",
        )
        killer.kill_once()  # the request's connection waits, idle, for Plugipay's answer
        killer.conn.close()

    kills = threading.Thread(target=kill_while_at_plugipay, daemon=True)
    kills.start()
    first = client.post(CHANGELIST, confirm, follow=True)
    kills.join()
    again = client.post(CHANGELIST, confirm, follow=True)  # staff confirm the form again
    assert first.status_code == 200 and again.status_code == 200
    assert "Requested 1 refund; it is on its way to Plugipay." in first.content.decode()
    assert "already requested from this page" in again.content.decode()
    refunds = plugipay_sandbox.state()["refunds"]
    assert [r["amount"] for r in refunds] == [8000]  # exactly one refund at Plugipay
    refund = Refund.objects.get()
    assert refund.plugipay_id == refunds[0]["id"] and refund.amount == 8000
    assert killer.killed > 0
    FIGURES["refund, connections killed"] = {"refunds at Plugipay": 1, "kills": killer.killed}
