"""Form tokens: each confirmation page carries one, so resubmitting it repeats no write.

The token is issued with the page and posted back with it; the write it guards uses it as the
basis of its idempotency key (a refund's ``idempotency_key``). A double submit, or a resubmit
after an error page, therefore returns the first outcome instead of making a second refund.
"""

from __future__ import annotations

import re
import uuid

from django.http import HttpRequest

#: the hidden input's name on the confirmation pages
FIELD = "plugipay_token"
_SHAPE = re.compile(r"[0-9a-f]{32}")


def issue() -> str:
    """A fresh token for a page about to be shown."""
    return uuid.uuid4().hex


def was_posted(request: HttpRequest) -> bool:
    """Whether the request carries a token of the shape :func:`issue` makes (a page of this
    app posted it, not a hand-made request)."""
    return bool(_SHAPE.fullmatch(request.POST.get(FIELD, "")))


def posted(request: HttpRequest) -> str:
    """The token the page posted back, or a fresh one (a page from before tokens existed)."""
    token = request.POST.get(FIELD, "")
    return token if _SHAPE.fullmatch(token) else issue()


def refund_key(token: str, payment_pk: int) -> str:
    """The idempotency key of the refund one confirmation page requests for one payment."""
    return f"admin_{token}_{payment_pk}"
