"""Display helpers shared by the ModelAdmins: money, badges, links, metadata search."""

from __future__ import annotations

import json
from contextvars import ContextVar

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.db.models import F, Func, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.http import Http404, HttpRequest
from django.template.response import SimpleTemplateResponse
from django.urls import reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince
from django.utils.translation import gettext_lazy as _

from django_plugipay import accounts, datetimes, permissions
from django_plugipay.admin import databases
from django_plugipay.exceptions import PlugipayError, TransientError
from django_plugipay.links import link
from django_plugipay.models import PaymentMethod
from django_plugipay.money import format_amount
from django_plugipay.specs import spec_for_model, status_tones

TONE_COLOURS = {
    "success": "#047857",
    "failure": "#b91c1c",
    "closed": "#6b7280",
    "waiting": "#b45309",
    "new": "#1d4ed8",
}
#: the event log is not a mirrored resource: its statuses' tones are listed here
EVENT_TONES = {"processed": "success", "failed": "failure", "ignored": "closed", "received": "new"}
#: deliveries of durable receivers are not a mirrored resource either
DELIVERY_TONES = {"running": "waiting", "dead": "failure", "resolved": "closed"}


REFUND_STATES = {"refunded": _("refunded"), "partially_refunded": _("partially refunded")}


def badge(status: str, label: str | None = None) -> str:
    """A status pill coloured by the tone its resource's spec gives the status."""
    tone = {**DELIVERY_TONES, **EVENT_TONES, **status_tones()}.get(status)
    colour = TONE_COLOURS.get(tone or "", "#374151")
    return format_html(
        '<span style="background:{};color:#fff;border-radius:9px;padding:1px 8px;'
        'font-size:11px;white-space:nowrap">{}</span>',
        colour,
        label or status.replace("_", " "),
    )


def url_display(model, name: str):
    """A read-only admin field showing ``model``'s URL field ``name`` (from Plugipay) as a link
    only when it is http(s), whatever Django version renders it."""

    @admin.display(description=model._meta.get_field(name).verbose_name)
    def show(modeladmin, obj):
        return link(getattr(obj, name))

    return show


#: the request an admin page of this app is rendering, and its admin site (see ``viewing``)
_viewing: ContextVar[tuple[HttpRequest, admin.AdminSite] | None] = ContextVar(
    "plugipay_admin_viewing", default=None
)


def admin_link(obj, label: str | None = None) -> str:
    """``obj``'s change page as a link, or its label alone when the staff member viewing the
    page may not open that page (a clerk allowed to refund payments, not to view sessions), or
    no admin shows ``obj``'s model."""
    if obj is None:
        return "—"
    text = label or str(obj)
    viewing = _viewing.get()
    site = viewing[1] if viewing is not None else admin.site
    model_admin = site._registry.get(type(obj))
    if model_admin is None or (
        viewing is not None
        and not (
            model_admin.has_view_permission(viewing[0], obj)
            or model_admin.has_change_permission(viewing[0], obj)
        )
    ):
        return format_html("{}", text)
    meta = obj._meta
    url = reverse(f"{site.name}:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text)


class Viewing:
    """Admin views render with the request known to :func:`admin_link`, whenever they render
    (a ``TemplateResponse`` renders after the view returns, once a subclass or a template
    response middleware has had its say)."""

    def changelist_view(self, request, extra_context=None):
        return self._viewing(request, super().changelist_view(request, extra_context))

    def changeform_view(self, request, *args, **kwargs):
        return self._viewing(request, super().changeform_view(request, *args, **kwargs))

    def _viewing(self, request, response):
        if isinstance(response, SimpleTemplateResponse) and not response.is_rendered:
            resolve = response.resolve_template
            viewing = (request, self.admin_site)
            response.resolve_template = lambda names: _ViewingTemplate(resolve(names), viewing)
        return response


class _ViewingTemplate:
    """A template rendering with ``viewing`` known to :func:`admin_link`."""

    def __init__(self, template, viewing) -> None:
        self.template, self.viewing = template, viewing

    def render(self, context=None, request=None):
        token = _viewing.set(self.viewing)
        try:
            return self.template.render(context, request)
        finally:
            _viewing.reset(token)


def money(amount: int | None, currency: str) -> str:
    return format_amount(amount, currency)


def method_display(field: str = "method"):
    """A display method for a payment method field: its label in the reader's language."""

    @admin.display(description=_("method"), ordering=field)
    def display(self, obj) -> str:
        return PaymentMethod.label_of(getattr(obj, field))

    return display


def method_filter(field: str = "method") -> type[admin.SimpleListFilter]:
    """A list filter on a payment method field, each method present named by its label."""

    class MethodFilter(admin.SimpleListFilter):
        title = _("method")
        parameter_name = field

        def lookups(self, request, model_admin):
            rows = model_admin.get_queryset(request).order_by()
            codes = rows.values_list(field, flat=True).distinct()
            return [(code, PaymentMethod.label_of(code)) for code in sorted(set(codes) - {""})]

        def queryset(self, request, queryset):
            value = self.value()
            return queryset.filter(**{field: value}) if value else queryset

    return MethodFilter


def staff_words(exc: PlugipayError) -> str:
    """What went wrong with a call to Plugipay, for staff, in their language: Plugipay's own
    message is a developer's, in English (a refusal is named by its code; a connection that
    failed is said as such, with the client's hint for developers under ``DEBUG``); this
    app's own refusals are translated already and said as they are."""
    if isinstance(exc, TransientError):
        said = _("Plugipay could not be reached; try again shortly.")
        return f"{said} ({exc.message})" if settings.DEBUG else str(said)
    if exc.status is None:
        return exc.message
    if exc.field == "to":  # an e-mail with no address to go to
        return str(_("Plugipay refused it: there is no e-mail address to send it to."))
    return str(_("Plugipay refused it (%(code)s).") % {"code": exc.code or exc.status})


def pretty_json(value) -> str:
    return format_html(
        '<pre style="white-space:pre-wrap;max-width:60em">{}</pre>',
        json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False),
    )


