"""The benchmark harness measures what it says: round trips counted, busy figures refused."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection, transaction

from benchmarks.harness import ROOT, QueryCounter
from benchmarks.report import busy_suites, targets
from benchmarks.sampler import Sampler
from benchmarks.watch import CoreUse, LoadWatch, _ours
from django_plugipay.testing import wait_for


@pytest.mark.django_db(transaction=True)
def test_begin_and_commit_are_counted_as_round_trips():
    with QueryCounter() as counter:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.execute("SELECT 2")
        with connection.cursor() as cursor:  # autocommit: no BEGIN, no COMMIT
            cursor.execute("SELECT 3")
    assert counter.statements == 3
    assert counter.transactions == 1
    assert counter.round_trips == 5  # BEGIN, two statements, COMMIT, one in autocommit


@pytest.mark.django_db(transaction=True)
def test_savepoints_count_too():
    with QueryCounter() as counter, transaction.atomic(), transaction.atomic():  # noqa: SIM117
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    assert counter.statements == 1
    assert counter.round_trips == 1 + 2 + 2  # the statement, SAVEPOINT + RELEASE, BEGIN + COMMIT


def _results(busy: bool) -> dict:
    rate = {"events_per_s": 100.0}
    return {
        "ingestion": {"baseline": rate, "ratio": 0.5},
        "reconciliation": {"events": 10_000, "events_per_s": 150.0},
        "load": {"ingestion": {"busy": False}, "reconciliation": {"busy": busy}},
    }


def test_a_figure_taken_on_a_busy_machine_is_refused():
    idle = "\n".join(targets(_results(busy=False)))
    inline = "Reconciliation, inline mode (the run applies its pages itself) / baseline"
    assert f"| {inline} | ≥ 1.2 | 1.5 | met |" in idle
    busy = "\n".join(targets(_results(busy=True)))
    assert f"| {inline} | ≥ 1.2 | refused |" in busy
    assert "| Inline ingestion / baseline | ≥ 0.45 | 0.5 | met |" in busy
    assert busy_suites(_results(busy=True), ("ingestion", "reconciliation")) == ["reconciliation"]


def test_the_benchmark_s_own_processes_and_its_services_are_not_others():
    processes = {  # pid: (parent, name, ticks)
        10: (1, "python", 0),  # the benchmark
        11: (10, "gunicorn", 0),  # its child
        12: (11, "gunicorn", 0),  # its grandchild
        20: (1, "postgres", 0),  # a service it drives
        21: (20, "postgres", 0),
        30: (1, "python", 0),  # someone else
        31: (30, "sh", 0),
    }
    assert _ours(processes, root=10) == {10, 11, 12, 20, 21}


def test_the_load_watch_counts_processes_outside_the_benchmark(tmp_path):
    # The shell exits at once, so the loop it started is no descendant of this process: it is
    # "another process" for the watch. It burns a core until the test removes its marker (a
    # minute at most), so it runs through every sample however slowly the machine starts it; on
    # a machine busy with other suites it gets less than a whole core, but never nothing.
    marker = tmp_path / "burn"
    marker.touch()
    loop = (
        f"import os, time\nt = time.time()\n"
        f"while os.path.exists({str(marker)!r}) and time.time() - t < 60: pass"
    )
    script = tmp_path / "burn.py"
    script.write_text(loop)
    pid_file = tmp_path / "pid"
    subprocess.run(
        ["sh", "-c", f'"{sys.executable}" "{script}" >/dev/null 2>&1 & echo $! > "{pid_file}"'],
        check=True,
    )
    try:
        burner = int(pid_file.read_text())
        wait_for(lambda: _ticks(burner) > 0, timeout=10, message="the loop to run")
        with LoadWatch(interval=0.5) as watch:
            wait_for(lambda: len(watch.samples) >= 3, timeout=15, message="three load samples")
    finally:
        marker.unlink()
    result = watch.result()
    assert result["during_cores"] >= 0.1, result
    assert isinstance(result["busy"], bool)
    json.dumps(result)


def _ticks(pid: int) -> int:
    """CPU ticks ``pid`` has used (0 once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def test_core_use_splits_the_cpu_of_a_worker_tree_from_the_rest():
    # A "worker" whose child burns a core: its CPU counts as the worker's (measured while it
    # runs, as the drain is: a process that has ended has no CPU left to read).
    loop = "import time\nt = time.time()\nwhile time.time() - t < 60: pass"  # killed below
    worker = subprocess.Popen(
        ["sh", "-c", f'"{sys.executable}" -c "{loop}"; true'], start_new_session=True
    )
    try:
        began = time.monotonic()
        with CoreUse(worker.pid) as use:
            wait_for(lambda: time.monotonic() - began >= 2, interval=0.1, message="two seconds")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    assert use.parts["worker"] >= 0.2, use.parts
    assert use.parts["all"] >= use.parts["worker"]
    assert set(use.parts) == {"worker", "postgres", "redis", "rest", "all"}


def test_the_two_worker_bound_is_read_from_the_cores_one_worker_kept_busy():
    from benchmarks.report import bounds

    results = json.loads((ROOT / "benchmarks" / "results" / "latest.json").read_text())
    results["machine"]["cores"] = 2
    used = {"worker": 0.9, "postgres": 0.7, "redis": 0.05, "rest": 0.05, "all": 1.7}
    results["celery"].update(
        drain_events_per_s=500.0,
        default_concurrency={**results["celery"]["default_concurrency"], "events_per_s": 460.0},
        drain_cores_used=used,
    )
    text = "\n".join(bounds(results))
    assert "it kept 1.65 of the machine's 2 cores busy on average" in text
    assert "could at most reach 1.21× one, short of 1.6×" in text
    assert "drained 460.0 events/s (0.92× one)" in text


def test_the_sampler_attributes_cpu_to_the_innermost_app_frame():
    from django_plugipay.money import format_amount

    sampler = Sampler(interval=0.0005)

    def work():
        start = time.process_time()
        while time.process_time() - start < 0.3:
            format_amount(123_456, "IDR")

    sampler.run(work)
    rows = {row["work"]: row for row in sampler.table()}
    assert sampler.samples > 50
    assert rows["django_plugipay.money.format_amount"]["inclusive"] > 50


def test_the_side_by_side_ratios_need_both_trees_to_store_the_same_outcome():
    from benchmarks.report import versus as section
    from benchmarks.suites.versus import _summary

    def child(python, outcome):
        row = {"wall_ms": 3.0, "python_cpu_ms": python, "postgres_cpu_ms": 1.0, "statements": 3}
        return {"no_receivers": row, "receivers": row, "outcome": outcome}

    same = {"answers": {"200": 10}}
    measured = {"before": [child(2.0, same), child(2.2, same)], "now": [child(1.5, same)] * 2}
    result = _summary("476065f", 10, measured)
    assert result["same_outcome"]
    assert result["no_receivers"]["python_cpu_ratios"] == [0.75, 1.5 / 2.2]
    assert round(result["no_receivers"]["python_cpu_ratio"], 3) == round(1.5 / 2.1, 3)
    assert "**Python CPU per event is 0.71×**" in "\n".join(section({"versus": result}))

    measured["now"][1] = child(1.5, {"answers": {"200": 9, "422": 1}})
    differ = _summary("476065f", 10, measured)
    assert not differ["same_outcome"] and "python_cpu_ratio" not in differ["no_receivers"]
    assert "no ratio is given" in "\n".join(section({"versus": differ}))


def test_prepared_statements_are_measured_beside_the_defaults_in_alternating_order(monkeypatch):
    import contextlib

    from benchmarks.report import prepared as section
    from benchmarks.suites import cost

    current, order = [], []

    @contextlib.contextmanager
    def options(given):
        current.append(given)
        yield
        current.pop()

    def row(kind):
        def measure(tag):
            prepared = current[-1] == cost.PREPARED
            order.append((kind, "prepared" if prepared else "default", tag))
            cpu = {"inline": 1.0, "recorded": 2.0}[kind] * (0.5 if prepared else 1.0)
            return {"wall_ms": 2 * cpu, "python_cpu_ms": 1.0, "postgres_cpu_ms": cpu}

        return measure

    monkeypatch.setattr(cost, "_psycopg3", lambda: True)
    monkeypatch.setattr(cost, "_connection_options", options)
    result = cost.binding(10, 2, row("inline"), row("recorded"))
    assert [(kind, name) for kind, name, _ in order] == [
        ("inline", "default"), ("recorded", "default"),
        ("inline", "prepared"), ("recorded", "prepared"),
        ("inline", "prepared"), ("recorded", "prepared"),
        ("inline", "default"), ("recorded", "default"),
    ]  # fmt: skip
    assert len({tag for _, _, tag in order}) == 4  # fresh events for every measured row
    assert result["prepared"]["recorded"]["postgres_cpu_ms"] == 1.0
    text = "\n".join(section({"cost": {"binding": result}}))
    assert "PostgreSQL CPU per event for a recorded event: **0.50×**" in text
    assert "`prepare_threshold=5`" in text

    monkeypatch.setattr(cost, "_psycopg3", lambda: False)
    assert cost.binding(10, 2, row("inline"), row("recorded")) == {}


def test_reconciliation_without_receivers_is_reported_beside_the_baseline():
    from benchmarks.report import alone

    results = {
        "ingestion": {"baseline": {"events_per_s": 800.0}},
        "reconciliation_alone": {
            "events": 10_002,
            "events_per_s": 1000.0,
            "queries_per_event": 1.4,
        },
    }
    text = "\n".join(alone(results))
    assert "**1000.0 events/s** (1.25× the baseline), 1.4 SQL statements per event" in text
    assert alone({}) == []


def test_queued_reconciliation_is_a_target_beside_the_suite_s_baseline():
    from benchmarks.report import TARGETS, queued_reconciliation

    results = {
        "ingestion": {"baseline": {"events_per_s": 1000.0}},
        "reconciliation_baseline": {"events_per_s": 500.0},
        "reconciliation_queued": {
            "events": 10_002,
            "queued": 10_002,
            "concurrency": 2,
            "record_seconds": 9.5,
            "seconds": 13.3,
            "events_per_s": 750.0,
            "check": {"every_event_applied": True, "signals": 6668, "every_signal_once": True},
        },
    }
    figure = {name: value for name, _target, value, *_ in TARGETS}
    queued = "Reconciliation, queued mode (one worker, a process per core, applies) / baseline"
    assert figure[queued](results) == 1.5
    text = "\n".join(queued_reconciliation(results))
    assert "one Celery worker of 2 processes" in text and "**750.0 events/s**" in text
    assert "500.0 events/s, so **1.50×** the baseline" in text
    assert "6,668 signals, every signal once: True" in text
    assert queued_reconciliation({}) == []


def test_reconciliation_counts_only_its_waits_for_the_next_page(monkeypatch):
    import itertools
    import types

    from benchmarks.suites import reconciliation

    def _pages(items):
        yield from (items[:2], items[2:])

    module = types.SimpleNamespace(_pages=_pages)
    ticks = itertools.count()
    monkeypatch.setattr(reconciliation.time, "perf_counter", lambda: next(ticks))
    waits = reconciliation._Waits(module)
    pages = []
    for page in module._pages([1, 2, 3]):
        next(ticks)  # the page applied: not a wait
        pages.append(page)
    waits.restore()
    assert pages == [[1, 2], [3]]
    assert waits.seconds == 3  # two pages and the end, one tick each
    assert module._pages is _pages


def test_the_slow_link_run_is_reported_read_ahead_and_one_after_another():
    from benchmarks.report import slow_link

    run = {"events": 2_001, "events_per_s": 600.0, "page_wait_seconds": 0.2}
    slow = {
        "page_delay_ms": 100,
        "read_ahead": run,
        "one_after_another": {**run, "events_per_s": 400.0, "page_wait_seconds": 2.1},
    }
    text = "\n".join(slow_link(slow))
    assert "100 ms late), 2,001 events: **600.0 events/s**" in text
    assert "400.0 events/s one page after another (1.50×)" in text
    assert "0.2 s for pages in all, against 2.1 s" in text
    assert slow_link(None) == []


def test_a_throughput_is_compared_with_the_baseline_measured_beside_it():
    from benchmarks.report import TARGETS, _against, _beside

    results = {
        "ingestion": {"baseline": {"events_per_s": 1000.0}},
        "reconciliation": {"events_per_s": 600.0},
        "reconciliation_baseline": {"events_per_s": 500.0},
        "celery": {"drain_events_per_s": 300.0},
    }
    assert _beside("reconciliation.events_per_s")(results) == 1.2
    assert _beside("celery.drain_events_per_s")(results) == 0.3  # none beside: the first one
    results["celery"]["ingest_baseline"] = {"events_per_s": 600.0}
    assert _beside("celery.drain_events_per_s")(results) == 0.5
    figure = {name: value for name, _target, value, *_ in TARGETS}
    inline = "Reconciliation, inline mode (the run applies its pages itself) / baseline"
    assert figure[inline](results) == 1.2
    assert "500.0 events/s, so **1.20×** the baseline" in _against(results, "reconciliation")
    assert _against(results, "billing_reconciliation") == ""


def test_a_ratio_names_its_baseline_and_is_refused_only_for_the_load_it_depends_on():
    from benchmarks.report import _target_suites, _which_baseline

    results = {
        "ingestion": {"baseline": {"events_per_s": 1000.0}},
        "reconciliation": {"events_per_s": 600.0},
    }
    assert _which_baseline(results, "reconciliation") == "the ingestion suite's"
    assert _target_suites(results, "Reconciliation / baseline") == ("reconciliation", "ingestion")
    results["reconciliation_baseline"] = {"events_per_s": 500.0}
    assert _which_baseline(results, "reconciliation") == "measured just before the suite"
    assert _target_suites(results, "Reconciliation / baseline") == ("reconciliation",)
    assert _target_suites(results, "Billing reconciliation / baseline") == (
        "billing_reconciliation",
        "ingestion",
    )


def test_an_in_process_suite_reports_its_in_memory_signal_ledger(db):
    from benchmarks.harness import signal_figures
    from benchmarks.report import _ledger
    from tests.factories import PaymentFactory

    paid = PaymentFactory(status="succeeded", checkout_session__status="completed")
    PaymentFactory(status="failed", checkout_session__status="open")
    sent = [
        ("checkout_session_completed", paid.checkout_session.plugipay_id),
        ("payment_succeeded", paid.plugipay_id),
    ]
    assert signal_figures(sent) == {"signals": 2, "signals_expected": 2, "signals_once": True}
    twice = signal_figures([*sent, sent[1]])
    assert twice == {"signals": 3, "signals_expected": 2, "signals_once": False}
    assert signal_figures(sent[:1])["signals_once"] is False  # one missing
    text = _ledger({"events": 10, **twice})
    assert "kept in memory here" in text
    assert "3 signals of the 2 its rows' states call for" in text and text.endswith("False.")
    assert _ledger({"events": 10}) == ""  # a run from before the ledger was kept in memory


def test_the_saturated_ingestion_figures_are_the_median_of_alternating_runs():
    from benchmarks.harness import alternate, median_run
    from benchmarks.report import _rounds

    runs = [
        {"events_per_s": rate, "p99_ms": p99} for rate, p99 in ((300, 90), (410, 70), (260, 120))
    ]
    median = median_run(runs)
    assert (median["events_per_s"], median["p99_ms"]) == (300, 90)
    assert median["runs_per_s"] == [300, 410, 260]
    ing = {"rounds": 3, "baseline": {"runs_per_s": [1000, 990, 1010]}, "ours": median}
    assert "saturated 3 times, alternating" in _rounds(ing)
    assert "django-plugipay [300, 410, 260] events/s" in _rounds(ing)
    assert _rounds({"ratio": 0.4}) == ""  # a run before the rounds
    order: list[str] = []
    firsts, seconds = alternate(
        3,
        lambda n: order.append(f"a{n}") or {"n": n},
        lambda n: order.append(f"b{n}") or {"n": n},
    )
    assert order == ["a0", "b0", "b1", "a1", "a2", "b2"]
    assert firsts == seconds == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_queued_acceptance_is_reported_beside_the_baseline_runs_it_alternated_with():
    from benchmarks.report import queued

    floor = {"events_per_s": 1000.0, "p99_ms": 40.0, "runs_per_s": [990.0, 1000.0, 1020.0]}
    ingest = {"events": 5000, "events_per_s": 820.0, "runs_per_s": [800.0, 820.0, 850.0]}
    ingest.update(task_messages=600, task_events=15000)
    cel = {"ingest_baseline": floor, "ingest": ingest, "ingest_ratio": 0.82}
    text = "\n".join(queued(cel, {"baseline": {"events_per_s": 1000.0}}))
    assert "saturated 3 times alternating with acceptance" in text
    assert "acceptance [800.0, 820.0, 850.0] events/s" in text
    assert "**0.82×** the baseline beside it" in text
    assert "Task messages sent for 15,000 deliveries: 600" in text
    from benchmarks.report import _which_baseline

    assert "alternating" in _which_baseline({"celery": cel}, "celery")


def test_one_workers_drain_is_the_median_of_its_runs_each_shown():
    from benchmarks.report import markdown

    results = json.loads((ROOT / "benchmarks" / "results" / "latest.json").read_text())
    results["celery"].update(drain_events_per_s=410.0, drain_runs_per_s=[406.1, 410.0, 480.5])
    text = markdown(results, "make bench")
    assert "**410.0 events/s** (the median of 3 drains, each of a new backlog: " in text
    assert "[406.1, 410.0, 480.5] events/s)" in text


def test_reconciliation_takes_turns_with_its_baseline_and_reports_every_run():
    """The reconciliation suites measure the baseline and each mode in turn, each round in
    another order, and the report gives the median runs' ratio with every run's rate."""
    from benchmarks.harness import median_run, rotate
    from benchmarks.report import _against, _which_baseline

    order: list[str] = []
    runs = rotate(
        3,
        {
            name: (lambda n, name=name: order.append(f"{name}{n}") or {"events_per_s": 100 + n})
            for name in ("b", "i", "q")
        },
    )
    assert order == ["b0", "i0", "q0", "i1", "q1", "b1", "q2", "b2", "i2"]
    assert [r["events_per_s"] for r in runs["q"]] == [100, 101, 102]
    results = {
        "ingestion": {"baseline": {"events_per_s": 1000.0}},
        "reconciliation_baseline": median_run([{"events_per_s": r} for r in (600.0, 480.0, 520.0)]),
        "reconciliation_queued": median_run([{"events_per_s": r} for r in (650.0, 700.0, 610.0)]),
    }
    said = _against(results, "reconciliation_queued")
    assert "3 times in turn with the suite's runs" in said
    assert "baseline [600.0, 480.0, 520.0], this [650.0, 700.0, 610.0] events/s" in said
    assert "520.0 events/s, so **1.25×** the baseline" in said
    assert _which_baseline(results, "reconciliation_queued") == (
        "measured in turn with the suite's runs"
    )
