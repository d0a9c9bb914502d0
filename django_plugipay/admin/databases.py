"""The database the admin's pages read, when accounts keep their rows in databases of their own.

With ``PLUGIPAY["ACCOUNT_DATABASE"]``, a tenant's payments, refunds and events live in its own
database. Staff choose which database the app's pages show (a form on its index and lists, kept
in their session); every page of the app's models then runs acting for an account of that
database, so the router reads and writes there, and what a page does (a refund, a confirmed
transfer) acts for its row's own account as everywhere. Without a choice, or in a project with
one database, the pages read the default database, as Django's admin does.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple, cast

from django.contrib import messages
from django.contrib.admin.options import IS_POPUP_VAR, TO_FIELD_VAR
from django.contrib.admin.views.main import PAGE_VAR
from django.db import DEFAULT_DB_ALIAS, OperationalError
from django.http import HttpRequest, HttpResponseNotAllowed, StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import SimpleTemplateResponse
from django.urls import URLPattern, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _

from django_plugipay import accounts
from django_plugipay.conf import app_settings

logger = logging.getLogger(__name__)

#: the session key holding the alias of the database the staff member chose
SESSION_KEY = "plugipay_admin_database"
#: the hidden input with which the app's forms post the database their page was opened in
FIELD = "plugipay_database"


class Database(NamedTuple):
    """A database the accounts' rows are kept in, and an account of it to act for."""

    alias: str
    accounts: list[str]
    acting: accounts.Known

    @property
    def label(self) -> str:
        return _("%(accounts)s (database %(database)s)") % {
            "accounts": ", ".join(self.accounts),
            "database": self.alias,
        }


def databases() -> list[Database]:
    """Every database the served accounts' rows are kept in, the default one first; empty
    when there is only one (nothing to choose)."""
    if app_settings.raw("ACCOUNT_DATABASE") is None:
        return []
    found: dict[str, Database] = {}
    for account in accounts.every():
        alias = accounts.database_of(account.alias) or DEFAULT_DB_ALIAS
        if alias not in found:
            found[alias] = Database(alias, [], account)
        found[alias].accounts.append(account.alias)
    if len(found) < 2:
        return []
    return sorted(found.values(), key=lambda database: database.alias != DEFAULT_DB_ALIAS)


def chosen(request: HttpRequest) -> Database | None:
    """The database this request reads and acts in, when it is not the default and still
    holds a served account; else None. A form of the app's pages posts the database its page
    was opened in (:data:`FIELD`; a link, such as the ledger's export, carries it in its
    query), and acts there even when the staff member chose another since (in another tab):
    the same id names another row in another database."""
    if hasattr(request, "plugipay_database"):  # read already, by the page's wrapper
        return request.plugipay_database
    if IS_POPUP_VAR in request.GET or TO_FIELD_VAR in request.GET:
        # a lookup popup of another model's form (raw_id_fields): that form saves and
        # validates the id in the default database, so the popup lists that database's rows
        return None
    given = request.POST.get(FIELD) if request.method == "POST" else request.GET.get(FIELD)
    wanted = given or getattr(request, "session", {}).get(SESSION_KEY)
    if not wanted or wanted == DEFAULT_DB_ALIAS:
        return None
    return next((database for database in databases() if database.alias == wanted), None)


def choice(request: HttpRequest) -> dict[str, Any] | None:
    """What the chooser on the app's pages shows: ``databases``, the ``current`` alias and
    ``next``, the page to come back to (its filters and search kept, not its page number: the
    other database may have fewer pages); None with a single database."""
    every = databases()
    if not every:
        return None
    now = chosen(request)
    query = request.GET.copy()
    query.pop(PAGE_VAR, None)
    back = f"{request.path}?{query.urlencode()}" if query else request.path
    return {
        "databases": every,
        "current": now.alias if now is not None else DEFAULT_DB_ALIAS,
        "next": back,
    }


