"""System checks: every misconfiguration of ``settings.PLUGIPAY`` has an id and a hint."""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Info, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.urls import NoReverseMatch, reverse

from django_plugipay.conf import (
    ACCOUNT_KEYS,
    CREDENTIAL_FIX,
    DEFAULT_ACCOUNT,
    DEFAULTS,
    ENV_FALLBACKS,
    PROCESSING_MODES,
    TASKS_MODES,
    app_settings,
    credential_problem,
)
from django_plugipay.webhooks import DEFAULT_TOLERANCE

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}  # noqa: S104 - compared, not bound


def _reverses(name: str) -> bool:
    try:
        reverse(name)
    except NoReverseMatch:
        return False
    return True


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@register(Tags.security, deploy=False)
def check_settings(app_configs=None, **kwargs) -> list:
    errors: list = []
    user = getattr(settings, "PLUGIPAY", None)
    if user is not None and not isinstance(user, dict):
        return [
            Error(
                "settings.PLUGIPAY must be a dict.",
                id="django_plugipay.E010",
                hint="PLUGIPAY = {'KEY_ID': ..., 'SECRET': ..., 'WEBHOOK_SECRETS': [...]}",
            )
        ]
    user = user or {}

    unknown = sorted(set(user) - set(DEFAULTS))
    if unknown:
        meant = {name: difflib.get_close_matches(str(name), DEFAULTS, n=1) for name in unknown}
        guesses = [f"{name} → {close[0]}" for name, close in meant.items() if close]
        errors.append(
            Warning(
                f"Unknown PLUGIPAY settings: {', '.join(map(str, unknown))}.",
                id="django_plugipay.W002",
                hint=f"Did you mean: {'; '.join(guesses)}?"
                if guesses
                else f"Known settings: {', '.join(sorted(DEFAULTS))}. Check the spelling.",
            )
        )

    if not app_settings.API_KEY and not (app_settings.KEY_ID and app_settings.SECRET):
        missing = [n for n in ("KEY_ID", "SECRET") if not getattr(app_settings, n)]
        errors.append(
            Error(
                "No Plugipay credentials are configured."
                if len(missing) == 2
                else f"Plugipay's {missing[0]} is missing (and no API_KEY is set).",
                id="django_plugipay.E001",
                hint="Set PLUGIPAY['KEY_ID'] and PLUGIPAY['SECRET'] (or the PLUGIPAY_KEY_ID and "
                "PLUGIPAY_SECRET environment variables), or PLUGIPAY['API_KEY'].",
            )
        )

    for name in ("KEY_ID", "SECRET", "API_KEY", "WEBHOOK_SECRETS"):
        where = f"PLUGIPAY[{name!r}]" if name in user else f"{ENV_FALLBACKS[name]} (environment)"
        errors.extend(_credential_errors(where, app_settings.raw(name), "django_plugipay.E012"))

    secrets = app_settings.raw("WEBHOOK_SECRETS")
    if "WEBHOOK_SECRETS" not in user and isinstance(secrets, str):
        # PLUGIPAY_WEBHOOK_SECRET: one secret, or "new,old" while rotating
        secrets = app_settings.WEBHOOK_SECRETS
    if not isinstance(secrets, (list, tuple)) or not all(isinstance(s, str) and s for s in secrets):
        errors.append(
            Error(
                "PLUGIPAY['WEBHOOK_SECRETS'] must be a list of non-empty strings.",
                id="django_plugipay.E003",
                hint="Wrap one secret in a list: 'WEBHOOK_SECRETS': ['whsec_…']. List both the "
                "old and the new secret while rotating.",
            )
        )
    elif not secrets and _reverses("plugipay:webhook"):
        errors.append(
            Error(
                "The Plugipay webhook URL is installed but no webhook secret is configured, so "
                "every delivery will be rejected.",
                id="django_plugipay.E002",
                hint="Copy the endpoint's signing secret (whsec_…) into "
                "PLUGIPAY['WEBHOOK_SECRETS'] or PLUGIPAY_WEBHOOK_SECRET.",
            )
        )

    tolerance = app_settings.raw("WEBHOOK_TOLERANCE")
    if not _is_int(tolerance) or tolerance <= 0:
        errors.append(
            Error(
                f"PLUGIPAY['WEBHOOK_TOLERANCE'] must be a positive integer, not {tolerance!r}.",
                id="django_plugipay.E004",
                hint=f"Seconds of clock difference to accept; {DEFAULT_TOLERANCE} is "
                "Plugipay's own tolerance.",
            )
        )

    processing = app_settings.raw("WEBHOOK_PROCESSING")
    if processing not in PROCESSING_MODES:
        errors.append(
            Error(
                f"PLUGIPAY['WEBHOOK_PROCESSING'] is {processing!r}.",
                id="django_plugipay.E005",
                hint="Use 'inline' (apply in the request) or 'celery' (apply in a task).",
            )
        )

    for name in (
        "TIMEOUT",
        "MAX_RETRIES",
        "SESSION_EXPIRES_IN",
        "API_SYNC_INTERVAL",
        "RETRY_BACKOFF",
        "STRANDED_AFTER",
        "PUBLISH_TIMEOUT",
    ):
        value = app_settings.raw(name)
        # waiting no time for the broker would give up every message
        positive = name == "PUBLISH_TIMEOUT"
        kind = "a positive" if positive else "a non-negative"
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (value <= 0 if positive else value < 0)
        ):
            errors.append(
                Error(
                    f"PLUGIPAY[{name!r}] must be {kind} number, not {value!r}.",
                    id="django_plugipay.E006",
                    hint=f"The default is {DEFAULTS[name]!r}.",
                )
            )

    methods = app_settings.raw("DEFAULT_METHODS")
    exponents = app_settings.raw("CURRENCY_EXPONENTS")
    if (
        not isinstance(methods, (list, tuple))
        or not methods
        or not all(isinstance(m, str) for m in methods)
    ):
        errors.append(
            Error(
                "PLUGIPAY['DEFAULT_METHODS'] must be a non-empty list of method names.",
                id="django_plugipay.E007",
                hint="For example ['card', 'qris', 'va', 'ewallet'].",
            )
        )
    if not isinstance(exponents, dict) or not all(
        isinstance(k, str) and _is_int(v) and 0 <= v <= 4 for k, v in exponents.items()
    ):
        errors.append(
            Error(
                "PLUGIPAY['CURRENCY_EXPONENTS'] must map currency codes to 0–4.",
                id="django_plugipay.E008",
                hint="For example {'IDR': 0, 'USD': 2}.",
            )
        )

    base_url = app_settings.raw("BASE_URL")
    problem = base_url_problem(base_url)
    if problem is not None:
        check_id, message, fix = problem
        errors.append(Error(message, id=check_id, hint=fix[0].upper() + fix[1:] + "."))
    host = urlsplit(str(base_url)).hostname or ""
    if not settings.DEBUG and host in LOOPBACK_HOSTS:
        errors.append(
            Warning(
                f"BASE_URL ({setting_name('BASE_URL')}) points at {base_url} while DEBUG is False.",
                id="django_plugipay.W001",
                hint="That is the offline sandbox. Remove it (or set https://plugipay.com) "
                "before going live.",
            )
        )

    errors.extend(_check_api())
    errors.extend(_check_subscribe_api())
    errors.extend(_check_api_account())
    errors.extend(_check_api_billing_owners())
    return errors


