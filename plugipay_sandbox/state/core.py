"""The core of the sandbox's state: the store, its clock, ids, idempotency, events and deliveries.

Resource families (customers, checkout, refunds, webhooks, billing) live in the sibling modules
and join the store with :func:`register`: their stores, event kinds and clock-driven work.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
import datetime as dt
import json
import os
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, overload

from plugipay_sandbox import persistence

ULID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
IDEMPOTENCY_TTL = 24 * 3600
CURRENCIES = ("IDR", "USD")
DEFAULT_MERCHANT_NAME = "Sandbox Shop"


class ApiError(Exception):
    """An error answered inside the envelope: HTTP status, code, message, optional field."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.details = details
        self.headers = headers or {}

    def as_error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        if self.details:
            error["details"] = self.details
        return error


def not_found(kind: str, object_id: str) -> ApiError:
    return ApiError(404, "not_found", f"No {kind} with id {object_id!r}.")


def new_id(prefix: str) -> str:
    """A type prefix plus a 26-character ULID (48-bit milliseconds, 80 random bits)."""
    millis = int(time.time() * 1000)
    value = (millis << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(ULID_ALPHABET[value & 31])
        value >>= 5
    return prefix + "".join(reversed(chars))


def iso(timestamp: float) -> str:
    moment = dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


#: the instants the sandbox reads and writes: from the epoch to the end of year 9999
LATEST = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc).timestamp()
#: how far a clock (the sandbox's, or a subscription's own) may be moved: ten years short of
#: :data:`LATEST`, room for the clock to run on and for the periods, trials and due dates
#: counted from it
CLOCK_LIMIT = LATEST - 10 * 366 * 24 * 3600


def parse_time(value: str) -> float:
    """Parse ISO-8601 or epoch seconds, as list filters accept both (``ValueError`` for an
    instant before the epoch or after year 9999, which no answer could write back)."""
    text = value.strip()
    if text.replace(".", "", 1).isdigit():
        timestamp = float(text)
    else:
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        moment = dt.datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
        timestamp = moment.timestamp()
    if not 0 <= timestamp <= LATEST:
        raise ValueError(f"{value!r} is not between 1970 and 9999")
    return timestamp


def parse_json(text: str | bytes) -> Any:
    """``json.loads``, refusing ``NaN`` and ``Infinity`` (``ValueError``), as Plugipay's JSON
    parser does: they are not JSON."""
    return json.loads(text, parse_constant=_not_json)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


@dataclasses.dataclass
class SandboxConfig:
    """How a sandbox instance is set up; the command line fills it in."""

    host: str = "127.0.0.1"
    port: int = 8787
    key_id: str = "pk_test_sandbox"
    secret: str = "sk_test_sandbox"
    live_key_id: str = "pk_live_sandbox"
    live_secret: str = "sk_live_sandbox"
    api_key: str = "pk_test_sandbox_bearer"
    forward_to: str | None = None
    webhook_secret: str | None = None
    event_style: str = "sdk"
    retry_schedule: tuple[float, ...] = (1, 2, 5, 10, 30, 60)
    refund_delay: float = 0.0
    state_file: str | None = None
    public_url: str | None = None
    account_id: str = "acc_01SANDBOX00000000000000000"
    workspace_id: str = "ws_01SANDBOX00000000000000000"
    #: The merchant's name on hosted checkout, invoice and portal pages (``--merchant-name``).
    merchant_name: str = DEFAULT_MERCHANT_NAME
    #: Host names answered besides loopback and ``public_url``'s (``--allowed-host``; ``*``: any).
    allowed_hosts: tuple[str, ...] = ()
    #: Platform-admin keys, key id → secret (``--platform-key``): the only keys that may send
    #: ``X-Plugipay-On-Behalf-Of`` or call ``/api/v1/admin/*``.
    platform_keys: dict[str, str] = dataclasses.field(default_factory=dict)
    quiet: bool = True

    def credentials(self) -> dict[str, str]:
        return {self.key_id: self.secret, self.live_key_id: self.live_secret, **self.platform_keys}


#: The account the current request acts for; ``None``: every account (the clock's own work,
#: the control routes, the delivery workers, a dashboard showing all accounts).
ACCOUNT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "sandbox_account", default=None
)


