"""Break each key guarantee on purpose in a copy of the source tree; its tests must go red.

Run by ``make mutate`` (and CI). For every mutation below, one exact search string in one file
is replaced in a temporary copy (never the working tree), the named tests run against the copy,
and the mutation must be *killed* (the tests fail). A search string that is not found exactly
once stops the run: update the table when the code it names changes. Exit status 0 only when
the unmutated copy passes every named test (none skipped) and every mutation is killed.

    python tests/mutations.py            # all; DATABASE_URL must name PostgreSQL for the lock
    python tests/mutations.py --list     # the table only
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    edits: tuple[tuple[str, str, str], ...]  # (file, exact search string, replacement)
    tests: tuple[str, ...]


# fmt: off
MUTATIONS = (
    Mutation(
        "exactly-once signals: drop the event-id dedup",
        (
            ("django_plugipay/services/events.py",
             "        if event.status in DONE:\n            return event, False\n",
             "        pass\n"),
            ("django_plugipay/services/events.py",
             "    if not claimed:\n"
             "        return row  # applied before (a duplicate task, a concurrent replay)\n",
             ""),
        ),
        ("tests/test_webhook_view.py::test_same_event_five_times_in_a_row",),
    ),
    Mutation(
        "never-double refunds: skip the remainder check in refund_payment",
        (
            ("django_plugipay/services/refunds.py",
             "    if isinstance(amount, int) and amount > remaining:\n",
             "    if False:\n"),
        ),
        ("tests/test_api.py::test_over_refund_is_400_with_a_clear_message",),
    ),
    Mutation(
        "row locks: the apply path reads and upserts rows without locking them",
        (
            ("django_plugipay/db.py",
             "            queryset = queryset.select_for_update(no_key=True)\n",
             "            pass\n"),
            ("django_plugipay/db.py",
             "    if connection.vendor != \"postgresql\":\n        if insert_new(",
             "    if True:\n"
             "        existing = model.objects.filter(**{conflict: getattr(instance, conflict)})"
             ".first()\n"
             "        if existing is not None:\n"
             "            return existing, False\n"
             "        if insert_new("),
            ("django_plugipay/db.py",
             "        locked = model._default_manager.select_for_update(no_key=True)\n",
             "        locked = model._default_manager\n"),
            ("django_plugipay/db.py",
             "            f\"WHERE {' AND '.join(conditions)} FOR NO KEY UPDATE)\"\n",
             "            f\"WHERE {' AND '.join(conditions)})\"\n"),
        ),
        ("tests/services/test_postgres.py::"
         "test_a_concurrent_apply_waits_for_the_row_lock_and_signals_once",
         "tests/services/test_postgres.py::"
         "test_two_events_of_one_transition_wait_on_the_rows_their_inserts_lock"),
    ),
    Mutation(
        "monotonic state: a terminal session may move again",
        (
            ("django_plugipay/services/apply.py",
             "        if old not in spec.terminal and not same:\n",
             "        if not same:\n"),
        ),
        ("tests/test_transitions.py::test_terminal_sessions_never_move",),
    ),
    Mutation(
        "bad input is 4xx: verification errors propagate as 500",
        (
            ("django_plugipay/views.py",
             "        except SignatureError as exc:\n",
             "        except NotImplementedError as exc:\n"),
            ("django_plugipay/views.py",
             "        except InvalidPayload as exc:\n",
             "        except NotImplementedError as exc:\n"),
        ),
        ("tests/test_webhook_view.py::test_bad_signatures_store_nothing",
         "tests/test_webhook_view.py::test_signed_non_event_bodies_are_400"),
    ),
    Mutation(
        "transient means transient: a lost connection is not retried",
        (
            ("django_plugipay/db.py",
             "    if is_connection_lost(exc):\n        return True\n",
             ""),
        ),
        ("tests/test_db.py::test_a_lost_connection_is_retried_on_a_fresh_connection",),
    ),
    Mutation(
        "the view tells the truth: an event not recorded is a 500 claiming it was",
        (
            ("django_plugipay/views.py",
             "            return _unavailable(exc.message)\n",
             "            return _error(500, \"failed\", \"The event was recorded.\")\n"),
        ),
        ("tests/test_faults.py::"
         "test_an_event_not_recorded_is_a_503_that_claims_nothing_and_logs_its_cause_once",),
    ),
    Mutation(
        "resubmitted refund page: no idempotency token",
        (
            ("django_plugipay/admin/refunds.py",
             "                idempotency_key=tokens.refund_key(token, payment.pk),\n",
             ""),
        ),
        ("tests/test_faults.py::"
         "test_a_resubmitted_refund_page_returns_its_first_outcome_and_refunds_once",),
    ),
    Mutation(
        "nothing stranded: the sweeper leaves events whose task was lost",
        (
            ("django_plugipay/services/sweeper.py",
             "    (\"events\", requeue_stranded_events),\n",
             ""),
        ),
        ("tests/test_faults.py::"
         "test_the_sweeper_applies_events_whose_enqueue_failed_or_whose_task_died",),
    ),
    Mutation(
        "durable receivers: a failing receiver is not retried",
        (
            ("django_plugipay/services/deliveries.py",
             "            status=DeliveryStatus.DEAD if dead else DeliveryStatus.FAILED,\n",
             "            status=DeliveryStatus.DEAD,\n"),
        ),
        ("tests/test_deliveries.py::"
         "test_a_failing_receiver_is_retried_until_it_returns_and_never_run_again",),
    ),
    Mutation(
        "durable receivers: a succeeded delivery runs again when forced",
        (
            ("django_plugipay/models/querysets.py",
             "                status__in=(DeliveryStatus.PENDING, DeliveryStatus.FAILED, "
             "DeliveryStatus.DEAD)\n",
             "                ~Q(status=DeliveryStatus.RUNNING)\n"),
            # the claim's own condition (one UPDATE … RETURNING on PostgreSQL)
            ("django_plugipay/services/deliveries.py",
             "        waiting.append(DeliveryStatus.DEAD)\n",
             "        waiting.extend((DeliveryStatus.DEAD, DeliveryStatus.SUCCEEDED))\n"),
        ),
        ("tests/test_deliveries.py::"
         "test_a_failing_receiver_is_retried_until_it_returns_and_never_run_again",),
    ),
    Mutation(
        "durable receivers: a page keeps the deliveries of work a savepoint rolled back",
        (
            ("django_plugipay/services/deliveries.py",
             "        kept = {d.key: d for d, marker in self.pending if id(marker) in alive}\n",
             "        kept = {d.key: d for d, marker in self.pending}\n"),
        ),
        ("tests/test_deliveries.py::"
         "test_a_pages_deliveries_are_inserted_together_without_those_of_a_failed_event",
         "tests/test_deliveries.py::"
         "test_a_page_inserts_no_delivery_for_work_a_receiver_rolled_back",
         "tests/test_batch.py::"
         "test_a_batch_inserts_its_deliveries_together_without_those_of_a_failed_event"),
    ),
    Mutation(
        "nothing lost: a receiver's swallowed database error rolls the event back unseen",
        (
            ("django_plugipay/services/events.py",
             "    if transaction.get_connection(acting_database()).needs_rollback:\n",
             "    if False:\n"),
        ),
        ("tests/test_webhook_view.py::"
         "test_a_receiver_that_swallows_a_database_error_fails_the_event_instead_of_losing_it",
         "tests/test_batch.py::"
         "test_a_receiver_swallowing_a_database_error_fails_its_event_not_the_page"),
    ),
)
# fmt: on

IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".tox",
    "build",
    "site",
    "artifacts",
    "__pycache__",
    "*.sqlite3",
    "node_modules",
)


def run_tests(copy: Path, tests: tuple[str, ...]) -> tuple[int, str, float]:
    """Run the named tests in the copy; return (pytest exit code, summary line, seconds)."""
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    # A PostgreSQL test database is migrated once and reused by every mutation's run.
    reuse = ["--reuse-db"] if env.get("DATABASE_URL", "").startswith("postgres") else []
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:randomly", *reuse]
    done = subprocess.run(
        [*command, "-m", "", *tests],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    summary = lines[-1] if lines else done.stderr.strip()[-200:]
    why = next((line[1:].strip() for line in lines if line.startswith("E ")), "")
    if why:  # the first assertion line says what the tests saw
        summary = f"{summary}: {why[:100]}"
    return done.returncode, summary, time.monotonic() - started


def imported_from(copy: Path) -> str:
    probe = "import django_plugipay, os; print(os.path.dirname(django_plugipay.__file__))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=copy,
        env={**os.environ, "PYTHONPATH": str(copy)},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def apply(copy: Path, mutation: Mutation) -> dict[Path, str]:
    """Apply a mutation's edits in the copy; return the originals. Raise if a search misses."""
    originals: dict[Path, str] = {}
    for name, search, replacement in mutation.edits:
        path = copy / name
        originals.setdefault(path, path.read_text(encoding="utf-8"))
        current = path.read_text(encoding="utf-8")
        found = current.count(search)
        if found != 1:
            raise SystemExit(
                f"mutation {mutation.name!r}: search string found {found} times in {name} "
                f"(needs exactly 1); update tests/mutations.py:\n{search!r}"
            )
        path.write_text(current.replace(search, replacement), encoding="utf-8")
    return originals


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the table and exit")
    args = parser.parse_args()
    if args.list:
        for mutation in MUTATIONS:
            print(f"{mutation.name}\n    " + "\n    ".join(mutation.tests))
        return 0
    all_tests = tuple(dict.fromkeys(t for m in MUTATIONS for t in m.tests))
    with tempfile.TemporaryDirectory(prefix="plugipay-mutate-") as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(ROOT, copy, ignore=IGNORE)
        where = imported_from(copy)
        if Path(where) != copy / "django_plugipay":
            print(f"the copy imports django_plugipay from {where}, not from the copy")
            return 2
        code, summary, seconds = run_tests(copy, all_tests)
        print(f"unmutated copy: {summary} ({seconds:.0f}s)")
        if code != 0 or re.search(r"\b(skipped|deselected|xfailed)\b", summary):
            print("the named tests must all run and pass before anything is mutated")
            return 1
        rows = []
        for mutation in MUTATIONS:
            originals = apply(copy, mutation)
            try:
                code, summary, seconds = run_tests(copy, mutation.tests)
            finally:
                for path, text in originals.items():
                    path.write_text(text, encoding="utf-8")
            # pytest: 1 = tests failed (killed); 0 = passed (survived); else it did not run.
            result = {0: "SURVIVED", 1: "killed"}.get(code, f"error (pytest exit {code})")
            rows.append((mutation, result, summary, seconds))
    width = max(len(m.name) for m in MUTATIONS)
    print(f"\n{'mutation':<{width}}  {'result':<10}  tests run")
    for mutation, result, summary, seconds in rows:
        print(f"{mutation.name:<{width}}  {result:<10}  {', '.join(mutation.tests)}")
        print(f"{'':<{width}}  {'':<10}  → {summary} ({seconds:.0f}s)")
    failed = [m.name for m, result, _, _ in rows if result != "killed"]
    if failed:
        print(f"\n{len(failed)} mutation(s) not killed: {'; '.join(failed)}")
        return 1
    print(f"\nall {len(rows)} mutations killed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