class MirrorDisplay:
    """Columns and fields every mirror shows the same way."""

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, obj):
        return money(obj.amount, obj.currency)

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj):
        return badge(obj.status, str(obj.get_status_display()).lower())

    @admin.display(description=_("customer"))
    def customer_link(self, obj):
        return admin_link(obj.customer)

    @admin.display(description=_("data"))
    def data_pretty(self, obj):
        return pretty_json(obj.data)

    # A user, as Django shows a foreign key, but linked only for staff who may open it.
    @admin.display(description=_("requested by"))
    def requested_by_link(self, obj):
        return admin_link(obj.requested_by)

    @admin.display(description=_("confirmed by"))
    def confirmed_by_link(self, obj):
        return admin_link(obj.confirmed_by)


class StatusGroupFilter(admin.SimpleListFilter):
    """The status groups of the model's resource spec (open sessions, refunds in flight,
    unpaid invoices…), read from the spec, never listed here."""

    title = _("status group")
    parameter_name = "status_group"

    def lookups(self, request, model_admin):
        spec = spec_for_model(model_admin.model)
        return [(name, group.label) for name, group in spec.groups.items()] if spec else []

    def queryset(self, request, queryset):
        spec = spec_for_model(queryset.model)
        if spec is None or self.value() not in spec.groups:
            return queryset
        return queryset.filter(status__in=spec.group(self.value()))


class BoundedChangeList(ChangeList):
    """Django's changelist, answering a date-hierarchy year no date can hold
    (``?created_at__year=2147483648`` overflows, ``9999``'s next year does not exist) as any
    bad lookup is answered — the list again with its error flag — not with a 500."""

    def get_filters(self, request):
        try:
            return super().get_filters(request)
        except (OverflowError, ValueError) as exc:
            raise IncorrectLookupParameters(exc) from exc


class _MetadataText(Func):
    """The value of key ``key`` (always an object key, never an index) of a JSON object, as
    text (NULL when absent or JSON null; booleans ``true``/``false``) on every backend."""

    output_field = TextField()

    def __init__(self, field, key):
        super().__init__(F(field))
        self.key = key

    def as_sql(self, compiler, connection, **extra):
        lhs, params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "postgresql":
            return f"({lhs} ->> %s::text)", (*params, self.key)
        if connection.vendor == "sqlite":
            return (
                "(SELECT CASE WHEN type IN ('true', 'false') THEN type "
                f"ELSE CAST(value AS TEXT) END FROM json_each({lhs}) WHERE key = %s)",
                (*params, self.key),
            )
        return Cast(KeyTextTransform(self.key, self.source_expressions[0]), TextField()).as_sql(
            compiler, connection
        )


