"""The sandbox's own implementation of Plugipay request signing and webhook signatures."""

from __future__ import annotations

import hashlib
import hmac

EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()
HMAC_SCHEME = "Plugipay-HMAC-SHA256"


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def request_string_to_sign(
    method: str, path: str, timestamp: str, body: bytes, idempotency_key: str | None
) -> str:
    """Scheme A: method, path with query, timestamp, body hash and the optional key line."""
    lines = [method.upper(), path, timestamp, body_hash(body)]
    if idempotency_key:
        lines.append(idempotency_key)
    return "\n".join(lines)


def cli_string_to_sign(method: str, path: str, timestamp: str, body: bytes) -> str:
    """Scheme C (CLI three-header form): timestamp, method, path, body hash.

    Plugipay's CLI page names these four parts but not their order; this is the sandbox's
    reading of it, and the sandbox also accepts scheme A's string under these headers.
    """
    return "\n".join([timestamp, method.upper(), path, body_hash(body)])


def hmac_hex(secret: str, message: str | bytes) -> str:
    data = message.encode("utf-8") if isinstance(message, str) else message
    return hmac.new(secret.encode("utf-8"), data, hashlib.sha256).hexdigest()


def parse_authorization(value: str) -> dict[str, str] | None:
    """Parse ``Plugipay-HMAC-SHA256 keyId=…, scope=*, signature=…`` into its parameters."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme != HMAC_SCHEME:
        return None
    params: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            params[key.strip()] = val.strip()
    return params


def webhook_signature_header(secret: str | list[str], timestamp: int, body: bytes) -> str:
    """The ``X-Plugipay-Signature`` value: ``t=<ts>,v1=<hex hmac of "<ts>." + body>``, with
    one ``v1`` per secret (two while a rotated secret's overlap lasts)."""
    message = str(timestamp).encode("ascii") + b"." + body
    signed = [secret] if isinstance(secret, str) else secret
    return f"t={timestamp}," + ",".join(f"v1={hmac_hex(s, message)}" for s in signed)


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
