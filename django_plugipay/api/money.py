"""API for money out: payouts and the balance (staff only), receipts (their owner's)."""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from django_plugipay import services
from django_plugipay.api.accounts import ForRequestAccount, in_request_account
from django_plugipay.api.permissions import CanManagePayouts, SeesPayouts
from django_plugipay.api.serializers import MinorUnits
from django_plugipay.api.views import Conflict, NewestFirst, UpstreamError, idempotency_key
from django_plugipay.context import current_account_pk
from django_plugipay.exceptions import APIError, PayoutError, PlugipayError
from django_plugipay.models import Payout, PayoutStatus, Receipt
from django_plugipay.money import format_amount
from django_plugipay.permissions import visible
from django_plugipay.services.payouts import move_refusal, payout_refusal


class PayoutSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="plugipay_id", read_only=True, allow_null=True)
    amount_display = serializers.SerializerMethodField(
        help_text="The amount formatted for people, e.g. 'Rp 250.000'."
    )
    destination = serializers.CharField(source="masked_account", read_only=True)

    class Meta:
        model = Payout
        fields = [
            "id",
            "amount",
            "amount_display",
            "currency",
            "status",
            "method",
            "destination",
            "note",
            "reference",
            "failure_reason",
            "processed_at",
            "completed_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_amount_display(self, obj) -> str:
        return format_amount(obj.amount, obj.currency)


class PayoutRequestSerializer(serializers.Serializer):
    amount = MinorUnits(help_text="In the currency's minor unit (rupiah for IDR).")
    note = serializers.CharField(required=False, allow_blank=True, max_length=500)

    def validate_amount(self, value: int) -> int:
        refused = payout_refusal(amount=value, currency="IDR", available=None)
        if refused is not None:
            raise serializers.ValidationError(refused.message)
        return value


class PayoutMoveSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=[PayoutStatus.IN_TRANSIT, PayoutStatus.PAID, PayoutStatus.FAILED, "canceled"]
    )
    reference = serializers.CharField(required=False, allow_blank=True, max_length=255)
    failure_reason = serializers.CharField(required=False, allow_blank=True, max_length=500)


class BalanceSerializer(serializers.Serializer):
    ledger_balance = serializers.IntegerField()
    locked = serializers.IntegerField()
    available = serializers.IntegerField()
    currency = serializers.CharField()


class ReceiptSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="plugipay_id", read_only=True)
    amount_display = serializers.SerializerMethodField(
        help_text="The total formatted for people, e.g. 'Rp 111.000'."
    )

    class Meta:
        model = Receipt
        fields = [
            "id",
            "number",
            "source_type",
            "source_id",
            "amount",
            "amount_display",
            "currency",
            "method",
            "subtotal",
            "tax_amount",
            "issued_at",
            "emailed_at",
        ]
        read_only_fields = fields

    def get_amount_display(self, obj) -> str:
        return format_amount(obj.amount, obj.currency)


class PayoutInProgress(Conflict):
    """409 with ``Retry-After``: a request with this Idempotency-Key is sending its payout to
    Plugipay now; the same request a moment later answers it."""

    default_code = "in_progress"
    default_detail = gettext_lazy(
        "A payout with this Idempotency-Key is being sent to Plugipay now; send the request "
        "again in a moment to read it."
    )
    wait = 1


def _refused(exc: PlugipayError):
    """A refusal (a payout error, a 4xx from Plugipay; a 409 move, an Idempotency-Key used
    for another payout) is the caller's 4xx."""
    if isinstance(exc, APIError) and exc.status == 409:
        return Conflict(exc.message)
    if isinstance(exc, PayoutError) and exc.code == "idempotency_mismatch":
        return Conflict(exc.message)
    if not isinstance(exc, (APIError, PayoutError)):
        return UpstreamError()
    if exc.field in BANK_FIELDS:  # Plugipay has no bank account saved to pay out to
        message = _(
            "No bank account is saved at Plugipay: add one in the Plugipay dashboard first."
        )
        return ValidationError({"non_field_errors": [message]})
    if exc.status is not None:  # Plugipay's refusal: its message is a developer's, in English
        message = _("Plugipay refused the payout: %(reason)s") % {"reason": exc.message}
        return ValidationError({exc.field or "non_field_errors": [message]})
    return ValidationError({exc.field or "non_field_errors": [exc.message]})  # this app's own


