"""The exception hierarchy, rooted at ``PlugipayError``."""

from __future__ import annotations


class PlugipayError(Exception):
    """Anything that went wrong talking to, or hearing from, Plugipay.

    ``status`` is the HTTP status (None when no response arrived), ``code`` the API's error code
    and ``request_id`` the id to quote to Plugipay support.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        field: str | None = None,
        details: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.field = field
        self.details = details or {}

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.append(f"code={self.code}")
        if self.status:
            parts.append(f"status={self.status}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " ".join(parts)


class APIError(PlugipayError):
    """Plugipay refused the request (4xx); retrying the same request will not help.

    ``after_retry``: the client sent the request again after an attempt that got no answer,
    which may have been carried out (only a refusal that reads the request, a 400 or 422,
    says the earlier attempt made nothing: a replay of the same key would have answered it).
    """

    after_retry = False


class TransientError(PlugipayError):
    """A timeout, a dropped connection, a 429 or a 5xx: the same request may succeed later."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class SignatureError(PlugipayError):
    """A webhook signature is missing, malformed, stale or wrong (``code`` says which)."""


class InvalidPayload(PlugipayError):
    """A correctly signed webhook body that is not a Plugipay event (not a JSON object)."""


class InvalidObject(PlugipayError):
    """A verified event whose object fails its resource's validation (a wrong type, a missing
    id): the event is stored ``failed`` with this message and the webhook answers 422."""

    def __init__(self, message: str, **kwargs) -> None:
        kwargs.setdefault("code", "invalid_object")
        kwargs.setdefault("status", 422)
        super().__init__(message, **kwargs)


class ConfigurationError(PlugipayError):
    """The ``PLUGIPAY`` settings cannot work; ``manage.py check`` says how to fix them."""


class RefundError(PlugipayError):
    """A refund that cannot be requested: over the remainder, unpaid payment, bad reason…"""


class NotRecorded(PlugipayError):
    """A verified event could not be stored at all (the database is unavailable): nothing was
    recorded, so the webhook answers 503 with ``Retry-After`` and Plugipay delivers it again."""

    def __init__(self, message: str, **kwargs) -> None:
        kwargs.setdefault("code", "not_recorded")
        kwargs.setdefault("status", 503)
        super().__init__(message, **kwargs)


class PayoutError(PlugipayError):
    """A payout that cannot be made or moved: over the available balance, a bad amount, a
    transition the manual method does not have…"""
