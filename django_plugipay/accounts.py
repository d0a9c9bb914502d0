"""The Plugipay accounts a project serves: their rows, kept in step with the settings, and the
account the current code acts for.

Every configured account (``"default"``, the top-level credentials, and each alias of
``PLUGIPAY["ACCOUNTS"]``) has an :class:`~django_plugipay.models.Account` row. The rows are
created or updated by :func:`sync_accounts`, an idempotent step run after ``migrate`` (and after
a test database is flushed) and on first use when the configured accounts changed. What the
engine needs of them on every event — the default account's pk, an alias's pk and ``acc_…``
id — is read once per process and cached; the cache is dropped when the configured accounts
change (``setting_changed``) or the tables are (re)created (``post_migrate``), so a
single-account project pays no query per applied event.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, TypeVar

from django.core.signals import setting_changed
from django.db import DatabaseError, models, transaction
from django.db.models import ProtectedError, Q
from django.db.models.signals import post_migrate
from django.dispatch import receiver

from django_plugipay import context
from django_plugipay.conf import DEFAULT_ACCOUNT, app_settings
from django_plugipay.context import Acting, acting
from django_plugipay.db import discard_lost_connection
from django_plugipay.exceptions import ConfigurationError
from django_plugipay.models import Account, Mode, SyncCursor

T = TypeVar("T")

logger = logging.getLogger("django_plugipay.accounts")

__all__ = [
    "takes_account",
    "Known",
    "acting_for",
    "current",
    "current_account_pk",
    "default_account_pk",
    "each_account",
    "every",
    "get_account",
    "known",
    "learn_plugipay_id",
    "own",
    "several",
    "sync_accounts",
]


class Known(NamedTuple):
    """What the process remembers of an account row."""

    pk: int
    alias: str
    plugipay_id: str | None
    platform: bool

    @property
    def acting(self) -> Acting:
        return Acting(self.pk, self.alias, self.plugipay_id if self.platform else None)


_lock = threading.Lock()
_cache: dict[str, Any] = {}


def _mode(entry: dict[str, Any]) -> str:
    key = entry.get("API_KEY") or entry.get("KEY_ID") or ""
    return Mode.LIVE if "_live_" in key else Mode.TEST


def fingerprint() -> tuple:
    """What of the settings the account rows follow (credentials excluded)."""
    return (
        *(
            (alias, entry["ACCOUNT_ID"], bool(entry["ON_BEHALF_OF"]), _mode(entry), entry["NAME"])
            for alias, entry in app_settings.ACCOUNTS.items()
        ),
        app_settings.raw("ACCOUNT_DATABASE"),
    )


def sync_accounts(using: str | None = None) -> list[Account]:
    """Create or update the row of every configured account (idempotent); return every row,
    configured or provisioned."""
    manager = Account.objects.db_manager(using)
    for alias, entry in app_settings.ACCOUNTS.items():
        wanted: dict[str, Any] = {"mode": _mode(entry), "platform": bool(entry["ON_BEHALF_OF"])}
        if entry["NAME"]:
            wanted["name"] = entry["NAME"]
        if entry["ACCOUNT_ID"]:
            wanted["plugipay_id"] = entry["ACCOUNT_ID"]
        if entry["ACCOUNT_ID"]:  # a provisioned row takes the alias the settings give it
            _take_alias(manager, alias, entry["ACCOUNT_ID"])
        account, created = manager.get_or_create(alias=alias, defaults=wanted)
        changed = {k: v for k, v in wanted.items() if getattr(account, k) != v}
        if changed and not created:
            manager.filter(pk=account.pk).update(**changed)
    return list(manager.order_by("pk"))


def _take_alias(manager: Any, alias: str, plugipay_id: str) -> None:
    """Give the row of ``plugipay_id`` (provisioned under another alias) the alias ``alias``.

    A row already holding the alias without a Plugipay id (the alias was configured before its
    ``acc_…`` id was) is the same account: what points at it moves to the provisioned row and it
    goes. When both rows hold data, or the alias belongs to another ``acc_…`` id, which rows are
    whose is the project's call: a ``ConfigurationError`` names both rows and the fix."""
    with transaction.atomic(using=manager.db):
        found = manager.select_for_update().filter(plugipay_id=plugipay_id).exclude(alias=alias)
        provisioned = found.first()
        if provisioned is None:
            return
        named = manager.select_for_update().filter(alias=alias).first()
        if named is not None:
            if named.plugipay_id is not None:
                raise ConfigurationError(
                    f'PLUGIPAY["ACCOUNTS"][{alias!r}] names {plugipay_id}, but the alias '
                    f"{alias!r} belongs to the Account row of {named.plugipay_id} (pk "
                    f"{named.pk}) and {plugipay_id} has its own row ({provisioned.alias!r}, pk "
                    f"{provisioned.pk}). Configure {plugipay_id} under another alias, or give "
                    f"{alias!r} back its ACCOUNT_ID {named.plugipay_id}."
                )
            databases = {manager.db, database_of(alias), database_of(provisioned.alias)}
            databases.discard(None)
            mine, theirs = _held(named, databases), _held(provisioned, databases)
            if mine and theirs:
                raise ConfigurationError(
                    f'PLUGIPAY["ACCOUNTS"][{alias!r}] names {plugipay_id}, but two Account rows '
                    f"hold data: {alias!r} (pk {named.pk}, made before its Plugipay id was "
                    f"configured: {', '.join(mine)}) and {provisioned.alias!r} (pk "
                    f"{provisioned.pk}, provisioned for {plugipay_id}: {', '.join(theirs)}). "
                    f"Configure {plugipay_id} under another alias to keep them apart, or delete "
                    f"the rows of one of them, then run again."
                )
            for database in sorted(databases):  # type: ignore[type-var]
                _move_rows(named.pk, provisioned.pk, database)
            manager.filter(pk=named.pk).delete()
        manager.filter(pk=provisioned.pk).update(alias=alias)


