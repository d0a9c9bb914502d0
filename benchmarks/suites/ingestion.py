"""Webhook ingestion under gunicorn: saturating, paced at 100 events/s, statements per event."""

from __future__ import annotations

import time

from benchmarks.harness import (
    SECRET,
    QueryCounter,
    Scale,
    Server,
    alternate,
    median_run,
    truncate,
    without_receivers,
)
from benchmarks.load import check_applied, make_events, redeliver_failed, send


def queries_per_event(sample: int) -> dict:
    """Statements per applied event, in-process, with the shop's and the bench's own signal
    receivers disconnected (they are the merchant's queries, not the app's). Transaction
    control (BEGIN, COMMIT, SAVEPOINT, RELEASE: round trips like any statement) is counted
    apart and in the round trips."""
    from django_plugipay.services import ingest_webhook
    from django_plugipay.webhooks import sign_payload

    bodies, _unique = make_events(sample, "q")
    restore = without_receivers()
    seen, applied = set(), 0
    try:
        with QueryCounter() as counter:
            for body in bodies:
                ingest_webhook(body=body, signature=sign_payload(body, SECRET))
                if body not in seen:
                    seen.add(body)
                    applied += 1
    finally:
        restore()
    return {
        "statements": round(counter.statements / applied, 2),
        "transaction_control": round((counter.round_trips - counter.statements) / applied, 2),
        "round_trips": round(counter.round_trips / applied, 2),
        "duplicate_deliveries_included": len(bodies) - applied,
    }


def _saturated(server: Server, scale: Scale) -> tuple[list[dict], list[dict], list[dict]]:
    """The baseline view and the app's inline webhook, each saturated ``scale.rounds`` times
    on fresh events, alternating. After each of the app's runs, the events it stored failed
    are sent again and every one is checked applied once, then the tables are emptied."""
    url = server.url + "/plugipay/webhook/"
    checks: list[dict] = []

    def floor(n: int) -> dict:
        bodies, _unique = make_events(scale.events, f"b{n}")
        return send(server.url + "/baseline/webhook/", bodies, scale.senders)

    def ours(n: int) -> dict:
        bodies, unique = make_events(scale.events, f"o{n}")
        measured = send(url, bodies, scale.senders)
        measured["redelivered"] = redeliver_failed(url)
        checks.append(check_applied(unique))
        truncate()
        return measured

    baselines, ours_runs = alternate(scale.rounds, floor, ours)
    return baselines, ours_runs, checks


def baseline(scale: Scale) -> dict:
    """The baseline view alone, saturated as in :func:`run`: measured again just before a suite
    whose throughput is compared with it, so the ratio is not taken across minutes of the
    machine's drift (a shared machine's speed changes by a third within one run)."""
    truncate()
    server = Server("inline", workers=scale.workers, threads=scale.threads)
    try:
        bodies, _unique = make_events(scale.events, "bb")
        measured = send(server.url + "/baseline/webhook/", bodies, scale.senders)
    finally:
        server.stop()
    truncate()
    return measured


def run(scale: Scale) -> dict:
    truncate()
    server = Server("inline", workers=scale.workers, threads=scale.threads)
    try:
        baselines, ours_runs, checks = _saturated(server, scale)
        paced_runs = []
        for run_number in range(scale.paced_runs):
            time.sleep(scale.pause)  # the saturating run's backlog must not count
            paced_bodies, _ = make_events(scale.paced_events, f"p{run_number}")
            paced_runs.append(
                send(server.url + "/plugipay/webhook/", paced_bodies, scale.senders, rate=100)
            )
        paced = sorted(paced_runs, key=lambda r: r["p99_ms"])[len(paced_runs) // 2]
        paced["p99_runs_ms"] = [r["p99_ms"] for r in paced_runs]
    finally:
        server.stop()
    truncate()
    baseline, ours = median_run(baselines), median_run(ours_runs)
    return {
        "server": server.config,
        "baseline": baseline,
        "ours": ours,
        "rounds": len(ours_runs),
        "ratio": round(ours["events_per_s"] / baseline["events_per_s"], 2),
        "check": {
            key: all(c[key] for c in checks)
            if isinstance(checks[0][key], bool)
            else sum(c[key] for c in checks)
            for key in checks[0]
        },
        "paced_100_per_s": paced,
        "queries_per_applied_event": queries_per_event(scale.query_sample),
    }
