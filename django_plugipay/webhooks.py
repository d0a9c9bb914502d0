"""Webhook signature verification and event parsing: pure functions, no Django."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, overload

from django_plugipay.exceptions import InvalidPayload, SignatureError

SIGNATURE_HEADERS = ("X-Plugipay-Signature", "Plugipay-Signature")
DEFAULT_TOLERANCE = 300
_VERSION_SUFFIX = re.compile(r"\.v\d+$")
STATUS_ALIASES = {"complete": "completed", "cancelled": "canceled"}
# Bounds on the signature header: room for a timestamp and a dozen rotated signatures.
MAX_HEADER_LENGTH = 1024
MAX_HEADER_PARTS = 16
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # seconds; 12 digits reach the year 33658
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def _malformed(message: str) -> SignatureError:
    return SignatureError(message, code="signature_malformed", status=401)


def _parse_header(header: str) -> tuple[int, list[str]]:
    """Split ``t=…,v1=…`` with every field bounded, so no input costs more than a few checks.

    The header, the number of parts, the timestamp's digits (ASCII only, so ``int()`` never
    sees ``²`` or a 400-digit number) and each ``v1`` (exactly one SHA-256 in hex) are all
    limited; anything outside those bounds is ``signature_malformed``. Unknown schemes
    (``v0=…``) are skipped, as Plugipay may add them.
    """
    if len(header) > MAX_HEADER_LENGTH:
        raise _malformed("The signature header is too long.")
    parts = header.split(",", MAX_HEADER_PARTS)
    if len(parts) > MAX_HEADER_PARTS:
        raise _malformed("The signature header has too many parts.")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in parts:
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "t":
            if timestamp is not None:
                raise _malformed("The signature header has more than one t=.")
            if not _TIMESTAMP.fullmatch(value):
                raise _malformed("The signature timestamp is not a number of seconds.")
            timestamp = int(value)
        elif key == "v1":
            if not _HEX_SHA256.fullmatch(value):
                raise _malformed("A v1 signature is not 64 hexadecimal digits.")
            signatures.append(value.lower())
    if timestamp is None or not signatures:
        raise _malformed("The signature header needs both t= and v1=.")
    return timestamp, signatures


def verify_signature(
    raw_body: bytes,
    header: str | None,
    secrets: Sequence[str],
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> int:
    """Check ``t=…,v1=…`` against every secret (rotation); return the signed timestamp.

    Raises :class:`SignatureError` with code ``signature_missing``, ``signature_malformed``,
    ``signature_stale`` (either direction beyond ``tolerance``) or ``signature_invalid``.
    Comparison is constant-time.
    """
    if not header or not header.strip():
        raise SignatureError(
            "The request has no Plugipay signature header.", code="signature_missing", status=401
        )
    usable = [s for s in secrets if s]
    if not usable:
        raise SignatureError(
            "No webhook secret is configured.", code="signature_missing", status=401
        )
    timestamp, signatures = _parse_header(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError(
            f"The signature timestamp is more than {tolerance}s away.",
            code="signature_stale",
            status=401,
        )
    payload = str(timestamp).encode() + b"." + raw_body
    for secret in usable:
        expected = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected.encode(), s.encode()) for s in signatures):
            return timestamp
    raise SignatureError(
        "The signature does not match any configured webhook secret.",
        code="signature_invalid",
        status=401,
    )


def sign_payload(raw_body: bytes, secret: str, timestamp: int | None = None) -> str:
    """Build a ``t=…,v1=…`` header value, as Plugipay does (used by tests and tools)."""
    ts = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(
        secret.encode(), str(ts).encode() + b"." + raw_body, hashlib.sha256
    ).hexdigest()
    return f"t={ts},v1={signature}"


def normalise_type(event_type: str) -> str:
    """``plugipay.checkout_session.cancelled.v1`` → ``checkout_session.canceled``."""
    kind = event_type.strip()
    kind = kind.removeprefix("plugipay.")
    kind = _VERSION_SUFFIX.sub("", kind)
    return ".".join(STATUS_ALIASES.get(part, part) for part in kind.split("."))


@overload
def normalise_status(status: str) -> str: ...
@overload
def normalise_status(status: None) -> None: ...
def normalise_status(status: str | None) -> str | None:
    if status is None:
        return None
    return STATUS_ALIASES.get(status, status)


#: The instants a time may name: a day inside what a datetime holds, so that no time zone a
#: project shows or stores it in (``USE_TZ = False``: naive local time) can push it out.
EARLIEST = dt.datetime(1, 1, 2, tzinfo=dt.timezone.utc)
LATEST = dt.datetime(9999, 12, 30, tzinfo=dt.timezone.utc)


def parse_time(value: Any) -> dt.datetime | None:
    """An ISO-8601 time from Plugipay as an aware UTC datetime (UTC when it names no offset);
    None for anything else, and for a time outside :data:`EARLIEST`…:data:`LATEST`."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return utc_instant(moment)


