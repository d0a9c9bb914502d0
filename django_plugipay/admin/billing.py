"""Admin for recurring billing: the plan catalog, subscriptions and invoices, read-only mirrors
whose operations (cancel, pause, resume, void, email) sit behind confirmation pages."""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from django_plugipay import permissions, services
from django_plugipay.admin.actions import confirm_then, resync
from django_plugipay.admin.deliveries import ObjectDeliveryInline
from django_plugipay.admin.display import (
    MirrorAdmin,
    MirrorDisplay,
    admin_link,
    badge,
    money,
    staff_words,
    url_display,
)
from django_plugipay.admin.money import ReceiptInline
from django_plugipay.exceptions import PlugipayError
from django_plugipay.models import Invoice, Plan, Price, Subscription


class PriceInline(MirrorDisplay, admin.TabularInline):
    model = Price
    extra = 0
    can_delete = False
    readonly_fields = ["plugipay_id", "unit_amount_display", "model", "tax_mode", "active"]
    fields = list(readonly_fields)
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description=_("unit amount"))
    def unit_amount_display(self, obj):
        return money(obj.unit_amount, obj.currency)


class InvoiceInline(MirrorDisplay, admin.TabularInline):
    model = Invoice
    extra = 0
    can_delete = False
    readonly_fields = ["number", "status_badge", "total_display", "due_at", "paid_at"]
    fields = list(readonly_fields)
    show_change_link = True
    ordering = ["-created_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description=_("total"))
    def total_display(self, obj):
        return money(obj.total, obj.currency)


@admin.action(description=_("Sync the plan catalog from Plugipay"), permissions=["view"])
def sync_catalog(modeladmin, request, queryset):
    """Fetches every plan and price; the selection only starts the action."""
    try:
        count = len(services.sync_plans())
    except PlugipayError as exc:
        modeladmin.message_user(request, staff_words(exc), messages.ERROR)
        return
    message = ngettext("%(count)d plan synced.", "%(count)d plans synced.", count)
    modeladmin.message_user(request, message % {"count": count}, messages.SUCCESS)


class CatalogAdmin(MirrorAdmin):
    """Plans and prices: the sync action runs even with nothing selected."""

    actions = [sync_catalog]

    def changelist_view(self, request, extra_context=None):
        if request.method == "POST" and request.POST.get("action") == "sync_catalog":
            # Django only runs an action on a selection; this one ignores it.
            post = request.POST.copy()
            post.setlist(admin.helpers.ACTION_CHECKBOX_NAME, ["0"])
            post["select_across"] = "1"
            request.POST = post
        return super().changelist_view(request, extra_context)


@admin.register(Plan)
class PlanAdmin(CatalogAdmin):
    list_display = ["name", "plugipay_id", "interval_display", "trial_days", "active", "mode"]
    list_filter = ["active", "interval", "mode"]
    search_fields = ["plugipay_id", "name"]
    inlines = [PriceInline]
    readonly_fields = [
        "plugipay_id",
        "name",
        "description",
        "interval",
        "interval_count",
        "trial_days",
        "active",
        "portal_features",
        "metadata",
        "mode",
        "created_at",
        "synced_at",
        "data_pretty",
    ]
    fields = list(readonly_fields)

    @admin.display(description=_("every"), ordering="interval")
    def interval_display(self, obj):
        return f"{obj.interval_count} {str(obj.get_interval_display()).lower()}"


@admin.register(Price)
class PriceAdmin(CatalogAdmin):
    list_display = ["plugipay_id", "plan_link", "unit_amount_display", "model", "active", "mode"]
    list_filter = ["active", "currency", "model", "mode"]
    list_select_related = ["plan"]
    search_fields = ["plugipay_id", "plan__name", "plan__plugipay_id"]
    readonly_fields = [
        "plugipay_id",
        "plan_link",
        "currency",
        "model",
        "unit_amount_display",
        "tiers",
        "tax_mode",
        "active",
        "mode",
        "created_at",
        "synced_at",
        "data_pretty",
    ]
    fields = list(readonly_fields)

    @admin.display(description=_("plan"))
    def plan_link(self, obj):
        return admin_link(obj.plan)

    @admin.display(description=_("unit amount"), ordering="unit_amount")
    def unit_amount_display(self, obj):
        return money(obj.unit_amount, obj.currency)


def _subscription_action(name, description, title, question, perform, done):
    @admin.action(description=description, permissions=["manage"])
    def action(modeladmin, request, queryset):
        return confirm_then(
            modeladmin,
            request,
            queryset,
            action=name,
            title=title,
            question=question,
            perform=perform,
            done=done,
        )

    action.__name__ = name
    return action


cancel_at_period_end = _subscription_action(
    "cancel_at_period_end",
    _("Cancel selected subscriptions at period end…"),
    _("Cancel at period end"),
    _(
        "Cancel these subscriptions when their current period ends? Customers keep access "
        "until then and are not billed again."
    ),
    lambda s: services.cancel_subscription(subscription=s, at="period_end", reason="merchant"),
    lambda n: (
        ngettext(
            "%(count)d subscription will cancel at period end.",
            "%(count)d subscriptions will cancel at period end.",
            n,
        )
        % {"count": n}
    ),
)
cancel_now = _subscription_action(
    "cancel_now",
    _("Cancel selected subscriptions now…"),
    _("Cancel now"),
    _("Cancel these subscriptions immediately? Customers lose access at once."),
    lambda s: services.cancel_subscription(subscription=s, at="now", reason="merchant"),
    lambda n: (
        ngettext("%(count)d subscription canceled.", "%(count)d subscriptions canceled.", n)
        % {"count": n}
    ),
)
pause = _subscription_action(
    "pause_subscriptions",
    _("Pause selected subscriptions…"),
    _("Pause subscriptions"),
    _("Pause these subscriptions? No invoices are issued while paused."),
    lambda s: services.pause_subscription(subscription=s),
    lambda n: (
        ngettext("%(count)d subscription paused.", "%(count)d subscriptions paused.", n)
        % {"count": n}
    ),
)
resume = _subscription_action(
    "resume_subscriptions",
    _("Resume selected subscriptions…"),
    _("Resume subscriptions"),
    _("Resume these subscriptions? Billing starts again."),
    lambda s: services.resume_subscription(subscription=s),
    lambda n: (
        ngettext("%(count)d subscription resumed.", "%(count)d subscriptions resumed.", n)
        % {"count": n}
    ),
)


@admin.register(Subscription)
class SubscriptionAdmin(MirrorAdmin):
    list_display = [
        "plugipay_id",
        "status_badge",
        "plan_link",
        "price_display",
        "customer_link",
        "owner_link",
        "period_display",
        "trial_end",
        "cancel_at",
    ]
    list_filter = ["status", "collection_method", "mode", "plan"]
    list_select_related = ["customer__user", "plan", "price"]
    search_fields = ["plugipay_id", "customer__email", "customer__plugipay_id", "plan__name"]
    date_hierarchy = "created_at"
    actions = [cancel_at_period_end, cancel_now, pause, resume, resync]
    inlines = [InvoiceInline, ObjectDeliveryInline]
    readonly_fields = [
        "plugipay_id",
        "status_badge",
        "plan_link",
        "price_display",
        "customer_link",
        "owner_link",
        "collection_method",
        "current_period_start",
        "current_period_end",
        "trial_end",
        "cancel_at",
        "canceled_at",
        "canceled_reason",
        "paused_at",
        "resume_at",
        "metadata",
        "mode",
        "created_at",
        "synced_at",
        "data_pretty",
    ]
    fields = list(readonly_fields)

    def has_manage_permission(self, request) -> bool:
        return permissions.can_manage_subscriptions(request.user)

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj):
        label = str(obj.get_status_display()).lower()
        if obj.status != "canceled" and obj.cancel_at:
            return badge(obj.status, _("%(status)s, cancels") % {"status": label})
        return badge(obj.status, label)

    @admin.display(description=_("plan"))
    def plan_link(self, obj):
        return admin_link(obj.plan)

    @admin.display(description=_("price"))
    def price_display(self, obj):
        if obj.price is None:
            return "—"
        return money(obj.price.unit_amount, obj.price.currency)

    @admin.display(description=_("owner"))
    def owner_link(self, obj):
        return admin_link(obj.customer.user if obj.customer else None)

    @admin.display(description=_("current period"), ordering="current_period_end")
    def period_display(self, obj):
        if not obj.current_period_start or not obj.current_period_end:
            return "—"
        return format_html(
            "{} – {}",
            obj.current_period_start.date().isoformat(),
            obj.current_period_end.date().isoformat(),
        )