class AccountMap(dict):
    """An object map seen through the current account scope — the one place accounts apply.

    Every object stored here carries ``accountId`` (set on insert from the scope when absent);
    reading (``get``, ``[]``, ``in``, ``values``, ``items``, iteration) shows only the scope's
    objects, so another account's id is simply not found and its objects are in no list.
    """

    def __init__(self, default_account: str, *args: Any) -> None:
        super().__init__(*args)
        self.default_account = default_account
        #: every account an object stored here belongs to (one, usually: nothing to filter)
        self.owners = {obj.get("accountId") for obj in super().values()}

    def _whole(self, account: str | None) -> bool:
        """Does the scope see every object stored here?"""
        return account is None or self.owners <= {account}

    @staticmethod
    def visible(obj: dict[str, Any]) -> bool:
        account = ACCOUNT.get()
        return account is None or obj.get("accountId") == account

    def __setitem__(self, key: str, obj: dict[str, Any]) -> None:
        obj.setdefault("accountId", ACCOUNT.get() or self.default_account)
        self.owners.add(obj["accountId"])
        super().__setitem__(key, obj)

    def get(self, key: Any, default: Any = None) -> Any:
        obj = super().get(key)
        return obj if obj is not None and self.visible(obj) else default

    def __getitem__(self, key: str) -> dict[str, Any]:
        obj = super().__getitem__(key)
        if not self.visible(obj):
            raise KeyError(key)
        return obj

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None

    def values(self) -> list[dict[str, Any]]:  # type: ignore[override]
        account = ACCOUNT.get()
        if self._whole(account):
            return list(super().values())
        return [obj for obj in super().values() if obj.get("accountId") == account]

    def items(self) -> list[tuple[str, dict[str, Any]]]:  # type: ignore[override]
        account = ACCOUNT.get()
        if self._whole(account):
            return list(super().items())
        return [(key, obj) for key, obj in super().items() if obj.get("accountId") == account]

    def keys(self) -> list[str]:  # type: ignore[override]
        return [key for key, _ in self.items()]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.values())


@dataclasses.dataclass
class Fault:
    kind: str
    count: int
    path_prefix: str = "/api/v1"
    retry_after: int = 1
    delay: float = 5.0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FAULT_KINDS = ("http_500", "http_429", "delay", "drop_after_commit", "refund_refused")


