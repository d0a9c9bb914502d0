"""Plugipay's metadata rules, checked before a request leaves: string pairs within the limits."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from django_plugipay.conf import app_settings

#: Published: "up to 50 key-value pairs of arbitrary strings" (customers, first payment).
MAX_PAIRS = 50


def validate_metadata(metadata: Any) -> None:
    """Raise ``ValidationError`` (code ``metadata``, ``params["key"]`` naming the key) unless
    ``metadata`` is a dict of at most 50 string keys and string values within the length limits
    (``METADATA_KEY_MAX_LENGTH``, ``METADATA_VALUE_MAX_LENGTH``), without NUL characters.
    None is allowed."""
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        raise ValidationError(
            _("Metadata must be a dictionary of strings."), code="metadata", params={"key": None}
        )
    if len(metadata) > MAX_PAIRS:
        raise ValidationError(
            _("Metadata holds at most %(max)d key-value pairs; this has %(count)d."),
            code="metadata",
            params={"key": None, "max": MAX_PAIRS, "count": len(metadata)},
        )
    key_max, value_max = (
        app_settings.METADATA_KEY_MAX_LENGTH,
        app_settings.METADATA_VALUE_MAX_LENGTH,
    )
    for key, value in metadata.items():
        if not isinstance(key, str) or not key:
            message = _("Metadata key %(key)r must be a non-empty string.")
        elif len(key) > key_max:
            message = _("Metadata key %(key)r is longer than %(max)d characters.")
        elif not isinstance(value, str):
            message = _("Metadata value of %(key)r must be a string, not %(type)s.")
        elif len(value) > value_max:
            message = _("Metadata value of %(key)r is longer than %(max)d characters.")
        elif "\x00" in key or "\x00" in value:  # no PostgreSQL text column holds one
            message = _("Metadata key %(key)r or its value holds a NUL character.")
        else:
            continue
        limit = key_max if isinstance(key, str) and len(key) > key_max else value_max
        raise ValidationError(
            message,
            code="metadata",
            params={"key": key, "max": limit, "type": type(value).__name__},
        )
