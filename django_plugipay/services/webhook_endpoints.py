"""Plugipay's webhook endpoints managed from Django: this site's URL, the events the app
handles, and create, rotate the secret, enable, disable and delete."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.urls import reverse

from django_plugipay.accounts import takes_account
from django_plugipay.client import get_client
from django_plugipay.exceptions import PlugipayError
from django_plugipay.services.events import NOTICES
from django_plugipay.specs import all_specs

#: The description an endpoint created by ``plugipay_webhooks create`` carries.
DESCRIPTION = "django-plugipay (manage.py plugipay_webhooks)"
#: The event ``plugipay_doctor`` triggers to test delivery end to end (recorded ``ignored``).
TEST_EVENT_TYPE = "plugipay.doctor.ping.v1"
#: The longest overlap Plugipay signs with an endpoint's previous secret too (seconds: 7 days).
MAX_OVERLAP = 7 * 86400


def handled_event_types() -> list[str]:
    """Every event type the app applies, in Plugipay's namespaced form: each resource spec's
    ``events`` and the account notices (the list ``plugipay_webhooks create`` subscribes to,
    and the resources reference shows)."""
    kinds = [f"{spec.name}.{action}" for spec in all_specs() for action in spec.events]
    return [f"plugipay.{kind}.v1" for kind in [*kinds, *NOTICES]]


def site_webhook_url(site_url: str | None = None) -> str:
    """This site's ``plugipay:webhook`` URL on ``site_url``, else on the current Site's domain
    (``django.contrib.sites``, https); PlugipayError when neither is known."""
    path = reverse("plugipay:webhook")
    if site_url:
        return site_url.rstrip("/") + path
    if apps.is_installed("django.contrib.sites"):
        from django.contrib.sites.models import Site

        return f"https://{Site.objects.get_current().domain}{path}"
    raise PlugipayError(
        "This site's public address is not known: pass --site-url https://your.site "
        "(or install django.contrib.sites and set the current Site's domain).",
        code="site_url_unknown",
    )


def is_this_site(url: str, *, expected: str | None = None) -> bool:
    """Whether an endpoint URL is this site's webhook URL: exactly ``expected`` when given,
    else this project's webhook path on a host in ``ALLOWED_HOSTS`` (or loopback)."""
    if expected:
        return url.rstrip("/") == expected.rstrip("/")
    parts = urlsplit(url)
    if parts.path.rstrip("/") != reverse("plugipay:webhook").rstrip("/"):
        return False
    hosts = [h for h in settings.ALLOWED_HOSTS if h != "*"]
    if not hosts or parts.hostname in ("127.0.0.1", "localhost"):
        return True
    return any(
        parts.hostname == h or (h.startswith(".") and (parts.hostname or "").endswith(h))
        for h in hosts
    )


@takes_account
def list_endpoints() -> list[dict[str, Any]]:
    """The workspace's endpoints as Plugipay lists them (no secrets)."""
    return get_client().list_webhook_endpoints()


@takes_account
def create_endpoint(*, url: str, description: str = DESCRIPTION) -> dict[str, Any]:
    """Register ``url`` for exactly :func:`handled_event_types` and ``plugipay_doctor``'s
    test event; the answer carries the signing secret, shown this once."""
    return get_client().create_webhook_endpoint(
        url=url, events=[*handled_event_types(), TEST_EVENT_TYPE], description=description
    )


@takes_account
def rotate_secret(*, endpoint_id: str, overlap: int) -> dict[str, Any]:
    """A new signing secret (in the answer, once); Plugipay signs with the previous one too
    for ``overlap`` seconds, then drops it."""
    return get_client().rotate_webhook_secret(endpoint_id, expires_in=overlap)


@takes_account
def set_active(*, endpoint_id: str, active: bool) -> dict[str, Any]:
    """Enable (clearing the failure streak) or pause an endpoint."""
    return get_client().update_webhook_endpoint(endpoint_id, active=active)


@takes_account
def delete_endpoint(*, endpoint_id: str) -> None:
    get_client().delete_webhook_endpoint(endpoint_id)
