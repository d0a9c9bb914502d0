"""The Activity section of the payment, checkout session and refund admin pages: the recorded
webhook events and the local actions (refunds requested, admin actions), oldest first.

Events are placed in Plugipay's own sequence: the time the event says it happened (not when it
reached us), then, for events stamped with the same instant (Plugipay's docs dialect stamps
whole seconds), the resource in the lock order (a session's events before its payment's), the
object's lifecycle order from its resource spec (``refund.created`` before
``refund.succeeded``), then the event id (a ULID: Plugipay's creation order)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from django_plugipay import datetimes
from django_plugipay.admin.display import admin_link, badge, money
from django_plugipay.exceptions import InvalidPayload
from django_plugipay.models import CheckoutSession, Payment, Refund, WebhookEvent
from django_plugipay.specs import spec_for
from django_plugipay.webhooks import parse_event

#: A log entry this close to a refund requested by the same user records that request.
SAME_ACTION = dt.timedelta(seconds=5)


@dataclass(frozen=True)
class Entry:
    at: dt.datetime
    what: str  # HTML, already escaped
    who: str = ""
    #: orders entries stamped with the same instant (see the module docstring)
    sequence: tuple[int, int, str] = (-1, -1, "")


def event_sequence(event: WebhookEvent) -> tuple[int, int, str]:
    """Where ``event`` stands among events of the same instant: its resource in the lock
    order (a session completes before the payment it makes succeeds, before that payment's
    refunds), then its object's status in the lifecycle order of the resource's spec, then
    its id."""
    try:
        parsed = parse_event(event.payload)
    except InvalidPayload:
        return (-1, -1, event.event_id)
    spec = spec_for(parsed.resource)
    if spec is None:
        return (-1, -1, event.event_id)
    status = parsed.object.get("status")
    position = spec.position(status) if isinstance(status, str) else -1
    return (spec.lock_rank, position, event.event_id)


def related(obj: Any) -> tuple[list[Payment], list[CheckoutSession], list[Refund]]:
    """The objects whose history belongs on ``obj``'s page (a fixed number of queries)."""
    refunds = Refund.objects.select_related("requested_by")
    if isinstance(obj, Payment):
        session = obj.checkout_session
        sessions = [session] if session is not None else []
        return [obj], sessions, list(refunds.filter(payment=obj))
    if isinstance(obj, CheckoutSession):
        payments = list(obj.payments.all())
        return payments, [obj], list(refunds.filter(payment__checkout_session=obj))
    return [], [], list(refunds.filter(pk=obj.pk))


def entries(obj: Any) -> list[Entry]:
    payments, sessions, refunds = related(obj)
    objects = [*payments, *sessions, *refunds]
    found: list[Entry] = []
    plugipay_ids = [o.plugipay_id for o in objects if o.plugipay_id]
    events = WebhookEvent.objects.filter(object_id__in=plugipay_ids).only(
        "pk", "event_id", "kind", "status", "occurred_at", "received_at", "source", "payload"
    )
    for event in events:
        status = badge(event.status, str(event.get_status_display()).lower())
        label = format_html("{} {}", admin_link(event, event.kind), status)
        found.append(
            Entry(
                event.occurred_at or event.received_at,
                label,
                event.get_source_display(),
                event_sequence(event),
            )
        )
    for refund in refunds:
        who = refund.requested_by.get_username() if refund.requested_by else ""
        what = format_html(
            "{} {}",
            _("Refund of %(amount)s requested") % {"amount": money(refund.amount, refund.currency)},
            admin_link(refund, refund.plugipay_id or _("(not sent yet)")),
        )
        found.append(Entry(refund.created_at, what, who))
    log_filter = Q(pk__in=[])
    for model, group in ((Payment, payments), (CheckoutSession, sessions), (Refund, refunds)):
        if group:
            content_type = ContentType.objects.get_for_model(model)  # cached after the first
            log_filter |= Q(content_type=content_type, object_id__in=[str(o.pk) for o in group])
    requests = [(r.requested_by_id, r.created_at) for r in refunds if r.requested_by_id]
    for log in LogEntry.objects.filter(log_filter).select_related("user"):
        if any(
            user == log.user_id and abs(log.action_time - at) <= SAME_ACTION
            for user, at in requests
        ):
            continue  # the admin's log line of a refund request already listed above
        what = format_html("{}", log.get_change_message() or str(log))
        found.append(Entry(log.action_time, what, log.user.get_username()))
    return sorted(found, key=lambda e: (e.at, e.sequence))


def activity_html(obj: Any) -> SafeString | str:
    """A table of ``obj``'s activity, oldest first, each event linking to its admin page."""
    rows = entries(obj)
    if not rows:
        return _("No activity recorded yet.")
    body = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
        ((datetimes.local(e.at).strftime("%Y-%m-%d %H:%M:%S"), e.what, e.who) for e in rows),
    )
    return format_html(
        '<table class="plugipay-activity"><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr>'
        "</thead><tbody>{}</tbody></table>",
        _("time"),
        _("what happened"),
        _("by"),
        body,
    )


class ActivityMixin:
    """Adds the read-only ``activity`` field (list it in ``readonly_fields``)."""

    @admin.display(description=gettext_lazy("activity"))
    def activity(self, obj):
        return activity_html(obj) if obj is not None and obj.pk else "—"