def _pointing() -> Iterator[tuple[type[models.Model], str]]:
    """Each model with a foreign key to Account, and the key's column name."""
    for relation in Account._meta.get_fields(include_hidden=True):  # their related_name is "+"
        if relation.auto_created and not relation.concrete:
            yield relation.related_model, relation.field.attname  # type: ignore[union-attr,misc]


def _held(account: Account, databases: set) -> list[str]:
    """What rows belong to ``account`` besides its sync cursors, e.g. ``["Payment: 2"]``."""
    held = []
    for model, column in _pointing():
        if model is SyncCursor:
            continue
        count = sum(
            model._base_manager.using(db).filter(**{column: account.pk}).count() for db in databases
        )
        if count:
            held.append(f"{model.__name__}: {count}")
    return held


def _move_rows(source: int, target: int, database: str) -> None:
    """Point what points at the account ``source`` at ``target`` instead (a sync cursor the
    target has already is kept, the other dropped)."""
    for model, column in _pointing():
        rows = model._base_manager.using(database).filter(**{column: source})
        if model is SyncCursor:
            taken = SyncCursor._base_manager.using(database).filter(account_id=target)
            rows.filter(name__in=taken.values("name")).delete()
        rows.update(**{column: target})


def _default() -> Known:
    """The default account (its pk only changes when the tables are made again)."""
    found = _cache.get("default")
    if found is None:
        pk = Account.objects.filter(alias=DEFAULT_ACCOUNT).values_list("pk", flat=True).first()
        found = Known(pk, DEFAULT_ACCOUNT, None, False) if pk is not None else None
        if found is None:
            found = _state()["alias"][DEFAULT_ACCOUNT]
        _cache["default"] = found
    return found


def _state() -> dict[str, Any]:
    state = _cache.get("state")
    if state is not None:
        return state
    with _lock:
        if "state" not in _cache:
            rows = sync_accounts()
            _copy_to_account_databases(rows)
            known = [Known(a.pk, a.alias, a.plugipay_id, a.platform) for a in rows]
            _cache["state"] = {
                "alias": {k.alias: k for k in known},
                "pk": {k.pk: k for k in known},
                "plugipay": {k.plugipay_id: k for k in known if k.plugipay_id},
            }
            _cache["fingerprint"] = fingerprint()
            default = _cache["state"]["alias"][DEFAULT_ACCOUNT]
            _cache["default"] = default._replace(plugipay_id=None, platform=False)
        return _cache["state"]