@dataclasses.dataclass(frozen=True)
class Family:
    """One resource family's part of the store.

    ``stores`` names the plain dicts (id → wire-form dict) the family keeps as ``Store``
    attributes; ``event_kinds`` the events it emits; ``tick`` applies what the clock made due;
    ``keep`` returns, per store, the objects a ``/_sandbox/reset`` keeps; ``start`` runs once
    when a store is built (after the first reset, before a state file is loaded); ``on_event``
    sees every event as it is recorded (the ledger posts what a payment or refund moved).
    """

    name: str
    stores: tuple[str, ...] = ()
    event_kinds: tuple[str, ...] = ()
    tick: Callable[[Store], None] | None = None
    keep: Callable[[Store], dict[str, dict[str, dict[str, Any]]]] | None = None
    start: Callable[[Store], None] | None = None
    on_event: Callable[[Store, dict[str, Any]], None] | None = None


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add a resource family to every store built from now on (a module does it on import)."""
    FAMILIES[family.name] = family
    for name in family.stores:
        if name not in Store.STORES:
            Store.STORES.append(name)
    return family


def event_kinds() -> list[str]:
    """Every event kind a registered family emits, in registration order."""
    return [kind for family in FAMILIES.values() for kind in family.event_kinds]


class Store:
    """Every object the sandbox holds, behind one re-entrant lock.

    Objects are kept in their wire form (camelCase dicts), so reading one is a copy. Each store
    named in ``STORES`` is a plain dict attribute (``store.customers``, ``store.invoices``…)
    mapping an id to a JSON-able dict; keys starting with ``_`` are the sandbox's own.
    """

    #: The dict stores, by attribute name; the core's own plus every registered family's.
    STORES: list[str] = ["accounts", "events", "deliveries"]

    if TYPE_CHECKING:  # family stores are set by name in reset()

        def __getattr__(self, name: str) -> dict[str, dict[str, Any]]: ...

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.clock_offset = 0.0
        self.faults: list[Fault] = []
        self.held = False
        self._seq = 0
        self.reset(keep_endpoints=False)
        if config.state_file and os.path.exists(config.state_file):
            self.load(config.state_file)

    # ── bookkeeping ────────────────────────────────────────────────────────────

    def reset(self, *, keep_endpoints: bool = True) -> None:
        """Forget every object; keep the accounts and what the families keep (endpoints), and
        put back what each family starts with (the ``--forward-to`` endpoint, if deleted)."""
        with self.lock, self.scope(None):
            kept: dict[str, dict[str, dict[str, Any]]] = {}
            if keep_endpoints:
                for family in FAMILIES.values():
                    if family.keep:
                        kept.update(family.keep(self))
            kept["accounts"] = dict(getattr(self, "accounts", {}))
            for name in self.STORES:
                setattr(self, name, AccountMap(self.config.account_id, kept.get(name, {})))
            if self.config.account_id not in self.accounts:
                self.accounts[self.config.account_id] = self.new_account(
                    self.config.account_id,
                    workspace_id=self.config.workspace_id,
                    brand_name=self.config.merchant_name,
                )
            #: (account, mode, key) → the stored response: each account has its own keys.
            self.idempotency: dict[tuple[str, str, str], dict[str, Any]] = {}
            self.faults = []
            self.held = False
            self.clock_offset = 0.0
            for family in FAMILIES.values():
                if family.start:
                    family.start(self)
            self.changed.notify_all()

    def now(self) -> float:
        return time.time() + self.clock_offset

    # ── accounts ─────────────────────────────────────────────────────────────

    @contextlib.contextmanager
    def scope(self, account: str | None) -> Iterator[None]:
        """Act for ``account`` (``None``: see every account) inside the block."""
        token = ACCOUNT.set(account)
        try:
            yield
        finally:
            ACCOUNT.reset(token)

    @property
    def account(self) -> str:
        """The account acting now: the scope's, else the merchant key's own."""
        return ACCOUNT.get() or self.config.account_id

    def new_account(
        self,
        account_id: str,
        *,
        workspace_id: str | None = None,
        brand_name: str | None = None,
        business_email: str | None = None,
        partner: str | None = None,
        discount_rate: float | None = None,
    ) -> dict[str, Any]:
        """An account (workspace) record, keyed by its ``accId`` and owning itself."""
        moment = self.now()
        return {
            "id": account_id,
            "accountId": account_id,
            "workspaceId": workspace_id or "ws_" + account_id.removeprefix("acc_"),
            "brandName": brand_name,
            "businessEmail": business_email,
            "partner": partner,
            "discountRate": discount_rate,
            "createdAt": iso(moment),
            "updatedAt": iso(moment),
            "_seq": self.next_seq(),
        }

    def find_account(self, account_or_workspace_id: str) -> dict[str, Any] | None:
        """The account named by its ``acc_…`` id or its ``ws_…`` workspace id (any scope)."""
        accounts = dict(dict.items(self.accounts))
        found = accounts.get(account_or_workspace_id)
        if found is None:
            found = next(
                (a for a in accounts.values() if a["workspaceId"] == account_or_workspace_id),
                None,
            )
        return found

    def account_of(self, object_id: str) -> str | None:
        """The account owning the object with this id, whichever store holds it."""
        for name in self.STORES:
            obj = dict.get(getattr(self, name), object_id)
            if obj is not None:
                return obj.get("accountId")
        return None

    def merchant_name(self) -> str:
        """The acting account's brand name on hosted pages (``--merchant-name`` for the own)."""
        found = dict.get(self.accounts, self.account)
        return (found or {}).get("brandName") or self.config.merchant_name

    def today(self) -> dt.date:
        """The sandbox clock's date (UTC), for card expiry checks."""
        return dt.datetime.fromtimestamp(self.now(), tz=dt.timezone.utc).date()

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.clock_offset += seconds
            self.tick()
            self.changed.notify_all()

    def stamp(self, obj: dict[str, Any], mode: str) -> dict[str, Any]:
        moment = self.now()
        now = iso(moment)
        obj.update(
            accountId=self.account,
            mode=mode,
            createdAt=now,
            updatedAt=now,
            _seq=self.next_seq(),
            _createdAtTs=moment,
        )
        obj["arn"] = f"arn:plugipay:{mode}:{obj['accountId']}:{obj['id']}"
        return obj

    def touch(self, obj: dict[str, Any]) -> None:
        obj["updatedAt"] = iso(self.now())

    def change(self, obj: dict[str, Any], kind: str, **changes: Any) -> dict[str, Any]:
        """Apply ``changes`` and, if any value differs, emit ``kind`` (an ``….updated`` event)
        naming the previous values; returns them."""
        previous = {k: obj.get(k) for k in changes if obj.get(k) != changes[k]}
        obj.update(changes)
        self.touch(obj)
        if previous:
            self.emit(kind, obj, previous=previous)
        return previous

    @overload
    @staticmethod
    def public(obj: dict[str, Any]) -> dict[str, Any]: ...
    @overload
    @staticmethod
    def public(obj: None) -> None: ...
    @overload
    @staticmethod
    def public(obj: dict[str, Any] | None) -> dict[str, Any] | None: ...
    @staticmethod
    def public(obj: dict[str, Any] | None) -> dict[str, Any] | None:
        """The wire form: a deep copy without the sandbox's private keys."""
        if obj is None:
            return None
        return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}

    def base_url(self) -> str:
        return (self.config.public_url or f"http://{self.config.host}:{self.config.port}").rstrip(
            "/"
        )

    # ── idempotency ───────────────────────────────────────────────────────────

    def idempotent_lookup(self, mode: str, key: str, fingerprint: dict[str, Any]):
        """Return the stored response for a key, raise 409 on a different request, else None."""
        record = self.idempotency.get((self.account, mode, key))
        if record is None or record["expires"] < self.now():
            return None
        stored = record["fingerprint"]
        # as JSON, not as Python compares: true is not 1, nor 1.0 the integer 1
        if _as_json(stored) != _as_json(fingerprint):
            field = _first_difference(stored, fingerprint)
            raise ApiError(
                409,
                "idempotency_mismatch",
                f"Idempotency-Key {key!r} was used with different parameters ({field}).",
                field=field,
            )
        return record

    def idempotent_store(
        self, mode: str, key: str, fingerprint: dict[str, Any], status: int, body: bytes
    ) -> None:
        self.idempotency[(self.account, mode, key)] = {
            "fingerprint": fingerprint,
            "status": status,
            "body": body,
            "expires": self.now() + IDEMPOTENCY_TTL,
        }

    # ── faults ───────────────────────────────────────────────────────────────

    def add_fault(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, path: str, kinds: tuple[str, ...]) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.kind in kinds and path.startswith(fault.path_prefix) and fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    # ── events ───────────────────────────────────────────────────────────────

    def emit(
        self,
        kind: str,
        obj: dict[str, Any],
        *,
        previous: dict[str, Any] | None = None,
        mode: str | None = None,
    ) -> dict[str, Any]:
        """Record an event for a change and queue a delivery to every subscribed endpoint.

        ``mode`` is for a partial object (one without its own ``mode``).
        """
        event: dict[str, Any] = {
            "id": new_id("evt_"),
            "accountId": obj.get("accountId") or self.account,
            "kind": kind,
            "mode": mode or obj.get("mode", "test"),
            "occurredAt": iso(self.now()),
            "_occurredAtTs": self.now(),
            "object": self.public(obj),
            "previousAttributes": previous,
            "publishedAt": None,
            "_seq": self.next_seq(),
        }
        self.events[event["id"]] = event
        self.queue_deliveries(event)
        for family in FAMILIES.values():
            if family.on_event:
                family.on_event(self, event)
        return event

    def render_event(self, event: dict[str, Any], style: str | None = None) -> dict[str, Any]:
        """The event in the SDK shape (default) or the docs shape (``--event-style docs``)."""
        account_id = event.get("accountId") or self.config.account_id
        if (style or self.config.event_style) == "docs":
            account = self.find_account(account_id)
            rendered = {
                "id": event["id"],
                "type": event["kind"],
                "createdAt": event["occurredAt"],
                "workspaceId": account["workspaceId"] if account else self.config.workspace_id,
                "data": copy.deepcopy(event["object"]),
            }
            if event["kind"].endswith(".updated"):
                rendered["previousAttributes"] = copy.deepcopy(event["previousAttributes"] or {})
            return rendered
        return {
            "id": event["id"],
            "type": f"plugipay.{event['kind']}.v1",
            "accountId": account_id,
            "mode": event["mode"],
            "occurredAt": event["occurredAt"],
            "createdAt": event["occurredAt"],
            "publishedAt": event["publishedAt"],
            "metadata": {},
            "data": {"object": copy.deepcopy(event["object"])},
        }

    def queue_deliveries(self, event: dict[str, Any], *, force: bool = False) -> list[dict]:
        queued = []
        with self.scope(event.get("accountId") or self.config.account_id):
            endpoints = self.endpoints.values()  # the event's account's endpoints only
        for endpoint in endpoints:
            if endpoint["mode"] != event["mode"] or not endpoint["active"]:
                continue
            if not force and not _subscribed(endpoint, event["kind"]):
                continue
            body = json.dumps(self.render_event(event), separators=(",", ":")).encode()
            delivery = {
                "id": new_id("dlv_"),
                "accountId": endpoint["accountId"],
                "endpointId": endpoint["id"],
                "eventId": event["id"],
                "type": self.render_event(event)["type"],
                "body": body.decode(),
                "status": "pending",
                "attempts": 0,
                "nextRetryAt": iso(self.now()),
                "lastAttemptAt": None,
                "deliveredAt": None,
                "responseCode": None,
                "lastError": None,
                "attemptLog": [],
                "_due": self.now(),
                "_seq": self.next_seq(),
            }
            self.deliveries[delivery["id"]] = delivery
            queued.append(delivery)
        if queued:
            self.changed.notify_all()
        return queued

    @staticmethod
    def get(store: dict[str, dict], mode: str, object_id: str, kind: str) -> dict[str, Any]:
        obj = store.get(object_id)
        if obj is None or obj["mode"] != mode:
            raise not_found(kind, object_id)
        return obj

    # ── time-driven changes ──────────────────────────────────────────────────

    def tick(self) -> None:
        """Apply what the clock has made due, account by account and family by family (expiry,
        settlement, renewals): what a family creates belongs to the account it works in."""
        with self.lock:
            for account in list(dict.keys(self.accounts)):
                with self.scope(account):
                    for family in FAMILIES.values():
                        if family.tick:
                            family.tick(self)

    # ── persistence ──────────────────────────────────────────────────────────

    def dump(self, *, private: bool = False) -> dict[str, Any]:
        with self.lock:
            state: dict[str, Any] = {}
            for name in self.STORES:
                items = sorted(getattr(self, name).values(), key=lambda o: o["_seq"])
                state[name] = [copy.deepcopy(o) if private else self.public(o) for o in items]
            state["clock"] = {"now": iso(self.now()), "offsetSeconds": self.clock_offset}
            state["faults"] = [f.as_dict() for f in self.faults]
            state["held"] = self.held
            return state

    def save(self, path: str) -> None:
        persistence.save(self, path)

    def load(self, path: str) -> None:
        persistence.load(self, path)


def _subscribed(endpoint: dict[str, Any], kind: str) -> bool:
    wanted = endpoint.get("events") or ["*"]
    return "*" in wanted or kind in wanted or f"plugipay.{kind}.v1" in wanted


def _first_difference(a: dict[str, Any], b: dict[str, Any]) -> str:
    for key in ("method", "path"):
        if a.get(key) != b.get(key):
            return key
    body_a, body_b = a.get("body"), b.get("body")
    if isinstance(body_a, dict) and isinstance(body_b, dict):
        for key in sorted(set(body_a) | set(body_b)):
            if _as_json(body_a.get(key)) != _as_json(body_b.get(key)):
                return key
    return "body"


def shuffled(items: list[Any], order: str) -> list[Any]:
    if order == "reverse":
        return list(reversed(items))
    if order == "shuffle":
        items = list(items)
        random.shuffle(items)
        return items
    return list(items)


def _as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
