"""``manage.py plugipay_sync``: reconcile with Plugipay now."""

from __future__ import annotations

import dataclasses

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils.dateparse import parse_datetime

from django_plugipay import accounts, services
from django_plugipay.exceptions import PlugipayError
from django_plugipay.models import Account
from django_plugipay.services import _queue


class Command(BaseCommand):
    help = (
        "Apply Plugipay events missed by webhooks, sync sessions and refunds in flight, and run "
        "durable receivers' due deliveries."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--since",
            help="ISO-8601 time to read events from (default: where the last run stopped)",
        )
        parser.add_argument(
            "--plans",
            action="store_true",
            help="only mirror the plan catalog (plans and their prices) from Plugipay",
        )
        parser.add_argument(
            "--account",
            help="the alias of the account to reconcile (default: every account, in turn)",
        )
        parser.add_argument(
            "--money",
            action="store_true",
            help="only mirror the ledger entries and receipts issued since the last run",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="count what would change without changing anything",
        )

    def handle(
        self, *args, since=None, dry_run=False, plans=False, money=False, account=None, **options
    ) -> None:
        if plans:
            try:
                synced_plans = services.sync_plans(account=account)
            except Account.DoesNotExist as exc:
                raise CommandError(f"--account: {exc}") from exc
            except PlugipayError as exc:
                raise CommandError(f"Plugipay could not be reached: {exc}") from exc
            prices = sum(plan.prices.count() for plan in synced_plans)
            self.stdout.write(
                self.style.SUCCESS(f"Plans: {len(synced_plans)} synced, with {prices} prices.")
            )
            return
        start = None
        if since:
            start = parse_datetime(since)
            if start is None:
                raise CommandError(f"--since {since!r} is not an ISO-8601 date-time.")
        if account is not None:
            try:
                aliases = [accounts.known(account).alias]
            except Account.DoesNotExist as exc:
                raise CommandError(f"--account: {exc}") from exc
        else:
            aliases = [known.alias for known in accounts.every()]
        failed, unsent = [], 0
        for alias in aliases:
            self.prefix = f"[{alias}] " if len(aliases) > 1 else ""
            try:
                with accounts.acting_for(alias):
                    if money:
                        self._money(start, dry_run)
                    else:
                        unsent += self._reconcile(start, dry_run, options.get("verbosity", 1))
            except (PlugipayError, DatabaseError) as exc:
                # one account's failure (Plugipay, or its database away) does not stop the rest
                what = "Plugipay" if isinstance(exc, PlugipayError) else "Its database"
                if len(aliases) == 1:
                    raise CommandError(f"{what} could not be reached: {exc}") from exc
                self.stderr.write(f"{self.prefix}{what} could not be reached: {exc}")
                failed.append(alias)
        if failed:
            raise CommandError(f"Not synced: accounts {', '.join(failed)}.")
        if unsent:
            raise CommandError(
                f"{unsent} events are recorded but no task could be sent to apply them; the "
                "sweep (django_plugipay.sweep, or the next plugipay_sync) sends them again once "
                "the broker answers."
            )

    def _money(self, start, dry_run: bool) -> None:
        if dry_run:  # read only: no row, no cursor, no receipt_issued
            waiting = services.unsynced_money(since=start)
            self.stdout.write(
                f"{self.prefix}Money (dry run): ledger entries that would be synced: "
                f"{waiting['ledger']}; receipts: {waiting['receipts']}."
            )
            return
        entries = services.sync_ledger(since=start)
        receipts = services.sync_receipts(since=start)
        self.stdout.write(
            self.style.SUCCESS(
                f"{self.prefix}Money: ledger entries synced: {entries}; receipts synced: "
                f"{len(receipts)}."
            )
        )

    def _reconcile(self, start, dry_run: bool, verbosity: int) -> int:
        """Reconcile the account acting now; return how many of its events wait for a task
        that could not be sent."""
        failed_before = _queue.failed_sends()
        bar = _Progress(self.stdout)
        result = services.reconcile(since=start, dry_run=dry_run, progress=bar.update)
        bar.finish()
        ran = 0 if dry_run else services.run_deliveries()  # a dry run changes nothing
        if ran:
            self.stdout.write(
                f"{self.prefix}Deliveries: {ran} run (durable receivers due or stranded)."
            )
        if result.skipped_locked:
            self.stdout.write(
                self.style.WARNING(f"{self.prefix}Another reconciliation is running; nothing done.")
            )
            return 0
        verb = "would apply" if dry_run else "applied"
        synced = ", ".join(f"{n} {name}" for name, n in sorted(result.synced.items())) or "none"
        handed = "would be queued" if dry_run else "queued"
        queued = (
            f"{result.events_queued} {handed} for the workers, " if result.events_queued else ""
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"{self.prefix}Events: {result.events_seen} read, {result.events_applied} {verb}, "
                f"{queued}{result.events_already_known} already known, "
                f"{result.events_failed} failed. Synced: {synced}."
            )
        )
        unsent = 0
        if not dry_run:
            before_sweep = _queue.failed_sends()
            swept = services.sweep(account=accounts.current().pk)
            requeued = (
                "found, their tasks not sent"
                if _queue.failed_sends() > before_sweep
                else "queued again"
            )
            self.stdout.write(
                f"{self.prefix}Swept: {swept['events']} stranded events {requeued}, "
                f"{swept['refunds']} refunds never confirmed submitted."
            )
            # events whose message failed in this run (the sweep takes at most 500 a run, so
            # others may still wait from an earlier outage: the next sweep sends them)
            if _queue.failed_sends() > failed_before:
                unsent = services.events_not_sent().count()
            if unsent:
                self.stdout.write(
                    self.style.WARNING(
                        f"{self.prefix}Not sent: {unsent} events recorded wait for a task that "
                        "could not be sent (is the broker up?); they are marked for the sweep."
                    )
                )
        if verbosity > 1:
            self.stdout.write(str(dataclasses.asdict(result)))
        return unsent


class _Progress:
    WIDTH = 30

    def __init__(self, stream) -> None:
        self.stream = stream
        self.count = 0
        self.tty = hasattr(stream, "isatty") and stream.isatty()

    def update(self, count: int) -> None:
        self.count = count
        if self.tty:
            filled = count % (self.WIDTH + 1)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            self.stream.write(f"\r[{bar}] {count} events", ending="")
            self.stream.flush()
        elif count % 500 == 0:
            self.stream.write(f"{count} events read…")

    def finish(self) -> None:
        if self.tty and self.count:
            self.stream.write("")