def _credential_errors(where: str, value: Any, check_id: str) -> list:
    """An error for ``value`` (a key, a secret, or a list of secrets) that cannot be sent."""
    listed = isinstance(value, (list, tuple))
    values = value if listed else [value]
    if isinstance(value, str) and "WEBHOOK_SECRET" in where:
        values = [s.strip() for s in value.split(",")]  # "new,old" during a rotation
    for index, one in enumerate(values):
        problem = credential_problem(one)
        if problem is not None:
            item = f"[{index}]" if listed else ""
            return [Error(f"{where}{item} {problem}.", id=check_id, hint=CREDENTIAL_FIX)]
    return []


def _is_account_router(entry: Any) -> bool:
    """A ``DATABASE_ROUTERS`` entry (a dotted path or an instance) that is the account router
    or a subclass of it (made as Django makes it; one that cannot be imported is not)."""
    from django.db.utils import ConnectionRouter

    from django_plugipay.routers import AccountRouter

    if entry is None:
        return False
    try:
        [made] = ConnectionRouter([entry]).routers
    except ImportError:
        return False
    return isinstance(made, AccountRouter)


def _account_database_problems(configured: Any) -> list:
    """With ``ACCOUNT_DATABASE`` and the router installed: the router first of
    ``DATABASE_ROUTERS`` (a router before it that answers sends every account's rows where it
    says), and the hook naming, for each configured account, a database the project has."""
    problems: list = []
    router = "django_plugipay.routers.AccountRouter"
    first = next(iter(getattr(settings, "DATABASE_ROUTERS", [])), None)
    if not _is_account_router(first):
        problems.append(
            Warning(
                "PLUGIPAY['ACCOUNT_DATABASE'] is set but the account router is not the first of "
                "DATABASE_ROUTERS: a router before it that answers for django_plugipay's models "
                "(a primary/replica router answers for every model) sends every account's rows "
                "to the database it names.",
                id="django_plugipay.W044",
                hint=f'Put "{router}" first in DATABASE_ROUTERS.',
            )
        )
    aliases = [DEFAULT_ACCOUNT, *(configured if isinstance(configured, dict) else ())]
    try:
        named = {alias: app_settings.ACCOUNT_DATABASE(alias) for alias in aliases}
    except Exception as exc:  # noqa: BLE001 - the project's hook, said as it failed
        # not an error: a hook that reads the project's tables fails before `migrate` made
        # them, and an error here would keep `migrate` from making them
        named = {}
        problems.append(
            Warning(
                f"PLUGIPAY['ACCOUNT_DATABASE'] raised {type(exc).__name__} when asked for the "
                f"configured accounts' databases: {exc}.",
                id="django_plugipay.W046",
                hint="The hook takes an account's alias and returns a database alias, or None "
                "for the default database; if it reads your tables, migrate them first.",
            )
        )
    unknown = {alias: db for alias, db in named.items() if db is not None}
    unknown = {alias: db for alias, db in unknown.items() if db not in settings.DATABASES}
    if unknown:
        listed = ", ".join(f"{alias} → {db!r}" for alias, db in sorted(unknown.items()))
        problems.append(
            Error(
                f"PLUGIPAY['ACCOUNT_DATABASE'] names databases DATABASES does not have: {listed}.",
                id="django_plugipay.E078",
                hint="Add them to DATABASES and migrate each (manage.py migrate --database …), "
                "or fix the hook.",
            )
        )
    return problems