def _copy_to_account_databases(rows: list[Account], only: str | None = None) -> None:
    """Every database an account's rows live in holds the account rows too, with the same pks
    (its rows' foreign keys point at them there).

    A database the rows cannot be copied into (away, not migrated yet, not one a test may
    use) is logged and remembered, and copied into when one of its accounts next acts
    (:func:`acting_for`): its accounts' work fails there on its own, and the accounts whose
    rows live elsewhere go on."""
    if app_settings.ACCOUNT_DATABASE is None:
        return
    databases = {database_of(a.alias) for a in rows} - {None, Account.objects.db}
    uncopied: set[str] = _cache.setdefault("uncopied", set())
    for database in sorted(d for d in databases if d and only in (None, d)):
        try:
            # a savepoint inside a caller's block there: a failure leaves its transaction usable
            with transaction.atomic(using=database):
                _copy_into(database, rows)
        except Exception as exc:  # noqa: BLE001 - that database's accounts meet it themselves
            discard_lost_connection(exc, using=database)
            uncopied.add(database)
            logger.warning(
                "plugipay could not copy the account rows into database %r (%s: %s); its "
                "accounts' work waits for it, the other accounts' goes on",
                database,
                type(exc).__name__,
                exc,
                extra={"database": database},
            )
        else:
            # owed until it commits: a caller's block there that rolls back takes the copy too
            uncopied.add(database)
            transaction.on_commit(functools.partial(uncopied.discard, database), using=database)


def _copy_into(database: str, rows: list[Account]) -> None:
    manager = Account.objects.db_manager(database)
    pks = [row.pk for row in rows]
    stale = manager.exclude(pk__in=pks).filter(
        Q(alias__in=[r.alias for r in rows])
        | Q(plugipay_id__in=[r.plugipay_id for r in rows if r.plugipay_id])
    )
    for row in stale:  # made there by its own migrate: out of the way (kept if referenced)
        try:
            row.delete()
        except ProtectedError:
            manager.filter(pk=row.pk).update(alias=f"{row.alias}#{row.pk}", plugipay_id=None)
    for row in rows:
        fields = {f.attname: getattr(row, f.attname) for f in Account._meta.concrete_fields}
        fields.pop("id")
        manager.update_or_create(pk=row.pk, defaults=fields)


def _copy_if_missed(alias: str) -> None:
    """Copy the account rows into ``alias``'s database if an earlier copy missed it (the
    database was away); a failure is logged again, and the work acting there meets it."""
    database = database_of(alias)
    if database in _cache.get("uncopied", ()):
        with _lock:
            _copy_to_account_databases(list(Account.objects.order_by("pk")), only=database)


def forget(*, tables: bool = True) -> None:
    """Drop what the process remembers of the accounts (read again on next use); with
    ``tables=False`` (the settings changed, the rows did not) the default account's pk stays."""
    if tables:
        _cache.clear()
    else:
        _cache.pop("state", None)
        _cache.pop("fingerprint", None)


@receiver(setting_changed)
def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "DATABASES":
        forget()
    elif setting == "DATABASE_ROUTERS" or (
        setting == "PLUGIPAY" and _cache.get("fingerprint") != fingerprint()
    ):
        forget(tables=False)


@receiver(post_migrate)
def _migrated(*, app_config: Any, using: str = "default", **kwargs: Any) -> None:
    """Tables created or flushed: the rows are made again and read on next use."""
    if app_config.name == "django_plugipay":
        if using == Account.objects.db:
            forget()
            _state()  # made and read now, so the first event costs no query
        elif "state" in _cache:  # an account database, emptied: it gets the rows again
            rows = list(Account.objects.order_by("pk"))
            _copy_to_account_databases(rows, only=using)


def known(account: Any = None) -> Known:
    """The account named by ``account`` — an Account, an alias, an ``acc_…`` id or a pk;
    None: the one acting now (the default account outside any :func:`acting_for`).
    Raises ``Account.DoesNotExist`` for an account the project does not know."""
    default = _default()
    if account is None:
        now = acting.get()
        account = now.pk if now is not None else default.pk
    pk = account.pk if isinstance(account, Account) else account
    if pk == default.pk:  # no query: a single-account project only ever meets this one
        return default
    state = _state()
    if isinstance(account, Account):
        found = state["pk"].get(account.pk)
    elif isinstance(account, int):
        found = state["pk"].get(account)
    else:
        found = state["alias"].get(account) or state["plugipay"].get(account)
    if found is None:
        forget(tables=False)  # a row made since (a provisioned account): read again
        state = _state()
        key = account.pk if isinstance(account, Account) else account
        found = (
            state["pk"].get(key)
            if isinstance(key, int)
            else (state["alias"].get(key) or state["plugipay"].get(key))
        )
    if found is None:
        raise Account.DoesNotExist(f"No Plugipay account {account!r} is known.")
    return found


