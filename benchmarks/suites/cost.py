"""Where an event's time goes: one sender in this process, no concurrency, so the CPU of this
Python process and of its PostgreSQL backend can be read per event.

Under saturation the servers, PostgreSQL and the senders share the machine's cores, so the
throughput ratio follows the CPU each event costs. This suite measures that cost for the
baseline view and for django-plugipay (inline, with the shop's receivers and with every
receiver disconnected), and the in-process apply rate of recorded events (what a Celery worker
pays per event before Celery's own work).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time

from benchmarks.harness import SECRET, QueryCounter, truncate, without_receivers
from benchmarks.load import make_events
from benchmarks.sampler import Sampler


def _backend_cpu() -> float:
    """CPU seconds (user + system) used so far by this connection's PostgreSQL backend."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(step, items: list) -> dict:
    with QueryCounter() as counter:
        backend, python, wall = _backend_cpu(), time.process_time(), time.perf_counter()
        for item in items:
            step(item)
        wall = time.perf_counter() - wall
        python = time.process_time() - python
        backend = _backend_cpu() - backend
    n = len(items)
    return {
        "events": n,
        "wall_ms": round(1000 * wall / n, 2),
        "python_cpu_ms": round(1000 * python / n, 2),
        "postgres_cpu_ms": round(1000 * backend / n, 2),
        "statements": round(counter.statements / n, 2),
        "round_trips": round(counter.round_trips / n, 2),
        "events_per_s": round(n / wall, 1),
    }


def _profile(step, items: list) -> tuple[list[dict], int]:
    sampler = Sampler()
    sampler.run(lambda: [step(item) for item in items])
    return sampler.table(), sampler.samples


#: the production options ``docs/explanation/deployment.md`` recommends for psycopg 3
PREPARED = {"server_side_binding": True, "prepare_threshold": 5}


@contextlib.contextmanager
def _connection_options(options: dict):
    """Reconnect the default connection with ``options`` as its ``OPTIONS``, then restore."""
    from django.db import connection

    saved = connection.settings_dict.get("OPTIONS", {})
    connection.close()
    connection.settings_dict["OPTIONS"] = {**saved, **options}
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["OPTIONS"] = saved


def _psycopg3() -> bool:
    from django.db import connection

    if connection.vendor != "postgresql":
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return is_psycopg3


def binding(count: int, rounds: int, inline, recorded) -> dict:
    """The inline path (no receivers) and a recorded event applied, with Django's defaults
    (client-side binding) and with :data:`PREPARED`, in alternating order; medians of the
    rounds. ``inline(tag)`` and ``recorded(tag)`` measure one row each on fresh events."""
    if not _psycopg3():  # the options are psycopg 3's
        return {}
    measured: dict[str, list[dict]] = {"default": [], "prepared": []}
    for n in range(rounds):
        for name in ("default", "prepared") if n % 2 == 0 else ("prepared", "default"):
            with _connection_options(PREPARED if name == "prepared" else {}):
                tag = f"b{name[0]}{n}"
                measured[name].append({"inline": inline(tag), "recorded": recorded(tag)})
    figures = ("wall_ms", "python_cpu_ms", "postgres_cpu_ms")
    return {
        "events": count,
        "rounds": rounds,
        **{
            name: {
                row: {f: round(statistics.median(r[row][f] for r in runs), 2) for f in figures}
                for row in ("inline", "recorded")
            }
            for name, runs in measured.items()
        },
    }


def run(count: int, profile: bool = False, binding_rounds: int = 3) -> dict:
    from django.conf import settings
    from django.test import Client

    from django_plugipay.models import WebhookEvent
    from django_plugipay.services import apply_recorded_event
    from django_plugipay.services.events import record_event
    from django_plugipay.webhooks import parse_event, sign_payload

    client = Client(HTTP_HOST="localhost")
    saved_hosts = settings.ALLOWED_HOSTS
    settings.ALLOWED_HOSTS = ["localhost"]

    def poster(url: str):
        def post(body: bytes) -> None:
            signature = sign_payload(body, SECRET)
            response = client.post(
                url, body, content_type="application/json", HTTP_X_PLUGIPAY_SIGNATURE=signature
            )
            if response.status_code >= 500:
                raise SystemExit(f"{url} answered {response.status_code}")

        return post

    results: dict = {}
    try:
        truncate()
        warm, _ = make_events(60, "w")
        for body in warm:  # imports, caches and the connection, before anything is counted
            poster("/baseline/webhook/")(body)
            poster("/plugipay/webhook/")(body)
        truncate()
        bodies, _ = make_events(count, "cb")
        results["baseline"] = _measure(poster("/baseline/webhook/"), bodies)
        bodies, _ = make_events(count, "co")
        results["ours"] = _measure(poster("/plugipay/webhook/"), bodies)

        def inline(tag: str) -> dict:
            restore = without_receivers()
            try:
                bodies, _ = make_events(count, tag)
                return _measure(poster("/plugipay/webhook/"), bodies)
            finally:
                restore()

        def recorded(tag: str) -> dict:
            truncate()
            bodies, _ = make_events(count, tag)
            for body in bodies:
                record_event(parse_event(json.loads(body)), source="webhook")
            ids = list(WebhookEvent.objects.order_by("pk").values_list("pk", flat=True))
            return _measure(apply_recorded_event, ids)

        results["ours_no_receivers"] = inline("cn")
        results["apply_recorded"] = recorded("cr")
        if binding_rounds:
            results["binding"] = binding(count, binding_rounds, inline, recorded)
        if profile:  # after the measured rows, so the sampler's cost is in none of them
            sampled: dict = {"interval_ms": Sampler().interval * 1000}
            bodies, _ = make_events(count, "cp")
            sampled["webhook"], sampled["webhook_samples"] = _profile(
                poster("/plugipay/webhook/"), bodies
            )
            truncate()
            bodies, _ = make_events(count, "cq")
            for body in bodies:
                record_event(parse_event(json.loads(body)), source="webhook")
            ids = list(WebhookEvent.objects.order_by("pk").values_list("pk", flat=True))
            sampled["apply"], sampled["apply_samples"] = _profile(apply_recorded_event, ids)
            results["profile"] = sampled
    finally:
        settings.ALLOWED_HOSTS = saved_hosts
        truncate()
    return results
