"""Admin for the mirrors: read-only, with refunds and operations behind confirmation pages."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

from django_plugipay import permissions
from django_plugipay.admin import (
    billing,  # noqa: F401 - registers the billing admins
    databases,
)
from django_plugipay.admin.actions import cancel_sessions, dismiss_events, reprocess_events, resync
from django_plugipay.admin.activity import ActivityMixin
from django_plugipay.admin.confirm import confirm_view
from django_plugipay.admin.deliveries import EventDeliveryInline, ObjectDeliveryInline
from django_plugipay.admin.display import (
    REFUND_STATES,
    MirrorAdmin,
    MirrorDisplay,
    admin_link,
    badge,
    instructions_html,
    method_display,
    method_filter,
    money,
    pending_age,
    pretty_json,
    url_display,
)
from django_plugipay.admin.money import ReceiptInline
from django_plugipay.admin.refunds import refund_view
from django_plugipay.models import (
    Account,
    CheckoutSession,
    Customer,
    Payment,
    PaymentStatus,
    Refund,
    WebhookEvent,
)


class RefundInline(MirrorDisplay, admin.TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    readonly_fields = [
        "plugipay_id",
        "amount_display",
        "status_badge",
        "pending_age",
        "reason",
        "requested_by_link",
        "created_at",
    ]
    fields = list(readonly_fields)
    show_change_link = True

    pending_age = pending_age

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return permissions.can_view(request.user, "refund")

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("requested_by")


@admin.register(Customer)
class CustomerAdmin(MirrorAdmin):
    list_display = ["plugipay_id", "email", "name", "user", "mode", "created_at"]
    list_filter = ["mode", "created_at"]
    list_select_related = ["user"]
    search_fields = ["plugipay_id", "email", "name", "external_id"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "plugipay_id",
        "email",
        "name",
        "phone",
        "external_id",
        "user",
        "mode",
        "metadata",
        "created_at",
        "updated_at",
        "synced_at",
        "data_pretty",
    ]
    exclude = ["data"]


@admin.register(CheckoutSession)
class CheckoutSessionAdmin(ActivityMixin, MirrorAdmin):
    list_display = [
        "plugipay_id",
        "amount_display",
        "status_badge",
        "customer_link",
        "method_label",
        "mode",
        "created_at",
    ]
    list_filter = ["status", "mode", "currency", method_filter("payment_method"), "created_at"]
    list_select_related = ["customer"]
    search_fields = ["plugipay_id", "customer__email", "customer__plugipay_id"]
    date_hierarchy = "created_at"
    actions = ["confirm_transfers", resync, cancel_sessions]
    change_form_template = "admin/django_plugipay/checkoutsession/change_form.html"
    inlines = [ObjectDeliveryInline]
    readonly_fields = [
        "plugipay_id",
        "status",
        "amount_display",
        "customer_link",
        "instructions_display",
        "confirmed_by_link",
        "confirmed_at",
        "url_link",
        "success_url_link",
        "cancel_url_link",
        "expires_at",
        "completed_at",
        "method_label",
        "payments_links",
        "metadata",
        "mode",
        "created_at",
        "synced_at",
        "activity",
        "data_pretty",
    ]
    fields = list(readonly_fields)
    method_label = method_display("payment_method")

    def has_cancel_permission(self, request) -> bool:
        return permissions.can_cancel_sessions(request.user)

    def has_confirm_permission(self, request) -> bool:
        return permissions.can_confirm(request.user)

    @admin.action(description=_("Confirm transfer received…"), permissions=["confirm"])
    def confirm_transfers(self, request, queryset):
        return confirm_view(self, request, queryset, single=False)

    def get_urls(self):
        confirm = self.admin_site.admin_view(self.confirm_one)
        return [
            path(
                "<path:object_id>/confirm/",
                confirm,
                name="django_plugipay_checkoutsession_confirm",
            ),
            *super().get_urls(),
        ]

    def confirm_one(self, request, object_id):
        if not self.has_confirm_permission(request):
            raise PermissionDenied
        session = self.found(request, object_id)
        queryset = CheckoutSession.objects.filter(pk=session.pk)
        response = confirm_view(self, request, queryset, single=True)
        if response is None:
            return redirect(
                reverse("admin:django_plugipay_checkoutsession_change", args=[session.pk])
            )
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {**(extra_context or {}), "can_confirm": self.has_confirm_permission(request)}
        return super().change_view(request, object_id, form_url, extra)

    url_link = url_display(CheckoutSession, "url")
    success_url_link = url_display(CheckoutSession, "success_url")
    cancel_url_link = url_display(CheckoutSession, "cancel_url")

    @admin.display(description=_("payment instructions"))
    def instructions_display(self, obj):
        return instructions_html(obj.instructions)

    @admin.display(description=_("payments"))
    def payments_links(self, obj):
        links = [
            admin_link(p, f"{p.plugipay_id} ({str(p.get_status_display()).lower()})")
            for p in obj.payments.all()
        ]
        return format_html_join(", ", "{}", ((link,) for link in links)) if links else "—"


@admin.register(Payment)
class PaymentAdmin(ActivityMixin, MirrorAdmin):
    metadata_field = "checkout_session__metadata"  # ``order:1042`` finds the order's payment
    list_display = [
        "plugipay_id",
        "amount_display",
        "refunded_display",
        "remaining_display",
        "status_badge",
        "method_label",
        "customer_link",
        "session_link",
        "invoice_link",
        "paid_at",
    ]
    list_filter = ["status", method_filter(), "mode", "currency", "created_at"]
    list_select_related = ["customer", "checkout_session", "invoice"]
    search_fields = ["plugipay_id", "checkout_session__plugipay_id", "customer__email"]
    date_hierarchy = "created_at"
    actions = ["refund_payments", resync]
    inlines = [RefundInline, ReceiptInline, ObjectDeliveryInline]
    readonly_fields = [
        "plugipay_id",
        "status_badge",
        "amount_display",
        "refunded_display",
        "remaining_display",
        "method_label",
        "failure_code",
        "failure_message",
        "customer_link",
        "session_link",
        "invoice_link",
        "paid_at",
        "mode",
        "created_at",
        "synced_at",
        "activity",
    ]
    fields = list(readonly_fields)
    change_form_template = "admin/django_plugipay/payment/change_form.html"
    method_label = method_display()

    def get_queryset(self, request):
        # A per-page prefetch, not an annotation: the changelist's count stays a plain COUNT.
        in_flight = Prefetch(
            "refunds", queryset=Refund.objects.in_flight(), to_attr="in_flight_refunds"
        )
        return super().get_queryset(request).prefetch_related(in_flight)

    def has_refund_permission(self, request) -> bool:
        return permissions.can_refund(request.user)

    @admin.display(description=_("refunded"), ordering="amount_refunded")
    def refunded_display(self, obj):
        return money(obj.amount_refunded, obj.currency)

    @admin.display(description=_("remaining"))
    def remaining_display(self, obj):
        if obj.status != PaymentStatus.SUCCEEDED:
            return "—"
        return money(obj.remaining_to_refund(), obj.currency)

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj):
        if obj.refund_state:
            return badge(obj.status, REFUND_STATES[obj.refund_state])
        return badge(obj.status, str(obj.get_status_display()).lower())

    @admin.display(description=_("checkout session"))
    def session_link(self, obj):
        return admin_link(obj.checkout_session)

    @admin.display(description=_("invoice"))
    def invoice_link(self, obj):
        return admin_link(obj.invoice)

    @admin.action(description=_("Refund selected payments…"), permissions=["refund"])
    def refund_payments(self, request, queryset):
        return refund_view(self, request, queryset, single=False)

    def get_urls(self):
        refund = self.admin_site.admin_view(self.refund_one)
        return [
            path("<path:object_id>/refund/", refund, name="django_plugipay_payment_refund"),
            *super().get_urls(),
        ]

    def refund_one(self, request, object_id):
        if not self.has_refund_permission(request):
            raise PermissionDenied
        payment = self.found(request, object_id)
        response = refund_view(self, request, Payment.objects.filter(pk=payment.pk), single=True)
        if response is None:
            return redirect(reverse("admin:django_plugipay_payment_change", args=[payment.pk]))
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_refund": self.has_refund_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(Refund)
class RefundAdmin(ActivityMixin, MirrorAdmin):
    list_display = [
        "__str__",
        "amount_display",
        "status_badge",
        "pending_age",
        "reason",
        "payment_link",
        "requested_by",
        "created_at",
    ]
    list_filter = ["status", "reason", "mode", "created_at"]
    list_select_related = ["payment", "requested_by"]
    search_fields = [
        "plugipay_id",
        "payment__plugipay_id",
        "payment__customer__email",
        "idempotency_key",
    ]
    metadata_field = "payment__checkout_session__metadata"  # ``order:1042``: its refunds
    date_hierarchy = "created_at"
    actions = [resync]
    inlines = [ObjectDeliveryInline]
    readonly_fields = [
        "plugipay_id",
        "payment_link",
        "amount_display",
        "status_badge",
        "pending_age",
        "reason",
        "description",
        "failure_code",
        "failure_message",
        "requested_by_link",
        "idempotency_key",
        "mode",
        "created_at",
        "synced_at",
        "activity",
    ]
    fields = list(readonly_fields)

    @admin.display(description=_("payment"))
    def payment_link(self, obj):
        return admin_link(obj.payment)

    pending_age = pending_age


@admin.register(WebhookEvent)
class WebhookEventAdmin(MirrorAdmin):
    list_display = [
        "event_id",
        "kind",
        "status_badge",
        "attempts",
        "source",
        "object_id",
        "received_at",
    ]
    list_filter = ["status", "kind", "source", "mode"]
    search_fields = ["event_id", "object_id", "type"]
    date_hierarchy = "received_at"
    actions = [reprocess_events, dismiss_events]
    inlines = [EventDeliveryInline]
    readonly_fields = [
        "event_id",
        "type",
        "kind",
        "status_badge",
        "attempts",
        "last_error",
        "source",
        "mode",
        "object_id",
        "occurred_at",
        "received_at",
        "processed_at",
        "payload_pretty",
    ]
    fields = list(readonly_fields)

    def has_reprocess_permission(self, request) -> bool:
        return permissions.can_reprocess_events(request.user)

    @admin.display(description=_("payload"))
    def payload_pretty(self, obj):
        return pretty_json(obj.payload)


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    """The accounts the project serves: made from the settings and by provisioning."""

    list_display = ["alias", "name", "plugipay_id", "mode", "platform"]
    list_filter = ["mode", "platform"]
    search_fields = ["alias", "name", "plugipay_id"]
    fields = ("alias", "name", "plugipay_id", "mode", "platform", "created_at", "updated_at")
    readonly_fields = fields

    def get_urls(self):
        choose = self.admin_site.admin_view(databases.choose)
        return [path("database/", choose, name="django_plugipay_database"), *super().get_urls()]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
