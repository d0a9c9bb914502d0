"""The staff refund flow: a confirmation page with amount, reason and description."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import BLANK_CHOICE_DASH
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from django_plugipay import permissions, services
from django_plugipay.admin import tokens
from django_plugipay.admin.display import staff_words
from django_plugipay.exceptions import RefundError
from django_plugipay.models import Payment, PaymentStatus, Refund, RefundReason, RefundStatus
from django_plugipay.money import format_amount, input_value, to_minor
from django_plugipay.services.refunds import NOT_SUBMITTED, refund_refusal


class RefundForm(forms.Form):
    amount = forms.CharField(
        label=gettext_lazy("Amount"),
        required=False,
        help_text=gettext_lazy("In the currency's usual unit, e.g. 250000 for IDR 250,000."),
    )
    # A blank first choice: staff pick the reason, nothing is preselected for them.
    reason = forms.ChoiceField(
        label=gettext_lazy("Reason"), choices=[*BLANK_CHOICE_DASH, *RefundReason.choices]
    )
    description = forms.CharField(
        label=gettext_lazy("Description"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    )

    def __init__(self, *args, payment: Payment | None = None, remaining: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.payment, self.remaining = payment, remaining
        if payment is None:
            del self.fields["amount"]  # several payments: each is refunded in full
        else:  # pre-filled with what remains; emptied, it is an error, not "all of it"
            self.fields["amount"].required = True

    def clean_amount(self) -> int | None:
        raw = self.cleaned_data.get("amount", "").strip()
        if self.payment is None:
            return None
        if not raw:
            raise forms.ValidationError(self.fields["amount"].error_messages["required"])
        try:
            return to_minor(raw, self.payment.currency)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self):
        data = super().clean()
        # The request and the payment are checked apart so that both errors show at once.
        # Several payments (no amount field): each row is checked on its own by ``refusal``.
        problems = []
        if "reason" in data:
            problems.append(
                refund_refusal(reason=data["reason"], description=data.get("description", ""))
            )
        if self.payment is not None and "amount" not in self.errors:
            problems.append(
                refund_refusal(
                    payment=self.payment, amount=data.get("amount"), remaining=self.remaining
                )
            )
        for refused in problems:
            if refused is not None:
                self.add_error(refused.field, refused.message)
        return data


def refusal(payment: Payment, remaining: int) -> str | None:
    """Why a payment cannot be refunded at all, or None."""
    refused = refund_refusal(payment=payment, remaining=remaining)
    return refused.message if refused is not None else None


def refund_view(modeladmin, request, queryset, *, single: bool):
    """Confirm, validate and request refunds; used by the action and the Refund button."""
    if not permissions.can_refund(request.user):
        raise PermissionDenied
    rows = []
    for payment in queryset.select_related("customer", "checkout_session").with_refund_totals():
        pending = payment.amount_in_flight
        remaining = payment.remaining_to_refund()
        rows.append(
            {
                "payment": payment,
                "pending": pending,
                "remaining": remaining,
                "refused": refusal(payment, remaining),
                "amount": format_amount(payment.amount, payment.currency),
                "refunded": format_amount(payment.amount_refunded, payment.currency),
                "pending_display": format_amount(pending, payment.currency),
                "remaining_display": (  # as the list shows it: nothing to refund unless paid
                    format_amount(max(remaining, 0), payment.currency)
                    if payment.status == PaymentStatus.SUCCEEDED
                    else "—"
                ),
            }
        )
    token = tokens.posted(request) if request.method == "POST" else tokens.issue()
    if request.POST.get("post") == "yes" and tokens.was_posted(request):
        # This page submitted again (a double click, the back button): the refunds it made
        # are its first outcome, said as such before the remainder they used is checked.
        rows = _without_replays(modeladmin, request, rows, token)
        if not rows:
            return None
    refundable = [r for r in rows if not r["refused"]]
    # One payment, from its Refund button or as the action's only selection: offer the amount.
    only = rows[0] if len(rows) == 1 else None
    offered_payment = only["payment"] if only else None
    offered_remaining = only["remaining"] if only else 0
    if request.POST.get("post") == "yes":
        form = RefundForm(request.POST, payment=offered_payment, remaining=offered_remaining)
        if form.is_valid() and refundable:
            return _perform(modeladmin, request, refundable, form.cleaned_data, rows, token)
    else:
        initial = {}
        if only and not only["refused"]:
            initial["amount"] = input_value(only["remaining"], only["payment"].currency)
        form = RefundForm(initial=initial, payment=offered_payment, remaining=offered_remaining)
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": _("Refund payment") if single else _("Refund selected payments"),
        "rows": rows,
        "refundable": refundable,
        "form": form,
        "single": single,
        "partial": only is not None,
        "opts": Payment._meta,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "queryset": queryset,
        "token_field": tokens.FIELD,
        "token": token,
    }
    return TemplateResponse(
        request, "admin/django_plugipay/payment/refund_confirmation.html", context
    )


def _without_replays(modeladmin, request, rows, token):
    """``rows`` but the payments this page's token refunded already, each said as requested
    before."""
    keys = {tokens.refund_key(token, row["payment"].pk): row for row in rows}
    made = Refund.objects.filter(
        payment__in=[row["payment"] for row in rows], idempotency_key__in=list(keys)
    )
    done = set()
    for refund in made:
        row = keys[refund.idempotency_key]
        _already_requested(modeladmin, request, refund, row["payment"])
        done.add(row["payment"].pk)
    return [row for row in rows if row["payment"].pk not in done]


def _already_requested(modeladmin, request, refund, payment) -> None:
    modeladmin.message_user(
        request,
        _(
            "The refund of %(amount)s on %(payment)s was already requested from this "
            "page (now %(status)s); nothing was sent again."
        )
        % {
            "amount": format_amount(refund.amount, refund.currency),
            "payment": payment,
            "status": refund.get_status_display().lower(),
        },
        messages.INFO,
    )


def _perform(modeladmin, request, refundable, data, rows, token):
    requested, errors, waiting = 0, [], []
    for row in refundable:
        payment = row["payment"]
        try:
            refund = services.refund_payment(
                payment=payment,
                amount=data.get("amount"),
                reason=data["reason"],
                description=data.get("description", ""),
                requested_by=request.user,
                idempotency_key=tokens.refund_key(token, payment.pk),
            )
        except RefundError as exc:
            errors.append(
                _("Payment %(payment)s: %(error)s")
                % {"payment": payment, "error": staff_words(exc)}
            )
            continue
        if refund.replayed:  # this page was submitted before: its first outcome, sent once
            _already_requested(modeladmin, request, refund, payment)
            continue
        modeladmin.log_change(
            request,
            payment,
            _("Requested a refund of %(amount)s (%(reason)s)")
            % {
                "amount": format_amount(refund.amount, refund.currency),
                "reason": refund.get_reason_display(),
            },
        )
        refund.refresh_from_db()
        if refund.status == RefundStatus.FAILED:  # Plugipay refused it in this request
            errors.append(
                _(
                    "Plugipay refused the refund of %(amount)s on payment %(payment)s "
                    "(%(code)s); the refund's page shows Plugipay's reason."
                )
                % {
                    "amount": format_amount(refund.amount, refund.currency),
                    "payment": payment,
                    "code": refund.failure_code or "?",
                }
            )
            continue
        requested += 1
        if refund.failure_code == NOT_SUBMITTED:
            waiting.append(refund)
    sent = requested - len(waiting)
    if sent:
        modeladmin.message_user(
            request,
            ngettext(
                "Requested %(count)d refund; it is on its way to Plugipay.",
                "Requested %(count)d refunds; they are on their way to Plugipay.",
                sent,
            )
            % {"count": sent},
            messages.SUCCESS,
        )
    for refund in waiting:
        modeladmin.message_user(
            request,
            # in the clerk's language (the note stored on the refund, with the error, is in
            # the project's: the refund's page shows it)
            _(
                "Refund of %(amount)s on %(payment)s: Not sent to Plugipay yet; it stays "
                "requested and the sweeper (or manage.py plugipay_sync) sends it with the same "
                "idempotency key. The refund's page says why."
            )
            % {
                "amount": format_amount(refund.amount, refund.currency),
                "payment": refund.payment,
            },
            messages.WARNING,
        )
    skipped = [r for r in rows if r["refused"]]
    if skipped:
        modeladmin.message_user(
            request,
            ngettext(
                "Skipped %(count)d payment: %(why)s.",
                "Skipped %(count)d payments: %(why)s.",
                len(skipped),
            )
            % {
                "count": len(skipped),
                "why": "; ".join(f"{r['payment']} ({r['refused'].rstrip('.')})" for r in skipped),
            },
            messages.WARNING,
        )
    for line in errors:
        modeladmin.message_user(request, line, messages.ERROR)
    return None
