"""Links to URLs that come from outside (Plugipay, a buyer, metadata): only ``http`` and
``https`` URLs are ever linked; anything else (``javascript:``, ``data:``, ``vbscript:``, in any
case and with any whitespace or control characters) is shown as text."""

from __future__ import annotations

import string
from urllib.parse import urlsplit

from django.utils.html import format_html
from django.utils.safestring import SafeString

#: The only schemes linked (or used as an image source) from outside data.
SAFE_SCHEMES = frozenset({"http", "https"})
# Browsers drop tabs and newlines anywhere in a URL and ignore leading control characters and
# spaces, so ``java\tscript:`` runs as ``javascript:``: a URL holding any of them is refused.
_UNSAFE_CHARACTERS = frozenset(string.whitespace) | {chr(c) for c in range(32)} | {"\x7f"}


def safe_url(value: object) -> str | None:
    """``value`` when it is an absolute ``http``/``https`` URL with a host, else None."""
    if not isinstance(value, str) or not value or _UNSAFE_CHARACTERS.intersection(value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() not in SAFE_SCHEMES or not parts.netloc:
        return None
    return value


def link(url: object, label: object = None, *, new_tab: bool = False) -> SafeString:
    """An ``<a>`` to ``url`` labelled ``label`` (else the URL) when :func:`safe_url` allows
    it, else the label and the URL as escaped text."""
    target = safe_url(url)
    if target is None:
        if not url:
            return format_html("{}", label or "—")
        return format_html("{} ({})", label, url) if label else format_html("{}", url)
    if new_tab:
        return format_html(
            '<a href="{}" target="_blank" rel="noopener noreferrer">{}</a>', target, label or url
        )
    return format_html('<a href="{}">{}</a>', target, label or url)
