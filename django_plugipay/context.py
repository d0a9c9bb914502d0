"""The account the current code acts for (a context variable; no imports from the app)."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import NamedTuple


class Acting(NamedTuple):
    """The account a service, an event or a sync acts for: its pk, settings alias, and the
    ``acc_…`` id a platform key acts on behalf of (None: its own credentials)."""

    pk: int
    alias: str
    on_behalf_of: str | None = None


#: Set by ``accounts.acting_for``; None: the default account.
acting: ContextVar[Acting | None] = ContextVar("plugipay_acting", default=None)


#: How the default account's pk is found (set by ``django_plugipay.accounts``, which reads it
#: once per process).
default_pk: list[Callable[[], int]] = []


def current_account_pk() -> int:
    """The pk of the account acting now (the default account outside ``acting_for``): the
    field default of every row's ``account``."""
    now = acting.get()
    if now is not None:
        return now.pk
    return default_pk[0]()


#: How the database of the account acting is found (set by ``django_plugipay.accounts``).
database_for: list[Callable[[str], str | None]] = []


def acting_database() -> str | None:
    """The database alias ``PLUGIPAY["ACCOUNT_DATABASE"]`` names for the account acting now, or
    None (Django's routing: the default database)."""
    now = acting.get()
    if now is None or not database_for:
        return None
    return database_for[0](now.alias)
