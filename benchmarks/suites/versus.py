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


class ChildFailed(Exception):
    """A child process could not measure its tree."""


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
        capture_output=True,
        text=True,
    )
    if done.returncode:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])
        raise ChildFailed(f"the child measuring {tree.name} exited {done.returncode}: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(count: int, rounds: int = 3, before: str | None = None) -> dict:
    from benchmarks.harness import ROOT
    from benchmarks.load import make_events

    before = before or os.environ.get("BENCH_BEFORE", BEFORE)
    with tempfile.TemporaryDirectory(prefix="plugipay-versus-") as scratch:
        old = Path(scratch) / "before"
        trees = {"before": (old, "plugipay_versus_before"), "now": (ROOT, "plugipay_versus_now")}
        measured: dict[str, list[dict]] = {"before": [], "now": []}
        try:
            _extract(before, ROOT, old)
            warm, _ = make_events(80, "vw")  # duplicates and refunds among them too
            bodies, _ = make_events(count, "vs")
            events_file = Path(scratch) / "events.json"
            events_file.write_text(
                json.dumps(
                    {"warm": [b.decode() for b in warm], "measured": [b.decode() for b in bodies]}
                )
            )
            for i in range(rounds):  # old first, then new first, and so on
                for name in ("before", "now") if i % 2 == 0 else ("now", "before"):
                    measured[name].append(_child(*trees[name], events_file))
        except (OSError, subprocess.CalledProcessError, ChildFailed) as exc:
            detail = getattr(exc, "stderr", None)
            reason = detail.decode(errors="replace").strip() if isinstance(detail, bytes) else ""
            return {"before": before, "error": reason or str(exc)}
    return _summary(before, len(bodies), measured)


def _summary(before: str, events: int, measured: dict[str, list[dict]]) -> dict:
    """Medians per tree and row, and the ratios of this tree to the earlier one (raw values:
    the report rounds). The ratios are given only when both trees stored the same outcome."""
    outcomes = {
        json.dumps(m["outcome"], sort_keys=True) for runs in measured.values() for m in runs
    }
    result: dict = {
        "before": before,
        "events": events,
        "rounds": len(measured["now"]),
        "outcome": measured["now"][0]["outcome"],
        "same_outcome": len(outcomes) == 1,
    }
    for row in ROWS:
        pair: dict = {}
        for name in ("before", "now"):
            runs = [m[row] for m in measured[name]]
            pair[name] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        if result["same_outcome"]:
            old, new = pair["before"], pair["now"]
            pair["python_cpu_ratio"] = new["python_cpu_ms"] / old["python_cpu_ms"]
            pair["cpu_ratio"] = (new["python_cpu_ms"] + new["postgres_cpu_ms"]) / (
                old["python_cpu_ms"] + old["postgres_cpu_ms"]
            )
            pair["wall_ratio"] = new["wall_ms"] / old["wall_ms"]
            pair["python_cpu_ratios"] = [
                n[row]["python_cpu_ms"] / o[row]["python_cpu_ms"]
                for o, n in zip(measured["before"], measured["now"], strict=True)
            ]
        result[row] = pair
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
    from collections import Counter

    from django.conf import settings
    from django.dispatch import Signal
    from django.test import Client

    import django_plugipay
    from django_plugipay import signals
    from django_plugipay.models import Payment, Refund, WebhookEvent
    from django_plugipay.webhooks import sign_payload

    if not Path(django_plugipay.__file__).resolve().is_relative_to(Path.cwd().resolve()):
        raise SystemExit(f"imported {django_plugipay.__file__}, not the package of {Path.cwd()}")
    settings.ALLOWED_HOSTS = ["localhost"]
    client = Client(HTTP_HOST="localhost")
    secret = settings.PLUGIPAY["WEBHOOK_SECRETS"][0]
    events = json.loads(Path(events_file).read_text())
    warm = [b.encode() for b in events["warm"]]
    bodies = [b.encode() for b in events["measured"]]
    half = len(bodies) // 2
    answers: Counter = Counter()

    def post(body: bytes) -> None:
        response = client.post(
            "/plugipay/webhook/",
            body,
            content_type="application/json",
            HTTP_X_PLUGIPAY_SIGNATURE=sign_payload(body, secret),
        )
        answers[response.status_code] += 1
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
    outcome = {
        "answers": {str(code): n for code, n in sorted(answers.items())},
        "events": dict(Counter(WebhookEvent.objects.values_list("status", flat=True))),
        "payments": dict(Counter(Payment.objects.values_list("status", flat=True))),
        "refunds": dict(Counter(Refund.objects.values_list("status", flat=True))),
    }
    print(json.dumps({"no_receivers": no_receivers, "receivers": receivers, "outcome": outcome}))


if __name__ == "__main__":
    _main(sys.argv[1])
