"""Admin actions behind a confirmation page: re-sync, cancel sessions, reprocess or dismiss
events."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from django_plugipay import services
from django_plugipay.admin.display import staff_words
from django_plugipay.exceptions import PlugipayError


def confirm_then(
    modeladmin,
    request,
    queryset,
    *,
    action: str,
    title: str,
    question: str,
    perform: Callable,
    done: Callable[[int], str],
):
    """Show a confirmation page (the shape of ``delete_selected``); on "Yes", run ``perform``
    on each object and report counts (``done(count)`` is the message). ``perform`` may raise
    PlugipayError for one object."""
    if request.POST.get("post") == "yes":
        ok, failed = 0, []
        # named with its kind first: the admin capitalises a message's first letter, which
        # would change an id such as evt_… that staff copy
        kind = modeladmin.model._meta.verbose_name
        for obj in queryset:
            try:
                perform(obj)
                modeladmin.log_change(request, obj, title)
                ok += 1
            except PlugipayError as exc:
                failed.append(f"{kind} {obj}: {staff_words(exc)}")
            except Exception as exc:  # a failing event handler: shown, not a crash
                failed.append(f"{kind} {obj}: {exc}")
        if ok:
            modeladmin.message_user(request, done(ok), messages.SUCCESS)
        for line in failed:
            modeladmin.message_user(request, line, messages.ERROR)
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "question": question,
        "objects": list(queryset),
        "action": action,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "opts": modeladmin.model._meta,
        "queryset": queryset,
    }
    return TemplateResponse(request, "admin/django_plugipay/confirm_action.html", context)


def _sync(obj) -> None:
    services.sync_object(obj)


@admin.action(description=gettext_lazy("Re-sync selected from Plugipay…"), permissions=["view"])
def resync(modeladmin, request, queryset):
    return confirm_resync(modeladmin, request, queryset)


def confirm_resync(modeladmin, request, queryset, perform: Callable = _sync):
    """The "Re-sync" confirmation page and its run, each object synced by ``perform``."""
    return confirm_then(
        modeladmin,
        request,
        queryset,
        action="resync",
        title=_("Re-sync from Plugipay"),
        question=_(
            "Fetch these objects from Plugipay and apply any change (signals fire for "
            "changes not seen before)?"
        ),
        perform=perform,
        done=lambda n: (
            ngettext("%(count)d object re-synced.", "%(count)d objects re-synced.", n)
            % {"count": n}
        ),
    )


@admin.action(description=gettext_lazy("Cancel selected open sessions…"), permissions=["cancel"])
def cancel_sessions(modeladmin, request, queryset):
    open_sessions = queryset.open()
    skipped = queryset.count() - open_sessions.count()
    if skipped and request.POST.get("post") != "yes":
        modeladmin.message_user(
            request,
            ngettext(
                "%(count)d session is not open and will be skipped.",
                "%(count)d sessions are not open and will be skipped.",
                skipped,
            )
            % {"count": skipped},
            messages.WARNING,
        )
    return confirm_then(
        modeladmin,
        request,
        open_sessions,
        action="cancel_sessions",
        title=_("Cancel checkout sessions"),
        question=_("Cancel these sessions at Plugipay? Buyers can no longer pay them."),
        perform=lambda s: services.cancel_checkout_session(session=s),
        done=lambda n: (
            ngettext("%(count)d session canceled.", "%(count)d sessions canceled.", n)
            % {"count": n}
        ),
    )


@admin.action(
    description=gettext_lazy("Reprocess selected failed events…"), permissions=["reprocess"]
)
def reprocess_events(modeladmin, request, queryset):
    return confirm_then(
        modeladmin,
        request,
        queryset.unprocessed(),
        action="reprocess_events",
        title=_("Reprocess webhook events"),
        question=_("Apply these events again? Each change still fires its signal only once."),
        perform=lambda e: services.apply_event(event=e),
        done=lambda n: (
            ngettext("%(count)d event reprocessed.", "%(count)d events reprocessed.", n)
            % {"count": n}
        ),
    )


def _dismiss(event) -> None:
    if not services.dismiss_events(events=[event]):  # a retry applied it after the page showed
        raise PlugipayError(_("It is no longer failed, so it was left as it is."))


@admin.action(
    description=gettext_lazy("Dismiss selected failed events…"), permissions=["reprocess"]
)
def dismiss_events(modeladmin, request, queryset):
    return confirm_then(
        modeladmin,
        request,
        queryset.failed(),
        action="dismiss_events",
        title=_("Dismiss failed webhook events"),
        question=_(
            "Dismiss these failed events? They are marked ignored: never applied or replayed, "
            "and no longer reported by plugipay_doctor. Their error stays on each event."
        ),
        perform=_dismiss,
        done=lambda n: (
            ngettext("%(count)d event dismissed.", "%(count)d events dismissed.", n) % {"count": n}
        ),
    )