def in_chosen_database(view: Any) -> Any:
    """``view``, run acting for an account of the staff member's chosen database, its
    template rendered inside (a lazy response would read the default database)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        database = chosen(request)
        request.plugipay_database = database  # type: ignore[attr-defined]
        if FIELD in request.GET:  # read: not a filter of the list
            query = request.GET.copy()
            del query[FIELD]
            request.GET = cast(Any, query)
        session = getattr(request, "session", None)
        if request.method == "POST" and request.POST.get(FIELD) and session is not None:
            # acted in the page's database: the pages that follow (the row's, after a
            # refund) show that database, not one chosen since in another tab
            session[SESSION_KEY] = database.alias if database else DEFAULT_DB_ALIAS
        if database is None:
            return view(request, *args, **kwargs)
        try:
            with accounts.acting_for(database.acting.pk):
                response = view(request, *args, **kwargs)
                if isinstance(response, SimpleTemplateResponse) and not response.is_rendered:
                    response.render()
        except OperationalError as exc:  # the database cannot be reached: say so, go back
            logger.warning("plugipay admin: database %s cannot be read: %s", database.alias, exc)
            if session is not None:
                session[SESSION_KEY] = DEFAULT_DB_ALIAS
            messages.error(
                request,
                _(
                    "The database %(database)s cannot be read (%(error)s); the pages show the "
                    "default database again."
                )
                % {"database": database.alias, "error": exc},
            )
            return redirect(reverse("admin:app_list", kwargs={"app_label": "django_plugipay"}))
        if isinstance(response, StreamingHttpResponse) and not response.is_async:
            # read as it is sent (an export): there too in the chosen database
            content = cast(Iterable[Any], response.streaming_content)
            response.streaming_content = _streamed_in(database, content)
        return response

    return wrapper


def _streamed_in(database: Database, content: Iterable[Any]) -> Iterator[Any]:
    with accounts.acting_for(database.acting.pk):
        yield from content


def routed(patterns: list[Any]) -> list[Any]:
    """A model admin's URL patterns, each view run in the chosen database."""
    return [
        URLPattern(p.pattern, in_chosen_database(p.callback), p.default_args, p.name)
        if isinstance(p, URLPattern)
        else p
        for p in patterns
    ]


def export_query(request: HttpRequest) -> str:
    """The query a link to a download of the list (the ledger's export) adds so the download
    reads the database the page shows, or ``""``."""
    now = choice(request)
    return f"{FIELD}={now['current']}" if now else ""


def mark_entry(request: HttpRequest, entry: Any) -> Any:
    """Mark the admin log ``entry``'s object with the chosen database too (``[tenant] pay_…``):
    the home page's recent actions show that, not the message."""
    database = chosen(request)
    if database is not None and entry is not None:
        entry.object_repr = f"[{database.alias}] {entry.object_repr}"[:200]
        type(entry).objects.filter(pk=entry.pk).update(object_repr=entry.object_repr)
    return entry


def marked(request: HttpRequest, message: Any) -> Any:
    """An admin log message about a row of the chosen database, marked with it (``[tenant]
    …``): the log is kept in the default database by the row's pk, which names another row
    in each database."""
    database = chosen(request)
    if database is None or not isinstance(message, str):
        return message
    return f"[{database.alias}] {message}"


def own_entries(request: HttpRequest, entries: Any) -> Any:
    """The admin log ``entries`` about a row of the database the request reads: marked with
    it (see :func:`marked`), or, in the default database, marked with none."""
    database = chosen(request)
    if database is not None:
        return entries.filter(change_message__startswith=f"[{database.alias}] ")
    for other in databases():
        if other.alias != DEFAULT_DB_ALIAS:
            entries = entries.exclude(change_message__startswith=f"[{other.alias}] ")
    return entries


def choose(request: HttpRequest) -> Any:
    """Remember the database the form names (POST ``database``), then go back to ``next`` (a
    list or index of this site, never a page of one row: its id belongs to the other
    database), or to the app's index."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    wanted = request.POST.get("database", "")
    every = {database.alias: database for database in databases()}
    if wanted in every:
        request.session[SESSION_KEY] = wanted
        messages.info(
            request, _("The pages now show %(database)s.") % {"database": every[wanted].label}
        )
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("admin:app_list", kwargs={"app_label": "django_plugipay"})
    return redirect(target)