def cached(plugipay_id: str) -> Known | None:
    """The account this process knows by its ``acc_…`` id, or None: no query, no reload (a
    per-event check must not read the accounts again for an id no account has)."""
    return _state()["plugipay"].get(plugipay_id)


def default_account_pk() -> int:
    """The default account's pk (read once per process)."""
    return _default().pk


current_account_pk = context.current_account_pk
context.default_pk[:] = [default_account_pk]


def database_of(alias: str) -> str | None:
    """The database ``PLUGIPAY["ACCOUNT_DATABASE"]`` names for the account ``alias``, or None."""
    hook = app_settings.ACCOUNT_DATABASE
    return hook(alias) if hook is not None else None


context.database_for[:] = [database_of]


def get_account(account: Any = None) -> Account:
    """The Account row named as :func:`known` names it."""
    if isinstance(account, Account):
        return account
    return Account.objects.get(pk=known(account).pk)


def current() -> Known:
    return known(None)


@contextmanager
def acting_for(account: Any = None) -> Iterator[Known]:
    """Act for ``account`` (see :func:`known`) inside the block: the rows made there belong to
    it and the client calls Plugipay with its credentials (or the platform key on behalf of
    it)."""
    found = known(account)
    if _cache.get("uncopied"):
        _copy_if_missed(found.alias)
    token = acting.set(found.acting)
    try:
        yield found
    finally:
        acting.reset(token)


def learn_plugipay_id(pk: int, plugipay_id: str) -> None:
    """Record the ``acc_…`` id of an account whose id was not configured (first event)."""
    Account.objects.filter(pk=pk, plugipay_id__isnull=True).update(plugipay_id=plugipay_id)
    forget(tables=False)


def takes_account(func: Callable[..., T]) -> Callable[..., T]:
    """Give a service the ``account=`` keyword: it acts for that account (an Account, an
    alias, an ``acc_…`` id); without it, for the account of the first row passed in (a row
    carries its own), else for the account acting already, else the default account. A row
    of another account than ``account=`` names is refused (``ValueError``)."""

    @functools.wraps(func)
    def wrapper(*args: Any, account: Any = None, **kwargs: Any) -> T:
        own = next(
            (
                value.__dict__["account_id"]
                for value in (*args, *kwargs.values())
                if isinstance(value, models.Model)
                and value._meta.app_label == "django_plugipay"  # a project's model may have one
                and value.__dict__.get("account_id")
            ),
            None,
        )
        if account is None:
            account = own
        elif own is not None and known(account).pk != own:
            # Another account's row: its pk may name another row in that account's database
            # (another buyer's payment), and Plugipay knows it under its own account only.
            raise ValueError(
                f"{func.__name__}() was given a row of account {known(own).alias!r} with "
                f"account={known(account).alias!r}: leave account= out (a row acts for its "
                "own account) or pass a row of that account."
            )
        if account is None and acting.get() is not None:
            return func(*args, **kwargs)
        with acting_for(account):
            return func(*args, **kwargs)

    return wrapper


def several() -> bool:
    """Does the project serve more than one account: configured, or provisioned and known to
    this process? Reads the settings, not the database."""
    if app_settings.many_accounts:
        return True
    state = _cache.get("state")
    return state is not None and len(state["pk"]) > 1


def every() -> list[Known]:
    """Every account the project serves, the default first: each configured alias and each
    account provisioned since. A single-account project (one configured account, no
    ``ACCOUNT_DATABASE``) gets the default account alone, with no query."""
    if not several() and app_settings.raw("ACCOUNT_DATABASE") is None:
        return [_default()]
    rows = _state()["pk"].values()
    default = _default()
    return [default] + sorted((k for k in rows if k.pk != default.pk), key=lambda k: k.pk)


def own(queryset: Any) -> Any:
    """``queryset`` narrowed to the rows of the account acting, when a sweep or a scheduled
    task acts for each account in turn (:func:`each_account`); otherwise unchanged (a
    single-account project's statements stay the same)."""
    now = acting.get()
    if now is None or not several():
        return queryset
    return queryset.filter(account_id=now.pk)


