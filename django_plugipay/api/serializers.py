"""Serializers: Plugipay ids (never primary keys), integer minor units and a display string."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from django.utils.translation import gettext as _
from rest_framework import serializers

from django_plugipay.metadata import validate_metadata
from django_plugipay.models import CheckoutSession, Payment, Refund, RefundReason, RefundStatus
from django_plugipay.models.querysets import NOT_SUBMITTED
from django_plugipay.money import MAX_AMOUNT, format_amount
from django_plugipay.services.refunds import refund_refusal


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
    pending_seconds = serializers.SerializerMethodField(
        help_text="Seconds since the refund was requested while it is not settled (requested "
        "or pending; VA and e-wallet refunds can take days), else null."
    )
    failure_message = serializers.SerializerMethodField(
        help_text="Why the refund failed (Plugipay's reason), or why it is not sent yet."
    )

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
            "pending_seconds",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_failure_message(self, refund: Refund) -> str:
        """Plugipay's reason for a failed refund; for one not sent yet, that it is sent again
        by itself, in the reader's language (the stored note names the server's error, for
        staff, in the project's language)."""
        if refund.failure_code == NOT_SUBMITTED and refund.status == RefundStatus.REQUESTED:
            return _("Not sent to Plugipay yet; it is sent again automatically.")
        return refund.failure_message

    def get_pending_seconds(self, refund: Refund) -> int | None:
        waited = refund.pending_for
        return int(waited.total_seconds()) if waited is not None else None


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
    instructions = serializers.SerializerMethodField(
        help_text="While the session is pending: what the buyer must do (method, channel, "
        "account_number, qr_string, approval_url, payment_code, bank_accounts, expires_at…)."
    )

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
            "instructions",
            "created_at",
        ]
        read_only_fields = fields

    def get_instructions(self, obj) -> dict[str, Any] | None:
        info = obj.instructions if obj.is_pending else None
        if info is None:
            return None
        data = dataclasses.asdict(info)
        for key in ("expires_at", "claimed_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data

    def get_payment(self, obj) -> str | None:
        payment = next((p for p in obj.payments.all() if p.status == "succeeded"), None)
        return payment.plugipay_id if payment else None


class WholeNumber(serializers.IntegerField):
    """A whole number: a JSON integer, or a string of digits (a minus sign at most). DRF's
    integer field also reads ``"250.000"`` as 250, ``"1_000"`` as 1000 and ``2.0`` as 2; a
    client that writes its locale's grouping means another number, so such text is refused,
    as is a JSON number with a fraction or an exponent. A field a form sends empty is refused
    too (DRF would take it as not sent, and use the default)."""

    def get_value(self, dictionary):
        value = super().get_value(dictionary)
        if value is serializers.empty and dictionary.get(self.field_name) == "":
            return ""  # sent empty: invalid, not missing
        return value

    def to_internal_value(self, data):
        # a JSON number with a fraction or an exponent (2.0, 1e3) is not an integer as sent
        if isinstance(data, (bool, float)) or (
            isinstance(data, str) and not _DIGITS.fullmatch(data)
        ):
            self.fail("invalid")
        return super().to_internal_value(data)


class MinorUnits(WholeNumber):
    """An amount in the currency's minor units (:class:`WholeNumber`)."""


_DIGITS = re.compile(r"-?[0-9]+")


class CheckoutRequestSerializer(serializers.Serializer):
    """What a frontend may send; the project's API_CHECKOUT_PARAMS callable decides the rest."""

    reference = serializers.CharField(
        max_length=255, help_text="What is being bought, e.g. an order id."
    )
    quantity = WholeNumber(min_value=1, default=1)
    metadata = serializers.DictField(  # the values are checked as sent: strings only
        required=False,
        default=dict,
        validators=[validate_metadata],
    )


class RefundRequestSerializer(serializers.Serializer):
    """A refund request; the view passes the payment as ``context["payment"]``."""

    amount = MinorUnits(  # null or empty is refused: only leaving it out refunds the rest
        min_value=1,
        required=False,
        help_text=f"Minor units, at most {MAX_AMOUNT}; omit to refund everything that is left.",
    )
    reason = serializers.ChoiceField(choices=RefundReason.choices)
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=1000
    )

    def validate(self, attrs):
        # The payment's state is the service's to check, after an idempotent replay.
        payment = self.context.get("payment")
        refused = refund_refusal(
            payment=payment,
            amount=attrs.get("amount") if payment is not None else None,
            reason=attrs["reason"],
            description=attrs["description"],
        )
        if refused is not None:
            raise serializers.ValidationError(
                {refused.field or "non_field_errors": refused.message}
            )
        return attrs