class MirrorAdmin(Viewing, MirrorDisplay, admin.ModelAdmin):
    """Mirrors of Plugipay objects: read-only here; Plugipay stays the source of truth."""

    list_per_page = 50
    show_full_result_count = False

    def get_changelist(self, request, **kwargs):
        return BoundedChangeList

    @property
    def urls(self):
        """Every page of the model, its own views too, in the database the staff member
        chose (:mod:`~django_plugipay.admin.databases`)."""
        return databases.routed(self.get_urls())

    def log_change(self, request, obj, message):
        """The admin log (kept in the default database, by the row's pk) marks an entry about
        a row of another database with that database, so a row's history is its own."""
        entry = super().log_change(request, obj, databases.marked(request, message))
        return databases.mark_entry(request, entry)

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        if queryset.model is LogEntry:  # a row's history: the entries of its database alone
            queryset = databases.own_entries(request, queryset)
        return super().get_paginator(request, queryset, per_page, orphans, allow_empty_first_page)

    def found(self, request, object_id: str):
        """The row a page of one object (refund, confirm, e-mail) is about, as the change page
        finds it: an id that cannot be one (``abc`` for a number) is a 404, not a 500."""
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(
                _("No %(name)s with the id %(id)s.")
                % {"name": self.model._meta.verbose_name, "id": object_id}
            )
        return obj

    def get_list_filter(self, request):
        """The model's status groups first (when its spec has any), then ``list_filter``, then
        the account when the project serves several."""
        filters = list(super().get_list_filter(request))
        if self._shows_account():
            filters.append("account")
        spec = spec_for_model(self.model)
        return [StatusGroupFilter, *filters] if spec is not None and spec.groups else filters

    def _shows_account(self) -> bool:
        """Rows carry an account and there is more than one to tell apart (a single-account
        project's admin is unchanged)."""
        return any(f.name == "account" for f in self.model._meta.fields) and accounts.several()

    def get_list_display(self, request):
        shown = list(super().get_list_display(request))
        return [*shown, "account"] if self._shows_account() else shown

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if self._shows_account() and "account" not in fields:
            fields.insert(0, "account")
        return fields

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "account"] if self._shows_account() else fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        """The view permission, or an operation's that implies it (refund → payments)."""
        return permissions.can_view(request.user, self.opts.model_name or "")

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    #: the JSON field ``key:value`` searches (a path through relations, e.g. a payment's
    #: session's ``checkout_session__metadata``); None: the model's ``metadata``, if it has one
    metadata_field: str | None = None

    def get_search_results(self, request, queryset, search_term):
        """``key:value`` searches metadata (``order:1042``: the key's value as text, whatever
        the key is called — ``contains`` or ``a__b`` are keys here, not lookups); anything
        else the search fields."""
        key, sep, value = search_term.partition(":")
        key, value = key.strip(), value.strip()  # ``order: 77`` as ``order:77``
        field = self.metadata_field or ("metadata" if hasattr(self.model, "metadata") else None)
        if sep and key and value and " " not in key and field is not None:
            text = _MetadataText(field, key)  # compared as text
            found = queryset.alias(_metadata_value=text)
            return found.filter(_metadata_value=value), False
        return super().get_search_results(request, queryset, search_term)


def instructions_html(instructions) -> str:
    """A pending session's instructions as a short definition list, or a dash."""
    if instructions is None:
        return "—"
    rows = [
        (_("method"), PaymentMethod.label_of(instructions.method)),
        (_("bank or provider"), instructions.channel),
        (_("virtual account"), instructions.account_number),
        (_("payment code"), instructions.payment_code),
        (_("QR string"), instructions.qr_string),
        (
            _("pay before"),
            date_format(datetimes.local(instructions.expires_at), "DATETIME_FORMAT")
            if instructions.expires_at
            else "",
        ),
        (
            _("claimed at"),
            date_format(datetimes.local(instructions.claimed_at), "DATETIME_FORMAT")
            if instructions.claimed_at
            else "",
        ),
    ]
    rows += [
        (_("bank account"), f"{a.bank_name} {a.account_number} ({a.account_holder})")
        for a in instructions.bank_accounts
    ]
    items = format_html_join(
        "", "<div><b>{}</b>: <code>{}</code></div>", ((k, v) for k, v in rows if v)
    )
    if instructions.proof_url:  # the buyer's: linked only when http(s)
        proof = link(instructions.proof_url, _("proof of transfer"), new_tab=True)
        items += format_html("<div>{}</div>", proof)
    return items


@admin.display(description=_("waiting for"))
def pending_age(modeladmin, obj) -> str:
    """How long a refund has been waiting to settle ("2 days, 3 hours"), or a dash."""
    return timesince(obj.created_at) if obj.pending_for is not None else "—"
