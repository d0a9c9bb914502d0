"""API for recurring billing: the user's subscriptions and invoices, subscribing to a price the
project allows (``API_SUBSCRIBE_PARAMS``), cancelling at period end and the billing portal."""

from __future__ import annotations

from django.http import Http404
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from django_plugipay import billing, services
from django_plugipay.api.accounts import ForRequestAccount, in_request_account
from django_plugipay.api.views import NewestFirst, UpstreamError
from django_plugipay.conf import app_settings
from django_plugipay.exceptions import APIError, PlugipayError
from django_plugipay.models import Customer, Invoice, Price, Subscription
from django_plugipay.money import format_amount
from django_plugipay.permissions import visible
from django_plugipay.specs import status_group


class SubscriptionSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="plugipay_id", read_only=True)
    customer = serializers.CharField(source="customer.plugipay_id", read_only=True)
    plan = serializers.CharField(source="plan.plugipay_id", read_only=True, allow_null=True)
    plan_name = serializers.CharField(source="plan.name", read_only=True, allow_null=True)
    price = serializers.CharField(source="price.plugipay_id", read_only=True, allow_null=True)

    class Meta:
        model = Subscription
        fields = [
            "id",
            "customer",
            "plan",
            "plan_name",
            "price",
            "status",
            "collection_method",
            "current_period_start",
            "current_period_end",
            "trial_end",
            "cancel_at",
            "canceled_at",
            "paused_at",
            "created_at",
        ]
        read_only_fields = fields


class InvoiceSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="plugipay_id", read_only=True)
    subscription = serializers.CharField(
        source="subscription.plugipay_id", read_only=True, allow_null=True, default=None
    )
    total_display = serializers.SerializerMethodField(
        help_text="The total formatted for people, e.g. 'IDR 99,000'."
    )

    class Meta:
        model = Invoice
        fields = [
            "id",
            "number",
            "subscription",
            "status",
            "currency",
            "subtotal",
            "discount",
            "tax",
            "total",
            "total_display",
            "amount_due",
            "amount_paid",
            "issued_at",
            "due_at",
            "paid_at",
            "hosted_url",
            "created_at",
        ]
        read_only_fields = fields

    def get_total_display(self, obj) -> str:
        return format_amount(obj.total, obj.currency)


class SubscribeRequestSerializer(serializers.Serializer):
    price = serializers.CharField(max_length=255, help_text="The Plugipay id of the price.")


class SubscribeResponseSerializer(serializers.Serializer):
    subscription = SubscriptionSerializer()
    pay_url = serializers.URLField(
        allow_null=True,
        help_text="The hosted page of the first invoice to pay (send_invoice), else null.",
    )


class PortalRequestSerializer(serializers.Serializer):
    return_url = serializers.CharField(
        required=False,
        max_length=2048,
        help_text="A URL of this site to come back to; anything else is replaced by "
        "PORTAL_RETURN_URL.",
    )


class PortalResponseSerializer(serializers.Serializer):
    url = serializers.URLField(help_text="The billing portal; valid for a few minutes.")


def _upstream(exc: PlugipayError):
    """A Plugipay refusal (4xx) is the caller's 400; anything else is 502."""
    if isinstance(exc, APIError):
        return ValidationError({"non_field_errors": [exc.message]})
    return UpstreamError()


def billing_rows(rows, request, *, customer: str = "customer", everyone: bool = True):
    """The subscriptions or invoices in ``rows`` the request may read: the user's own (every
    row for staff who see everything, unless ``everyone`` is False), and those of the owners
    ``PLUGIPAY["API_BILLING_OWNERS"]`` names for it (the user's team)."""
    own = visible(rows, request.user) if everyone else rows.for_user(request.user)
    hook = app_settings.API_BILLING_OWNERS
    if hook is None:
        return own
    theirs = Customer.objects.none()
    for owner in hook(request) or ():
        theirs = theirs | billing.customers(owner)
    return own | rows.filter(**{f"{customer}__in": theirs})