@register(Tags.security, deploy=False)
def check_accounts(app_configs=None, **kwargs) -> list:
    """``PLUGIPAY["ACCOUNTS"]``: each alias a dict of known keys, with a way to call Plugipay
    and, beside other accounts, the secrets its events are verified with."""
    user = getattr(settings, "PLUGIPAY", None)
    value = user.get("ACCOUNTS") if isinstance(user, dict) else None
    routed = isinstance(user, dict) and user.get("ACCOUNT_DATABASE") is not None
    router = "django_plugipay.routers.AccountRouter"
    if routed and not any(_is_account_router(r) for r in getattr(settings, "DATABASE_ROUTERS", [])):
        return [
            Error(
                "PLUGIPAY['ACCOUNT_DATABASE'] is set but the account router is not installed.",
                id="django_plugipay.E075",
                hint=f'Add DATABASE_ROUTERS = ["{router}"] (before your own routers).',
            )
        ]
    problems = _account_database_problems(value) if routed else []
    if value is None or value == {}:
        return problems
    example = (
        "'ACCOUNTS': {'brand_b': {'KEY_ID': …, 'SECRET': …, 'WEBHOOK_SECRETS': ['whsec_…']}, "
        "'merchant': {'ON_BEHALF_OF': 'acc_…', 'WEBHOOK_SECRETS': ['whsec_…']}}"
    )
    if not isinstance(value, dict) or not all(
        isinstance(a, str) and a and isinstance(e, dict) for a, e in value.items()
    ):
        return [
            *problems,
            Error(
                "PLUGIPAY['ACCOUNTS'] must be a dict of alias → dict.",
                id="django_plugipay.E070",
                hint=example,
            ),
        ]
    errors: list = []
    for alias, entry in value.items():
        name = f"PLUGIPAY['ACCOUNTS'][{alias!r}]"
        unknown = sorted(set(entry) - set(ACCOUNT_KEYS))
        if unknown:
            errors.append(
                Error(
                    f"{name} has unknown keys: {', '.join(map(str, unknown))}.",
                    id="django_plugipay.E071",
                    hint=f"An account takes {', '.join(ACCOUNT_KEYS)}.",
                )
            )
        if alias == DEFAULT_ACCOUNT:
            errors.append(
                Error(
                    f"{name}: the alias 'default' is the top-level credentials' account.",
                    id="django_plugipay.E072",
                    hint="Keep the default account's settings at the top level of PLUGIPAY and "
                    "give this account another alias.",
                )
            )
            continue
        behalf, own_id = entry.get("ON_BEHALF_OF"), entry.get("ACCOUNT_ID")
        for key, given in (("ON_BEHALF_OF", behalf), ("ACCOUNT_ID", own_id)):
            if given is not None and not (isinstance(given, str) and given.startswith("acc_")):
                errors.append(
                    Error(
                        f"{name}[{key!r}] must be a Plugipay account id (acc_…).",
                        id="django_plugipay.E073",
                        hint="Copy the account id from the Plugipay dashboard, e.g. 'acc_01H…'.",
                    )
                )
        for key in ("KEY_ID", "SECRET", "API_KEY", "WEBHOOK_SECRETS"):
            errors.extend(
                _credential_errors(f"{name}[{key!r}]", entry.get(key), "django_plugipay.E077")
            )
        own = entry.get("API_KEY") or (entry.get("KEY_ID") and entry.get("SECRET"))
        if not own and not behalf:
            errors.append(
                Error(
                    f"{name} has no credentials and no ON_BEHALF_OF.",
                    id="django_plugipay.E074",
                    hint="Give the account its own KEY_ID and SECRET (or API_KEY), or the "
                    "ON_BEHALF_OF account id the top-level platform key acts for.",
                )
            )
        secrets = entry.get("WEBHOOK_SECRETS")
        if not isinstance(secrets, (list, tuple, str)) or not secrets:
            errors.append(
                Warning(
                    f"{name} has no WEBHOOK_SECRETS: its events cannot be verified.",
                    id="django_plugipay.W070",
                    hint="Add the signing secret (whsec_…) of the account's webhook endpoint: "
                    "'WEBHOOK_SECRETS': ['whsec_…'].",
                )
            )
    return problems + errors


