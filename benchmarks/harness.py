"""The harness: paths, the benchmark database, gunicorn, a query counter and the machine."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "example_project")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
SECRET = "whsec_bench"
RESULTS = ROOT / "benchmarks" / "results"


def broker() -> str:
    return os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/14")


def server_env(processing: str) -> dict[str, str]:
    """The environment of a process serving the example shop (gunicorn or a Celery worker)."""
    env = {
        **os.environ,
        "BENCH_PROCESSING": processing,
        "PYTHONPATH": f"{ROOT}:{ROOT / 'example_project'}",
    }
    if processing == "celery":
        env["CELERY_BROKER_URL"] = broker()
    return env


def fresh_database() -> None:
    import psycopg

    name = os.environ.get("BENCH_DB", "plugipay_bench")
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def truncate() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("""TRUNCATE django_plugipay_refund, django_plugipay_payment,
            django_plugipay_checkoutsession, django_plugipay_customer,
            django_plugipay_webhookevent, django_plugipay_synccursor,
            bench_baseline_rawdelivery, bench_baseline_signalrecord CASCADE""")


def timed_reconcile():
    """Run ``reconcile()`` once, timed, its statements counted: ``(result, seconds, counter)``."""
    from django_plugipay.services import reconcile

    with QueryCounter() as counter:
        began = time.perf_counter()
        result = reconcile()
        seconds = time.perf_counter() - began
    return result, seconds, counter


def rotate(rounds: int, measurements: dict[str, Callable[[int], dict]]) -> dict[str, list[dict]]:
    """``rounds`` runs of each measurement, their order turned by one each round (a, b, c;
    b, c, a; …), each told its round: each one's results by name. A shared machine drifts
    within minutes: taking turns keeps the drift out of the comparison."""
    names = list(measurements)
    results: dict[str, list[dict]] = {name: [] for name in names}
    for n in range(rounds):
        for name in names[n % len(names) :] + names[: n % len(names)]:
            results[name].append(measurements[name](n))
    return results


def alternate(rounds: int, first: Callable[[int], dict], second: Callable[[int], dict]):
    """Two measurements by :func:`rotate` (first, second, then second, first, …): their
    results as two lists."""
    runs = rotate(rounds, {"first": first, "second": second})
    return runs["first"], runs["second"]


def median_run(runs: list[dict]) -> dict:
    """The run with the median events/s, and every run's rate (``runs_per_s``)."""
    median = dict(sorted(runs, key=lambda r: r["events_per_s"])[len(runs) // 2])
    median["runs_per_s"] = [r["events_per_s"] for r in runs]
    return median


def signal_figures(ledger: list[tuple[str, str]]) -> dict:
    """What an in-memory ledger holds against what a run from an empty database must have
    sent: one signal for each session completed, payment succeeded and refund succeeded."""
    import collections

    from django_plugipay.models import CheckoutSession, Payment, Refund

    expected = collections.Counter()
    for name, rows in (
        ("checkout_session_completed", CheckoutSession.objects.filter(status="completed")),
        ("payment_succeeded", Payment.objects.filter(status="succeeded")),
        ("refund_succeeded", Refund.objects.filter(status="succeeded")),
    ):
        expected.update((name, pk) for pk in rows.values_list("plugipay_id", flat=True))
    return {
        "signals": len(ledger),
        "signals_expected": sum(expected.values()),
        "signals_once": collections.Counter(ledger) == expected,
    }


def free_port() -> int:
    """A free loopback port: from ``BENCH_PORTS`` (``first-last``) when set, else any."""
    first, _, last = os.environ.get("BENCH_PORTS", "0-0").partition("-")
    for port in range(int(first), int(last or first) + 1):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise SystemExit(f"no free port in BENCH_PORTS={os.environ['BENCH_PORTS']}")


class Server:
    """The example shop (plus the baseline view) under gunicorn.

    ``threads`` above 1 makes gunicorn run gthread workers, so one request's database waits
    overlap another's Python work. ``config`` is what the workers report about themselves once
    booted (see ``gunicorn_conf.py``), not what was asked for.
    """

    def __init__(self, processing: str = "inline", workers: int = 2, threads: int = 8) -> None:
        self.port = free_port()
        self._reports = Path(tempfile.mkdtemp(prefix="plugipay-bench-"))
        env = {**server_env(processing), "BENCH_WORKER_REPORTS": str(self._reports)}
        self.proc = subprocess.Popen(
            [
                shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn",
                "benchmarks.wsgi",
                "-c",
                str(ROOT / "benchmarks" / "gunicorn_conf.py"),
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                "-b",
                f"127.0.0.1:{self.port}",
                "--log-level",
                "warning",
                "--backlog",
                "512",
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            reports = list(self._reports.glob("*.json"))
            if len(reports) >= workers:
                try:
                    urllib.request.urlopen(self.url + "/", timeout=2).close()  # noqa: S310
                except OSError:
                    time.sleep(0.2)
                    continue
                self.config = self._read(reports)
                return
            time.sleep(0.2)
        self.stop()
        raise SystemExit("gunicorn did not start")

    @staticmethod
    def _read(reports: list[Path]) -> dict:
        workers = [json.loads(path.read_text()) for path in reports]
        classes = sorted({w["worker_class"] for w in workers})
        threads = sorted({w["threads"] for w in workers})
        return {
            "workers": len(workers),
            "worker_class": ", ".join(classes),
            "threads": threads[0] if len(threads) == 1 else threads,
        }

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=20)
        shutil.rmtree(self._reports, ignore_errors=True)


def without_receivers():
    """Disconnect every receiver of the app's signals (the shop's and the bench's own: the
    merchant's queries, not the app's); return a function that reconnects them."""
    from django.dispatch import Signal

    from django_plugipay import signals

    saved = {sig: sig.receivers[:] for sig in vars(signals).values() if isinstance(sig, Signal)}
    for sig in saved:
        sig.receivers.clear()
        sig.sender_receivers_cache.clear()

    def restore() -> None:
        for sig, receivers in saved.items():
            sig.receivers[:] = receivers
            sig.sender_receivers_cache.clear()

    return restore


class QueryCounter:
    """Count every statement and transaction round trip on the default connection.

    ``statements`` are SQL statements other than transaction control; ``count`` adds the
    SAVEPOINT/RELEASE/ROLLBACK TO statements Django executes; ``round_trips`` adds what the
    driver sends outside ``execute``: with autocommit off, psycopg opens a transaction with
    ``BEGIN`` before its first statement and ends it with ``COMMIT`` or ``ROLLBACK``, a round
    trip each, which a wrapper around ``execute`` never sees. Counted per commit or rollback
    of a transaction that ran a statement; where the backend sends ``BEGIN`` through
    ``execute`` (SQLite), it is counted once, there. (No 9,000-query logging cap.)
    """

    CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")

    def __init__(self) -> None:
        self.count = 0
        self.statements = 0
        self.transactions = 0
        self._unseen = 0  # BEGIN and COMMIT/ROLLBACK sent by the driver outside execute
        self._open = self._begun = False

    @property
    def round_trips(self) -> int:
        return self.count + self._unseen

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        keyword = sql.lstrip().upper()
        if not keyword.startswith(self.CONTROL):
            self.statements += 1
        if keyword.startswith("BEGIN"):
            self._begun = True
        if not context["connection"].get_autocommit():
            self._open = True
        return execute(sql, params, many, context)

    def _ended(self, end):
        def wrapped():
            if self._open:
                self.transactions += 1
                self._unseen += 1 if self._begun else 2
                self._open = self._begun = False
            return end()

        return wrapped

    def __enter__(self):
        from django.db import connections

        connection = self._connection = connections["default"]
        self._saved = connection.__dict__.get("_commit"), connection.__dict__.get("_rollback")
        connection._commit = self._ended(connection._commit)
        connection._rollback = self._ended(connection._rollback)
        self._cm = connection.execute_wrapper(self)
        self._cm.__enter__()
        return self

    def __exit__(self, *exc_info):
        self._cm.__exit__(*exc_info)
        for name, saved in zip(("_commit", "_rollback"), self._saved, strict=True):
            if saved is None:
                vars(self._connection).pop(name, None)
            else:
                setattr(self._connection, name, saved)


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        memory_gib = round(int(memory) / 1024 / 1024, 1)
    except OSError:
        memory_gib = None
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    import django

    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": memory_gib,
        "python": platform.python_version(),
        "django": django.get_version(),
        "postgresql": pg,
        "os": platform.platform(),
    }


@dataclasses.dataclass(frozen=True)
class Scale:
    """How much each suite does: the full run's counts, or ``quick()``'s to prove the harness."""

    events: int = 5000
    senders: int = 16
    #: saturated runs of the baseline and of the app's webhook each (inline, and queued
    #: acceptance), and runs of each reconciliation with the baseline, taking turns: the
    #: median run is reported
    rounds: int = 3
    workers: int = 2
    threads: int = 8
    paced_events: int = 600
    paced_runs: int = 3
    pause: float = 5.0
    query_sample: int = 400
    cost_events: int = 1000
    versus_events: int = 2000
    versus_rounds: int = 3
    reconcile_events: int = 10_000
    reconcile_small: int = 2000
    admin_rows: int = 100_000
    sandbox_seconds: float = 4.0
    sandbox_runs: int = 3
    quick: bool = False

    @classmethod
    def quick_run(cls, **overrides) -> Scale:
        counts = {
            "events": 300,
            "senders": 4,
            "rounds": 2,
            "paced_events": 100,
            "pause": 1.0,
            "query_sample": 60,
            "cost_events": 60,
            "versus_events": 120,
            "versus_rounds": 1,
            "reconcile_events": 300,
            "reconcile_small": 100,
            "admin_rows": 2000,
            "sandbox_seconds": 1.0,
            "sandbox_runs": 1,
            "quick": True,
        }
        return cls(**{**counts, **overrides})
