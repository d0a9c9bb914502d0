"""``make bench``: measure webhook ingestion, reconciliation, the admin and the sandbox.

Writes ``benchmarks/results/latest.json`` and ``docs/benchmarks.md``. Needs PostgreSQL on
127.0.0.1:5432 and Redis on 127.0.0.1:6379 (for the Celery numbers). Everything runs on this
machine, sender and servers alike, so the figures are side by side, not absolute.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "example_project")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
SECRET = "whsec_bench"
BROKER = "redis://127.0.0.1:6379/14"
RESULTS = ROOT / "benchmarks" / "results"


# ── set-up ──────────────────────────────────────────────────────────────────────────


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """The example shop (plus the baseline view) under gunicorn: 2 workers, ``threads`` each
    (gthread when above 1, so one request's database waits overlap another's Python work)."""

    def __init__(self, processing: str = "inline", threads: int = 8) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "BENCH_PROCESSING": processing,
            "PYTHONPATH": f"{ROOT}:{ROOT / 'example_project'}",
        }
        if processing == "celery":
            env["CELERY_BROKER_URL"] = BROKER
        self.proc = subprocess.Popen(
            [
                shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn",
                "benchmarks.wsgi",
                "-w",
                "2",
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
            try:
                urllib.request.urlopen(self.url + "/", timeout=2).close()  # noqa: S310
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("gunicorn did not start")

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=20)


class QueryCounter:
    """Count every query on the default connection (no 9,000-query logging cap)."""

    CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")

    def __init__(self) -> None:
        self.count = 0
        self.statements = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        if not sql.lstrip().upper().startswith(self.CONTROL):
            self.statements += 1
        return execute(sql, params, many, context)

    def __enter__(self):
        from django.db import connection

        self._cm = connection.execute_wrapper(self)
        self._cm.__enter__()
        return self

    def __exit__(self, *exc_info):
        self._cm.__exit__(*exc_info)


# ── events and load ─────────────────────────────────────────────────────────────────


def make_events(count: int, tag: str) -> tuple[list[bytes], int]:
    """A realistic mix: per session completed + payment (in either order), a third refunded
    (created, succeeded); 10% of deliveries are duplicates. Returns (bodies, unique count)."""
    from django_plugipay.testing import build_event

    unique: list[dict] = []
    i = 0
    while len(unique) < int(count / 1.1):
        sid, pid, rid = f"cs_{tag}{i:07d}", f"pay_{tag}{i:07d}", f"rfd_{tag}{i:07d}"
        stamp = "2026-01-01T00:00:00Z"
        session = {
            "id": sid,
            "status": "completed",
            "amount": 150_000,
            "currency": "IDR",
            "paymentId": pid,
            "paymentMethod": "card",
            "mode": "test",
            "completedAt": stamp,
            "updatedAt": stamp,
            "metadata": {"n": str(i)},
        }
        payment = {
            "id": pid,
            "status": "succeeded",
            "amount": 150_000,
            "currency": "IDR",
            "checkoutSessionId": sid,
            "method": "card",
            "mode": "test",
        }
        pair = [
            build_event("checkout_session.completed", session),
            build_event("payment.succeeded", payment),
        ]
        if random.random() < 0.5:  # noqa: S311 - out of order
            pair.reverse()
        unique += pair
        if i % 3 == 0:
            refund = {
                "id": rid,
                "chargeId": pid,
                "amount": 50_000,
                "currency": "IDR",
                "mode": "test",
            }
            unique += [
                build_event(
                    "refund.created",
                    {**refund, "status": "pending", "updatedAt": "2026-01-01T00:01:00Z"},
                ),
                build_event(
                    "refund.succeeded",
                    {**refund, "status": "succeeded", "updatedAt": "2026-01-01T00:02:00Z"},
                ),
            ]
        i += 1
    deliveries = list(unique)
    for _ in range(count - len(deliveries)):
        position = random.randrange(len(deliveries))  # noqa: S311
        deliveries.insert(position + 1, deliveries[position])
    return [json.dumps(e, separators=(",", ":")).encode() for e in deliveries], len(unique)


def send(url: str, bodies: list[bytes], concurrency: int, rate: float | None = None):
    """POST each body (freshly signed) with ``concurrency`` senders; optionally paced."""
    import requests

    from django_plugipay.webhooks import sign_payload

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    cursor = iter(enumerate(bodies))
    local = threading.local()
    start = time.perf_counter()

    def worker() -> None:
        local.session = requests.Session()
        while True:
            with lock:
                item = next(cursor, None)
            if item is None:
                return
            index, body = item
            if rate:
                delay = start + index / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            headers = {
                "Content-Type": "application/json",
                "X-Plugipay-Signature": sign_payload(body, SECRET),
            }
            began = time.perf_counter()
            response = local.session.post(url, data=body, headers=headers, timeout=60)
            elapsed = time.perf_counter() - began
            with lock:
                latencies.append(elapsed)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    with ThreadPoolExecutor(concurrency) as pool:
        for _ in range(concurrency):
            pool.submit(worker)
    total = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1)

    return {
        "events": len(bodies),
        "seconds": round(total, 2),
        "events_per_s": round(len(bodies) / total, 1),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "statuses": statuses,
    }


def redeliver_failed(url: str, rounds: int = 3) -> int:
    """Send failed events again, as Plugipay retries them (a refund can race its payment)."""
    from django_plugipay.models import WebhookEvent

    sent = 0
    for _ in range(rounds):
        failed = [
            json.dumps(p, separators=(",", ":")).encode()
            for p in WebhookEvent.objects.filter(status="failed").values_list("payload", flat=True)
        ]
        if not failed:
            break
        send(url, failed, 4)
        sent += len(failed)
    return sent


def check_applied(unique: int) -> dict:
    from django.db.models import Count

    from benchmarks.baseline.models import SignalRecord
    from django_plugipay.models import WebhookEvent

    processed = WebhookEvent.objects.filter(status="processed").count()
    repeated = (
        SignalRecord.objects.values("signal", "object_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    return {
        "unique_events": unique,
        "events_processed": processed,
        "signals": SignalRecord.objects.count(),
        "signals_sent_twice": repeated,
        "every_event_applied": processed == unique,
        "every_signal_once": repeated == 0,
    }


def queries_per_event(sample: int) -> dict:
    """Statements per applied event, in-process, with the shop's and the bench's own signal
    receivers disconnected (they are the merchant's queries, not the app's). Transaction
    control (BEGIN, COMMIT, SAVEPOINT, RELEASE) is counted apart."""
    from django.dispatch import Signal

    from django_plugipay import signals
    from django_plugipay.services import ingest_webhook
    from django_plugipay.webhooks import sign_payload

    bodies, _unique = make_events(sample, "q")
    saved = {
        name: sig.receivers[:] for name, sig in vars(signals).items() if isinstance(sig, Signal)
    }
    for sig in (vars(signals)[name] for name in saved):
        sig.receivers.clear()
        sig.sender_receivers_cache.clear()
    seen, applied = set(), 0
    try:
        with QueryCounter() as counter:
            for body in bodies:
                ingest_webhook(body=body, signature=sign_payload(body, SECRET))
                if body not in seen:
                    seen.add(body)
                    applied += 1
    finally:
        for name, receivers in saved.items():
            vars(signals)[name].receivers[:] = receivers
            vars(signals)[name].sender_receivers_cache.clear()
    return {
        "statements": round(counter.statements / applied, 2),
        "transaction_control": round((counter.count - counter.statements) / applied, 2),
        "duplicate_deliveries_included": len(bodies) - applied,
    }


# ── the benchmarks ──────────────────────────────────────────────────────────────────


def ingestion(events: int, concurrency: int) -> dict:
    truncate()
    server = Server("inline")
    try:
        bodies, unique = make_events(events, "b")
        baseline = send(server.url + "/baseline/webhook/", bodies, concurrency)
        ours_bodies, ours_unique = make_events(events, "o")
        ours = send(server.url + "/plugipay/webhook/", ours_bodies, concurrency)
        ours["redelivered"] = redeliver_failed(server.url + "/plugipay/webhook/")
        check = check_applied(ours_unique)
        truncate()
        paced_runs = []
        for run in range(3):  # after a pause: the saturating run's backlog must not count
            time.sleep(5)
            paced_bodies, _ = make_events(600, f"p{run}")
            paced_runs.append(
                send(server.url + "/plugipay/webhook/", paced_bodies, concurrency, rate=100)
            )
        paced = sorted(paced_runs, key=lambda r: r["p99_ms"])[1]
        paced["p99_runs_ms"] = [r["p99_ms"] for r in paced_runs]
    finally:
        server.stop()
    truncate()
    return {
        "baseline": baseline,
        "ours": ours,
        "ratio": round(ours["events_per_s"] / baseline["events_per_s"], 2),
        "check": check,
        "paced_100_per_s": paced,
        "queries_per_applied_event": queries_per_event(400),
    }


def celery_ingestion(events: int, concurrency: int) -> dict:
    import redis

    from django_plugipay.models import WebhookEvent

    redis.Redis.from_url(BROKER).flushdb()
    truncate()
    server = Server("celery")
    try:
        bodies, unique = make_events(events, "c")
        ingest = send(server.url + "/plugipay/webhook/", bodies, concurrency)
    finally:
        server.stop()
    env = {
        **os.environ,
        "CELERY_BROKER_URL": BROKER,
        "BENCH_PROCESSING": "celery",
        "PYTHONPATH": f"{ROOT}:{ROOT / 'example_project'}",
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-c",
            "1",
            "-l",
            "warning",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    began = time.perf_counter()
    deadline = began + 600
    while time.perf_counter() < deadline:
        if WebhookEvent.objects.exclude(status__in=("processed", "ignored")).count() == 0:
            break
        time.sleep(0.25)
    drain = time.perf_counter() - began
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(timeout=30)
    check = check_applied(unique)
    truncate()
    return {
        "ingest": ingest,
        "drain_seconds": round(drain, 2),
        "drain_events_per_s": round(unique / drain, 1),
        "check": check,
    }


def reconciliation(count: int) -> dict:
    from django.conf import settings

    from django_plugipay.models import Payment
    from django_plugipay.services import reconcile
    from plugipay_sandbox import SandboxConfig, SandboxServer

    truncate()
    server = SandboxServer(SandboxConfig(port=0)).start()
    try:
        store = server.store
        with store.lock:
            while len(store.events) < count:
                session = store.create_session(
                    "test",
                    {
                        "amount": 99_000,
                        "currency": "IDR",
                        "methods": ["card"],
                        "successUrl": "https://a.test",
                        "cancelUrl": "https://b.test",
                    },
                )
                store.pay_card(session["id"], "4242424242424242")
        settings.PLUGIPAY = {**settings.PLUGIPAY, "BASE_URL": server.base_url}
        with QueryCounter() as counter:
            began = time.perf_counter()
            result = reconcile()
            seconds = time.perf_counter() - began
        payments = Payment.objects.count()
    finally:
        server.stop()
    truncate()
    return {
        "events": result.events_seen,
        "applied": result.events_applied,
        "failed": result.events_failed,
        "seconds": round(seconds, 2),
        "events_per_s": round(result.events_seen / seconds, 1),
        "queries_per_event": round(counter.statements / result.events_seen, 2),
        "transaction_control_per_event": round(
            (counter.count - counter.statements) / result.events_seen, 2
        ),
        "payments_created": payments,
    }


def admin_changelist(rows: int, repeats: int = 7) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from django_plugipay.models import Payment

    truncate()
    user_model = get_user_model()
    user_model.objects.filter(username="bench").delete()
    user = user_model.objects.create_superuser("bench", "b@example.com", "bench")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)

    def measure(label: str) -> dict:
        timings, queries = [], 0
        for _ in range(repeats):
            with CaptureQueriesContext(connection) as captured:
                began = time.perf_counter()
                response = client.get("/admin/django_plugipay/payment/")
                timings.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, response.status_code
            queries = len(captured)
        return {
            "rows": Payment.objects.count(),
            "queries": queries,
            "median_ms": round(statistics.median(timings), 1),
            "label": label,
        }

    def fill(up_to: int) -> None:
        have = Payment.objects.count()
        batch = [
            Payment(
                plugipay_id=f"pay_admin{n:08d}",
                amount=10_000 + n % 500,
                currency="IDR",
                status="succeeded",
                method="card",
            )
            for n in range(have, up_to)
        ]
        Payment.objects.bulk_create(batch, batch_size=5000)

    fill(1000)
    small = measure("1,000 payments")
    fill(rows)
    large = measure(f"{rows:,} payments")
    truncate()
    user.delete()
    return {
        "small": small,
        "large": large,
        "queries_constant": small["queries"] == large["queries"],
    }


def sandbox_reads(concurrency: int = 8, seconds: float = 4.0, runs: int = 3) -> dict:
    import requests

    from django_plugipay.client import PlugipayClient
    from plugipay_sandbox import SandboxConfig, SandboxServer

    server = SandboxServer(SandboxConfig(port=0)).start()
    try:
        client = PlugipayClient(
            key_id="pk_test_sandbox", secret="sk_test_sandbox", base_url=server.base_url
        )
        session = client.create_checkout_session(
            {
                "amount": 1000,
                "currency": "IDR",
                "methods": ["card"],
                "successUrl": "https://a.test",
                "cancelUrl": "https://b.test",
            }
        )
        path = f"/api/v1/checkout-sessions/{session['id']}"
        rates = []
        for _ in range(runs):
            done = [0] * concurrency
            stop = time.perf_counter() + seconds

            def reader(slot: int, done=done, stop=stop) -> None:
                http = requests.Session()
                while time.perf_counter() < stop:
                    headers = client._headers("GET", path, b"", None)
                    http.get(server.base_url + path, headers=headers, timeout=10)
                    done[slot] += 1

            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(reader, range(concurrency)))
            rates.append(sum(done) / seconds)
    finally:
        server.stop()
    return {
        "concurrency": concurrency,
        "runs_rps": [round(r, 1) for r in rates],
        "median_rps": round(statistics.median(rates), 1),
    }


# ── report ──────────────────────────────────────────────────────────────────────────


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


def markdown(results: dict, command: str) -> str:
    m, ing, cel = results["machine"], results["ingestion"], results.get("celery")
    rec, adm, sbx = results["reconciliation"], results["admin"], results["sandbox"]
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `{command}` on {results['date']}. Sender, servers, PostgreSQL and Redis "
        "all share one machine, so the figures are comparable side by side, not absolute.",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Python "
        f"{m['python']}, Django {m['django']}, PostgreSQL {m['postgresql']}.",
        "",
        "## Webhook ingestion",
        "",
        f"{ing['ours']['events']:,} signed events (sessions, payments, refunds; 10% duplicates, "
        "some out of order) POSTed by 16 concurrent senders to the example shop under gunicorn "
        "(2 workers, gthread with 8 threads each) on PostgreSQL, "
        '`WEBHOOK_PROCESSING = "inline"`, and the same load '
        "against a baseline view that only verifies the HMAC and inserts the raw body.",
        "",
        "| receiver | events/s | p50 ms | p95 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, run in (
        ("baseline (verify + insert)", ing["baseline"]),
        ("django-plugipay (inline)", ing["ours"]),
    ):
        lines.append(
            f"| {label} | {run['events_per_s']} | {run['p50_ms']} | {run['p95_ms']} "
            f"| {run['p99_ms']} |"
        )
    paced = ing["paced_100_per_s"]
    lines += [
        "",
        f"- Ratio ours / baseline: **{ing['ratio']}** (target ≥ 0.5).",
        f"- At 100 events/s offered (3 runs of 600 events, median by p99): p50 "
        f"{paced['p50_ms']} ms, p99 **{paced['p99_ms']} ms** (runs: "
        f"{paced.get('p99_runs_ms', [paced['p99_ms']])}; target < 50 ms).",
        f"- Database queries per applied event: **{ing['queries_per_applied_event']['statements']}"
        f"** SQL statements plus {ing['queries_per_applied_event']['transaction_control']} "
        "transaction-control statements (BEGIN/COMMIT/SAVEPOINT), measured in-process with the "
        "shop's receivers disconnected (target ≤ 8).",
        f"- Afterwards: {ing['check']['events_processed']:,} of {ing['check']['unique_events']:,}"
        f" unique events processed, {ing['check']['signals']:,} signals, "
        f"{ing['check']['signals_sent_twice']} sent twice; {ing['ours']['redelivered']} "
        "deliveries answered 500 (a refund racing its payment on another thread) and were "
        "applied when redelivered, as Plugipay redelivers.",
    ]
    if cel:
        lines += [
            "",
            '### With `WEBHOOK_PROCESSING = "celery"`',
            "",
            f"- Ingestion (record and enqueue on Redis): **{cel['ingest']['events_per_s']} "
            f"events/s**, p99 {cel['ingest']['p99_ms']} ms.",
            f"- Drain by one worker (concurrency 1): **{cel['drain_events_per_s']} events/s**; "
            f"every event applied: {cel['check']['every_event_applied']}, every signal once: "
            f"{cel['check']['every_signal_once']}.",
        ]
    lines += [
        "",
        "## Reconciliation",
        "",
        f"{rec['events']:,} events served by the sandbox, applied from an empty database: "
        f"**{rec['events_per_s']} events/s**, **{rec['queries_per_event']} SQL statements per "
        f"event** (+{rec['transaction_control_per_event']} transaction control) "
        f"(target ≥ 300 events/s). {rec['payments_created']:,} payments created. With "
        f"{results['reconciliation_2000']['events']:,} events: "
        f"{results['reconciliation_2000']['events_per_s']} events/s.",
        "",
        "## Admin",
        "",
        "| payment changelist | queries | median render ms |",
        "|---|---:|---:|",
        f"| {adm['small']['label']} | {adm['small']['queries']} | {adm['small']['median_ms']} |",
        f"| {adm['large']['label']} | {adm['large']['queries']} | {adm['large']['median_ms']} |",
        "",
        f"Queries constant in the number of rows: {adm['queries_constant']}.",
        "",
        "## Sandbox",
        "",
        f"`GET /api/v1/checkout-sessions/<id>` with {sbx['concurrency']} concurrent clients: "
        f"median **{sbx['median_rps']} requests/s** over runs {sbx['runs_rps']}.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--reconcile-events", type=int, default=10_000)
    parser.add_argument("--admin-rows", type=int, default=100_000)
    parser.add_argument("--skip-celery", action="store_true")
    parser.add_argument(
        "--report",
        action="store_true",
        help="only re-render docs/benchmarks.md from results/latest.json",
    )
    args = parser.parse_args()
    if args.report:
        saved = json.loads((RESULTS / "latest.json").read_text())
        (ROOT / "docs" / "benchmarks.md").write_text(
            markdown(saved, saved.get("command", "make bench"))
        )
        return 0
    random.seed(7)
    fresh_database()
    results: dict = {"date": time.strftime("%Y-%m-%d"), "machine": machine()}
    print("ingestion…", flush=True)
    results["ingestion"] = ingestion(args.events, args.concurrency)
    print(json.dumps(results["ingestion"]), flush=True)
    if not args.skip_celery:
        print("celery ingestion and drain…", flush=True)
        results["celery"] = celery_ingestion(args.events, args.concurrency)
    print("reconciliation…", flush=True)
    results["reconciliation"] = reconciliation(args.reconcile_events)
    print(json.dumps(results["reconciliation"]), flush=True)
    results["reconciliation_2000"] = reconciliation(2000)
    print("admin…", flush=True)
    results["admin"] = admin_changelist(args.admin_rows)
    print("sandbox…", flush=True)
    results["sandbox"] = sandbox_reads()
    command = (
        "make bench" if len(sys.argv) == 1 else "python benchmarks/run.py " + " ".join(sys.argv[1:])
    )
    results["command"] = command
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    report = markdown(results, command)
    (ROOT / "docs" / "benchmarks.md").write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
