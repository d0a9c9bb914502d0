"""Serializers: Plugipay ids (never primary keys), integer minor units and a display string."""

from __future__ import annotations

from rest_framework import serializers

from django_plugipay.metadata import validate_metadata
from django_plugipay.models import CheckoutSession, Payment, Refund, RefundReason
from django_plugipay.money import format_amount


class MoneyMixin(serializers.Serializer):
    amount_display = serializers.SerializerMethodField(
        help_text="The amount formatted for people, e.g. 'IDR 250,000'."
    )

    def get_amount_display(self, obj) -> str:
        return format_amount(obj.amount, obj.currency)


class RefundSerializer(MoneyMixin, serializers.ModelSerializer):
    id = serializers.CharField(
        source="plugipay_id",
        read_only=True,
        allow_null=True,
        help_text="Null until Plugipay has created the refund.",
    )
    payment = serializers.CharField(source="payment.plugipay_id", read_only=True)

    class Meta:
        model = Refund
        fields = [
            "id",
            "payment",
            "amount",
            "currency",
            "amount_display",
            "reason",
            "description",
            "status",
            "failure_code",
            "failure_message",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class PaymentSerializer(MoneyMixin, serializers.ModelSerializer):
    id = serializers.CharField(source="plugipay_id", read_only=True)
    checkout_session = serializers.CharField(
        source="checkout_session.plugipay_id", read_only=True, allow_null=True, default=None
    )
    amount_refunded_display = serializers.SerializerMethodField()
    refund_state = serializers.CharField(read_only=True)
    refunds = RefundSerializer(many=True, read_only=True)

    class Meta:
        model = Payment
        fields = [
            "id",
            "checkout_session",
            "amount",
            "currency",
            "amount_display",
            "amount_refunded",
            "amount_refunded_display",
            "refund_state",
            "status",
            "method",
            "failure_code",
            "failure_message",
            "paid_at",
            "created_at",
            "refunds",
        ]
        read_only_fields = fields

    def get_amount_refunded_display(self, obj) -> str:
        return format_amount(obj.amount_refunded, obj.currency)


class CheckoutSessionSerializer(MoneyMixin, serializers.ModelSerializer):
    id = serializers.CharField(source="plugipay_id", read_only=True)
    payment = serializers.SerializerMethodField()

    class Meta:
        model = CheckoutSession
        fields = [
            "id",
            "status",
            "amount",
            "currency",
            "amount_display",
            "url",
            "success_url",
            "cancel_url",
            "expires_at",
            "completed_at",
            "payment_method",
            "metadata",
            "payment",
            "created_at",
        ]
        read_only_fields = fields

    def get_payment(self, obj) -> str | None:
        payment = next((p for p in obj.payments.all() if p.status == "succeeded"), None)
        return payment.plugipay_id if payment else None


class CheckoutRequestSerializer(serializers.Serializer):
    """What a frontend may send; the project's API_CHECKOUT_PARAMS callable decides the rest."""

    reference = serializers.CharField(
        max_length=255, help_text="What is being bought, e.g. an order id."
    )
    quantity = serializers.IntegerField(min_value=1, default=1)
    metadata = serializers.DictField(  # the values are checked as sent: strings only
        required=False,
        default=dict,
        validators=[validate_metadata],
    )


class RefundRequestSerializer(serializers.Serializer):
    amount = serializers.IntegerField(
        min_value=1,
        required=False,
        allow_null=True,
        help_text="Minor units; omit to refund everything that is left.",
    )
    reason = serializers.ChoiceField(choices=RefundReason.choices)
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=1000
    )

    def validate(self, attrs):
        if attrs["reason"] == RefundReason.OTHER and not attrs["description"].strip():
            raise serializers.ValidationError(
                {"description": "Describe the reason when it is 'other'."}
            )
        return attrs