#: the fields of a payout's bank account, as Plugipay names one it misses (both spellings)
BANK_FIELDS = {
    "bankCode",
    "bankName",
    "accountNumber",
    "accountHolder",
    "bankAccountNumber",
    "bankAccountHolder",
}


class PayoutList(ForRequestAccount, generics.ListCreateAPIView):
    """Payouts, newest first; POST pays out (``manage_payout``; send ``Idempotency-Key`` to
    make retries safe: the same key returns the same payout)."""

    permission_classes = [IsAuthenticated, SeesPayouts, CanManagePayouts]
    serializer_class = PayoutSerializer
    pagination_class = NewestFirst

    def get_queryset(self):
        return in_request_account(Payout.objects.all())

    @extend_schema(
        request=PayoutRequestSerializer,
        responses={201: PayoutSerializer, 200: PayoutSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER)],
    )
    def post(self, request):
        data = PayoutRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key = idempotency_key(
            request.user,
            request.headers.get("Idempotency-Key"),
            Payout.objects.filter(account_id=current_account_pk()),
        )
        try:
            payout = services.create_payout(
                amount=data.validated_data["amount"],
                note=data.validated_data.get("note") or None,
                idempotency_key=key,
            )
        except PlugipayError as exc:
            raise _refused(exc) from exc
        if payout.replayed and not payout.plugipay_id and payout.status == PayoutStatus.PENDING:
            raise PayoutInProgress  # the first request with this key is waiting for Plugipay
        if not payout.plugipay_id and payout.status == PayoutStatus.FAILED:
            # sent again with this key (the first request got no answer) and refused by
            # Plugipay, by this request or an earlier one: a refusal, as on a first send
            raise _refused(PayoutError(payout.failure_reason, code=payout.failure_code, status=422))
        code = status.HTTP_200_OK if payout.replayed else status.HTTP_201_CREATED
        return Response(PayoutSerializer(payout).data, status=code)


class PayoutDetail(ForRequestAccount, generics.RetrieveAPIView):
    permission_classes = [IsAuthenticated, SeesPayouts]
    serializer_class = PayoutSerializer
    lookup_field = "plugipay_id"
    lookup_url_kwarg = "id"

    def get_queryset(self):
        return in_request_account(Payout.objects.all())


class PayoutMove(ForRequestAccount, generics.GenericAPIView):
    """Cancel a pending payout, or mark a manual one in transit, paid or failed (409 for a
    move the payout cannot make)."""

    permission_classes = [IsAuthenticated, SeesPayouts, CanManagePayouts]
    serializer_class = PayoutMoveSerializer
    lookup_field = "plugipay_id"
    lookup_url_kwarg = "id"

    def get_queryset(self):
        return in_request_account(Payout.objects.all())

    @extend_schema(request=PayoutMoveSerializer, responses={200: PayoutSerializer})
    def post(self, request, id: str):
        payout = self.get_object()
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        move = data.validated_data
        try:
            if move["status"] == "canceled":
                payout = services.cancel_payout(payout=payout)
            else:
                payout = services.mark_payout(
                    payout=payout,
                    status=move["status"],
                    reference=move.get("reference") or None,
                    failure_reason=move.get("failure_reason") or None,
                )
        except PlugipayError as exc:
            if isinstance(exc, APIError) and exc.status == 409:  # a move it cannot make
                raise Conflict(move_refusal(payout, move["status"], exc)) from exc
            raise _refused(exc) from exc
        return Response(PayoutSerializer(payout).data)


class BalanceDetail(ForRequestAccount, generics.GenericAPIView):
    """The balance as Plugipay reports it now: available, locked in payouts, ledger."""

    permission_classes = [IsAuthenticated, SeesPayouts]
    serializer_class = BalanceSerializer

    def get(self, request):
        try:
            balance = services.balance()
        except PlugipayError as exc:
            raise UpstreamError() from exc
        return Response(BalanceSerializer(balance).data)


class ReceiptList(ForRequestAccount, generics.ListAPIView):
    """The user's receipts (staff who may view receipts: every receipt), newest first."""

    permission_classes = [IsAuthenticated]
    serializer_class = ReceiptSerializer
    pagination_class = NewestFirst

    def get_queryset(self):
        return visible(in_request_account(Receipt.objects.all()), self.request.user)


class ReceiptDetail(ForRequestAccount, generics.RetrieveAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = ReceiptSerializer
    lookup_field = "plugipay_id"
    lookup_url_kwarg = "id"

    def get_queryset(self):
        return visible(in_request_account(Receipt.objects.all()), self.request.user)
