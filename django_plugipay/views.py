"""``WebhookView`` (the signed endpoint Plugipay delivers events to), the billing portal and
invoice-document views, and ``subscription_required`` for the project's own views."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from django_plugipay import billing, permissions, services
from django_plugipay.conf import app_settings
from django_plugipay.db import is_transient
from django_plugipay.exceptions import (
    InvalidObject,
    InvalidPayload,
    NotRecorded,
    PlugipayError,
    SignatureError,
)
from django_plugipay.models import Invoice
from django_plugipay.specs import UnresolvedReference
from django_plugipay.webhooks import SIGNATURE_HEADERS

logger = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
#: seconds a sender is asked to wait when the database is unavailable
RETRY_AFTER = 30
_CONTENT_LENGTH = re.compile(r"[0-9]{1,19}")


def exempt_from_project_wrappers(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a view Plugipay (not a person) calls as outside what a project puts around views:
    no CSRF token, no login (Django's ``LoginRequiredMiddleware``), no request-wide
    transaction (``ATOMIC_REQUESTS``: the view runs its own, retried, transactions)."""
    return login_not_required(csrf_exempt(transaction.non_atomic_requests(view)))


@method_decorator(exempt_from_project_wrappers, name="dispatch")
class WebhookView(View):
    """Verify, record once, apply; 2xx for new and duplicate events alike.

    ``plugipay:webhook`` receives every account's events (routed by their ``accountId``,
    verified with that account's secrets); ``plugipay:webhook_account`` (``<alias>``) one
    account's, verified with its secrets alone. An event for an account the project does not
    know is stored ``failed`` and answered 422 (``unknown_account``).

    401 for a missing, malformed, stale or wrong signature and 400 for a signed body that is
    not an event (nothing is stored for either), 409 for an event that names an object not known
    here yet and not fetchable, or unknown to Plugipay too (a refund delivered before its
    payment: stored ``failed``, applied on the next delivery), 422 for a signed event whose
    object fails its resource's validation or a constraint of the database (stored ``failed``
    with the message: visible in the admin, replayable with ``plugipay_replay`` once fixed),
    413 over 1 MiB, 405 for other methods, 503 with ``Retry-After`` when the database is
    unavailable (nothing is claimed: Plugipay delivers it again), and 500 only when applying
    the event failed otherwise (the event is kept as ``failed`` and applied again on the next
    delivery).
    """

    http_method_names = ["post"]

    def post(self, request: HttpRequest, alias: str | None = None) -> JsonResponse:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        # ASCII digits, bounded: ``str.isdigit`` accepts "²", which ``int()`` then refuses.
        if not _CONTENT_LENGTH.fullmatch(declared) or int(declared) > MAX_BODY:
            return _error(413, "payload_too_large", "Webhook bodies are limited to 1 MiB.")
        body = request.body
        if len(body) > MAX_BODY:
            return _error(413, "payload_too_large", "Webhook bodies are limited to 1 MiB.")
        signature = next(filter(None, map(request.headers.get, SIGNATURE_HEADERS)), None)
        try:
            event = services.ingest_webhook(body=body, signature=signature, account=alias)
        except SignatureError as exc:
            logger.warning("plugipay webhook rejected: %s", exc.code, extra={"code": exc.code})
            return _error(401, exc.code or "signature_invalid", exc.message)
        except InvalidPayload as exc:
            return _error(400, exc.code or "invalid_payload", exc.message)
        except InvalidObject as exc:  # stored failed with this message; replayable after a fix
            return _error(422, exc.code or "invalid_object", exc.message)
        except UnresolvedReference as exc:  # stored failed; the next delivery applies it
            return _error(409, "unresolved_reference", str(exc))
        except NotRecorded as exc:  # nothing stored (logged once by the service)
            return _unavailable(exc.message)
        except Exception as exc:  # logged once by the service, whatever it was
            if is_transient(exc):  # the database went away: claim nothing about the event
                return _unavailable("The event could not be processed now; deliver it again.")
            # Stored as failed with the error by the service; the sender will deliver it
            # again and it is applied then.
            return _error(
                500,
                "processing_failed",
                "The event was recorded but applying it failed; it will be retried.",
            )
        services.sweep_soon()  # heal what an earlier outage stranded, without a command
        return JsonResponse({"received": True, "id": event.event_id, "status": event.status})


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def _unavailable(message: str) -> JsonResponse:
    """503: nothing is claimed about the event; Plugipay delivers it again after a pause."""
    response = _error(503, "unavailable", message)
    response["Retry-After"] = str(RETRY_AFTER)
    return response


# ── billing: the portal, invoice documents, subscription-gated views ─────────────


