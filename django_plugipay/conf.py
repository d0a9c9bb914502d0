"""The app's settings: ``DEFAULTS`` and ``app_settings``, read from ``settings.PLUGIPAY``."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from django_plugipay.webhooks import DEFAULT_TOLERANCE

DEFAULTS: dict[str, Any] = {
    "KEY_ID": None,
    "SECRET": None,
    "API_KEY": None,
    "BASE_URL": "https://plugipay.com",
    "API_PREFIX": "/api/v1",
    "WEBHOOK_SECRETS": [],
    "WEBHOOK_TOLERANCE": DEFAULT_TOLERANCE,
    "WEBHOOK_PROCESSING": "inline",
    "TASKS": "auto",
    "TASKS_BACKEND": "default",
    "TASKS_QUEUE": "default",
    "DEFAULT_METHODS": ["card", "qris", "va", "ewallet"],
    "SESSION_EXPIRES_IN": 86400,
    "TIMEOUT": 30,
    "MAX_RETRIES": 3,
    "RETRY_BACKOFF": 0.5,
    "CURRENCY_EXPONENTS": {"IDR": 0, "USD": 2, "JPY": 0, "KRW": 0},
    "API_CHECKOUT_PARAMS": None,
    "API_SUBSCRIBE_PARAMS": None,
    "API_ACCOUNT": None,
    "API_BILLING_OWNERS": None,
    "API_SYNC_INTERVAL": 2,
    "METADATA_KEY_MAX_LENGTH": 40,
    "METADATA_VALUE_MAX_LENGTH": 500,
    "PORTAL_RETURN_URL": None,
    "STRANDED_AFTER": 300,
    "PUBLISH_TIMEOUT": 3,
    "PLANS": {},
    "DELIVERY_MAX_ATTEMPTS": 8,
    "DELIVERY_LEASE": 60,
    "DELIVERY_BACKOFF": 30,
    "SYNC_RECEIPTS": True,
    "ACCOUNTS": {},
    "ACCOUNT_DATABASE": None,
}

#: The alias of the account the top-level credentials belong to.
DEFAULT_ACCOUNT = "default"
#: The keys an entry of ``PLUGIPAY["ACCOUNTS"]`` may have.
ACCOUNT_KEYS = (
    "KEY_ID",
    "SECRET",
    "API_KEY",
    "WEBHOOK_SECRETS",
    "ON_BEHALF_OF",
    "ACCOUNT_ID",
    "NAME",
)

#: Settings that fall back to an environment variable when ``settings.PLUGIPAY`` omits them.
ENV_FALLBACKS = {
    "KEY_ID": "PLUGIPAY_KEY_ID",
    "SECRET": "PLUGIPAY_SECRET",
    "API_KEY": "PLUGIPAY_API_KEY",
    "BASE_URL": "PLUGIPAY_BASE_URL",
    "WEBHOOK_SECRETS": "PLUGIPAY_WEBHOOK_SECRET",
}

#: Settings given as a dotted path (or the object itself), resolved by ``app_settings``.
IMPORT_STRINGS = (
    "API_CHECKOUT_PARAMS",
    "API_SUBSCRIBE_PARAMS",
    "API_ACCOUNT",
    "API_BILLING_OWNERS",
    "ACCOUNT_DATABASE",
)

PROCESSING_MODES = ("inline", "celery")
TASKS_MODES = ("auto", "celery", "django", "inline")


def credential_problem(value: object) -> str | None:
    """What makes ``value`` unusable as a Plugipay key id, key or secret (None: nothing): they
    travel in HTTP headers and signatures, printable ASCII without spaces. The usual cause is
    the docs' ``…`` placeholder pasted as it is, or a line break copied with the key."""
    if not isinstance(value, str):
        return None
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return "is wrapped in quotes (an env file's quotes kept as part of the value)"
    for char in value:
        if char.isspace():
            return f"contains whitespace ({char!r})"
        if not char.isascii() or not char.isprintable():
            return f"contains {char!r}, which cannot be sent (only printable ASCII can)"
    return None


#: How to fix a key or secret :func:`credential_problem` refuses.
CREDENTIAL_FIX = (
    "Paste the whole value from the Plugipay dashboard (a '…' in the docs stands for the rest "
    "of it), without spaces or line breaks."
)