def setting_name(name: str) -> str:
    """Where the setting ``name`` is read from, as the fix should name it: the ``PLUGIPAY``
    key when the settings give it, else its environment variable when one stands in."""
    given = getattr(settings, "PLUGIPAY", None) or {}
    if name not in given and name in ENV_FALLBACKS and ENV_FALLBACKS[name] in os.environ:
        return f"the {ENV_FALLBACKS[name]} environment variable"
    return f"PLUGIPAY[{name!r}]"


def base_url_problem(value: object) -> tuple[str, str, str] | None:
    """``(check id, what is wrong, the fix)`` for a ``BASE_URL`` that cannot work as written
    (no http/https scheme, or the API prefix included), else None."""
    text = str(value).strip()
    parts = urlsplit(text)
    rest = text.split("://", 1)[-1].rstrip("/")
    prefix = app_settings.API_PREFIX
    if rest.endswith(prefix):
        rest = rest[: -len(prefix)].rstrip("/")
    host = rest.split("/")[0].rsplit(":", 1)[0].strip("[]")
    fixed = f"{'http' if host in LOOPBACK_HOSTS else 'https'}://{rest}"
    where = setting_name("BASE_URL")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return (
            "django_plugipay.E051",
            f"BASE_URL {text!r} ({where}) does not start with http:// or https://.",
            f"set {where} to {fixed!r}",
        )
    if parts.path.rstrip("/").endswith(prefix):
        return (
            "django_plugipay.E052",
            f"BASE_URL {text!r} ({where}) ends with the API prefix {prefix}, which is added "
            f"to every request (…{prefix}{prefix}/events answers 404).",
            f"set {where} to {fixed!r} (API_PREFIX adds {prefix})",
        )
    return None


def _check_api() -> list:
    try:
        target = app_settings.API_CHECKOUT_PARAMS
    except ImproperlyConfigured as exc:
        return [
            Error(str(exc), id="django_plugipay.E009", hint="Give a dotted path to a callable.")
        ]
    if target is None:
        if _reverses("plugipay-api:checkout-session-list"):
            return [
                Warning(
                    "The Plugipay API is installed but PLUGIPAY['API_CHECKOUT_PARAMS'] is not set, "
                    "so POST checkout-sessions/ answers 404.",
                    id="django_plugipay.W003",
                    hint="Point it at a callable (request, validated_data) -> dict with amount, "
                    "currency, success_url, cancel_url… that decides what is sold.",
                )
            ]
        return []
    if not callable(target):
        return [
            Error(
                "PLUGIPAY['API_CHECKOUT_PARAMS'] is not callable.",
                id="django_plugipay.E009",
                hint="Give a dotted path to a callable.",
            )
        ]
    return []


