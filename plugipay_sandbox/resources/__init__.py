"""The sandbox's API resources; each module registers its routes on ``app.api``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plugipay_sandbox.state import ApiError, parse_time

MISSING = object()


def invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "VALIDATION_ERROR", message, field=field)


def string(
    body: dict[str, Any],
    field: str,
    *,
    required: bool = False,
    max_length: int = 255,
    nullable: bool = True,
) -> Any:
    value = body.get(field, MISSING)
    if value is MISSING or (value is None and nullable and not required):
        if required:
            raise invalid(field, f"{field} is required.")
        return value
    if not isinstance(value, str) or not value.strip():
        raise invalid(field, f"{field} must be a non-empty string.")
    if len(value) > max_length:
        raise invalid(field, f"{field} must be at most {max_length} characters.")
    return value


def integer(
    body: dict[str, Any],
    field: str,
    *,
    required: bool = False,
    minimum: int = 0,
    maximum: int | None = None,
) -> Any:
    value = body.get(field, MISSING)
    if value is MISSING or value is None:
        if required:
            raise invalid(field, f"{field} is required.")
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(field, f"{field} must be an integer (minor units), not {value!r}.")
    if value < minimum:
        raise invalid(field, f"{field} must be at least {minimum}.")
    limit = MAX_SAFE_INTEGER if maximum is None else maximum
    if value > limit:
        raise invalid(field, f"{field} must be at most {limit}.")
    return value


#: the largest integer every JSON reader holds exactly (2**53 - 1, JavaScript's
#: ``Number.MAX_SAFE_INTEGER``), the app's ``MAX_AMOUNT`` too: larger amounts and counts are
#: refused
MAX_SAFE_INTEGER = 2**53 - 1


#: Metadata limits: 50 pairs is Plugipay's published rule; the key and value lengths are not
#: published, so the sandbox assumes these (the app's defaults for the same, documented).
METADATA_MAX_PAIRS = 50
METADATA_KEY_MAX_LENGTH = 40
METADATA_VALUE_MAX_LENGTH = 500


def metadata(body: dict[str, Any]) -> Any:
    """Up to 50 string → string pairs; a bad pair is refused with ``field`` ``metadata.<key>``."""
    value = body.get("metadata", MISSING)
    if value is MISSING or value is None:
        return value
    if not isinstance(value, dict):
        raise invalid("metadata", "metadata must be an object of string keys and string values.")
    if len(value) > METADATA_MAX_PAIRS:
        raise invalid(
            "metadata",
            f"metadata holds at most {METADATA_MAX_PAIRS} key/value pairs, not {len(value)}.",
        )
    for key, item in value.items():
        field = f"metadata.{key}"
        if not key:
            raise invalid(field, "metadata keys must be non-empty strings.")
        if len(key) > METADATA_KEY_MAX_LENGTH:
            raise invalid(
                field, f"metadata key {key!r} is longer than {METADATA_KEY_MAX_LENGTH} characters."
            )
        if not isinstance(item, str):
            raise invalid(field, f"metadata value of {key!r} must be a string.")
        if len(item) > METADATA_VALUE_MAX_LENGTH:
            raise invalid(
                field,
                f"metadata value of {key!r} is longer than {METADATA_VALUE_MAX_LENGTH} characters.",
            )
    return value


def url(body: dict[str, Any], field: str, *, required: bool = True) -> Any:
    value = string(body, field, required=required, max_length=2048)
    if isinstance(value, str) and not value.startswith(("http://", "https://")):
        raise invalid(field, f"{field} must be an http(s) URL.")
    return value


def present(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not MISSING}


def time_filter(query: dict[str, str], *names: str) -> float | None:
    for name in names:
        if query.get(name):
            try:
                return parse_time(query[name])
            except ValueError as exc:
                raise invalid(name, f"{name} must be ISO-8601 or epoch seconds.") from exc
    return None


def created_between(
    items,
    query: dict[str, str],
    after=("createdAfter", "since"),
    before=("createdBefore", "until"),
    field: str = "createdAt",
):
    low, high = time_filter(query, *after), time_filter(query, *before)
    if low is None and high is None:
        yield from items
        return
    for item in items:
        moment = item.get(f"_{field}Ts") or parse_time(item[field])
        if (low is None or moment >= low) and (high is None or moment < high):
            yield item


def boolean(body: dict[str, Any], field: str) -> Any:
    value = body.get(field, MISSING)
    if value is MISSING or value is None:
        return value
    if not isinstance(value, bool):
        raise invalid(field, f"{field} must be true or false.")
    return value


def choice(body: dict[str, Any], field: str, choices: tuple[str, ...], *, required=False) -> Any:
    """One of ``choices``, or None when absent or null."""
    value = body.get(field)
    if value is None:
        if required:
            raise invalid(field, f"{field} is required: one of {', '.join(choices)}.")
        return None
    if value not in choices:
        raise invalid(field, f"{field} must be one of {', '.join(choices)}, not {value!r}.")
    return value


def nested(prefix: str, check: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a field check on a nested object, naming the field by its path (``prices[0].x``)."""
    try:
        return check(*args, **kwargs)
    except ApiError as exc:
        if exc.field:
            exc.field = f"{prefix}.{exc.field}"
            exc.message = f"{prefix}.{exc.message}"
        raise


def query_flag(query: dict[str, str], name: str) -> bool | None:
    """A ``true``/``false`` query parameter (absent: None)."""
    if name not in query:
        return None
    if query[name] not in ("true", "false"):
        raise invalid(name, f"{name} must be true or false.")
    return query[name] == "true"