class AppSettings:
    """Typed access to ``settings.PLUGIPAY``; every read goes to settings, so overrides apply."""

    def raw(self, name: str) -> Any:
        user = getattr(settings, "PLUGIPAY", None) or {}
        if name in user:
            return user[name]
        env = ENV_FALLBACKS.get(name)
        if env and os.environ.get(env):
            value = os.environ[env]
            return value
        return DEFAULTS[name]

    @property
    def KEY_ID(self) -> str | None:
        return self.raw("KEY_ID")

    @property
    def SECRET(self) -> str | None:
        return self.raw("SECRET")

    @property
    def API_KEY(self) -> str | None:
        return self.raw("API_KEY")

    @property
    def BASE_URL(self) -> str:
        return str(self.raw("BASE_URL")).rstrip("/")

    @property
    def API_PREFIX(self) -> str:
        return "/" + str(self.raw("API_PREFIX")).strip("/")

    @property
    def WEBHOOK_SECRETS(self) -> list[str]:
        value = self.raw("WEBHOOK_SECRETS")
        if isinstance(value, str):  # "new,old" during a rotation; never a string's characters
            return [s.strip() for s in value.split(",") if s.strip()]
        return [s for s in (value or []) if isinstance(s, str) and s]

    @property
    def WEBHOOK_TOLERANCE(self) -> int:
        return int(self.raw("WEBHOOK_TOLERANCE"))

    @property
    def WEBHOOK_PROCESSING(self) -> str:
        return str(self.raw("WEBHOOK_PROCESSING"))

    @property
    def TASKS(self) -> str:
        return str(self.raw("TASKS"))

    @property
    def TASKS_BACKEND(self) -> str:
        return str(self.raw("TASKS_BACKEND"))

    @property
    def DEFAULT_METHODS(self) -> list[str]:
        return list(self.raw("DEFAULT_METHODS"))

    @property
    def SESSION_EXPIRES_IN(self) -> int:
        return int(self.raw("SESSION_EXPIRES_IN"))

    @property
    def TIMEOUT(self) -> float:
        return float(self.raw("TIMEOUT"))

    @property
    def MAX_RETRIES(self) -> int:
        return int(self.raw("MAX_RETRIES"))

    @property
    def RETRY_BACKOFF(self) -> float:
        return float(self.raw("RETRY_BACKOFF"))

    @property
    def CURRENCY_EXPONENTS(self) -> dict[str, int]:
        """The defaults, with the project's entries added over them (a project naming only
        ``USD`` keeps IDR whole rupiah); codes in any case."""
        given = self.raw("CURRENCY_EXPONENTS") or {}
        return {**DEFAULTS["CURRENCY_EXPONENTS"], **{k.upper(): v for k, v in given.items()}}

    def imported(self, name: str) -> Any:
        """An :data:`IMPORT_STRINGS` setting resolved: the object a dotted path names (or the
        object given), None when unset. ``ImproperlyConfigured`` names the setting when the
        path cannot be imported."""
        value = self.raw(name)
        if not isinstance(value, str):
            return value
        try:
            return import_string(value)
        except ImportError as exc:
            raise ImproperlyConfigured(f"PLUGIPAY[{name!r}] cannot be imported: {exc}.") from exc

    @property
    def API_CHECKOUT_PARAMS(self) -> Any:
        """The callable ``(request, validated_data) -> dict`` pricing API checkouts, or None."""
        return self.imported("API_CHECKOUT_PARAMS")

    @property
    def API_SUBSCRIBE_PARAMS(self) -> Any:
        """The callable ``(request, price) -> dict | None`` allowing API subscriptions, or None."""
        return self.imported("API_SUBSCRIBE_PARAMS")

    @property
    def API_BILLING_OWNERS(self) -> Any:
        """The callable ``(request) -> iterable of billing owners`` (a team, say) whose
        subscriptions and invoices an API request reads and cancels besides the user's own,
        or None."""
        return self.imported("API_BILLING_OWNERS")

    @property
    def API_ACCOUNT(self) -> Any:
        """The callable ``(request) -> account alias | None`` naming the account an API request
        creates checkouts, subscriptions and payouts for (None: the default account), or None."""
        return self.imported("API_ACCOUNT")

    @property
    def API_SYNC_INTERVAL(self) -> float:
        return float(self.raw("API_SYNC_INTERVAL"))

    @property
    def METADATA_KEY_MAX_LENGTH(self) -> int:
        return int(self.raw("METADATA_KEY_MAX_LENGTH"))

    @property
    def METADATA_VALUE_MAX_LENGTH(self) -> int:
        return int(self.raw("METADATA_VALUE_MAX_LENGTH"))

    @property
    def STRANDED_AFTER(self) -> float:
        return float(self.raw("STRANDED_AFTER"))

    @property
    def PUBLISH_TIMEOUT(self) -> float:
        return float(self.raw("PUBLISH_TIMEOUT"))

    @property
    def PORTAL_RETURN_URL(self) -> str | None:
        return self.raw("PORTAL_RETURN_URL") or None

    @property
    def PLANS(self) -> dict[str, Any]:
        """The plan catalog ``plugipay_plans`` makes Plugipay's match: key → plan definition."""
        return dict(self.raw("PLANS") or {})

    @property
    def DELIVERY_MAX_ATTEMPTS(self) -> int:
        return max(1, int(self.raw("DELIVERY_MAX_ATTEMPTS")))

    @property
    def DELIVERY_LEASE(self) -> float:
        return float(self.raw("DELIVERY_LEASE"))

    @property
    def DELIVERY_BACKOFF(self) -> float:
        return float(self.raw("DELIVERY_BACKOFF"))

    @property
    def SYNC_RECEIPTS(self) -> bool:
        """Mirror receipts and ledger entries by themselves (after a payment, from the sweeper
        and reconciliation); False leaves them to ``plugipay_sync --money`` and the services."""
        return bool(self.raw("SYNC_RECEIPTS"))

    @property
    def ACCOUNTS(self) -> dict[str, dict[str, Any]]:
        """Every configured account, alias → its entry: ``"default"`` (the top-level
        credentials) first, then ``PLUGIPAY["ACCOUNTS"]`` (an entry may not redefine it)."""
        accounts: dict[str, dict[str, Any]] = {
            DEFAULT_ACCOUNT: {
                "KEY_ID": self.KEY_ID,
                "SECRET": self.SECRET,
                "API_KEY": self.API_KEY,
                "WEBHOOK_SECRETS": self.WEBHOOK_SECRETS,
                "ON_BEHALF_OF": None,
                "ACCOUNT_ID": None,
                "NAME": "",
            }
        }
        extra = self.raw("ACCOUNTS")
        for alias, entry in extra.items() if isinstance(extra, dict) else ():
            if alias == DEFAULT_ACCOUNT or not isinstance(entry, dict):
                continue
            accounts[str(alias)] = self._account_entry(entry)
        return accounts

    @property
    def many_accounts(self) -> bool:
        """Does ``ACCOUNTS`` hold an account beside the default one? (Answered as ``ACCOUNTS``
        would, without building the entries: the webhook view asks on every delivery.)"""
        extra = self.raw("ACCOUNTS")
        if not isinstance(extra, dict):
            return False
        aliases = {
            str(a) for a, entry in extra.items() if a != DEFAULT_ACCOUNT and isinstance(entry, dict)
        }
        return bool(aliases - {DEFAULT_ACCOUNT})

    def _account_entry(self, entry: dict[str, Any]) -> dict[str, Any]:
        """An entry with its credentials: its own, or (reached on behalf of) the top-level
        platform key's."""
        secrets = entry.get("WEBHOOK_SECRETS") or []
        if isinstance(secrets, str):
            secrets = [s.strip() for s in secrets.split(",") if s.strip()]
        own = entry.get("API_KEY") or (entry.get("KEY_ID") and entry.get("SECRET"))
        return {
            "KEY_ID": entry.get("KEY_ID") if own else self.KEY_ID,
            "SECRET": entry.get("SECRET") if own else self.SECRET,
            "API_KEY": entry.get("API_KEY") if own else self.API_KEY,
            "WEBHOOK_SECRETS": [s for s in secrets if isinstance(s, str) and s],
            "ON_BEHALF_OF": entry.get("ON_BEHALF_OF") or None,
            "ACCOUNT_ID": entry.get("ON_BEHALF_OF") or entry.get("ACCOUNT_ID") or None,
            "NAME": str(entry.get("NAME") or ""),
        }

    @property
    def ACCOUNT_DATABASE(self) -> Any:
        """The callable ``(alias) -> database alias | None`` naming the database an account's
        rows live in (with ``django_plugipay.routers.AccountRouter``), or None."""
        return self.imported("ACCOUNT_DATABASE")

    @property
    def MODE(self) -> str:
        """``live`` when the configured key is a live key, else ``test``."""
        key = self.API_KEY or self.KEY_ID or ""
        return "live" if "_live_" in key else "test"

    def exponent(self, currency: str) -> int:
        return self.CURRENCY_EXPONENTS.get(currency.upper(), 2)


app_settings = AppSettings()