def _check_subscribe_api() -> list:
    try:
        target = app_settings.API_SUBSCRIBE_PARAMS
    except ImproperlyConfigured as exc:
        target, problem = None, str(exc)
    else:
        if target is None:
            if _reverses("plugipay-api:subscription-list"):
                return [
                    Warning(
                        "The Plugipay API is installed but PLUGIPAY['API_SUBSCRIBE_PARAMS'] is "
                        "not set, so POST subscriptions/ answers 404.",
                        id="django_plugipay.W035",
                        hint="Point it at a callable (request, price) -> dict | None that says "
                        "which prices a user may subscribe to (None refuses) and with what "
                        "options.",
                    )
                ]
            return []
        problem = "PLUGIPAY['API_SUBSCRIBE_PARAMS'] is not callable."
    if not callable(target):
        return [
            Warning(
                problem,
                id="django_plugipay.W036",
                hint="Give a dotted path to a callable (request, price) -> dict | None.",
            )
        ]
    return []


def _check_api_account() -> list:
    """``API_ACCOUNT``: None, or a callable (request) -> alias | None."""
    return _optional_callable(
        "API_ACCOUNT",
        "django_plugipay.E076",
        "Give a dotted path to a callable (request) -> account alias | None, or leave it unset "
        "(every API request acts for the default account).",
    )


def _check_api_billing_owners() -> list:
    """``API_BILLING_OWNERS``: None, or a callable (request) -> iterable of billing owners."""
    return _optional_callable(
        "API_BILLING_OWNERS",
        "django_plugipay.E079",
        "Give a dotted path to a callable (request) -> the billing owners (teams) whose "
        "subscriptions the user may read, or leave it unset (the user's own only).",
    )


def _optional_callable(name: str, check_id: str, hint: str) -> list:
    """An import-string setting that is None or a callable: an error naming ``check_id``
    when it cannot be imported or is not callable."""
    try:
        target = getattr(app_settings, name)
    except ImproperlyConfigured as exc:
        problem = str(exc)
    else:
        if target is None or callable(target):
            return []
        problem = f"PLUGIPAY[{name!r}] is not callable."
    return [Error(problem, id=check_id, hint=hint)]


SQLITE_OPTIONS_HINT = '"OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20}'


@register(Tags.compatibility)
def check_database(app_configs=None, **kwargs) -> list:
    """Recommend IMMEDIATE transactions on SQLite (the app copes without; other code may not);
    require them with ATOMIC_REQUESTS, where every request is one transaction nothing retries;
    recommend health checks on persistent connections."""
    messages: list = []
    for alias, config in settings.DATABASES.items():
        if "sqlite3" not in str(config.get("ENGINE", "")):
            messages.extend(connection_health_warnings(alias, config))
            continue
        mode = str((config.get("OPTIONS") or {}).get("transaction_mode") or "").upper()
        if mode in ("IMMEDIATE", "EXCLUSIVE"):
            continue
        if config.get("ATOMIC_REQUESTS"):
            messages.append(
                Error(
                    f"DATABASES[{alias!r}] has ATOMIC_REQUESTS on SQLite in the default "
                    "(deferred) transaction mode: a request that reads, then writes while a "
                    "webhook writes fails at once with 'database is locked' (a 500), and the "
                    "request's transaction cannot be retried.",
                    id="django_plugipay.E050",
                    hint=f'Add "OPTIONS": {{"transaction_mode": "IMMEDIATE"}} to '
                    f"DATABASES[{alias!r}] (each request then waits for the write lock).",
                )
            )
            continue
        messages.append(
            Warning(
                f"DATABASES[{alias!r}] is SQLite in the default (deferred) transaction mode. "
                "django-plugipay takes the write lock up front and retries its own "
                "transactions, so it works as is, but your own code writing at the same "
                "moment as a webhook may still see 'database is locked'.",
                id="django_plugipay.W004",
                hint=f"Recommended, not required: add {SQLITE_OPTIONS_HINT} to "
                f"DATABASES[{alias!r}].",
            )
        )
    return messages


