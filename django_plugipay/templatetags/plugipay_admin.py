"""Template tags for the app's admin pages: the disabled-endpoint banner, the database chooser."""

from __future__ import annotations

from typing import Any

from django import template
from django.db import DatabaseError

from django_plugipay.models import WebhookEvent
from django_plugipay.webhooks import parse_event

register = template.Library()


@register.simple_tag
def plugipay_disabled_endpoint() -> dict[str, Any] | None:
    """The endpoint Plugipay disabled (``url``, ``reason``, ``at``) when no webhook has
    arrived since its ``webhook_endpoint.disabled`` event; else None."""
    try:
        event = WebhookEvent.objects.endpoint_disabled()
    except DatabaseError:
        return None
    if event is None:
        return None
    endpoint = parse_event(event.payload).object
    return {
        "url": endpoint.get("url") or endpoint.get("id") or "",
        "reason": endpoint.get("disabledReason") or "",
        "at": event.occurred_at or event.received_at,
    }


@register.simple_tag(takes_context=True)
def plugipay_database_choice(context: template.Context) -> dict[str, Any] | None:
    """The databases the staff member may choose between and the one the pages read
    (:func:`django_plugipay.admin.databases.choice`); None with a single database."""
    from django_plugipay.admin import databases  # the admin's pages only: admin installed

    request = context.get("request")
    return databases.choice(request) if request is not None else None
