"""``make bench``: measure webhook ingestion, reconciliation, the admin and the sandbox.

Writes ``benchmarks/results/latest.json`` and ``docs/benchmarks.md`` (``--quick``: small counts,
``results/quick.json`` and ``build/benchmarks-quick.md``, leaving the published figures alone).
Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (for the Celery numbers).
Everything runs on this machine, sender and servers alike, so the figures are side by side,
not absolute. ``BENCH_DB``, ``BENCH_BROKER`` and ``BENCH_PORTS`` (``first-last``) pick the
database, the Redis database and the ports.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import harness  # noqa: E402
from benchmarks.report import markdown  # noqa: E402
from benchmarks.suites import (  # noqa: E402
    admin,
    billing_reconciliation,
    celery_drain,
    cost,
    ingestion,
    reconciliation,
    sandbox,
    versus,
)
from benchmarks.watch import LoadWatch  # noqa: E402

#: how late the sandbox answers each page of events in the slow-link reconciliation (seconds)
SLOW_PAGE = 0.1
SUITES = (
    "ingestion",
    "celery",
    "cost",
    "versus",
    "reconciliation",
    "billing_reconciliation",
    "admin",
    "sandbox",
)


def parse() -> argparse.Namespace:
    full = harness.Scale()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts, a few seconds each")
    parser.add_argument("--events", type=int)
    parser.add_argument("--concurrency", type=int, help=f"senders (default {full.senders})")
    parser.add_argument("--workers", type=int, help=f"gunicorn workers ({full.workers})")
    parser.add_argument("--threads", type=int, help=f"threads per worker ({full.threads})")
    parser.add_argument("--reconcile-events", type=int)
    parser.add_argument("--admin-rows", type=int)
    parser.add_argument("--skip-celery", action="store_true")
    parser.add_argument(
        "--only",
        action="append",
        choices=SUITES,
        help="run only this suite (repeatable); prints its figures, writes no report",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="only re-render docs/benchmarks.md from results/latest.json",
    )
    return parser.parse_args()


def scale(args: argparse.Namespace) -> harness.Scale:
    chosen = {
        "events": args.events,
        "senders": args.concurrency,
        "workers": args.workers,
        "threads": args.threads,
        "reconcile_events": args.reconcile_events,
        "admin_rows": args.admin_rows,
    }
    overrides = {key: value for key, value in chosen.items() if value is not None}
    return harness.Scale.quick_run(**overrides) if args.quick else harness.Scale(**overrides)


def main() -> int:
    args = parse()
    docs = harness.ROOT / "docs" / "benchmarks.md"
    if args.report:
        saved = json.loads((harness.RESULTS / "latest.json").read_text())
        docs.write_text(markdown(saved, saved.get("command", "make bench")))
        return 0
    plan = scale(args)
    random.seed(7)
    harness.fresh_database()
    results: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "quick": plan.quick,
        "machine": harness.machine(),
    }
    results["load"] = {}

    chosen = set(args.only or SUITES) - ({"celery"} if args.skip_celery else set())

    @contextlib.contextmanager
    def suite(name: str):
        """Announce a suite and record what else the machine did while it ran."""
        print(f"{name}…", flush=True)
        with LoadWatch() as watch:
            yield
        results["load"][name] = watch.result()
        if results["load"][name]["busy"]:
            print(f"  the machine was busy during {name}: {results['load'][name]}", flush=True)

    if "ingestion" in chosen:
        with suite("ingestion"):
            results["ingestion"] = ingestion.run(plan)
        print(json.dumps(results["ingestion"]), flush=True)
    if "celery" in chosen:
        with suite("celery"):
            results["celery"] = celery_drain.run(plan)
        print(json.dumps(results["celery"]), flush=True)
    if "cost" in chosen:
        with suite("cost"):
            profile = os.environ.get("BENCH_PROFILE") == "1"
            results["cost"] = cost.run(
                plan.cost_events, profile=profile, binding_rounds=plan.versus_rounds
            )
        print(json.dumps(results["cost"]), flush=True)
    if "versus" in chosen:
        with suite("versus"):
            results["versus"] = versus.run(plan.versus_events, rounds=plan.versus_rounds)
        print(json.dumps(results["versus"]), flush=True)
    if "reconciliation" in chosen:
        with suite("reconciliation"):
            # the baseline and each mode in turn, each round in another order: the machine's
            # drift over the suite's minutes stays out of the ratios
            measured = {
                "reconciliation_baseline": lambda _n: ingestion.baseline(plan),
                "reconciliation": lambda _n: reconciliation.run(plan.reconcile_events),
            }
            if not args.skip_celery:
                measured["reconciliation_queued"] = lambda _n: reconciliation.queued(
                    plan.reconcile_events, concurrency=os.cpu_count() or 1
                )
            for name, runs in harness.rotate(plan.rounds, measured).items():
                results[name] = harness.median_run(runs)
                print(json.dumps({name: results[name]}), flush=True)
            results["reconciliation_small"] = reconciliation.run(plan.reconcile_small)
            results["reconciliation_alone"] = reconciliation.run(
                plan.reconcile_events, receivers=False
            )
            results["reconciliation_slow_link"] = reconciliation.over_a_slow_link(
                plan.reconcile_small, page_delay=SLOW_PAGE
            )
            print(json.dumps(results["reconciliation_slow_link"]), flush=True)
    if "billing_reconciliation" in chosen:
        with suite("billing_reconciliation"):
            measured = {
                "billing_reconciliation_baseline": lambda _n: ingestion.baseline(plan),
                "billing_reconciliation": lambda _n: billing_reconciliation.run(
                    plan.reconcile_events
                ),
            }
            for name, runs in harness.rotate(plan.rounds, measured).items():
                results[name] = harness.median_run(runs)
        print(json.dumps(results["billing_reconciliation"]), flush=True)
    if "admin" in chosen:
        with suite("admin"):
            results["admin"] = admin.run(plan.admin_rows)
    if "sandbox" in chosen:
        with suite("sandbox"):
            results["sandbox"] = sandbox.run(seconds=plan.sandbox_seconds, runs=plan.sandbox_runs)
    if args.only:  # a subset: its figures only, no report
        print(json.dumps({"load": results["load"]}), flush=True)
        return 0
    command = (
        "make bench" if len(sys.argv) == 1 else "python benchmarks/run.py " + " ".join(sys.argv[1:])
    )
    results["command"] = command
    report = markdown(results, command)
    harness.RESULTS.mkdir(parents=True, exist_ok=True)
    if plan.quick:
        (harness.RESULTS / "quick.json").write_text(json.dumps(results, indent=2) + "\n")
        docs = harness.ROOT / "build" / "benchmarks-quick.md"
        docs.parent.mkdir(exist_ok=True)
    else:
        (harness.RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    docs.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