def one_per_database() -> list[Known]:
    """An account of each database the accounts' rows are kept in (``ACCOUNT_DATABASE``), the
    default database's first: acting for each in turn reads every database once (a lookup by
    a Plugipay id, unique across accounts). A single database: the default account alone."""
    if app_settings.raw("ACCOUNT_DATABASE") is None:
        return [known()]
    seen: dict[str | None, Known] = {}
    for account in every():
        seen.setdefault(database_of(account.alias), account)
    return sorted(seen.values(), key=lambda account: database_of(account.alias) is not None)


def read_every_account(work: Callable[[], T]) -> list[T]:
    """``work()`` once for every account (:func:`every`), each acting for it (its database,
    its rows: see :func:`own`); return the results — ``[work()]`` alone when an account acts
    already (a command's ``--account``). Unlike :func:`each_account`, a database that cannot
    be read stops it: the ``DatabaseError`` raised names the account, so a report (the doctor,
    a system check) never leaves an account out and says all is well."""
    if acting.get() is not None:
        return [work()]
    done = []
    for account in every():
        with acting_for(account.pk):
            try:
                done.append(work())
            except DatabaseError as exc:
                raise DatabaseError(f"account {account.alias!r}'s database: {exc}") from exc
    return done


def each_account(work: Callable[[], T], *, what: str) -> dict[str, T]:
    """Run ``work`` once for every account (:func:`every`), each inside :func:`acting_for`
    (its database, its credentials); return each result by alias. One account's failure is
    logged and does not stop the others (absent from the result)."""
    done: dict[str, T] = {}
    for account in every():
        try:
            with acting_for(account.pk):
                done[account.alias] = work()
        except Exception as exc:
            discard_lost_connection(exc)
            logger.warning(
                "plugipay %s failed for account %s: %s: %s",
                what,
                account.alias,
                type(exc).__name__,
                exc,
                extra={"account": account.alias, "work": what},
            )
    return done


def _user_links() -> list[tuple[type[models.Model], str]]:
    """``(model, attname)`` of this app's links to the project's users that are set to NULL
    when the user is deleted (a customer's ``user``, a refund's ``requested_by``, …)."""
    from django.apps import apps
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    return [
        (model, field.attname)
        for model in apps.get_app_config("django_plugipay").get_models()
        for field in model._meta.concrete_fields
        if field.is_relation
        and field.related_model is user_model
        and getattr(field.remote_field, "on_delete", None) is models.SET_NULL
    ]


def unlink_user(pk: Any, *, besides: str | None = None) -> None:
    """Set this app's links to the user ``pk`` to NULL in each database the accounts' rows are
    kept in but ``besides`` (``ACCOUNT_DATABASE``): the ORM does it only in the database the
    user is deleted from, and a tenant database has no constraint to do it. A database that
    cannot be reached is logged and left (its rows keep the id; ``user`` reads as missing)."""
    databases = {database_of(account.alias) or Account.objects.db for account in every()}
    for database in sorted(databases - {besides}):
        try:
            with transaction.atomic(using=database):
                for model, attname in _user_links():
                    manager = model._base_manager.using(database)
                    manager.filter(**{attname: pk}).update(**{attname: None})
        except Exception as exc:  # noqa: BLE001 - the user is deleted: said, not raised
            discard_lost_connection(exc, using=database)
            logger.error(
                "plugipay: the links to deleted user %s were not cleared in database %s: %s",
                pk,
                database,
                exc,
                extra={"database": database},
            )


def _user_deleted(sender: Any, instance: models.Model, using: str, **kwargs: Any) -> None:
    if app_settings.raw("ACCOUNT_DATABASE") is None:
        return  # one database: the ORM's SET_NULL did it
    pk = instance.pk
    transaction.on_commit(lambda: unlink_user(pk, besides=using), using=using)


def watch_user_deletions() -> None:
    """Clear the links to a deleted user in the other databases too (:func:`unlink_user`)."""
    from django.apps import apps
    from django.contrib.auth import get_user_model
    from django.db.models.signals import post_delete

    # The user model and each proxy of it (a user deleted through a proxy is sent with the
    # proxy); not every model: a receiver for all would end Django's fast deletes everywhere.
    user_model = get_user_model()
    for model in apps.get_models(include_auto_created=False):
        if model._meta.concrete_model is user_model:
            post_delete.connect(
                _user_deleted,
                sender=model,
                dispatch_uid=f"plugipay_user_deleted_{model._meta.label}",
            )
