"""The report: ``docs/benchmarks.md`` from a results dict, every setting read from the run."""

from __future__ import annotations

import operator


def _get(results: dict, path: str) -> float | None:
    value: object = results
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, (int, float)) else None


def _ratio(numerator: str, denominator: str = "ingestion.baseline.events_per_s"):
    """A figure as a ratio to another of the same run (by default the baseline's events/s)."""

    def value(results: dict) -> float | None:
        top, bottom = _get(results, numerator), _get(results, denominator)
        return top / bottom if top is not None and bottom else None

    return value


def _path(path: str):
    return lambda results: _get(results, path)


#: the baseline measured just before each suite whose throughput is compared with it
BESIDE = {
    "reconciliation": "reconciliation_baseline.events_per_s",
    "reconciliation_alone": "reconciliation_baseline.events_per_s",
    "reconciliation_queued": "reconciliation_baseline.events_per_s",
    "billing_reconciliation": "billing_reconciliation_baseline.events_per_s",
    "celery": "celery.ingest_baseline.events_per_s",
}


def _beside(numerator: str):
    """A throughput as a ratio to the baseline measured beside it (results without one:
    the ingestion suite's)."""

    def value(results: dict) -> float | None:
        return _ratio(numerator, _baseline_path(results, numerator.split(".")[0]))(results)

    return value


INGESTION_BASELINE = "ingestion.baseline.events_per_s"


def _baseline_path(results: dict, suite: str) -> str:
    path = BESIDE.get(suite)
    return path if path and _get(results, path) else INGESTION_BASELINE


def _rate_beside(results: dict, suite: str) -> float:
    """The baseline's events/s that ``suite``'s throughput is compared with."""
    return float(_get(results, _baseline_path(results, suite)) or 0)


def _which_baseline(results: dict, suite: str) -> str:
    """Words naming the baseline :func:`_rate_beside` gives."""
    if _baseline_path(results, suite) == INGESTION_BASELINE:
        return "the ingestion suite's"
    if suite == "celery":
        if ((results.get("celery") or {}).get("ingest_baseline") or {}).get("runs_per_s"):
            return "measured on the Celery suite's server, alternating with acceptance"
        return "measured on the Celery suite's server just before"
    if _runs_of(results, _baseline_path(results, suite)):
        return "measured in turn with the suite's runs"
    return "measured just before the suite"


def _runs_of(results: dict, path: str) -> list | None:
    """Every run's events/s of the figure at ``path`` (``….events_per_s``), when it was
    measured more than once (:func:`benchmarks.harness.median_run`)."""
    value: object = results
    for key in path.rsplit(".", 1)[0].split("."):
        value = value.get(key) if isinstance(value, dict) else None
    runs = value.get("runs_per_s") if isinstance(value, dict) else None
    return runs if isinstance(runs, list) and len(runs) > 1 else None


def _queued_ratio(results: dict) -> float | None:
    """Queued acceptance against the baseline view measured on the same server beside it
    (results without that: against the ingestion suite's baseline)."""
    if _get(results, "celery.ingest_baseline.events_per_s"):
        return _ratio("celery.ingest.events_per_s", "celery.ingest_baseline.events_per_s")(results)
    return _ratio("celery.ingest.events_per_s")(results)


#: (figure, target as text, its value from the results, comparison, threshold). Throughputs are
#: ratios to the verify-and-insert baseline's events/s in the same run: absolute rates differ
#: several times between machines, ratios taken side by side do not.
TARGETS = [
    (
        "Queued acceptance (record + enqueue) / baseline",
        "≥ 0.8",
        _queued_ratio,
        "ge",
        0.8,
    ),
    (
        "p99 at 100 events/s offered (queued), median of the runs, ms",
        "< 50",
        _path("celery.paced_100_per_s.p99_ms"),
        "lt",
        50,
    ),
    (
        "p99 at 100 events/s offered (inline), median of the runs, ms",
        "< 50",
        _path("ingestion.paced_100_per_s.p99_ms"),
        "lt",
        50,
    ),
    (
        "Reconciliation, queued mode (one worker, a process per core, applies) / baseline",
        "≥ 1.2",
        _beside("reconciliation_queued.events_per_s"),
        "ge",
        1.2,
    ),
    (
        "Reconciliation, inline mode (the run applies its pages itself) / baseline",
        "≥ 1.2",
        _beside("reconciliation.events_per_s"),
        "ge",
        1.2,
    ),
    (
        "Billing reconciliation / baseline",
        "≥ 0.6",
        _beside("billing_reconciliation.events_per_s"),
        "ge",
        0.6,
    ),
    (
        "One Celery worker's drain (concurrency 1) / baseline",
        "≥ 0.6",
        _beside("celery.drain_events_per_s"),
        "ge",
        0.6,
    ),
    (
        "Two worker processes / one",
        "≥ 1.6",
        _ratio("celery.default_concurrency.events_per_s", "celery.drain_events_per_s"),
        "ge",
        1.6,
    ),
    ("Inline ingestion / baseline", "≥ 0.45", _path("ingestion.ratio"), "ge", 0.45),
    (
        "Python CPU per inline event / the per-event design's, side by side",
        "≤ 0.8",
        _path("versus.no_receivers.python_cpu_ratio"),
        "le",
        0.8,
    ),
    (
        "SQL statements per applied event (inline)",
        "≤ 3 plus BEGIN/COMMIT",
        _path("ingestion.queries_per_applied_event.statements"),
        "le",
        3,
    ),
]

