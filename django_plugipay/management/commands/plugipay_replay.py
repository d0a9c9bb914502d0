"""``manage.py plugipay_replay``: apply failed webhook events again (or dismiss them)."""

from __future__ import annotations

import contextlib

from django.core.management.base import BaseCommand, CommandError

from django_plugipay import accounts, services
from django_plugipay.models import Account, Delivery, DeliveryStatus, WebhookEvent


class Command(BaseCommand):
    help = (
        "Re-apply webhook events that failed (or were never processed); with --dismiss, mark "
        "the failed events named as not to be applied; with --deliveries, run durable "
        "receivers' failed and dead deliveries now."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("event_ids", nargs="*", help="only these event ids (evt_…)")
        parser.add_argument("--limit", type=int, help="at most this many events")
        parser.add_argument(
            "--account",
            help="only this account's events (its alias; default: every account's)",
        )
        parser.add_argument(
            "--dismiss",
            action="store_true",
            help="mark the failed events named ignored instead: never applied, no longer "
            "reported (the admin's 'Dismiss')",
        )
        parser.add_argument(
            "--deliveries",
            action="store_true",
            help="run durable receivers' waiting, failed and dead deliveries now (no backoff)",
        )

    def handle(
        self,
        *args,
        event_ids=(),
        limit=None,
        account=None,
        dismiss=False,
        deliveries=False,
        **options,
    ) -> None:
        if account is not None:
            try:
                account = accounts.known(account).alias
            except Account.DoesNotExist as exc:
                raise CommandError(f"--account: {exc}") from exc
        with accounts.acting_for(account) if account else contextlib.nullcontext():
            if deliveries:
                self._deliveries(limit)
                return
            if dismiss and not event_ids:
                raise CommandError("--dismiss takes the ids of the events to dismiss (evt_…).")
            if event_ids:
                missing = set(event_ids) - self._known(event_ids)
                if missing:
                    raise CommandError(f"Unknown event ids: {', '.join(sorted(missing))}.")
            if dismiss:
                self._dismiss(list(event_ids))
                return
            counts = services.replay_failed_events(
                limit=limit, event_ids=list(event_ids) if event_ids else None
            )
        style = self.style.SUCCESS if not counts["failed"] else self.style.WARNING
        self.stdout.write(
            style(
                f"{counts['processed']} applied, {counts['failed']} still "
                "failing (see the events' last error in the admin)."
            )
        )
        if counts["failed"]:  # for cron (and a script) to tell
            raise CommandError(f"{counts['failed']} events still fail.")

    def _known(self, event_ids) -> set[str]:
        def known_here() -> set[str]:
            named = accounts.own(WebhookEvent.objects.filter(event_id__in=event_ids))
            return set(named.values_list("event_id", flat=True))

        return set().union(*accounts.read_every_account(known_here))

    def _dismiss(self, event_ids: list[str]) -> None:
        def dismiss_here() -> int:
            named = accounts.own(WebhookEvent.objects.filter(event_id__in=event_ids))
            return services.dismiss_events(events=named)

        dismissed = sum(accounts.read_every_account(dismiss_here))
        left = len(event_ids) - dismissed
        note = f"; {left} not failed, left as they are" if left else ""
        self.stdout.write(self.style.SUCCESS(f"{dismissed} dismissed{note}."))

    def _deliveries(self, limit) -> None:
        ran = services.run_deliveries(force=True, limit=limit)
        left = sum(
            accounts.read_every_account(
                lambda: accounts.own(
                    Delivery.objects.exclude(status__in=DeliveryStatus.finished_states())
                ).count()
            )
        )
        style = self.style.SUCCESS if not left else self.style.WARNING
        self.stdout.write(
            style(
                f"{ran} deliveries run, {left} not succeeded yet (see Deliveries in the "
                "admin for their last error)."
            )
        )
