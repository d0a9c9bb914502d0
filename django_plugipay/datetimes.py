"""Plugipay's UTC instants in the project's own convention, and back (``USE_TZ`` either way)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from django_plugipay.webhooks import utc_instant


def to_project(moment: dt.datetime) -> dt.datetime:
    """The instant as this project stores, compares and shows it: an aware datetime when
    ``USE_TZ`` is on, else the naive local time of ``TIME_ZONE`` (what Django's own
    ``timezone.now()`` returns then). A naive ``moment`` is taken as UTC, as Plugipay sends."""
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=dt.timezone.utc)
    if settings.USE_TZ:
        return moment
    return timezone.make_naive(moment, timezone.get_default_timezone())


def to_utc(moment: dt.datetime) -> dt.datetime:
    """An aware UTC datetime for a project's datetime; a naive one is in ``TIME_ZONE``
    (Django's convention, and what the database holds when ``USE_TZ`` is off)."""
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    return moment.astimezone(dt.timezone.utc)


def to_api(moment: dt.datetime) -> str:
    """A project's datetime as Plugipay's ISO-8601 UTC string (``…Z``)."""
    return to_utc(moment).isoformat().replace("+00:00", "Z")


def parse(value: Any) -> dt.datetime | None:
    """An ISO-8601 string from Plugipay (UTC when it names no offset) as :func:`to_project`
    gives it; None for anything else. Never raises."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = parse_datetime(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    instant = None if moment is None else utc_instant(moment)
    return None if instant is None else to_project(instant)


def local(moment: dt.datetime) -> dt.datetime:
    """The wall-clock time a person here reads: an aware datetime in the current time zone,
    a naive one (``USE_TZ`` off: already local) as it is."""
    return timezone.localtime(moment) if timezone.is_aware(moment) else moment