#: the suite whose machine-load record decides whether a target's figure may be published
TARGET_SUITES = {
    "Queued acceptance": ("celery", "ingestion"),
    "p99 at 100 events/s offered (queued)": ("celery",),
    "p99 at 100": ("ingestion",),
    "Reconciliation": ("reconciliation", "ingestion"),
    "Billing reconciliation": ("billing_reconciliation", "ingestion"),
    "One Celery worker": ("celery", "ingestion"),
    "Two worker": ("celery",),
    "Inline ingestion": ("ingestion",),
    "SQL statements": ("ingestion",),
    "Python CPU per inline event": ("versus",),
}


def _target_suites(results: dict, label: str) -> tuple[str, ...]:
    """The suites whose load decides whether ``label``'s figure may be published: the
    ingestion suite only while the figure is a ratio to its baseline (not to one measured
    in the figure's own suite, :data:`BESIDE`)."""
    suites = next((v for k, v in TARGET_SUITES.items() if label.startswith(k)), ())
    if suites and _baseline_path(results, suites[0]) != INGESTION_BASELINE:
        suites = tuple(s for s in suites if s != "ingestion")
    return suites


def busy_suites(results: dict, suites: tuple[str, ...]) -> list[str]:
    """Those of ``suites`` during which other processes used more than half a core."""
    return [s for s in suites if (results.get("load") or {}).get(s, {}).get("busy")]


def describe_server(server: dict | None) -> str:
    if not server:
        return "gunicorn (its configuration was not recorded by this run)"
    threads = server["threads"]
    each = f"{threads} thread{'s' if threads != 1 else ''} each"
    return f"gunicorn ({server['workers']} workers, {server['worker_class']}, {each})"


def senders(run: dict) -> str:
    count = run.get("senders")
    return f"{count} concurrent senders" if count else "concurrent senders (count not recorded)"


def statuses(run: dict) -> str:
    counts = sorted(run["statuses"].items(), key=lambda item: int(item[0]))
    return ", ".join(f"{count:,} × {code}" for code, count in counts)


def targets(results: dict) -> list[str]:
    lines = ["| figure | target | measured | |", "|---|---|---:|---|"]
    for label, target, read, comparison, threshold in TARGETS:
        value = read(results)
        suites = _target_suites(results, label)
        busy = busy_suites(results, suites)
        if value is None:
            lines.append(f"| {label} | {target} | not run | |")
        elif busy:
            lines.append(
                f"| {label} | {target} | refused | the machine was busy during {', '.join(busy)} |"
            )
        else:
            met = getattr(operator, comparison)(value, threshold)  # unrounded
            shown = round(value, 2)
            if shown == threshold and not met:  # 0.598 is not 0.6
                shown = round(value, 3)
            lines.append(f"| {label} | {target} | {shown} | {'met' if met else 'missed'} |")
    rec_events = results["reconciliation"]["events"]
    if rec_events < 10_000:
        lines += ["", f"Reconciliation was measured on {rec_events:,} events, not 10,000."]
    return lines


def load(results: dict) -> list[str]:
    """The machine's load before and during each suite (CPU of processes outside the run)."""
    watched = results.get("load")
    if not watched:
        return []
    lines = [
        "## The machine while it ran",
        "",
        "Cores used by processes that are neither the benchmark's own (this process and its "
        "children: gunicorn, Celery, the sandbox) nor the services it drives (PostgreSQL, "
        "Redis), sampled each second from `/proc`. A figure taken while they used more than "
        "half a core is refused above.",
        "",
        "| suite | before | during (mean) | during (max) | |",
        "|---|---:|---:|---:|---|",
    ]
    for suite, row in watched.items():
        verdict = "busy: refused" if row["busy"] else "idle"
        lines.append(
            f"| {suite} | {row['before_cores']} | {row['during_cores']} | "
            f"{row['during_max_cores']} | {verdict} |"
        )
    return [*lines, ""]