def connection_health_warnings(alias: str, config: Mapping[str, Any]) -> list:
    """Persistent connections without health checks fail once each after a database restart."""
    max_age = config.get("CONN_MAX_AGE", 0)
    if max_age == 0 or config.get("CONN_HEALTH_CHECKS", False):
        return []
    return [
        Warning(
            f"DATABASES[{alias!r}] keeps connections open (CONN_MAX_AGE={max_age!r}) without "
            "CONN_HEALTH_CHECKS. After a database restart each idle connection fails once when "
            "it is next used: django-plugipay retries its own transactions on a fresh "
            "connection, but your own views and the admin answer 500.",
            id="django_plugipay.W060",
            hint=f"Set 'CONN_HEALTH_CHECKS': True in DATABASES[{alias!r}] (see the deployment "
            "guide).",
        )
    ]


@register(Tags.compatibility)
def check_tasks(app_configs=None, **kwargs) -> list:
    """Say how task work runs (``TASKS``), and how to switch to the production setup."""
    from django_plugipay.services._queue import (
        celery_app,
        django_task_refusal,
        task_backend,
        tasks_framework,
    )

    setting = app_settings.raw("TASKS")
    if setting not in TASKS_MODES:
        return [
            Error(
                f"PLUGIPAY['TASKS'] is {setting!r}.",
                id="django_plugipay.E011",
                hint="Use 'auto' (Celery when your project has a Celery app, else a django.tasks "
                "backend with a worker when one is configured, else in-process), 'celery', "
                "'django' or 'inline'.",
            )
        ]
    app = celery_app() if setting in ("auto", "celery") else None
    if setting == "celery" and app is None:
        return [
            Warning(
                "PLUGIPAY['TASKS'] is 'celery' but this project has created no Celery app, so "
                "tasks go to Celery's unconfigured default broker.",
                id="django_plugipay.W005",
                hint="Create the app (<project>/celery.py, imported in <project>/__init__.py; see "
                "docs/how-to/celery.md) or use TASKS = 'auto'.",
            )
        ]
    refused = django_task_refusal()
    if refused is not None and setting in ("auto", "django") and app is None:
        explicit = setting == "django"
        return [
            (Error if explicit else Warning)(
                f"The django.tasks backend PLUGIPAY['TASKS_BACKEND'] "
                f"({app_settings.TASKS_BACKEND!r}) refuses django-plugipay's task on queue "
                f"PLUGIPAY['TASKS_QUEUE'] ({app_settings.raw('TASKS_QUEUE')!r}): {refused}"
                + ("" if explicit else " Task work runs in-process meanwhile (TASKS = 'auto')."),
                id="django_plugipay.E080" if explicit else "django_plugipay.W080",
                hint="Set PLUGIPAY['TASKS_BACKEND'] to an alias of settings.TASKS and "
                "PLUGIPAY['TASKS_QUEUE'] to a queue its QUEUES lists (and run its worker on "
                "that queue), or set PLUGIPAY['TASKS'] to 'celery' or 'inline'.",
            )
        ]
    backend = task_backend() if setting in ("auto", "django") and app is None else None
    if setting == "django" and (tasks_framework() is None or backend is None):
        return [
            Warning(
                "PLUGIPAY['TASKS'] is 'django' but "
                + (
                    "Django's tasks framework is not available (Django 6.0+, or the "
                    "django-tasks package on Django 5.2)."
                    if tasks_framework() is None
                    else "the default django.tasks backend does not queue (settings.TASKS is "
                    "unset, or names the immediate or dummy backend): work runs in the request."
                ),
                id="django_plugipay.W031",
                hint="Configure a backend with a worker in settings.TASKS (e.g. django-tasks-db's "
                "DatabaseBackend and `manage.py db_worker`; see 'django.tasks instead of "
                "Celery' in docs/how-to/celery.md).",
            )
        ]
    if backend is not None:
        return [
            Info(
                f"Plugipay task work goes to the django.tasks backend {type(backend).__name__} "
                f"({backend.alias!r})" + (" (TASKS = 'auto')." if setting == "auto" else "."),
                id="django_plugipay.I031",
                hint="Run its worker (django-tasks-db: `manage.py db_worker`), and cron "
                "`manage.py plugipay_sync` for reconciliation (see 'django.tasks instead of "
                "Celery' in docs/how-to/celery.md).",
            )
        ]
    if setting == "inline" or (setting == "auto" and app is None):
        return [
            Info(
                "Plugipay task work (refund creation, queued webhook events) runs in-process, "
                "after commit, in the request that asked for it"
                + (
                    " (TASKS = 'auto', no Celery app and no queuing django.tasks backend)."
                    if setting == "auto"
                    else "."
                ),
                id="django_plugipay.I001",
                hint="Fine to start with. For production, create a Celery app and run a "
                "worker (and beat for reconciliation), or configure a django.tasks backend with "
                "a worker; TASKS = 'auto' then uses it.",
            )
        ]
    assert app is not None  # every setting without a Celery app returned above
    return [
        Info(
            f"Plugipay task work goes to the Celery app {app.main!r}"
            + (" (TASKS = 'auto')." if setting == "auto" else "."),
            id="django_plugipay.I002",
            hint="Run a worker (and beat for reconciliation). If the broker is down, refunds "
            "stay requested with the reason and `manage.py plugipay_sync` sends them.",
        )
    ]


