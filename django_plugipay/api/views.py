"""API views: parse, call one service, serialize."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpResponsePermanentRedirect
from django.urls import Resolver404, resolve
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework import generics, serializers, status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from django_plugipay import services
from django_plugipay.api.accounts import ForRequestAccount, in_request_account
from django_plugipay.api.permissions import CanRefund
from django_plugipay.api.serializers import (
    CheckoutRequestSerializer,
    CheckoutSessionSerializer,
    PaymentSerializer,
    RefundRequestSerializer,
    RefundSerializer,
)
from django_plugipay.client import header_safe
from django_plugipay.conf import app_settings
from django_plugipay.exceptions import PlugipayError, RefundError
from django_plugipay.metadata import validate_metadata
from django_plugipay.models import CheckoutSession, Payment, PaymentStatus, Refund
from django_plugipay.money import check_amount
from django_plugipay.permissions import visible


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "idempotency_mismatch"


class UpstreamError(APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "plugipay_unavailable"
    default_detail = gettext_lazy("Plugipay could not be reached; try again shortly.")


@extend_schema(exclude=True)  # not an endpoint
class NoSuchEndpoint(APIView):
    """Any other URL under the API: a JSON 404 for every method and every client, as the API's
    own 404s are (not the project's HTML page, which a frontend cannot read). An endpoint's
    URL without its trailing slash is redirected to it for a GET (as ``APPEND_SLASH`` does);
    any other method is told the URL to send it to (a redirect would lose its body, and
    ``APPEND_SLASH`` makes a POST an error page under ``DEBUG``)."""

    authentication_classes: list = []
    permission_classes: list = []

    def dispatch(self, request, *args, **kwargs):
        target = _with_slash(request)
        if target is not None and request.method in ("GET", "HEAD"):
            return HttpResponsePermanentRedirect(target)
        return super().dispatch(request, *args, **kwargs)

    def initial(self, request, *args, **kwargs):
        target = _with_slash(request)
        if target is not None:
            raise NotFound(
                _("API URLs end with a slash: send this request to %(url)s.") % {"url": target}
            )
        raise NotFound(_("No API endpoint has this URL."))


def _with_slash(request) -> str | None:
    """The endpoint's URL this request's lacks only the trailing slash of, or None."""
    path = request.path_info
    if not settings.APPEND_SLASH or path.endswith("/"):
        return None
    try:
        match = resolve(path + "/", getattr(request, "urlconf", None))
    except Resolver404:
        return None
    if getattr(match.func, "view_class", None) is NoSuchEndpoint:
        return None
    return request.get_full_path(force_append_slash=True)


@extend_schema(exclude=True)  # the schema itself
class Schema(SpectacularAPIView):
    """The OpenAPI schema of these endpoints. Their paths are relative to where the project
    includes this API: the ``servers`` entry names that prefix (unless ``SPECTACULAR_SETTINGS``
    names servers), so a client generated from the schema calls the right URLs."""

    urlconf = "django_plugipay.api.urls"

    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        if isinstance(response.data, dict) and not response.data.get("servers"):
            prefix = request.path.removesuffix("schema/")
            response.data["servers"] = [{"url": prefix}]
        return response


class NewestFirst(CursorPagination):
    ordering = "-created_at"
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def decode_cursor(self, request):
        """A cursor whose position is no time this API could have made (one made by hand) is
        an invalid cursor, 404, like any cursor DRF cannot read."""
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None and not _comparable(cursor.position):
            raise NotFound(self.invalid_cursor_message)
        return cursor


def _comparable(text: str) -> bool:
    """Can the database compare ``created_at`` with the time ``text``, read as Django reads a
    filter's value? With ``USE_TZ``, a naive time is in ``TIME_ZONE`` (not the zone active
    now) and every time is compared in UTC: ``0001-01-01T00:00+01:00`` has no UTC year
    (OverflowError on SQLite). Without it, this API's cursors are naive, and SQLite refuses
    an aware time."""
    try:
        position = parse_datetime(text)
        if position is None:
            return False
        if not settings.USE_TZ:
            return timezone.is_naive(position)
        if timezone.is_naive(position):
            position = timezone.make_aware(position, timezone.get_default_timezone())
        position.astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):
        return False
    return True


class CheckoutSessionCreate(ForRequestAccount, generics.GenericAPIView):
    """Start a checkout for something the project prices (``API_CHECKOUT_PARAMS``)."""

    permission_classes = [IsAuthenticated]
    serializer_class = CheckoutRequestSerializer

    @extend_schema(request=CheckoutRequestSerializer, responses={201: CheckoutSessionSerializer})
    def post(self, request):
        pricing = app_settings.API_CHECKOUT_PARAMS
        if pricing is None:
            raise Http404(
                _("Checkout creation is not enabled: set PLUGIPAY['API_CHECKOUT_PARAMS'].")
            )
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        params = dict(pricing(request, serializer.validated_data))
        # What the pricing callable answered is refused before the buyer's customer is made
        # at Plugipay, not after: an amount beyond MAX_AMOUNT (a quantity too large), and
        # metadata breaking Plugipay's rules (the client's, passed through).
        try:
            check_amount(params.get("amount"), params.get("currency", "IDR"))
        except ValueError as exc:
            raise ValidationError({"quantity": [str(exc)]}) from exc
        try:
            validate_metadata(params.get("metadata"))
        except DjangoValidationError as exc:
            raise ValidationError({"metadata": exc.messages}) from exc
        try:
            if "customer" not in params:  # made at Plugipay on the user's first checkout
                params["customer"] = services.get_or_create_customer_for_user(user=request.user)
            session = services.create_checkout_session(**params)
        except PlugipayError as exc:
            raise UpstreamError() from exc
        return Response(CheckoutSessionSerializer(session).data, status=status.HTTP_201_CREATED)


class CheckoutSessionDetail(ForRequestAccount, generics.RetrieveAPIView):
    """Read a session; an open one is synced from Plugipay (at most every API_SYNC_INTERVAL s),
    so a frontend polling after the redirect sees ``completed`` before the webhook lands."""

    permission_classes = [IsAuthenticated]
    serializer_class = CheckoutSessionSerializer
    lookup_field = "plugipay_id"
    lookup_url_kwarg = "id"

    def get_queryset(self):
        sessions = CheckoutSession.objects.prefetch_related("payments")
        return visible(in_request_account(sessions), self.request.user)

    def get_object(self):
        session = super().get_object()
        interval = dt.timedelta(seconds=app_settings.API_SYNC_INTERVAL)
        if session.is_open and (
            session.synced_at is None or timezone.now() - session.synced_at >= interval
        ):
            # On failure serve what we know; the webhook or the next poll will catch up.
            with contextlib.suppress(PlugipayError):
                session = services.sync_checkout_session(session=session)
        return session


PAYMENT_FILTERS = [
    OpenApiParameter("status", OpenApiTypes.STR, enum=list(PaymentStatus.values)),
    OpenApiParameter("created_after", OpenApiTypes.DATETIME),
    OpenApiParameter("created_before", OpenApiTypes.DATETIME),
]


def visible_payments(user):
    payments = Payment.objects.select_related("checkout_session").prefetch_related(
        "refunds__payment"
    )
    return visible(in_request_account(payments), user)


class PaymentFilters(serializers.Serializer):
    """The payment list's query parameters: a status that is none, or a time that is not one,
    is a 400 naming the parameter (not an empty page)."""

    status = serializers.ChoiceField(choices=PaymentStatus.choices, required=False)
    created_after = serializers.DateTimeField(required=False)
    created_before = serializers.DateTimeField(required=False)


class PaymentList(ForRequestAccount, generics.ListAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = PaymentSerializer
    pagination_class = NewestFirst

    def get_queryset(self):
        queryset = visible_payments(self.request.user)
        filters = PaymentFilters(data=self.request.query_params)
        filters.is_valid(raise_exception=True)  # a 400 naming the parameter
        found = filters.validated_data
        if found.get("status"):
            queryset = queryset.filter(status=found["status"])
        if found.get("created_after"):
            queryset = queryset.filter(created_at__gte=found["created_after"])
        if found.get("created_before"):
            queryset = queryset.filter(created_at__lt=found["created_before"])
        return queryset

    @extend_schema(parameters=PAYMENT_FILTERS)
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class PaymentDetail(ForRequestAccount, generics.RetrieveAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = PaymentSerializer
    lookup_field = "plugipay_id"
    lookup_url_kwarg = "id"

    def get_queryset(self):
        return visible_payments(self.request.user)


class RefundDetail(ForRequestAccount, generics.RetrieveAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = RefundSerializer
    lookup_field = "plugipay_id"
    lookup_url_kwarg = "id"

    def get_queryset(self):
        return visible(
            in_request_account(Refund.objects.select_related("payment")), self.request.user
        )


class PaymentRefundCreate(ForRequestAccount, generics.GenericAPIView):
    """Refund a payment. Send an ``Idempotency-Key`` header to make retries safe: the same key
    returns the same refund; the same key with a different body is 409."""

    permission_classes = [IsAuthenticated, CanRefund]
    serializer_class = RefundRequestSerializer

    @extend_schema(
        request=RefundRequestSerializer,
        responses={201: RefundSerializer, 200: RefundSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER)],
    )
    def post(self, request, id: str):
        payment = generics.get_object_or_404(in_request_account(Payment.objects), plugipay_id=id)
        serializer = self.get_serializer(
            data=request.data, context={**self.get_serializer_context(), "payment": payment}
        )
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        key = idempotency_key(
            request.user,
            request.headers.get("Idempotency-Key"),
            Refund.objects.filter(account_id=payment.account_id),
        )
        try:
            refund = services.refund_payment(
                payment=payment,
                amount=data.get("amount"),
                reason=data["reason"],
                description=data["description"],
                requested_by=request.user,
                idempotency_key=key,
            )
        except RefundError as exc:
            if exc.code == "idempotency_mismatch":
                raise Conflict(exc.message) from exc
            raise ValidationError({exc.field or "non_field_errors": [exc.message]}) from exc
        refund.refresh_from_db()
        code = status.HTTP_200_OK if refund.replayed else status.HTTP_201_CREATED
        return Response(RefundSerializer(refund).data, status=code)


def idempotency_key(user, header: str | None, made: QuerySet) -> str | None:
    """The idempotency key of a refund (or payout) for one user's ``Idempotency-Key`` header
    (None without one):
    readable when a header carries it as written within the 64 characters, else a digest of
    both (never a truncation, which would merge two keys of a user whose primary key is long,
    a UUID). ``made``: the rows of the account the request makes one in.

    Before digests, a key of up to 64 characters was stored readable whatever it held (a
    tab, non-ASCII): when ``made`` holds one so stored, its key is this header's still, so a
    client retrying across the upgrade gets back what its first request made."""
    if not header:
        return None
    readable = f"api_{user.pk}_{header}"
    if header_safe(readable, limit=64):
        return readable
    if (
        len(readable) <= 64
        and "\x00" not in readable
        and made.filter(idempotency_key=readable).exists()
    ):
        return readable  # sent to Plugipay as a digest of it (client.header_key)
    return "api_" + hashlib.sha256(f"{user.pk}\n{header}".encode()).hexdigest()[:60]
