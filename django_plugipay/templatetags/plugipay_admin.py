"""Template tags for the app's admin pages: the disabled-endpoint banner."""

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