@register(Tags.urls)
def check_webhook_url(app_configs=None, **kwargs) -> list:
    """Plugipay's deliveries need the webhook view; without the include every one is a 404."""
    if _reverses("plugipay:webhook"):
        return []
    return [
        Warning(
            "The Plugipay webhook URL (plugipay:webhook) is not in your URLconf, so every "
            "webhook delivery will get 404 and nothing is applied.",
            id="django_plugipay.W006",
            hint='Add path("plugipay/", include("django_plugipay.urls")) to ROOT_URLCONF.',
        )
    ]


@register(Tags.database)
def check_deliveries(app_configs=None, databases=None, **kwargs) -> list:
    """Durable receivers that gave up, or wait with nothing running them (``check --database
    default`` and ``migrate`` run database checks; so does ``plugipay_doctor``)."""
    from django.db import DatabaseError

    from django_plugipay.services.deliveries import OVERDUE_AFTER, delivery_health

    if not databases:
        return []
    try:
        health = delivery_health()
    except DatabaseError:  # not migrated yet
        return []
    messages: list = []
    if health.dead:
        messages.append(
            Warning(
                f"Durable receiver deliveries dead: {health.dead} (each failed "
                f"PLUGIPAY['DELIVERY_MAX_ATTEMPTS'] times and is not retried any more).",
                id="django_plugipay.W040",
                hint="Read the last error under Plugipay › Deliveries in the admin, fix the "
                "receiver, then use 'Run again now' or `manage.py plugipay_replay --deliveries`.",
            )
        )
    if health.overdue:
        hours = int(OVERDUE_AFTER.total_seconds() // 3600)
        late = "an hour" if hours == 1 else f"{hours} hours"
        messages.append(
            Warning(
                f"Durable receiver deliveries overdue by more than {late}: "
                f"{health.overdue} (nothing runs them).",
                id="django_plugipay.W041",
                hint="Run a Celery worker and beat with django_plugipay.run_deliveries "
                "scheduled (see docs/how-to/celery.md), or `manage.py plugipay_sync` from cron.",
            )
        )
    return messages


@register(Tags.database)
def check_events(app_configs=None, databases=None, **kwargs) -> list:
    """Events failed or left unapplied for over an hour (a database check, like
    :func:`check_deliveries`)."""
    from django.db import DatabaseError

    from django_plugipay.services.events import event_health

    if not databases:
        return []
    try:
        health = event_health()
    except DatabaseError:  # not migrated yet
        return []
    messages: list = []
    if health.failed:
        messages.append(
            Warning(
                f"{health.failed} webhook events received over an hour ago are stored failed: "
                "what they carry is not in the mirror.",
                id="django_plugipay.W042",
                hint="Read the error under Plugipay › Webhook events in the admin, fix the cause, "
                "then `manage.py plugipay_replay` (or 'Reprocess' there); 'Dismiss' one you will "
                "not apply (or `manage.py plugipay_replay --dismiss evt_…`).",
            )
        )
    if health.waiting:
        messages.append(
            Warning(
                f"{health.waiting} webhook events recorded over an hour ago are not applied yet: "
                "nothing applies them.",
                id="django_plugipay.W043",
                hint="Run a worker for the tasks (Celery's or your django.tasks backend's; "
                "`manage.py plugipay_doctor` checks a Celery one) and schedule "
                "django_plugipay.sweep, which sends again what a broker outage lost (see "
                "docs/how-to/celery.md).",
            )
        )
    return messages


@register(Tags.database)
def check_refunds(app_configs=None, databases=None, **kwargs) -> list:
    """Refunds no send has reached Plugipay with for over an hour (a database check)."""
    from django.db import DatabaseError

    from django_plugipay import accounts
    from django_plugipay.services.refunds import refunds_not_submitted

    if not databases:
        return []
    try:
        stuck = sum(accounts.read_every_account(lambda: refunds_not_submitted().count()))
    except DatabaseError:  # not migrated yet
        return []
    if not stuck:
        return []
    return [
        Warning(
            f"Refunds requested over an hour ago and not sent to Plugipay yet: {stuck}; their "
            "amount stays held and the customers wait.",
            id="django_plugipay.W045",
            hint="Read the error on each under Plugipay › Refunds (or `manage.py "
            "plugipay_doctor`), fix its cause (the broker, the API key's refund permission, "
            "the server's clock); the sweep then sends them with their keys.",
        )
    ]


@register(Tags.database)
def check_webhook_endpoint(app_configs=None, databases=None, **kwargs) -> list:
    """Report an endpoint Plugipay disabled (known from its recorded
    ``webhook_endpoint.disabled`` event, when the database may be read)."""
    from django.db import DatabaseError

    from django_plugipay.models import WebhookEvent

    if not databases or "default" not in databases:
        return []
    try:
        event = WebhookEvent.objects.endpoint_disabled()
    except DatabaseError:  # not migrated yet
        return []
    if event is None:
        return []
    return [
        Warning(
            f"Plugipay disabled a webhook endpoint (event {event.event_id}, "
            f"{event.occurred_at or event.received_at}) and no webhook has arrived since.",
            id="django_plugipay.W032",
            hint="Fix what made deliveries fail, then `manage.py plugipay_webhooks enable`; "
            "`manage.py plugipay_doctor` shows the endpoint and its reason.",
        )
    ]


def webhook_redirect() -> tuple[int, str] | None:
    """``(status, location)`` when this project's middleware answers a POST to the webhook
    URL with a redirect (a login page, an https or language redirect), else None.

    The request is unsigned and empty, so it goes through the whole middleware stack but the
    view itself stores nothing (it answers 401). Plugipay never follows a redirect: every
    delivery to such a URL fails.
    """
    from django.test import Client

    try:
        path = reverse("plugipay:webhook")
    except NoReverseMatch:
        return None
    hosts = [h for h in settings.ALLOWED_HOSTS if h not in ("*", "") and not h.startswith(".")]
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    # The probe's own 401 is expected: keep "Unauthorized: /plugipay/webhook/" off the console.
    quiet = [logging.getLogger(name) for name in ("django.request", "django_plugipay.views")]
    was = [logger.disabled for logger in quiet]
    for logger in quiet:
        logger.disabled = True
    try:
        response = client.post(
            path,
            b"",
            content_type="application/json",
            secure=True,
            HTTP_HOST=hosts[0] if hosts else "localhost",
        )
    except Exception:  # the probe must never break start-up; the doctor reports deliveries
        return None
    finally:
        for logger, disabled in zip(quiet, was, strict=True):
            logger.disabled = disabled
    if 300 <= response.status_code < 400:
        return response.status_code, response.get("Location", "")
    return None


def redirect_problem(status: int, location: str) -> str:
    """What a webhook answered with a redirect means, for a check and for the doctor."""
    location = location.split("?")[0]
    if not location:
        return (
            f"answered {status}, a redirect (to a login page, to https, to a language prefix?) "
            "— Plugipay does not follow redirects, so every delivery fails"
        )
    login = "login" in location.lower() or location.startswith(str(settings.LOGIN_URL))
    return f"answered {status} to {location}" + (
        " — is the webhook URL behind a login?"
        if login
        else " — Plugipay does not follow redirects, so every delivery fails"
    )


REDIRECT_HINT = (
    "Exempt the webhook path (plugipay:webhook) from the middleware or URL prefix that "
    "redirects it (a login middleware, i18n_patterns, SECURE_SSL_REDIRECT without "
    "SECURE_PROXY_SSL_HEADER): Plugipay posts to it unauthenticated and never follows a redirect."
)


@register(Tags.urls)
def check_webhook_reachable(app_configs=None, **kwargs) -> list:
    """The webhook view must answer Plugipay itself: a redirect loses every delivery."""
    found = webhook_redirect()
    if found is None:
        return []
    return [
        Warning(
            f"The Plugipay webhook URL {redirect_problem(*found)}",
            id="django_plugipay.W050",
            hint=REDIRECT_HINT,
        )
    ]
