"""``manage.py plugipay_replay``: apply failed webhook events again."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from django_plugipay import services
from django_plugipay.models import WebhookEvent


class Command(BaseCommand):
    help = "Re-apply webhook events that failed (or were never processed)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("event_ids", nargs="*", help="only these event ids (evt_…)")
        parser.add_argument("--limit", type=int, help="at most this many events")

    def handle(self, *args, event_ids=(), limit=None, **options) -> None:
        if event_ids:
            events = list(WebhookEvent.objects.filter(event_id__in=event_ids))
            missing = set(event_ids) - {e.event_id for e in events}
            if missing:
                raise CommandError(f"Unknown event ids: {', '.join(sorted(missing))}.")
            counts = {"processed": 0, "failed": 0}
            for event in events:
                try:
                    services.apply_event(event=event)
                    counts["processed"] += 1
                except Exception:
                    counts["failed"] += 1
        else:
            counts = services.replay_failed_events(limit=limit)
        style = self.style.SUCCESS if not counts["failed"] else self.style.WARNING
        self.stdout.write(
            style(
                f"{counts['processed']} applied, {counts['failed']} still "
                "failing (see the events' last error in the admin)."
            )
        )
