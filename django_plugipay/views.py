"""``WebhookView``: the signed endpoint Plugipay delivers events to."""

from __future__ import annotations

import logging
import re

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from django_plugipay import services
from django_plugipay.exceptions import InvalidObject, InvalidPayload, SignatureError

logger = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
_CONTENT_LENGTH = re.compile(r"[0-9]{1,19}")


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(transaction.non_atomic_requests, name="dispatch")
class WebhookView(View):
    """Verify, record once, apply; 2xx for new and duplicate events alike.

    401 for a missing, malformed, stale or wrong signature and 400 for a signed body that is
    not an event (nothing is stored for either), 422 for a signed event whose object fails its
    resource's validation (stored ``failed`` with the message: visible in the admin, replayable
    with ``plugipay_replay`` once fixed), 413 over 1 MiB, 405 for other methods, and 500 only
    when applying the event failed otherwise (the event is kept as ``failed`` and applied
    again on the next delivery).
    """

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> JsonResponse:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        # ASCII digits, bounded: ``str.isdigit`` accepts "²", which ``int()`` then refuses.
        if not _CONTENT_LENGTH.fullmatch(declared) or int(declared) > MAX_BODY:
            return _error(413, "payload_too_large", "Webhook bodies are limited to 1 MiB.")
        body = request.body
        if len(body) > MAX_BODY:
            return _error(413, "payload_too_large", "Webhook bodies are limited to 1 MiB.")
        signature = request.headers.get("X-Plugipay-Signature") or request.headers.get(
            "Plugipay-Signature"
        )
        try:
            event = services.ingest_webhook(body=body, signature=signature)
        except SignatureError as exc:
            logger.warning("plugipay webhook rejected: %s", exc.code, extra={"code": exc.code})
            return _error(401, exc.code or "signature_invalid", exc.message)
        except InvalidPayload as exc:
            return _error(400, exc.code or "invalid_payload", exc.message)
        except InvalidObject as exc:  # stored failed with this message; replayable after a fix
            return _error(422, exc.code or "invalid_object", exc.message)
        except Exception:  # recorded on the event as failed; the sender will deliver it again
            return _error(
                500,
                "processing_failed",
                "The event was recorded but applying it failed; it will be retried.",
            )
        return JsonResponse({"received": True, "id": event.event_id, "status": event.status})


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)