class PortalView(LoginRequiredMixin, View):
    """Send the signed-in owner to a fresh Plugipay billing-portal session.

    The portal returns to ``?next=`` when that is a URL of this site, else to the
    ``PORTAL_RETURN_URL`` setting (else this site's root). Subclass and override
    :meth:`get_owner` to open the portal of a team the user manages.
    """

    http_method_names = ["get"]

    def get_owner(self, request: HttpRequest) -> Any:
        return request.user

    def return_url(self, request: HttpRequest) -> str:
        target = request.GET.get("next")
        if target and url_has_allowed_host_and_scheme(
            target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return request.build_absolute_uri(target)
        return request.build_absolute_uri(app_settings.PORTAL_RETURN_URL or "/")

    def get(self, request: HttpRequest) -> HttpResponse:
        customer = billing.customers(self.get_owner(request)).first()
        if customer is None:
            raise Http404(_("There is no billing account to manage."))
        try:
            url = services.create_portal_session(
                customer=customer, return_url=self.return_url(request)
            )
        except PlugipayError as exc:
            logger.warning("plugipay portal session failed: %s", exc)
            return HttpResponse(
                _("The billing portal is not available right now. Please try again shortly."),
                status=502,
                content_type="text/plain; charset=utf-8",
            )
        return HttpResponseRedirect(url)


class InvoiceDocumentView(LoginRequiredMixin, View):
    """The invoice as a PDF (or HTML with ``?format=html``), fetched from Plugipay and
    streamed. Only its owner and staff who may view invoices (see :meth:`has_access`) may read
    it; anyone else gets a 404, as if it did not exist."""

    http_method_names = ["get"]

    def has_access(self, request: HttpRequest, invoice: Invoice) -> bool:
        """Staff who may view invoices, and the invoice's owner (see ``permissions``)."""
        return permissions.can_read(request.user, invoice)

    def get(self, request: HttpRequest, plugipay_id: str) -> HttpResponseBase:
        invoice = Invoice.objects.filter(plugipay_id=plugipay_id).first()
        if invoice is None or not self.has_access(request, invoice):
            raise Http404(_("No such invoice."))
        kind = "html" if request.GET.get("format") == "html" else "pdf"
        try:
            upstream = services.invoice_document(invoice=invoice, kind=kind)
        except PlugipayError as exc:
            logger.warning("plugipay invoice document %s failed: %s", plugipay_id, exc)
            return HttpResponse(
                _("The invoice document is not available right now. Please try again shortly."),
                status=502,
                content_type="text/plain; charset=utf-8",
            )
        return _stream_document(upstream, kind, invoice.number or invoice.plugipay_id)


class ReceiptDocumentView(LoginRequiredMixin, View):
    """The buyer's receipt as a PDF (or HTML with ``?format=html``), fetched from Plugipay and
    streamed. ``plugipay_id`` is the receipt's id, or the id of the checkout session or
    invoice it was issued for (a shop's order page knows that one; a receipt not mirrored yet
    is synced first). Its owner and staff who may view receipts read it; anyone else gets a
    404, as if it did not exist."""

    http_method_names = ["get"]

    def get_receipt(self, request: HttpRequest, plugipay_id: str) -> Any:
        try:
            return services.receipt_for(plugipay_id=plugipay_id, user=request.user)
        except PlugipayError as exc:
            logger.warning("plugipay receipt sync for %s failed: %s", plugipay_id, exc)
            return None

    def get(self, request: HttpRequest, plugipay_id: str) -> HttpResponseBase:
        receipt = self.get_receipt(request, plugipay_id)
        if receipt is None:
            raise Http404(_("No such receipt."))
        kind = "html" if request.GET.get("format") == "html" else "pdf"
        try:
            upstream = services.receipt_document(receipt=receipt, format=kind)
        except PlugipayError as exc:
            logger.warning("plugipay receipt document %s failed: %s", plugipay_id, exc)
            return HttpResponse(
                _("The receipt is not available right now. Please try again shortly."),
                status=502,
                content_type="text/plain; charset=utf-8",
            )
        return _stream_document(upstream, kind, receipt.number or receipt.plugipay_id)


def _stream_document(upstream: Any, kind: str, name: str) -> StreamingHttpResponse:
    """Stream a document Plugipay serves (a ``requests`` response, closed when done) inline
    as ``name.kind``. It is served on the shop's origin, so it is sandboxed: an HTML document
    runs no script and reaches no cookie of the shop, and no browser sniffs it into HTML."""

    def chunks():
        with upstream:
            yield from upstream.iter_content(64 * 1024)

    default = "application/pdf" if kind == "pdf" else "text/html; charset=utf-8"
    response = StreamingHttpResponse(
        chunks(), content_type=upstream.headers.get("Content-Type") or default
    )
    filename = name.replace('"', "")
    response["Content-Disposition"] = f'inline; filename="{filename}.{kind}"'
    response["Content-Security-Policy"] = "sandbox"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def subscription_required(
    view: Callable | None = None,
    *,
    plan: Any = None,
    redirect_url: str | None = None,
    owner: Callable[[HttpRequest], Any] | None = None,
):
    """Let a view run only for a subscribed owner (``billing.subscribed``).

    ``@subscription_required`` or ``@subscription_required(plan=…, redirect_url=…,
    owner=lambda request: request.user.team)``. Anonymous users go to the login page; others
    without a subscription to ``redirect_url`` (a URL or URL name) when given, else 403.
    """

    def decorate(function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            who = owner(request) if owner is not None else request.user
            if not billing.subscribed(who, plan):
                if redirect_url:
                    return redirect(redirect_url)
                raise PermissionDenied(_("This page needs an active subscription."))
            return function(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


class SubscriptionRequiredMixin:
    """The class-based form of :func:`subscription_required`: set ``subscription_plan`` and
    ``subscription_redirect_url``, override ``get_subscription_owner`` for teams."""

    subscription_plan: Any = None
    subscription_redirect_url: str | None = None

    def get_subscription_owner(self, request: HttpRequest) -> Any:
        return request.user

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        guarded = subscription_required(
            super().dispatch,  # type: ignore[misc]
            plan=self.subscription_plan,
            redirect_url=self.subscription_redirect_url,
            owner=self.get_subscription_owner,
        )
        return guarded(request, *args, **kwargs)
