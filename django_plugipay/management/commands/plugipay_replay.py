"""``manage.py plugipay_replay``: apply failed webhook events again."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from django_plugipay import services
from django_plugipay.models import Delivery, DeliveryStatus, WebhookEvent


class Command(BaseCommand):
    help = (
        "Re-apply webhook events that failed (or were never processed); with --deliveries, "
        "run durable receivers' failed and dead deliveries now."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("event_ids", nargs="*", help="only these event ids (evt_…)")
        parser.add_argument("--limit", type=int, help="at most this many events")
        parser.add_argument(
            "--deliveries",
            action="store_true",
            help="run durable receivers' waiting, failed and dead deliveries now (no backoff)",
        )

    def handle(self, *args, event_ids=(), limit=None, deliveries=False, **options) -> None:
        if deliveries:
            ran = services.run_deliveries(force=True, limit=limit)
            left = Delivery.objects.exclude(status__in=DeliveryStatus.finished_states()).count()
            style = self.style.SUCCESS if not left else self.style.WARNING
            self.stdout.write(
                style(
                    f"{ran} deliveries run, {left} not succeeded yet (see Deliveries in the "
                    "admin for their last error)."
                )
            )
            return
        if event_ids:
            known = set(
                WebhookEvent.objects.filter(event_id__in=event_ids).values_list(
                    "event_id", flat=True
                )
            )
            missing = set(event_ids) - known
            if missing:
                raise CommandError(f"Unknown event ids: {', '.join(sorted(missing))}.")
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