@admin.action(description=_("Void selected invoices…"), permissions=["manage"])
def void_invoices(modeladmin, request, queryset):
    return confirm_then(
        modeladmin,
        request,
        queryset.exclude(status__in=["paid", "void"]),
        action="void_invoices",
        title=_("Void invoices"),
        question=_("Void these invoices? They can no longer be paid; this cannot be undone."),
        perform=lambda i: services.void_invoice(invoice=i),
        done=lambda n: (
            ngettext("%(count)d invoice voided.", "%(count)d invoices voided.", n) % {"count": n}
        ),
    )


@admin.action(description=_("Email selected invoices to their customers…"), permissions=["manage"])
def email_invoices(modeladmin, request, queryset):
    return confirm_then(
        modeladmin,
        request,
        queryset,
        action="email_invoices",
        title=_("Email invoices"),
        question=_("Have Plugipay email these invoices to their customers?"),
        perform=lambda i: services.email_invoice(invoice=i),
        done=lambda n: (
            ngettext("%(count)d invoice emailed.", "%(count)d invoices emailed.", n) % {"count": n}
        ),
    )


@admin.register(Invoice)
class InvoiceAdmin(MirrorAdmin):
    list_display = [
        "number_display",
        "status_badge",
        "total_display",
        "amount_due_display",
        "amount_paid_display",
        "customer_link",
        "subscription_link",
        "due_at",
        "paid_at",
        "document_link",
    ]
    inlines = [ReceiptInline, ObjectDeliveryInline]
    list_filter = ["status", "currency", "mode", "created_at"]
    list_select_related = ["customer", "subscription"]
    search_fields = ["plugipay_id", "number", "customer__email", "subscription__plugipay_id"]
    date_hierarchy = "created_at"
    actions = [void_invoices, email_invoices, resync]
    readonly_fields = [
        "plugipay_id",
        "number",
        "status_badge",
        "customer_link",
        "subscription_link",
        "subtotal_display",
        "discount_display",
        "tax_display",
        "total_display",
        "amount_due_display",
        "amount_paid_display",
        "collection_attempts",
        "issued_at",
        "due_at",
        "paid_at",
        "voided_at",
        "hosted_url_link",
        "document_link",
        "payments_links",
        "metadata",
        "mode",
        "created_at",
        "synced_at",
        "data_pretty",
    ]
    fields = list(readonly_fields)

    hosted_url_link = url_display(Invoice, "hosted_url")

    def has_manage_permission(self, request) -> bool:
        return permissions.can_manage_invoices(request.user)

    @admin.display(description=_("number"), ordering="number")
    def number_display(self, obj):
        return obj.number or obj.plugipay_id

    @admin.display(description=_("subscription"))
    def subscription_link(self, obj):
        return admin_link(obj.subscription, obj.subscription and obj.subscription.plugipay_id)

    @admin.display(description=_("document"))
    def document_link(self, obj):
        try:
            url = reverse("plugipay:invoice_document", args=[obj.plugipay_id])
        except NoReverseMatch:  # the project has not included django_plugipay.urls
            return "—"
        return format_html('<a href="{}" target="_blank">{}</a>', url, _("View"))

    @admin.display(description=_("payments"))
    def payments_links(self, obj):
        links = [admin_link(p, f"{p.plugipay_id} ({p.status})") for p in obj.payments.all()]
        return format_html(", ".join(["{}"] * len(links)), *links) if links else "—"

    @admin.display(description=_("subtotal"))
    def subtotal_display(self, obj):
        return money(obj.subtotal, obj.currency)

    @admin.display(description=_("discount"))
    def discount_display(self, obj):
        return money(obj.discount, obj.currency)

    @admin.display(description=_("tax"))
    def tax_display(self, obj):
        return money(obj.tax, obj.currency)

    @admin.display(description=_("total"), ordering="total")
    def total_display(self, obj):
        return money(obj.total, obj.currency)

    @admin.display(description=_("amount due"), ordering="amount_due")
    def amount_due_display(self, obj):
        return money(obj.amount_due, obj.currency)

    @admin.display(description=_("amount paid"), ordering="amount_paid")
    def amount_paid_display(self, obj):
        return money(obj.amount_paid, obj.currency)
