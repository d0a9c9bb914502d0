"""This tree's inline webhook path beside the per-event design it replaced, in one run.

The earlier design is the package as it was when the apply engine's redesign began (commit
``BEFORE``, or ``BENCH_BEFORE``), extracted with ``git archive`` with its example shop and
benchmark settings. Each round runs one child process per tree, alternating, each on its own
fresh PostgreSQL database migrated by its own migrations: the child posts the same signed
events (the ingestion mix, generated here once) to its own webhook view through Django's test
client, in-process, with every django-plugipay signal receiver disconnected and then with the
shop's receivers connected, and reports the CPU each event cost this Python process and its
PostgreSQL backend. The medians of the rounds are compared.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

#: the last commit of the per-event design (the redesign's first commit came after it)
BEFORE = "476065f"
TREES = ("django_plugipay", "example_project", "benchmarks")
ROWS = ("no_receivers", "receivers")


def _extract(commit: str, root: Path, into: Path) -> None:
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", "--format=tar", commit, *TREES],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def _child(tree: Path, database: str, events_file: Path) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": f"{tree}:{tree / 'example_project'}",
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "BENCH_DB": database,
    }
    done = subprocess.run(
        [sys.executable, __file__, str(events_file)],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(count: int, rounds: int = 3, before: str | None = None) -> dict:
    from benchmarks.harness import ROOT
    from benchmarks.load import make_events

    before = before or os.environ.get("BENCH_BEFORE", BEFORE)
    with tempfile.TemporaryDirectory(prefix="plugipay-versus-") as scratch:
        old = Path(scratch) / "before"
        try:
            _extract(before, ROOT, old)
        except subprocess.CalledProcessError as exc:  # a shallow clone, an unknown commit
            return {"before": before, "error": exc.stderr.decode(errors="replace").strip()}
        warm, _ = make_events(60, "vw")
        bodies, _ = make_events(count, "vs")
        events_file = Path(scratch) / "events.json"
        events_file.write_text(json.dumps([b.decode() for b in [*warm, *bodies]]))
        measured: dict[str, list[dict]] = {"before": [], "now": []}
        for _ in range(rounds):
            measured["before"].append(_child(old, "plugipay_versus_before", events_file))
            measured["now"].append(_child(ROOT, "plugipay_versus_now", events_file))
    result: dict = {"before": before, "events": count, "rounds": rounds}
    for row in ROWS:
        for name in ("before", "now"):
            runs = [m[row] for m in measured[name]]
            result.setdefault(row, {})[name] = {
                key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]
            }
        pair = result[row]
        pair["python_cpu_ratio"] = round(
            pair["now"]["python_cpu_ms"] / pair["before"]["python_cpu_ms"], 2
        )
    return result


# ── the child: runs in the tree it measures ─────────────────────────────────────


def _fresh_database() -> None:
    import psycopg

    name = os.environ["BENCH_DB"]
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(post, bodies: list[bytes]) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend_pid = cursor.fetchone()[0]
    statements = 0

    def count(execute, sql, params, many, context):
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        backend, python, wall = _cpu(backend_pid), time.process_time(), time.perf_counter()
        for body in bodies:
            post(body)
        wall = time.perf_counter() - wall
        python = time.process_time() - python
        backend = _cpu(backend_pid) - backend
    n = len(bodies)
    return {
        "wall_ms": 1000 * wall / n,
        "python_cpu_ms": 1000 * python / n,
        "postgres_cpu_ms": 1000 * backend / n,
        "statements": statements / n,
    }


def _main(events_file: str) -> None:
    _fresh_database()
    from django.conf import settings
    from django.dispatch import Signal
    from django.test import Client

    from django_plugipay import signals
    from django_plugipay.webhooks import sign_payload

    settings.ALLOWED_HOSTS = ["localhost"]
    client = Client(HTTP_HOST="localhost")
    secret = settings.PLUGIPAY["WEBHOOK_SECRETS"][0]
    encoded = [b.encode() for b in json.loads(Path(events_file).read_text())]
    warm, bodies = encoded[:60], encoded[60:]
    half = len(bodies) // 2

    def post(body: bytes) -> None:
        response = client.post(
            "/plugipay/webhook/",
            body,
            content_type="application/json",
            HTTP_X_PLUGIPAY_SIGNATURE=sign_payload(body, secret),
        )
        if response.status_code >= 500:
            raise SystemExit(f"the webhook answered {response.status_code}")

    for body in warm:  # imports, caches and the connection, before anything is counted
        post(body)
    saved = {s: s.receivers[:] for s in vars(signals).values() if isinstance(s, Signal)}
    for signal in saved:
        signal.receivers.clear()
        signal.sender_receivers_cache.clear()
    try:
        no_receivers = _measure(post, bodies[:half])
    finally:
        for signal, receivers in saved.items():
            signal.receivers[:] = receivers
            signal.sender_receivers_cache.clear()
    receivers = _measure(post, bodies[half:])
    print(json.dumps({"no_receivers": no_receivers, "receivers": receivers}))


if __name__ == "__main__":
    _main(sys.argv[1])