class SubscriptionList(ForRequestAccount, generics.ListCreateAPIView):
    """The user's subscriptions; POST subscribes to a price the project allows."""

    permission_classes = [IsAuthenticated]
    serializer_class = SubscriptionSerializer
    pagination_class = None

    def get_queryset(self):
        rows = in_request_account(Subscription.objects.select_related("customer", "plan", "price"))
        return billing_rows(rows, self.request).order_by("-created_at")

    def list(self, request, *args, **kwargs):
        billing.sync_moving(self.get_queryset())  # a first payment made, a renewal failed
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request=SubscribeRequestSerializer,
        responses={201: SubscribeResponseSerializer, 200: SubscribeResponseSerializer},
    )
    def post(self, request):
        hook = app_settings.API_SUBSCRIBE_PARAMS
        if hook is None:
            raise Http404(_("Subscribing is not enabled: set PLUGIPAY['API_SUBSCRIBE_PARAMS']."))
        data = SubscribeRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        price = (
            in_request_account(Price.objects.active())
            .select_related("plan")
            .filter(plugipay_id=data.validated_data["price"])
            .first()
        )
        params = hook(request, price) if price is not None else None
        if params is None:
            raise PermissionDenied(_("This price cannot be subscribed to here."))
        params = dict(params)
        try:
            if "customer" not in params:  # made at Plugipay on the user's first subscription
                params["customer"] = services.get_or_create_customer_for_user(user=request.user)
            result = services.subscribe(price=price, **params)
        except PlugipayError as exc:
            raise _upstream(exc) from exc
        body = {
            "subscription": SubscriptionSerializer(result.subscription).data,
            "pay_url": result.invoice_url,
        }
        # The user's live subscription to this price's plan, returned, not made twice: 200.
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(body, status=code)


class SubscriptionDetail(ForRequestAccount, generics.RetrieveAPIView):
    """Read a subscription; one Plugipay may have moved without a webhook yet (a first invoice
    paid, a renewal failed) is synced first, at most every API_SYNC_INTERVAL s, so a frontend
    polling after the buyer pays sees it active before the webhook lands."""

    permission_classes = [IsAuthenticated]
    serializer_class = SubscriptionSerializer
    lookup_field = "plugipay_id"
    lookup_url_kwarg = "id"

    def get_queryset(self):
        rows = in_request_account(Subscription.objects.select_related("customer", "plan", "price"))
        return billing_rows(rows, self.request)

    def get_object(self):
        found = super().get_object()
        rows = self.get_queryset().filter(pk=found.pk)
        billing.sync_moving(rows)
        return rows.get()


class SubscriptionCancel(ForRequestAccount, generics.GenericAPIView):
    """Cancel one of the user's subscriptions at the end of the current period (access stays
    until then)."""

    permission_classes = [IsAuthenticated]
    serializer_class = SubscriptionSerializer

    @extend_schema(request=None, responses={200: SubscriptionSerializer})
    def post(self, request, id: str):
        rows = Subscription.objects.select_related("customer", "plan", "price")
        mine = billing_rows(rows, request, everyone=False)  # staff cancel in the admin
        subscription = generics.get_object_or_404(mine, plugipay_id=id)
        if subscription.cancel_at is not None or subscription.status not in status_group(
            Subscription, "live"
        ):
            # canceled already (a second click, a retry): the same answer, nothing sent
            return Response(SubscriptionSerializer(subscription).data)
        try:
            subscription = services.cancel_subscription(
                subscription=subscription, at="period_end", reason="user_request"
            )
        except PlugipayError as exc:
            raise _upstream(exc) from exc
        return Response(SubscriptionSerializer(subscription).data)


class InvoiceList(ForRequestAccount, generics.ListAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = InvoiceSerializer
    pagination_class = NewestFirst

    def get_queryset(self):
        rows = in_request_account(Invoice.objects.select_related("subscription"))
        return billing_rows(rows, self.request)


class PortalSessionCreate(ForRequestAccount, generics.GenericAPIView):
    """A fresh billing-portal URL for the user's customer (404 when they have none)."""

    permission_classes = [IsAuthenticated]
    serializer_class = PortalRequestSerializer

    @extend_schema(request=PortalRequestSerializer, responses={201: PortalResponseSerializer})
    def post(self, request):
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        return_url = data.validated_data.get("return_url")
        if not return_url or not url_has_allowed_host_and_scheme(
            return_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return_url = app_settings.PORTAL_RETURN_URL or "/"
        customer = billing.customers(request.user).first()
        if customer is None:
            raise Http404(_("There is no billing account to manage."))
        return_url = request.build_absolute_uri(return_url)
        try:
            url = services.create_portal_session(customer=customer, return_url=return_url)
        except PlugipayError as exc:
            raise _upstream(exc) from exc
        return Response({"url": url}, status=status.HTTP_201_CREATED)
