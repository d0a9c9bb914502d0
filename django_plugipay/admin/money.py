"""Money out in the admin: payouts with the balance and the "New payout" flow, the manual
transitions, the read-only ledger with its CSV export, and receipts."""

from __future__ import annotations

import csv
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ERROR_FLAG
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html_join
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from django_plugipay import accounts, permissions, services
from django_plugipay.admin import databases, tokens
from django_plugipay.admin.actions import confirm_resync, confirm_then
from django_plugipay.admin.display import (
    MirrorAdmin,
    MirrorDisplay,
    admin_link,
    method_display,
    method_filter,
    money,
    staff_words,
)
from django_plugipay.exceptions import PlugipayError
from django_plugipay.models import (
    Account,
    CheckoutSession,
    Invoice,
    LedgerEntry,
    Payout,
    PayoutStatus,
    Receipt,
)
from django_plugipay.money import format_amount, to_minor
from django_plugipay.services.payouts import move_refusal, payout_refusal

# ── payouts ────────────────────────────────────────────────────────────────────


class NewPayoutForm(forms.Form):
    amount = forms.CharField(
        label=gettext_lazy("Amount"),
        help_text=gettext_lazy("In rupiah, at most the available balance."),
    )
    note = forms.CharField(
        label=gettext_lazy("Note"),
        required=False,
        max_length=500,
        widget=forms.TextInput(attrs={"size": 50}),
    )

    def __init__(
        self,
        *args,
        available: int | None = None,
        currency: str = "IDR",
        destination: bool = True,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.available, self.currency, self.destination = available, currency, destination

    def clean(self):
        if not self.destination:
            raise forms.ValidationError(
                _("No bank account is saved at Plugipay: add one in the Plugipay dashboard first.")
            )
        return super().clean()

    def clean_amount(self) -> int:
        try:
            amount = to_minor(self.cleaned_data.get("amount", "").strip(), self.currency)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        refused = payout_refusal(amount=amount, currency=self.currency, available=self.available)
        if refused is not None:
            raise forms.ValidationError(refused.message)
        return amount


class MarkForm(forms.Form):
    """The bank's reference (a payout's ``reference``: 255 characters) or why it failed (500,
    as the API takes them)."""

    text = forms.CharField(required=False, max_length=500)

    def __init__(self, *args: Any, limit: int = 500, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["text"] = forms.CharField(required=False, max_length=limit)


#: action name → (status reached, title, the text input's label, whether it is required)
MARKS = {
    "mark_in_transit": (
        PayoutStatus.IN_TRANSIT,
        gettext_lazy("Mark payouts in transit"),
        gettext_lazy("Bank reference"),
        False,
    ),
    "mark_paid": (
        PayoutStatus.PAID,
        gettext_lazy("Mark payouts paid"),
        gettext_lazy("Bank reference"),
        False,
    ),
    "mark_failed": (
        PayoutStatus.FAILED,
        gettext_lazy("Mark payouts failed"),
        gettext_lazy("Why it failed"),
        True,
    ),
}


def _mark_view(modeladmin, request, queryset, action: str):
    """A confirmation page for one manual transition (with the bank's reference, or the
    failure reason); on "Yes", each payout is moved at Plugipay and the counts reported."""
    status, title, label, required = MARKS[action]
    form = MarkForm(
        request.POST if request.POST.get("post") == "yes" else None,
        limit=500 if action == "mark_failed" else 255,
    )
    form.fields["text"].label, form.fields["text"].required = label, required
    if form.is_bound and form.is_valid():
        text = form.cleaned_data["text"] or None
        done, failed = 0, []
        for payout in queryset:
            try:
                services.mark_payout(
                    payout=payout,
                    status=status,
                    reference=None if status == PayoutStatus.FAILED else text,
                    failure_reason=text if status == PayoutStatus.FAILED else None,
                )
            except PlugipayError as exc:
                failed.append(move_refusal(payout, status, exc))
                continue
            modeladmin.log_change(request, payout, str(title))
            done += 1
        if done:
            modeladmin.message_user(
                request,
                ngettext("%(count)d payout moved.", "%(count)d payouts moved.", done)
                % {"count": done},
                messages.SUCCESS,
            )
        for line in failed:
            modeladmin.message_user(request, line, messages.ERROR)
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "objects": [{"payout": p, "amount": format_amount(p.amount, p.currency)} for p in queryset],
        "form": form,
        "action": action,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "opts": Payout._meta,
    }
    return TemplateResponse(request, "admin/django_plugipay/payout/mark.html", context)


def _mark_action(action: str):
    def run(modeladmin, request, queryset):
        return _mark_view(modeladmin, request, queryset, action)

    run.__name__ = action
    return admin.action(description=format_lazy("{}…", MARKS[action][1]), permissions=["manage"])(
        run
    )


@admin.action(description=gettext_lazy("Cancel selected payouts…"), permissions=["manage"])
def cancel_payouts(modeladmin, request, queryset):
    return confirm_then(
        modeladmin,
        request,
        queryset.filter(status=PayoutStatus.PENDING),
        action="cancel_payouts",
        title=_("Cancel payouts"),
        question=_("Cancel these pending payouts? Their money returns to the available balance."),
        perform=lambda p: services.cancel_payout(payout=p),
        done=lambda n: (
            ngettext("%(count)d payout canceled.", "%(count)d payouts canceled.", n) % {"count": n}
        ),
    )


@admin.action(description=gettext_lazy("Re-sync selected from Plugipay…"), permissions=["view"])
def resync(modeladmin, request, queryset):
    """Fetch each payout from Plugipay. One Plugipay never acknowledged is settled (sent again
    within its idempotency window, see ``submit_payout``) only for staff who may manage
    payouts; for the others it is reported, not sent."""
    send = modeladmin.has_manage_permission(request)
    return confirm_resync(
        modeladmin, request, queryset, perform=lambda p: services.sync_payout(payout=p, send=send)
    )


@admin.register(Payout)
class PayoutAdmin(MirrorAdmin):
    list_display = [
        "__str__",
        "amount_display",
        "status_badge",
        "method",
        "destination",
        "reference",
        "created_at",
    ]
    list_filter = ["status", "method", "currency", "created_at"]
    search_fields = ["plugipay_id", "reference", "note"]
    date_hierarchy = "created_at"
    actions = [
        _mark_action("mark_in_transit"),
        _mark_action("mark_paid"),
        _mark_action("mark_failed"),
        cancel_payouts,
        resync,
    ]
    change_list_template = "admin/django_plugipay/payout/change_list.html"
    readonly_fields = [
        "plugipay_id",
        "amount_display",
        "status_badge",
        "method",
        "destination",
        "bank_code",
        "bank_account_holder",
        "note",
        "reference",
        "failure_reason",
        "failure_code",
        "processed_at",
        "completed_at",
        "idempotency_key",
        "submitted_at",
        "mode",
        "created_at",
        "synced_at",
    ]
    fields = list(readonly_fields)

    def has_manage_permission(self, request) -> bool:
        return permissions.can_manage_payouts(request.user)

    @admin.display(description=gettext_lazy("destination"))
    def destination(self, obj):
        return obj.masked_account or "—"

    def get_urls(self):
        view = self.admin_site.admin_view(self.new_payout)
        return [
            path("new/", view, name="django_plugipay_payout_new"),
            *super().get_urls(),
        ]

    def served_accounts(self) -> list[Account] | None:
        """The accounts a payout may be made for when the project serves several, else None
        (a single-account project never shows a choice)."""
        if not accounts.several():
            return None
        return list(Account.objects.order_by("pk"))

    @staticmethod
    def chosen_account(request, served: list[Account] | None, *names: str) -> Account | None:
        """The served account the request names (by pk, in the first of ``names`` given),
        else the account acting (one of the database the staff member chose), else the
        default account; None for a single-account project."""
        if not served:
            return None
        source = request.POST if request.method == "POST" else request.GET
        wanted = next((source.get(name) for name in names if source.get(name)), None)
        default_pk = accounts.current().pk
        by_pk = {str(account.pk): account for account in served}
        return by_pk.get(wanted or "") or by_pk.get(str(default_pk)) or served[0]

    def changelist_view(self, request, extra_context=None):
        extra = {**(extra_context or {}), "can_manage": self.has_manage_permission(request)}
        # the balance of the account the list is filtered by, else of the default account
        account = self.chosen_account(request, self.served_accounts(), "account__id__exact")
        if account is not None:
            extra["balance_account"] = account
        try:
            extra["balance"] = services.balance(account=account).formatted()
        except PlugipayError as exc:
            extra["balance_error"] = staff_words(exc)
        return super().changelist_view(request, extra)

    def new_payout(self, request):
        """The "New payout" form, then its confirmation page (with a one-time token: a
        resubmitted page returns the payout it made instead of making another)."""
        if not self.has_manage_permission(request):
            raise PermissionDenied
        served = self.served_accounts()
        account = self.chosen_account(request, served, "account")
        try:
            available = services.balance(account=account)
            bank = services.bank_account(account=account)
        except PlugipayError as exc:
            self.message_user(request, staff_words(exc), messages.ERROR)
            return redirect(reverse("admin:django_plugipay_payout_changelist"))
        stage = request.POST.get("stage") if request.method == "POST" else None
        if stage == "confirm" and not tokens.was_posted(request):
            stage = "review"  # confirmed by no page of ours: its confirmation page first
        token = tokens.posted(request) if request.method == "POST" else tokens.issue()
        # this page's payout made already: the balance no longer has room for it, and need not
        made = stage == "confirm" and self._made(token, account)
        form = NewPayoutForm(
            request.POST if stage else None,
            available=None if made else available.available,
            currency=available.currency,
            destination=made or bank["configured"],
        )
        confirming = False
        if stage and form.is_valid():
            if stage == "confirm":
                done = self._create(
                    request, form.cleaned_data, available.currency, token, account=account
                )
                if done is not None:
                    return done
            # the confirmation page; again, with the same token, when Plugipay's answer to it
            # was lost: confirming again sends the same key, never a second payout
            confirming = True
        context = {
            **self.admin_site.each_context(request),
            "title": _("New payout"),
            "form": form,
            "confirming": confirming,
            "amount_display": (
                format_amount(form.cleaned_data["amount"], available.currency) if confirming else ""
            ),
            "balance": available.formatted(),
            "bank": bank,
            "accounts": served,
            "account": account,
            "opts": Payout._meta,
            "token_field": tokens.FIELD,
            "token": token,
        }
        return TemplateResponse(request, "admin/django_plugipay/payout/new_payout.html", context)

    @staticmethod
    def _made(token: str, account: Account | None) -> bool:
        with accounts.acting_for(account.pk if account is not None else None):
            return accounts.own(Payout.objects.filter(idempotency_key=f"admin_{token}")).exists()

    @staticmethod
    def _unanswered(token: str, account: Account | None) -> bool:
        """Whether this page's payout was stored and sent without an answer from Plugipay
        (it may exist there): the page's key must be sent again, not a new one."""
        with accounts.acting_for(account.pk if account is not None else None):
            mine = accounts.own(Payout.objects.filter(idempotency_key=f"admin_{token}"))
            return mine.filter(plugipay_id=None, status=PayoutStatus.PENDING).exists()

    def _create(self, request, data, currency: str, token: str, account: Account | None = None):
        """Send the confirmed payout; the page to go to, or None to show the confirmation
        again with the same token (no answer from Plugipay)."""
        changelist = reverse("admin:django_plugipay_payout_changelist")
        try:
            payout = services.create_payout(
                account=account,
                amount=data["amount"],
                currency=currency,
                note=data.get("note") or None,
                idempotency_key=f"admin_{token}",
            )
        except PlugipayError as exc:
            if exc.code == "idempotency_mismatch" and not self._unanswered(token, account):
                # this page made its payout already; sent again with another amount or note
                said = _(
                    "This page already made a payout, which stays as it was confirmed. Open it "
                    "in the list; to pay out more, start a new payout."
                )
                self.message_user(request, said, messages.WARNING)
                return redirect(changelist)
            if exc.code == "idempotency_mismatch" and self._unanswered(token, account):
                # confirmed again with another amount or note: this page's payout stands as
                # it was first confirmed, and only Re-sync settles it now
                said = _(
                    "This page already sent a payout, which Plugipay has not answered yet; it "
                    "cannot be changed now. Open it in the list and Re-sync it."
                )
                self.message_user(request, said, messages.WARNING)
                return redirect(changelist)
            if self._unanswered(token, account):
                said = _(
                    "Plugipay did not answer: the payout may have been made. Confirm again to "
                    "settle it: it is sent with the same key, so it is never paid twice."
                )
                self.message_user(request, said, messages.WARNING)
                return None
            self.message_user(request, staff_words(exc), messages.ERROR)
            again = reverse("admin:django_plugipay_payout_new")
            return redirect(f"{again}?account={account.pk}" if account is not None else again)
        amount = format_amount(payout.amount, payout.currency)
        if payout.status == PayoutStatus.FAILED:
            # the first submission got no answer: sent again now with its key and refused, or
            # too old to send again and not found at Plugipay
            said = _("This payout of %(amount)s failed: %(reason)s") % {
                "amount": amount,
                "reason": payout.failure_reason or "—",
            }
            self.message_user(request, said, messages.ERROR)
            return redirect(changelist)
        if payout.replayed and payout.status == PayoutStatus.CANCELED:
            said = _("This page's payout of %(amount)s was canceled; nothing was sent again.") % {
                "amount": amount
            }
            self.message_user(request, said, messages.INFO)
            return redirect(changelist)
        if payout.replayed and not payout.plugipay_id:
            # the first confirmation's send is still waiting for Plugipay (or its process
            # died mid-send): nothing says Plugipay has it yet
            said = _(
                "This page's payout of %(amount)s was sent to Plugipay moments ago and has no "
                "answer yet; nothing was sent again. Its row in the list shows where it is."
            ) % {"amount": amount}
            self.message_user(request, said, messages.WARNING)
            return redirect(changelist)
        if payout.replayed:
            said = _(
                "This payout of %(amount)s was already made from this page; nothing was sent again."
            ) % {"amount": amount}
            self.message_user(request, said, messages.INFO)
            return redirect(changelist)
        self.log_addition(request, payout, _("Paid out %(amount)s") % {"amount": amount})
        self.message_user(
            request,
            _("Payout of %(amount)s to %(destination)s created.")
            % {"amount": amount, "destination": payout.masked_account or "—"},
            messages.SUCCESS,
        )
        return redirect(changelist)


# ── receipts ───────────────────────────────────────────────────────────────────


class ReceiptInline(MirrorDisplay, admin.TabularInline):
    """The receipts of a payment or an invoice, linked to their page (and its documents)."""

    model = Receipt
    extra = 0
    can_delete = False
    readonly_fields = ["receipt_link", "amount_display", "tax_display", "issued_at"]
    fields = list(readonly_fields)
    verbose_name_plural = gettext_lazy("receipts")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        return permissions.can_view(request.user, "receipt")

    @admin.display(description=gettext_lazy("receipt"))
    def receipt_link(self, obj):
        return admin_link(obj)

    @admin.display(description=gettext_lazy("PPN"))
    def tax_display(self, obj):
        return money(obj.tax_amount, obj.currency)


@admin.action(description=gettext_lazy("Email selected receipts…"), permissions=["email"])
def email_receipts(modeladmin, request, queryset):
    return confirm_then(
        modeladmin,
        request,
        queryset,
        action="email_receipts",
        title=_("Email receipts"),
        question=_("Have Plugipay e-mail these receipts to their customers?"),
        perform=lambda r: services.email_receipt(receipt=r),
        done=lambda n: (
            ngettext("%(count)d receipt e-mailed.", "%(count)d receipts e-mailed.", n)
            % {"count": n}
        ),
    )


@admin.register(Receipt)
class ReceiptAdmin(MirrorAdmin):
    list_display = [
        "number",
        "amount_display",
        "tax_display",
        "method_label",
        "customer_link",
        "source",
        "issued_at",
        "emailed_at",
    ]
    list_filter = ["source_type", method_filter(), "currency", "issued_at"]
    list_select_related = ["customer"]
    search_fields = ["plugipay_id", "number", "source_id", "customer__email"]
    date_hierarchy = "issued_at"
    actions = [email_receipts]
    change_form_template = "admin/django_plugipay/receipt/change_form.html"
    readonly_fields = [
        "plugipay_id",
        "number",
        "amount_display",
        "subtotal_display",
        "tax_display",
        "method_label",
        "customer_link",
        "source",
        "payment_link",
        "invoice_link",
        "issued_at",
        "emailed_at",
        "mode",
        "synced_at",
    ]
    fields = list(readonly_fields)
    method_label = method_display()

    def has_email_permission(self, request) -> bool:
        return permissions.can_email_receipts(request.user)

    @admin.display(description=gettext_lazy("subtotal"))
    def subtotal_display(self, obj):
        return money(obj.subtotal, obj.currency)

    @admin.display(description=gettext_lazy("PPN"))
    def tax_display(self, obj):
        return money(obj.tax_amount, obj.currency)

    @admin.display(description=gettext_lazy("source"))
    def source(self, obj):
        kinds = {"checkout_session": CheckoutSession, "invoice": Invoice}
        kind = kinds.get(obj.source_type)
        named = kind._meta.verbose_name if kind is not None else obj.source_type
        return f"{named} {obj.source_id}".strip() or "—"

    @admin.display(description=gettext_lazy("payment"))
    def payment_link(self, obj):
        return admin_link(obj.payment)

    @admin.display(description=gettext_lazy("invoice"))
    def invoice_link(self, obj):
        return admin_link(obj.invoice)

    def get_urls(self):
        email = self.admin_site.admin_view(self.email_one)
        return [
            path("<path:object_id>/email/", email, name="django_plugipay_receipt_email"),
            *super().get_urls(),
        ]

    def email_one(self, request, object_id):
        if not self.has_email_permission(request):
            raise PermissionDenied
        receipt = self.found(request, object_id)
        response = email_receipts(self, request, Receipt.objects.filter(pk=receipt.pk))
        if response is None:
            return redirect(reverse("admin:django_plugipay_receipt_change", args=[receipt.pk]))
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {**(extra_context or {}), "can_email": self.has_email_permission(request)}
        return super().change_view(request, object_id, form_url, extra)


# ── the ledger ─────────────────────────────────────────────────────────────────


class _Echo:
    """A file-like object whose ``write`` returns the line (for a streamed CSV)."""

    def write(self, value: str) -> str:
        return value


CSV_COLUMNS = (
    "posted_at",
    "tx_id",
    "plugipay_id",
    "code",
    "direction",
    "amount",
    "currency",
    "source_type",
    "source_id",
    "memo",
)


def _csv_safe(value) -> str:
    """A cell a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@admin.register(LedgerEntry)
class LedgerEntryAdmin(MirrorAdmin):
    list_display = [
        "posted_at",
        "tx_id",
        "code",
        "direction",
        "amount_display",
        "source_type",
        "source_id",
        "memo",
    ]
    list_filter = ["code", "direction", "source_type", "currency", "posted_at"]
    search_fields = ["tx_id", "source_id", "plugipay_id", "memo"]
    date_hierarchy = "posted_at"
    change_list_template = "admin/django_plugipay/ledgerentry/change_list.html"
    readonly_fields = [
        "plugipay_id",
        "tx_id",
        "code",
        "direction",
        "amount_display",
        "source_type",
        "source_id",
        "memo",
        "posted_at",
        "transaction",
        "mode",
        "synced_at",
    ]
    fields = list(readonly_fields)

    @admin.display(description=gettext_lazy("transaction"))
    def transaction(self, obj):
        legs = LedgerEntry.objects.filter(tx_id=obj.tx_id).order_by("pk")
        return format_html_join(
            "",
            "<div>{} {} {}</div>",
            (
                (leg.get_direction_display(), leg.code, money(leg.amount, leg.currency))
                for leg in legs
            ),
        )

    def get_urls(self):
        export = self.admin_site.admin_view(self.export_csv)
        return [
            path("export.csv", export, name="django_plugipay_ledgerentry_export"),
            *super().get_urls(),
        ]

    def export_csv(self, request):
        """The entries the list shows (its filters and search), streamed as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
            rows = changelist.get_queryset(request).order_by("posted_at", "pk").iterator()
        except IncorrectLookupParameters:  # as the list does: back to it, with its error flag
            return redirect(
                f"{reverse('admin:django_plugipay_ledgerentry_changelist')}?{ERROR_FLAG}=1"
            )
        writer = csv.writer(_Echo())

        def lines():
            yield writer.writerow(CSV_COLUMNS)
            for entry in rows:
                yield writer.writerow([_csv_safe(getattr(entry, c)) for c in CSV_COLUMNS])

        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        database = databases.chosen(request)
        name = f"plugipay-ledger-{database.alias}" if database else "plugipay-ledger"
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response

    def changelist_view(self, request, extra_context=None):
        query = "&".join(q for q in (request.GET.urlencode(), databases.export_query(request)) if q)
        extra = {
            **(extra_context or {}),
            "export_url": reverse("admin:django_plugipay_ledgerentry_export")
            + (f"?{query}" if query else ""),
        }
        return super().changelist_view(request, extra)
