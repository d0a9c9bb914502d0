"""The staff confirmation of a manual transfer: a page with amount, buyer, claim and proof."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from django_plugipay import datetimes, permissions, services
from django_plugipay.admin.display import staff_words
from django_plugipay.exceptions import PlugipayError
from django_plugipay.models import CheckoutSession, SessionStatus
from django_plugipay.money import format_amount


def refusal(session: CheckoutSession) -> str | None:
    """Why a session cannot be confirmed, or None."""
    if session.status != SessionStatus.PENDING_REVIEW:
        return _("session is %(status)s, not waiting for review") % {
            "status": session.get_status_display().lower()
        }
    return None


def confirm_view(modeladmin, request, queryset, *, single: bool):
    """Show the sessions to confirm; on "Yes", confirm each at Plugipay (outside any
    transaction) and log who did it. Used by the action and the button on a session."""
    if not permissions.can_confirm(request.user):
        raise PermissionDenied
    rows = []
    for session in queryset.select_related("customer"):
        instructions = session.instructions
        rows.append(
            {
                "session": session,
                "amount": format_amount(session.amount, session.currency),
                "buyer": session.customer or "—",
                "claimed_at": instructions.claimed_at if instructions else None,
                "proof_url": instructions.proof_url if instructions else "",
                "refused": refusal(session),
            }
        )
    confirmable = [r for r in rows if not r["refused"]]
    # A resubmitted page (a double click, the back button after an error) finds its sessions
    # confirmed already: it reports that first outcome; Plugipay's key is the session's anyway.
    confirmed = [r for r in rows if r["session"].confirmed_at is not None]
    if request.POST.get("post") == "yes" and (confirmable or confirmed):
        return _perform(modeladmin, request, confirmable, rows)
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": _("Confirm transfer received"),
        "rows": rows,
        "confirmable": confirmable,
        "single": single,
        "opts": CheckoutSession._meta,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "queryset": queryset,
    }
    return TemplateResponse(
        request, "admin/django_plugipay/checkoutsession/confirm_transfer.html", context
    )


def _perform(modeladmin, request, confirmable, rows):
    confirmed, errors = 0, []
    for row in confirmable:
        session = row["session"]
        try:
            services.confirm_checkout_session(session=session, confirmed_by=request.user)
        except PlugipayError as exc:
            errors.append(f"{session}: {staff_words(exc)}")
            continue
        modeladmin.log_change(
            request,
            session,
            _("Confirmed the manual transfer of %(amount)s") % {"amount": row["amount"]},
        )
        confirmed += 1
    if confirmed:
        modeladmin.message_user(
            request,
            ngettext(
                "Confirmed %(count)d transfer; the payment is recorded as received.",
                "Confirmed %(count)d transfers; the payments are recorded as received.",
                confirmed,
            )
            % {"count": confirmed},
            messages.SUCCESS,
        )
    for row in rows:
        session = row["session"]
        if row["refused"] and session.confirmed_at is not None:
            modeladmin.message_user(
                request,
                _(
                    "The transfer of %(amount)s on %(session)s was already confirmed "
                    "(%(when)s); nothing was sent again."
                )
                % {
                    "amount": row["amount"],
                    "session": session,
                    "when": date_format(datetimes.local(session.confirmed_at), "DATETIME_FORMAT"),
                },
                messages.INFO,
            )
    skipped = [r for r in rows if r["refused"] and r["session"].confirmed_at is None]
    if skipped:
        modeladmin.message_user(
            request,
            ngettext(
                "Skipped %(count)d session: %(why)s.",
                "Skipped %(count)d sessions: %(why)s.",
                len(skipped),
            )
            % {
                "count": len(skipped),
                "why": "; ".join(f"{r['session']} ({r['refused']})" for r in skipped),
            },
            messages.WARNING,
        )
    for line in errors:
        modeladmin.message_user(request, line, messages.ERROR)
    return None
