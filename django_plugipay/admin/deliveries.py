"""Admin for durable receivers' deliveries: status, error and traceback; run again, resolve."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.options import InlineModelAdmin
from django.contrib.contenttypes.admin import GenericTabularInline
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from django_plugipay import permissions, services
from django_plugipay.admin.actions import confirm_then
from django_plugipay.admin.display import MirrorAdmin, MirrorDisplay, admin_link
from django_plugipay.models import Delivery, DeliveryStatus


class DeliveryDisplay:
    """Columns the changelist and the inlines show the same way."""

    @admin.display(description=gettext_lazy("object"))
    def object_link(self, obj):
        instance = obj.instance
        if instance is None:
            return f"{obj.content_type} #{obj.object_id}"
        return admin_link(instance)

    @admin.display(description=gettext_lazy("event"))
    def event_link(self, obj):
        return admin_link(obj.event)

    @admin.display(description=gettext_lazy("last error"))
    def error_short(self, obj):
        return obj.last_error[:120] or "—"

    @admin.display(description=gettext_lazy("traceback"))
    def traceback_pre(self, obj):
        if not obj.last_traceback:
            return "—"
        return format_html(
            '<pre style="white-space:pre-wrap;max-width:80em">{}</pre>', obj.last_traceback
        )


class ReadOnlyInline(DeliveryDisplay, MirrorDisplay, InlineModelAdmin):
    model = Delivery
    extra = 0
    can_delete = False
    show_change_link = True
    readonly_fields = [
        "receiver",
        "signal",
        "status_badge",
        "attempts",
        "next_attempt_at",
        "error_short",
        "created_at",
    ]
    fields = list(readonly_fields)
    verbose_name_plural = gettext_lazy("deliveries of durable receivers")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class EventDeliveryInline(ReadOnlyInline, admin.TabularInline):
    """On an event's page: the deliveries the changes it brought recorded."""

    fk_name = "event"


class ObjectDeliveryInline(ReadOnlyInline, GenericTabularInline):
    """On a mirrored object's page: the deliveries of its transitions."""

    ct_field = "content_type"
    ct_fk_field = "object_id"


def _open(queryset):
    """Succeeded and resolved deliveries are never run again, so no action touches them."""
    return queryset.exclude(status__in=DeliveryStatus.finished_states())


@admin.action(description=gettext_lazy("Run again now…"), permissions=["manage"])
def run_again(modeladmin, request, queryset):
    return confirm_then(
        modeladmin,
        request,
        _open(queryset),
        action="run_again",
        title=_("Run deliveries again"),
        question=_(
            "Run these deliveries' receivers now, whatever their backoff? Dead ones get one "
            "more attempt; succeeded and resolved ones are never run again."
        ),
        perform=lambda d: services.retry_deliveries(deliveries=[d]),
        done=lambda n: (
            ngettext(
                "%(count)d delivery run; its status shows the outcome.",
                "%(count)d deliveries run; their status shows the outcome.",
                n,
            )
            % {"count": n}
        ),
    )


@admin.action(description=gettext_lazy("Mark as resolved…"), permissions=["manage"])
def mark_resolved(modeladmin, request, queryset):
    return confirm_then(
        modeladmin,
        request,
        _open(queryset),
        action="mark_resolved",
        title=_("Mark deliveries as resolved"),
        question=_(
            "Mark these deliveries as resolved (you did what they were for by hand)? They are "
            "never run again."
        ),
        perform=lambda d: services.resolve_deliveries(deliveries=[d]),
        done=lambda n: (
            ngettext(
                "%(count)d delivery marked as resolved.",
                "%(count)d deliveries marked as resolved.",
                n,
            )
            % {"count": n}
        ),
    )


@admin.register(Delivery)
class DeliveryAdmin(DeliveryDisplay, MirrorAdmin):
    """Read-only like the mirrors: only the receivers' runs and the two actions change rows."""

    list_display = [
        "receiver",
        "signal",
        "status_badge",
        "object_link",
        "attempts",
        "next_attempt_at",
        "error_short",
        "created_at",
    ]
    list_filter = ["status", "signal", "receiver", "created_at"]
    list_select_related = ["content_type", "event"]
    search_fields = ["receiver", "key", "event__event_id", "last_error"]
    date_hierarchy = "created_at"
    actions = [run_again, mark_resolved]
    readonly_fields = [
        "receiver",
        "signal",
        "status_badge",
        "object_link",
        "event_link",
        "key",
        "attempts",
        "next_attempt_at",
        "leased_until",
        "last_error",
        "traceback_pre",
        "created_at",
        "updated_at",
        "succeeded_at",
        "resolved_at",
    ]
    fields = list(readonly_fields)

    def has_manage_permission(self, request) -> bool:
        return permissions.can_manage_deliveries(request.user)