def profile(results: dict) -> list[str]:
    """The sampled profile of the per-event paths (``BENCH_PROFILE=1``)."""
    sampled = (results.get("cost") or {}).get("profile")
    if not sampled:
        return []
    lines = [
        "## Profile (CPU-time sampler)",
        "",
        "`make bench BENCH_PROFILE=1`: after the cost rows above, the same events again with a "
        "sampler on this process's CPU time (`ITIMER_PROF`, every "
        f"{sampled['interval_ms']} ms); a share is the fraction of samples with the work on the "
        "stack (inclusive) or innermost among the app's frames (own: the function's own work with "
        "the Django and driver calls it makes, the figure to compare with the cost table). Only "
        "this process is sampled: PostgreSQL's own CPU is in the table above.",
    ]
    for key, title in (
        ("webhook", "The inline webhook path"),
        ("apply", "A recorded event applied"),
    ):
        rows = sampled.get(key)
        if not rows:
            continue
        lines += ["", f"{title} ({sampled[key + '_samples']:,} samples):", ""]
        lines += ["| work | inclusive % | own % |", "|---|---:|---:|"]
        lines += [f"| `{r['work']}` | {r['inclusive']} | {r['own']} |" for r in rows]
    return [*lines, ""]


def markdown(results: dict, command: str) -> str:
    m, ing, cel = results["machine"], results["ingestion"], results.get("celery")
    rec, adm, sbx = results["reconciliation"], results["admin"], results["sandbox"]
    paced = ing["paced_100_per_s"]
    runs = paced.get("p99_runs_ms", [paced["p99_ms"]])
    lines = ["# Benchmarks", ""]
    if results.get("quick"):
        lines += [
            "**A quick run** (`--quick`): small counts that prove the harness end to end; the "
            "figures below are not comparable with the targets.",
            "",
        ]
    lines += [
        f"Produced by `{command}` on {results['date']}. Sender, servers, PostgreSQL and Redis "
        "all share one machine, so the figures are comparable side by side, not absolute.",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Python "
        f"{m['python']}, Django {m['django']}, PostgreSQL {m['postgresql']}.",
        "",
        "## Targets",
        "",
        *targets(results),
        "",
        "## Webhook ingestion",
        "",
        f"{ing['ours']['events']:,} signed events (sessions, payments, refunds; 10% duplicates, "
        f"some out of order) POSTed by {senders(ing['ours'])} to the example shop under "
        f"{describe_server(ing.get('server'))} on PostgreSQL, "
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
    queries = ing["queries_per_applied_event"]
    lines += [
        "",
        f"- Ratio ours / baseline: **{ing['ratio']}**{_rounds(ing)}.",
        f"- At 100 events/s offered ({len(runs)} runs of {paced['events']:,} events, median by "
        f"p99): p50 {paced['p50_ms']} ms, p99 **{paced['p99_ms']} ms** (runs: {runs}).",
        f"- Database queries per applied event: **{queries['statements']}** SQL statements plus "
        f"{queries['transaction_control']} transaction-control statements "
        "(BEGIN/COMMIT/SAVEPOINT), measured in-process with the shop's receivers disconnected.",
        f"- Afterwards: {ing['check']['events_processed']:,} of {ing['check']['unique_events']:,}"
        f" unique events processed, {ing['check']['signals']:,} signals, "
        f"{ing['check']['signals_sent_twice']} sent twice. Answers: "
        f"{statuses(ing['ours'])}; the events stored failed were sent again afterwards, as "
        f"Plugipay redelivers ({ing['ours']['redelivered']} deliveries).",
    ]
    if cel:
        lines += [
            "",
            '### With `WEBHOOK_PROCESSING = "celery"`',
            "",
            f"- Ingestion (record and enqueue on Redis) by {senders(cel['ingest'])} to "
            f"{describe_server(cel.get('server'))}: **{cel['ingest']['events_per_s']} "
            f"events/s**, p99 {cel['ingest']['p99_ms']} ms.",
            *queued(cel, ing),
            f"- Drain by one worker (concurrency {cel.get('worker_concurrency', 1)}): "
            f"**{cel['drain_events_per_s']} events/s**"
            + (
                f" (the median of {len(cel['drain_runs_per_s'])} drains, each of a new backlog: "
                f"{cel['drain_runs_per_s']} events/s)"
                if len(cel.get("drain_runs_per_s", ())) > 1
                else ""
            )
            + "; every event applied: "
            f"{cel['check']['every_event_applied']}, every signal once: "
            f"{cel['check']['every_signal_once']}.",
        ]
        default = cel.get("default_concurrency")
        if default:
            lines.append(
                f"- The same worker with its default concurrency ({default['concurrency']} "
                f"processes, one per core): **{default['events_per_s']} events/s**; every "
                f"event applied: {default['check']['every_event_applied']}, every signal "
                f"once: {default['check']['every_signal_once']}."
            )
    small = results.get("reconciliation_small") or results.get("reconciliation_2000")
    lines += [
        "",
        "## Reconciliation",
        "",
        f"{rec['events']:,} events served by the sandbox, applied from an empty database: "
        f"**{rec['events_per_s']} events/s**, **{rec['queries_per_event']} SQL statements per "
        f"event** (+{rec['transaction_control_per_event']} transaction control). "
        f"{rec['payments_created']:,} payments created."
        + (f" With {small['events']:,} events: {small['events_per_s']} events/s." if small else "")
        + _against(results, "reconciliation")
        + _ledger(rec),
        *alone(results),
        *queued_reconciliation(results),
        *slow_link(results.get("reconciliation_slow_link")),
        *billing(
            results.get("billing_reconciliation"), _against(results, "billing_reconciliation")
        ),
        "",
        *cost(results),
        *profile(results),
        *load(results),
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


def queued(cel: dict, ing: dict) -> list[str]:
    """The queued acceptance's side-by-side baseline, task messages and paced latency."""
    lines = []
    floor = cel.get("ingest_baseline")
    if floor:
        apart = round(cel["ingest"]["events_per_s"] / ing["baseline"]["events_per_s"], 2)
        runs = cel["ingest"].get("runs_per_s")
        side = (
            f"The baseline view on the same server, saturated {len(runs)} times alternating "
            f"with acceptance (runs: baseline {floor['runs_per_s']}, acceptance {runs} "
            f"events/s; the runs with the median rates): {floor['events_per_s']} events/s"
            if runs
            else f"The baseline view on the same server just before: {floor['events_per_s']} "
            "events/s"
        )
        lines.append(
            f"- {side} (p99 {floor['p99_ms']} ms), so acceptance is "
            f"**{cel['ingest_ratio']}×** the baseline beside it ({apart}× the ingestion suite's "
            "baseline)."
        )
    if "task_messages" in cel["ingest"]:
        lines.append(
            f"- Task messages sent for "
            f"{cel['ingest'].get('task_events', cel['ingest']['events']):,} deliveries: "
            f"{cel['ingest']['task_messages']:,} (batch tasks, at most two per window per "
            "process, not one per event)."
        )
    paced = cel.get("paced_100_per_s")
    if paced:
        runs = paced.get("p99_runs_ms", [paced["p99_ms"]])
        warm = paced.get("warm_up_events")
        after = f" on a new server after {warm:,} events to warm it up" if warm else ""
        lines.append(
            f"- Acceptance at 100 events/s offered ({len(runs)} runs of {paced['events']:,} "
            f"events{after}, median by p99): p50 {paced['p50_ms']} ms, p99 "
            f"**{paced['p99_ms']} ms** (runs: {runs})."
        )
    return lines


def _fetches(bil: dict) -> str:
    count = bil.get("subscriptions_fetched")
    return "fetches not counted by this run" if count is None else f"{count:,} fetches"


def _against(results: dict, suite: str) -> str:
    """The ratio of ``suite``'s throughput to the baseline measured just before it."""
    if _baseline_path(results, suite) == INGESTION_BASELINE:
        return ""
    ratio = _beside(f"{suite}.events_per_s")(results)
    baseline_runs = _runs_of(results, _baseline_path(results, suite))
    if baseline_runs:
        return (
            f" The baseline view, saturated on a new server {len(baseline_runs)} times in turn "
            f"with the suite's runs (runs: baseline {baseline_runs}, this "
            f"{_runs_of(results, f'{suite}.events_per_s')} events/s; the runs with the median "
            f"rates): {_rate_beside(results, suite)} events/s, so **{ratio:.2f}×** the baseline."
        )
    return (
        f" The baseline view, measured on a new server just before the suite: "
        f"{_rate_beside(results, suite)} events/s, so **{ratio:.2f}×** the baseline."
    )


def queued_reconciliation(results: dict) -> list[str]:
    """The queued mode's reconciliation: the run records, a worker applies (absent from runs
    before it existed, and with ``--skip-celery``)."""
    que = results.get("reconciliation_queued")
    if not que:
        return []
    check = que["check"]
    return [
        "",
        f'In the queued mode (`WEBHOOK_PROCESSING = "celery"`, a Celery app on Redis), the '
        f"same {que['events']:,} events: the run records each page in one statement and "
        f"queues it, and one Celery worker of {que['concurrency']} processes applies the "
        "events in batches, with the shop's receivers and the benchmark's signal ledger (a "
        "row per signal). Timed from the start of `reconcile()` until every event is "
        "applied (the worker started and answering before): "
        f"**{que['events_per_s']} events/s** ({que['seconds']} s; the run itself returned "
        f"after {que['record_seconds']} s, the worker applying meanwhile)."
        + _against(results, "reconciliation_queued")
        + f" Every event applied: {check['every_event_applied']}; {check['signals']:,} "
        f"signals, every signal once: {check['every_signal_once']}.",
    ]


def billing(bil: dict | None, against: str = "") -> list[str]:
    """The billing figure, next to the checkout one (absent from runs before it existed)."""
    if not bil:
        return []
    return [
        "",
        f"Billing: {bil['events']:,} events of {bil['subscriptions']} subscriptions renewing "
        f"month after month ({bil['renewals_fetched']:,} renewal events completed by the whole "
        f"subscription, {_fetches(bil)}), "
        f"applied from an empty database: **{bil['events_per_s']} events/s**, "
        f"{bil['queries_per_event']} SQL statements per event; {bil['invoices']:,} invoices."
        + against
        + _ledger(bil),
    ]


def _ledger(figures: dict) -> str:
    """What the benchmark's own receiver did in an in-process suite, and what it found."""
    if "signals" not in figures:  # a run before the ledger was kept in memory
        return ""
    return (
        " The receivers connected: the shop's, and the benchmark's signal ledger, kept in "
        "memory here (each signal appended when its transaction commits, no statement): "
        f"{figures['signals']:,} signals of the {figures.get('signals_expected', '?'):,} its "
        "rows' states call for, each sent once and none missing: "
        f"{figures['signals_once']}."
    )


COST_ROWS = (
    ("baseline (verify + insert)", "baseline"),
    ("django-plugipay, the shop's receivers connected", "ours"),
    ("django-plugipay, no receivers", "ours_no_receivers"),
    ("a recorded event applied (the Celery task's work)", "apply_recorded"),
)


def slow_link(slow: dict | None) -> list[str]:
    """Reconciliation when Plugipay answers each page of events late: pages read ahead."""
    if not slow:
        return []
    ahead, serial = slow["read_ahead"], slow["one_after_another"]
    return [
        "",
        f"Over a slower link (the sandbox answers each page of 100 events "
        f"{slow['page_delay_ms']} ms late), {ahead['events']:,} events: **{ahead['events_per_s']} "
        "events/s** with the next page read while one is applied, "
        f"{serial['events_per_s']} events/s one page after another "
        f"({ahead['events_per_s'] / serial['events_per_s']:.2f}×); the apply loop waited "
        f"{ahead['page_wait_seconds']} s for pages in all, against "
        f"{serial['page_wait_seconds']} s.",
    ]


def alone(results: dict) -> list[str]:
    """Reconciliation with no receiver connected: the app's own work, without the shop's."""
    own = results.get("reconciliation_alone")
    if not own:
        return []
    ratio = _beside("reconciliation_alone.events_per_s")(results)
    beside = f" ({ratio:.2f}× the baseline)" if ratio is not None else ""
    return [
        "",
        f"The same {own['events']:,} events with every receiver of the app's signals "
        "disconnected (the shop's, its durable receiver's recorder and the benchmark's signal "
        f"ledger), the app's own work alone: **{own['events_per_s']} events/s**{beside}, "
        f"{own['queries_per_event']} SQL statements per event.",
    ]


def cost(results: dict) -> list[str]:
    """Where an event's time goes, and what that says about each missed target."""
    cst = results.get("cost")
    if not cst:
        return []
    lines = [
        "## Where an event's time goes",
        "",
        f"One sender in the benchmark's own process, no concurrency, {cst['ours']['events']:,} "
        "events per row; CPU per event read from this process (`time.process_time`) and from "
        "its PostgreSQL backend (`/proc/<pid>/stat`), statements counted on the connection; "
        "round trips add the transaction control (BEGIN and COMMIT, which the driver sends "
        "outside `execute`, and SAVEPOINT/RELEASE).",
        "",
        "| work | wall ms | Python CPU ms | PostgreSQL CPU ms | SQL statements | round trips |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, key in COST_ROWS:
        row = cst[key]
        lines.append(
            f"| {label} | {row['wall_ms']} | {row['python_cpu_ms']} | "
            f"{row['postgres_cpu_ms']} | {row['statements']} | {row.get('round_trips', '')} |"
        )
    return [*lines, "", *prepared(results), *versus(results), *bounds(results), ""]


def prepared(results: dict) -> list[str]:
    """The measured effect of the psycopg 3 options the deployment guide recommends."""
    bound = (results.get("cost") or {}).get("binding")
    if not bound:
        return []
    from benchmarks.suites.cost import PREPARED

    options = ", ".join(f"`{name}={value!r}`" for name, value in PREPARED.items())
    lines = [
        "### Prepared statements (psycopg 3)",
        "",
        f"The same two rows with Django's defaults (client-side binding: PostgreSQL parses and "
        f"plans every statement) and with {options} (the options "
        "[Deployment](explanation/deployment.md) recommends), "
        f"{bound['events']:,} events per row, {bound['rounds']} rounds in alternating order, "
        "medians of the rounds.",
        "",
        "| work | options | wall ms | Python CPU ms | PostgreSQL CPU ms |",
        "|---|---|---:|---:|---:|",
    ]
    for label, row in (
        ("inline webhook path, no receivers", "inline"),
        ("a recorded event applied (the Celery task's work)", "recorded"),
    ):
        for name in ("default", "prepared"):
            figures = bound[name][row]
            lines.append(
                f"| {label} | {name} | {figures['wall_ms']} | {figures['python_cpu_ms']} | "
                f"{figures['postgres_cpu_ms']} |"
            )
    lines.append("")
    for label, row in (("the inline path", "inline"), ("a recorded event", "recorded")):
        before, after = bound["default"][row], bound["prepared"][row]
        if before["postgres_cpu_ms"]:
            ratio = after["postgres_cpu_ms"] / before["postgres_cpu_ms"]
            lines.append(
                f"- PostgreSQL CPU per event for {label}: **{ratio:.2f}×** with the options; "
                f"wall time {after['wall_ms'] / before['wall_ms']:.2f}×."
            )
    return [*lines, ""]


def versus(results: dict) -> list[str]:
    """The inline path beside the per-event design it replaced, measured in this run."""
    vs = results.get("versus")
    if not vs:
        return []
    if "error" in vs:
        return [
            f"The per-event design (commit `{vs['before']}`) was not measured beside this tree: "
            f"{vs['error']}",
            "",
        ]
    half = vs["events"] // 2
    lines = [
        f"### Beside the per-event design (commit `{vs['before']}`)",
        "",
        "The package as it was before the apply engine's redesign, extracted with `git archive` "
        "with its own example shop and benchmark settings, and this tree, each in a child "
        f"process on its own fresh database, {vs['rounds']} rounds in alternating order. Each "
        f"child posts the same {vs['events']:,} signed events of the ingestion mix through "
        f"Django's test client after the same warm-up: the first {half:,} with every "
        "django-plugipay signal receiver disconnected, the other "
        f"{vs['events'] - half:,} (later events, the refunds still due among them) with each "
        "tree's own receivers (its shop's, the benchmark's signal counter; this release's shop "
        "also records a durable receiver's delivery per payment, then claims and runs it after "
        "the commit). Figures per request, medians of the rounds; CPU is the child's whole "
        "process (test client, middleware and signing included) and its PostgreSQL backend; "
        "statements are those sent through Django's cursors (SAVEPOINT/RELEASE included, "
        "BEGIN/COMMIT not).",
        "",
        "| inline webhook path | design | wall ms | Python CPU ms | PostgreSQL CPU ms "
        "| statements |",
        "|---|---|---:|---:|---:|---:|",
    ]
    labels = {"no_receivers": "no receivers", "receivers": "each tree's own receivers"}
    for row, label in labels.items():
        for name, design in (("before", "per-event"), ("now", "this release")):
            m = vs[row][name]
            lines.append(
                f"| {label} | {design} | {m['wall_ms']:.2f} | {m['python_cpu_ms']:.2f} | "
                f"{m['postgres_cpu_ms']:.2f} | {m['statements']:.2f} |"
            )
    lines.append("")
    outcome = vs["outcome"]
    if not vs["same_outcome"]:
        return [
            *lines,
            "- The two trees did not store the same outcome (answers, events, payments, "
            "refunds), so no ratio is given.",
            "",
        ]
    bare, full = vs["no_receivers"], vs["receivers"]
    rounds = ", ".join(f"{r:.2f}" for r in bare["python_cpu_ratios"])
    lines += [
        "- Both trees stored the same outcome: "
        + "; ".join(f"{name} {counts}" for name, counts in outcome.items())
        + ".",
        f"- Without receivers, this release's **Python CPU per event is "
        f"{bare['python_cpu_ratio']:.2f}×** the per-event design's (rounds: {rounds}); Python "
        f"and PostgreSQL CPU together {bare['cpu_ratio']:.2f}×, wall time "
        f"{bare['wall_ratio']:.2f}×: part of the work moved into PostgreSQL (one statement "
        "locks and reads what several did, planned on each execution).",
        f"- With each tree's own receivers: Python CPU {full['python_cpu_ratio']:.2f}×, wall "
        f"{full['wall_ratio']:.2f}×; the shops differ (above), so that row is not like for "
        "like.",
        "",
    ]
    return lines


def _cpu(row: dict) -> float:
    return row["python_cpu_ms"] + row["postgres_cpu_ms"]


def _alone_bound(results: dict) -> str:
    own, rec = results.get("reconciliation_alone"), results["reconciliation"]
    ratio = _beside("reconciliation_alone.events_per_s")(results)
    if not own or ratio is None:
        return ""
    return (
        f" With no receiver connected the same events apply at {own['events_per_s']} events/s "
        f"({ratio:.2f}× the baseline, {own['queries_per_event']} statements per event): the "
        f"receivers' own statements ({rec['queries_per_event'] - own['queries_per_event']:.2f} "
        "per event) and Python make the rest of the difference."
    )


def bounds(results: dict) -> list[str]:
    """What bounds each figure against its target, from the measurements of this run."""
    cst, ing, rec = results["cost"], results["ingestion"], results["reconciliation"]
    cel = results.get("celery")
    base, ours, bare = cst["baseline"], cst["ours"], cst["ours_no_receivers"]
    capacity = ing["ours"]["events_per_s"]
    cores = results["machine"]["cores"] or 1
    base_all = 1000 * cores / ing["baseline"]["events_per_s"]
    ours_all = 1000 * cores / capacity
    lines = [
        "### What bounds the targets",
        "",
        f"- **Ingestion ratio ({ing['ratio']}).** Saturated, the senders, gunicorn and "
        f"PostgreSQL keep the machine's {cores} cores busy, so each event costs about "
        f"cores ÷ rate of CPU in all: {base_all:.1f} ms for the baseline "
        f"({ing['baseline']['events_per_s']} events/s), {ours_all:.1f} ms for "
        f"django-plugipay. The difference, {ours_all - base_all:.1f} ms, is the app's own "
        f"work, and the table above finds about the same: {_cpu(ours) - _cpu(base):.1f} ms "
        f"more CPU per event, from {bare['statements']} statements instead of one (the event "
        "row inserted with the rows it names locked and read in the same statement, then the "
        "object's insert or update and the session or payment it creates or links), each "
        "result loaded back into a model in Python, the signals and the transaction, and "
        f"{bare['postgres_cpu_ms']} ms of PostgreSQL CPU instead of {base['postgres_cpu_ms']} "
        "(with Django's defaults the combined statement is parsed and planned on every "
        "execution; the prepared-statement rows above show what server-side binding changes). "
        "A ratio of 0.45 allows "
        f"{base_all / 0.45:.1f} ms per event in all: the app's own work would have to shrink "
        f"from {ours_all - base_all:.1f} to {base_all / 0.45 - base_all:.1f} ms. With two or "
        "three statements left, what remains is the Python that validates the object, moves "
        "the row and sends the signals, and PostgreSQL's work per row; the next step would be "
        "to apply inline events in small batches too (as the queued mode does), which this "
        "release does not do.",
    ]
    if ing["paced_100_per_s"]["p99_ms"] >= 50:
        lines.append(
            f"- **p99 at 100 events/s.** 100 events/s is {100 * 100 / capacity:.0f}% of the "
            f"saturating rate measured above ({capacity} events/s); at that load on {cores} "
            "shared cores, bursts queue behind one another and the tail is set by the queue, "
            f"not by one event's own time (p50 {ing['paced_100_per_s']['p50_ms']} ms). Under "
            "50 ms needs more headroom: a higher capacity per core, or more cores."
        )
    if "apply_ms_per_event" in rec:
        per_event = 1000 / rec["events_per_s"]
        lines.append(
            f"- **Reconciliation ({rec['events_per_s']} events/s).** One process applies one "
            f"event after another: {per_event:.2f} ms per event, of which "
            f"{rec['apply_ms_per_event']} ms applying it ({rec['queries_per_event']} "
            "statements, the page's transaction and locks shared) and the rest waiting for "
            f"the next page of events ({rec.get('page_wait_seconds', rec.get('fetch_seconds'))} s "
            "in all: each page is read "
            "in a thread while the one before is applied, and the sandbox serves it from a "
            "thread of this same process). "
            f"1.2× the baseline ({1.2 * _rate_beside(results, 'reconciliation'):.0f} events/s, "
            f"{_which_baseline(results, 'reconciliation')}) allows "
            f"{1000 / (1.2 * _rate_beside(results, 'reconciliation')):.2f} ms per event, "
            "less than the Python CPU alone "
            f"that applying one event costs in the table above ({bare['python_cpu_ms']} ms). "
            "A page already reads the event log once, inserts its events in one statement, "
            "locks and reads the rows it names in one statement per resource and holds every "
            "row it locked or wrote, so a later event of the same object locks and reads "
            "nothing; what is left per event is its own insert or update, what its receivers "
            "do (here the shop's durable receiver, its deliveries inserted together at the end "
            "of the page, then each run and marked once after the commit"
            + ("" if "signals" in rec else ", and a signal counter that inserts a row per signal")
            + ") and the Python that reads the object, moves the row and sends the signals."
            + _alone_bound(results)
            + " Meeting the target in one process would take writing a page's changes to "
            "each resource in one multi-row statement, which this release does not do. In the "
            "queued mode the run only records its pages and the workers apply them side by "
            "side"
            + (
                f" ({_beside('reconciliation_queued.events_per_s')(results):.2f}× the "
                "baseline, above)"
                if results.get("reconciliation_queued")
                else ""
            )
            + "."
        )
    if cel and cel.get("ingest_baseline"):
        floor, accepted = cel["ingest_baseline"], cel["ingest"]
        floor_all = 1000 * cores / floor["events_per_s"]
        lines.append(
            f"- **Queued acceptance ({cel['ingest_ratio']}).** Saturated as above, the baseline "
            f"costs {floor_all:.2f} ms of the machine's CPU per event ({floor['events_per_s']} "
            f"events/s) and acceptance {1000 * cores / accepted['events_per_s']:.2f} ms "
            f"({accepted['events_per_s']} events/s); 0.8× the baseline allows "
            f"{floor_all / 0.8:.2f} ms. Beyond verifying the signature and inserting the body, "
            "acceptance parses the event and validates its object before answering (a signed "
            "event with bad values is answered 4xx and stored failed), stores the payload as "
            "`jsonb` in a row that the admin's filters, the sweeper and the batch claims find by "
            "index, and sends a batch task's message a few times a second per process "
            f"({accepted.get('task_messages', 0):,} for "
            f"{accepted.get('task_events', accepted['events']):,} events)."
        )
    bil = results.get("billing_reconciliation")
    if bil:
        lines.append(
            f"- **Billing reconciliation ({bil['events_per_s']} events/s).** "
            f"{1000 / bil['events_per_s']:.2f} ms per event against "
            f"{1000 / (0.6 * _rate_beside(results, 'billing_reconciliation')):.2f} ms for 0.6× "
            f"the baseline ({_which_baseline(results, 'billing_reconciliation')}), at "
            f"{bil['queries_per_event']} statements per event. "
            f"{bil['renewals_fetched']:,} of its {bil['events']:,} events carry only the new "
            "period, so each page first fetches their subscriptions from the sandbox (one "
            "request per subscription, on one kept-alive connection, served by a thread of "
            "this process) before its transaction, unless an earlier page of the run fetched "
            "one that changed no earlier than this page's last event occurred "
            f"({_fetches(bil)}); the rest is applied as above, each subscription's row locked "
            "and read once per page however many of its events (invoices, charges, renewals) "
            "the page holds."
        )
    if cel:
        applied = cst["apply_recorded"]
        per_event = 1000 / cel["drain_events_per_s"]
        two = (cel.get("default_concurrency") or {}).get("events_per_s")
        text = (
            f"- **Celery workers ({cel['drain_events_per_s']} events/s with one).** One worker "
            f"drains the queue in batches: {per_event:.2f} ms per event, against "
            f"{1000 / (0.6 * _rate_beside(results, 'celery')):.2f} ms for 0.6× the baseline "
            f"({_which_baseline(results, 'celery')}); applying a recorded "
            f"event on its own costs {applied['wall_ms']} ms (the table above), so the batch "
            "already shares most of the per-event work."
        )
        used = cel.get("drain_cores_used")
        if two and used:
            own = used["worker"] + used["postgres"] + used["redis"]
            ceiling = min(2.0, cores / own) if own else 2.0
            text += (
                f" While one worker drained, it kept {own:.2f} of the machine's {cores} cores "
                f"busy on average (the worker {used['worker']}, PostgreSQL {used['postgres']}, "
                f"Redis {used['redis']}; everything else {used['rest']}), so a second worker "
                f"could at most reach {ceiling:.2f}× one, short of 1.6×"
                if ceiling < 1.6
                else f" While one worker drained, it kept {own:.2f} of the machine's {cores} "
                "cores busy on average, leaving room for a second worker"
                + (
                    f" ({ceiling:.2f}× one at most, by the cores)"
                    if two / cel["drain_events_per_s"] < ceiling
                    else " (two measured more than twice one here: one worker's drain varies "
                    "by about a fifth from run to run on this machine)"
                )
            )
            text += (
                f"; two worker processes drained {two} events/s "
                f"({two / cel['drain_events_per_s']:.2f}× one)."
            )
            both = (cel.get("default_concurrency") or {}).get("cores_used")
            if both:
                together = both["worker"] + both["postgres"] + both["redis"]
                text += f" The two kept {together:.2f} cores busy together"
                text += (
                    ", no more than one alone: they wait on each other, not on the cores (a "
                    "batch locks the mirror rows its events name until it commits, and the other "
                    "worker's batch holding events of the same sessions and payments waits for "
                    "it)."
                    if together < 1.2 * own
                    else ": each batch claims the objects its events name (advisory locks "
                    "tried without waiting) and leaves the events of objects the other worker's "
                    "batch holds for its next batch, so the two apply side by side instead of "
                    "one waiting for the other's commit."
                )
        elif two:
            text += f" Two worker processes drained {two} events/s."
        lines.append(text)
    return lines


def _rounds(ing: dict) -> str:
    """How the saturated figures were taken: the median run of several, alternating."""
    if "rounds" not in ing:  # a run before the rounds
        return ""
    return (
        f" (each side saturated {ing['rounds']} times, alternating; the table gives the run with "
        f"the median rate; runs: baseline {ing['baseline']['runs_per_s']}, django-plugipay "
        f"{ing['ours']['runs_per_s']} events/s)"
    )
