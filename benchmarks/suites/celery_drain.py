"""``WEBHOOK_PROCESSING = "celery"``: record-and-enqueue acceptance beside the baseline view on
the same server (medians of alternating runs), then one worker's drain (one process, the median
of three drains, then the worker's default concurrency: one process per core), and acceptance
paced at 100 events/s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from benchmarks.harness import (
    ROOT,
    Scale,
    Server,
    alternate,
    broker,
    median_run,
    server_env,
    truncate,
)
from benchmarks.load import check_applied, make_events, send
from benchmarks.watch import CoreUse


def _ingest(scale: Scale, tag: str, rounds: int) -> tuple[dict, dict, dict, int]:
    """The baseline view and queued acceptance, on one server side by side, each saturated
    ``rounds`` times on fresh events in alternating order: the runs with the median rates
    (``runs_per_s``: every run's). Every accepted event stays queued for the drain. Also
    counts the task messages the acceptance sent (for all of its runs: ``task_events``)."""
    import redis

    queue = redis.Redis.from_url(broker())
    queue.flushdb()
    truncate()
    server = Server("celery", workers=scale.workers, threads=scale.threads)
    unique = 0

    def floor(n: int) -> dict:
        bodies, _ = make_events(scale.events, f"{tag}f{n}")
        return send(server.url + "/baseline/webhook/", bodies, scale.senders)

    def accept(n: int) -> dict:
        nonlocal unique
        bodies, fresh = make_events(scale.events, f"{tag}{n}")
        unique += fresh
        return send(server.url + "/plugipay/webhook/", bodies, scale.senders)

    try:
        baselines, accepted = alternate(rounds, floor, accept)
    finally:
        server.stop()
    ingest = median_run(accepted)
    ingest["task_messages"] = queue.llen("celery")
    ingest["task_events"] = sum(run["events"] for run in accepted)
    return server.config, median_run(baselines), ingest, unique


def _paced(scale: Scale) -> dict:
    """Queued acceptance at 100 events/s offered: the median run by p99.

    The server is new, so it is warmed up first, as the inline paced runs are by the
    saturating run before them: each thread's first request opens its database connection
    and its first broker connection, which is not what 100 events/s costs."""
    import redis

    redis.Redis.from_url(broker()).flushdb()
    truncate()
    server = Server("celery", workers=scale.workers, threads=scale.threads)
    runs = []
    warm_up = scale.senders * 8
    try:
        send(server.url + "/plugipay/webhook/", make_events(warm_up, "qw")[0], scale.senders)
        for run_number in range(scale.paced_runs):
            time.sleep(scale.pause)  # the previous run's backlog must not count
            bodies, _ = make_events(scale.paced_events, f"q{run_number}")
            runs.append(send(server.url + "/plugipay/webhook/", bodies, scale.senders, rate=100))
    finally:
        server.stop()
    truncate()
    paced = sorted(runs, key=lambda r: r["p99_ms"])[len(runs) // 2]
    paced["p99_runs_ms"] = [r["p99_ms"] for r in runs]
    paced["warm_up_events"] = warm_up
    return paced


def _drain(concurrency: int, unique: int) -> dict:
    """Start one worker on the queued events; events/s from its first applied event."""
    from django_plugipay.models import WebhookEvent

    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-c",
            str(concurrency),
            "-l",
            "warning",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=server_env("celery"),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    done = ("processed", "ignored")
    deadline = time.perf_counter() + 600
    # The clock starts at the first applied event, so the worker's start-up is not counted.
    while time.perf_counter() < deadline:
        first = WebhookEvent.objects.filter(status__in=done).count()
        if first:
            break
        time.sleep(0.05)
    began = time.perf_counter()
    with CoreUse(worker.pid) as use:  # what the drain kept busy, by part
        while time.perf_counter() < deadline:
            if not WebhookEvent.objects.exclude(status__in=done).exists():
                break
            time.sleep(0.25)
    drain = time.perf_counter() - began
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(timeout=30)
    return {
        "concurrency": concurrency,
        "seconds": round(drain, 2),
        "events_per_s": round((unique - first) / drain, 1),
        "check": check_applied(unique),
        "cores_used": use.parts,
    }


#: one worker's drains measured; the figure is the median run's (one run varies by a fifth)
DRAIN_RUNS = 3


def run(scale: Scale) -> dict:
    config, baseline, ingest, unique = _ingest(scale, "c", scale.rounds)
    singles = [_drain(1, unique)]
    for n in range(1, DRAIN_RUNS):  # each on a new backlog, accepted as the first was
        _config, _baseline_again, _ingest_again, unique = _ingest(scale, f"s{n}", 1)
        singles.append(_drain(1, unique))
    single = sorted(singles, key=lambda run: run["events_per_s"])[len(singles) // 2]
    cores = os.cpu_count() or 1
    _config, _baseline_again, _ingest_again, unique = _ingest(scale, "d", 1)
    default = _drain(cores, unique)
    truncate()
    return {
        "server": config,
        "ingest_baseline": baseline,
        "ingest": ingest,
        "ingest_ratio": round(ingest["events_per_s"] / baseline["events_per_s"], 2),
        "paced_100_per_s": _paced(scale),
        "worker_concurrency": 1,
        "drain_seconds": single["seconds"],
        "drain_events_per_s": single["events_per_s"],
        "drain_runs_per_s": [run["events_per_s"] for run in singles],
        "check": single["check"],
        "drain_cores_used": single["cores_used"],
        "default_concurrency": default,
    }