def utc_instant(moment: dt.datetime) -> dt.datetime | None:
    """``moment`` in UTC, the instant the database stores whatever offset it was written
    with (a naive one is UTC already, as Plugipay sends); None outside
    :data:`EARLIEST`…:data:`LATEST` (year 0 once in UTC included)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    try:
        moment = moment.astimezone(dt.timezone.utc)
    except OverflowError:
        return None
    return moment if EARLIEST <= moment <= LATEST else None


@dataclasses.dataclass(frozen=True)
class Event:
    """A parsed Plugipay event, whichever dialect it came in."""

    id: str
    type: str
    kind: str
    mode: str | None
    occurred_at: dt.datetime | None
    account_id: str | None
    object: Mapping[str, Any]
    previous_attributes: Mapping[str, Any]
    payload: Mapping[str, Any]

    @property
    def resource(self) -> str:
        return self.kind.split(".", 1)[0]

    @property
    def action(self) -> str:
        return self.kind.rsplit(".", 1)[-1]

    @property
    def object_id(self) -> str | None:
        value = self.object.get("id")
        return value if isinstance(value, str) else None


def _finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"{literal[:40]} is too large for a float")
    return value


def _not_finite(literal: str) -> float:
    raise ValueError(f"{literal} is not a JSON number")


def parse_event(raw: bytes | str | Mapping[str, Any]) -> Event:
    """Parse an event body in the SDK shape (``data.object``) or the docs shape (``data``).

    Raises :class:`InvalidPayload` when the body is not a JSON object with ``id`` and ``type``,
    holds a number no float can hold (``NaN``, ``Infinity``, ``1e400``), or (bytes) is not
    UTF-8. JSON between systems is UTF-8 (RFC 8259); a leading byte order mark is ignored.
    Python's JSON parser alone would also take UTF-16 and UTF-32, and UTF-8 bytes that encode a
    lone surrogate, which no UTF-8 database can store.
    """
    if isinstance(raw, Mapping):
        payload = dict(raw)
    else:
        try:
            text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8-sig")
            payload = json.loads(text, parse_float=_finite, parse_constant=_not_finite)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidPayload(
                "The webhook body is not valid UTF-8 JSON with finite numbers.",
                code="invalid_payload",
                status=400,
            ) from exc
    if not isinstance(payload, dict):
        raise InvalidPayload(
            "The webhook body must be a JSON object.", code="invalid_payload", status=400
        )
    event_id, event_type = payload.get("id"), payload.get("type")
    if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
        raise InvalidPayload(
            "The event has no string id and type.", code="invalid_payload", status=400
        )
    data = payload.get("data")
    if isinstance(data, dict) and isinstance(data.get("object"), dict):
        obj = data["object"]
    elif isinstance(data, dict):
        obj = data
    else:
        obj = {}
    previous = payload.get("previousAttributes") or payload.get("previous_attributes") or {}
    mode = payload.get("mode") or obj.get("mode")
    return Event(
        id=event_id,
        type=event_type,
        kind=normalise_type(event_type),
        mode=mode if mode in ("test", "live") else None,
        occurred_at=parse_time(payload.get("occurredAt") or payload.get("createdAt")),
        account_id=payload.get("accountId") or payload.get("workspaceId"),
        object=MappingProxyType(dict(obj)),
        previous_attributes=MappingProxyType(dict(previous) if isinstance(previous, dict) else {}),
        payload=MappingProxyType(payload),
    )
