"""Resource specs: what varies between the mirrored Plugipay objects, declared once each.

A spec says, for one resource (``customer``, ``checkout_session``, ``payment``, ``refund``, and
later ``plan``, ``price``, ``subscription``, ``invoice``):

- the model it mirrors into and the fields it reads, with the keys of both event dialects and a
  type or constraint for each (``fields`` are stored on the row, ``refs`` are read but not
  stored: other objects' ids, ``updatedAt``);
- the status order (``tiers``; the last tier is terminal), the signal per status reached, and
  the status an event's action implies when the object carries none (``actions``);
- its place in the lock order (``lock_rank``) and how to fetch it from the API (``fetch``).

Declaring a subclass with a ``name`` registers it (the modules of
:mod:`django_plugipay.resources` are imported when the app is ready): dispatch, sync,
reconciliation, the client's resource table, the admin's status badges, the status groups the
querysets read and the docs' reference read the registry, so adding a resource edits no central
list. What is shared (validate, lock, advance, signal) is written once, in
:mod:`django_plugipay.services.apply`; a spec never calls it; its hooks return the
:class:`Apply` and :class:`Move` steps the engine carries out.

This module imports nothing of the app but :mod:`~django_plugipay.exceptions`: the models'
querysets read the status groups from it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from django_plugipay import datetimes
from django_plugipay.exceptions import InvalidObject

if TYPE_CHECKING:
    from django.db import models
    from django.dispatch import Signal

MAX_BIGINT = 2**63 - 1
_CURRENCY = re.compile(r"[A-Za-z]{3}")


# ── kinds: how one value is read and checked ───────────────────────────────────


class Kind:
    """Reads one value of an object; ``clean`` raises ``ValueError`` with a readable reason."""

    label = "any"
    empty: Any = None

    def clean(self, value: Any, max_length: int | None) -> Any:
        return value


class Text(Kind):
    label = "string"
    empty: str | None = ""

    def clean(self, value: Any, max_length: int | None) -> Any:
        if value is None:
            return self.empty
        if not isinstance(value, str):
            raise ValueError(f"must be a string, not {_json_type(value)}")
        if max_length is not None and len(value) > max_length:
            raise ValueError(f"must be at most {max_length} characters")
        return value


class Choice(Text):
    """One of a fixed set of strings (a column the database constrains), compared without case
    or surrounding spaces; another value is refused rather than stored."""

    def __init__(self, choices: Iterable[str]) -> None:
        self.choices = tuple(choices)
        self.label = f"one of {', '.join(self.choices)}"

    def clean(self, value: Any, max_length: int | None) -> Any:
        text = super().clean(value, max_length)
        if not text:
            return text
        normal = text.strip().lower()
        if normal not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}, not {text[:40]!r}")
        return normal


class OptionalText(Text):
    """A string where "not given" is stored as NULL (e.g. a unique external id)."""

    empty = None

    def clean(self, value: Any, max_length: int | None) -> Any:
        return super().clean(value, max_length) or None


class Integer(Kind):
    """An integer (never a bool, a float or a numeric string) within ``minimum``…2⁶³−1, and
    within its column (``largest``: 2³¹−1 for a ``PositiveIntegerField``, on every database)."""

    def __init__(self, minimum: int = 0) -> None:
        self.minimum = minimum
        self.label = f"integer ≥ {minimum}"

    def clean(self, value: Any, largest: int | None) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer, not {_json_type(value)}")
        top = MAX_BIGINT if largest is None else min(largest, MAX_BIGINT)
        if not self.minimum <= value <= top:
            raise ValueError(f"must be between {self.minimum} and {top}")
        return value


@functools.cache
def _largest(internal_type: str) -> int | None:
    """The largest value an integer column of this type holds (Django's ranges, the same on
    every database); None for any other column."""
    from django.db.backends.base.operations import BaseDatabaseOperations

    return BaseDatabaseOperations.integer_field_ranges.get(internal_type, (None, None))[1]


class Currency(Kind):
    label = "ISO 4217 code (3 letters)"
    empty = ""

    def clean(self, value: Any, max_length: int | None) -> Any:
        if value is None or value == "":
            return ""
        if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
            raise ValueError("must be a three-letter ISO 4217 currency code")
        return value.upper()


class Object(Kind):
    label = "object"

    def clean(self, value: Any, max_length: int | None) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError(f"must be an object, not {_json_type(value)}")
        return value


class Boolean(Kind):
    label = "boolean"

    def clean(self, value: Any, max_length: int | None) -> Any:
        if value is None or isinstance(value, bool):
            return value
        raise ValueError(f"must be a boolean, not {_json_type(value)}")


class List(Kind):
    label = "list"

    def clean(self, value: Any, max_length: int | None) -> Any:
        if value is None:
            return []
        if not isinstance(value, list):
            raise ValueError(f"must be a list, not {_json_type(value)}")
        return value


class Timestamp(Kind):
    label = "ISO-8601 time"

    def clean(self, value: Any, max_length: int | None) -> Any:
        if value is None or value == "":
            return None
        if not isinstance(value, str) or len(value) > 64:
            raise ValueError(f"must be an ISO-8601 time string, not {_json_type(value)}")
        moment = datetimes.parse(value)
        if moment is None:
            raise ValueError("must be an ISO-8601 time")
        return moment


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


@dataclasses.dataclass(frozen=True)
class Field:
    """One value read from the object: the first of ``keys`` present (both dialects)."""

    kind: Kind
    keys: tuple[str, ...]
    default: Any = None
    required: bool = False

    def read(self, obj: Mapping[str, Any], max_length: int | None) -> Any:
        for key in self.keys:
            raw = obj.get(key)
            if raw is not None and raw != "":
                break
        else:  # no key, or only empty values
            raw = None
        if raw is None and self.required:
            raise InvalidObject(f"{self.keys[0]} is missing", field=self.keys[0])
        try:
            value = self.kind.clean(raw, max_length)
        except ValueError as exc:
            key = next((k for k in self.keys if obj.get(k) is not None), self.keys[0])
            raise InvalidObject(f"{key} {exc}", field=key) from None
        return self.default if value is None and self.default is not None else value


ID = Field(Text(), ("id",), required=True)


def field(kind: Kind, *keys: str, default: Any = None, required: bool = False) -> Field:
    return Field(kind=kind, keys=keys, default=default, required=required)


@dataclasses.dataclass(frozen=True)
class Link:
    """A foreign key filled from another mirrored object's Plugipay id (a ``refs`` entry)."""

    model: str  # "django_plugipay.Customer"
    ref: str


# ── what a spec's hooks hand back to the engine ────────────────────────────────


class UnresolvedReference(Exception):
    """An object names another this database cannot place yet (e.g. an unknown payment).

    ``resource``/``plugipay_id`` name what to fetch from Plugipay (outside the transaction)
    before applying again, when that can help.
    """

    def __init__(self, message: str, *, resource: str | None = None, plugipay_id: str = ""):
        super().__init__(message)
        self.resource, self.plugipay_id = resource, plugipay_id


@dataclasses.dataclass(frozen=True)
class Apply:
    """Apply ``obj`` (a remote object of ``resource``) in the same transaction: a child row
    pieced together from its parent (``partial``: moves status and fills blanks only)."""

    resource: str
    obj: Mapping[str, Any]
    partial: bool = False
    context: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Move:
    """Move ``row`` (a row of ``resource`` locked in this transaction already) to
    ``status``, forward only, with ``fields``, through the one status change of the engine
    (signals and first-entry signals included)."""

    resource: str
    row: Any
    status: str
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict)


Step = Apply | Move


@dataclasses.dataclass(frozen=True)
class Group:
    """A named group of a resource's statuses: ``statuses`` None means every status outside
    the terminal tier; ``label`` names it in the admin's filter."""

    label: Any
    statuses: tuple[str, ...] | None = None


# ── the spec and its registry ───────────────────────────────────────────────────


_REGISTRY: dict[str, ResourceSpec] = {}
TONES = ("new", "waiting", "success", "failure", "closed")


class ResourceSpec:
    """Subclass with a ``name`` to declare (and register) a mirrored resource."""

    name: ClassVar[str]
    model: ClassVar[type[models.Model]]
    #: model field → how it is read from the object
    fields: ClassVar[dict[str, Field]] = {}
    #: read and validated but not stored as such (ids of related objects, ``updatedAt``)
    refs: ClassVar[dict[str, Field]] = {}
    #: foreign key field → the related object's Plugipay id in ``refs``
    links: ClassVar[dict[str, Link]] = {}
    #: status order: each tier moves only to a later tier (or, within a tier, to fresher news;
    #: news stamped with the same instant moves only to a status listed later in the tier);
    #: the last tier is terminal and never left. Empty for resources without a status.
    tiers: ClassVar[tuple[tuple[str, ...], ...]] = ()
    #: status of an object that carries none (and whose event's action says none); the first
    #: status of the first tier when unset
    initial: ClassVar[str | None] = None
    #: status → signal sent once when the object reaches it
    signals: ClassVar[Mapping[str, Signal]] = {}
    #: status → (timestamp field, signal): the signal is sent the first time the row reaches
    #: any status mapped to that field, which remembers when; re-entering sends nothing
    #: (a session back to ``open`` after a failed VA payment, then ``pending`` again)
    first_entry: ClassVar[Mapping[str, tuple[str, Signal]]] = {}
    #: event action → status, when the event's object carries no status
    actions: ClassVar[Mapping[str, str]] = {}
    #: the event actions Plugipay sends about this resource (``<name>.<action>``): what
    #: ``manage.py plugipay_webhooks create`` subscribes the endpoint to
    events: ClassVar[tuple[str, ...]] = ()
    #: status → badge tone in the admin, for statuses that succeed or fail
    outcomes: ClassVar[Mapping[str, str]] = {}
    #: rows are locked in increasing rank within one transaction (see the lock order docs)
    lock_rank: ClassVar[int] = 0
    #: ``refs`` entry → the resource whose row applying this one also locks (a page of
    #: events locks them all up front, in the lock order)
    locks_with: ClassVar[Mapping[str, str]] = {}
    #: fields that never decrease (counters, period bounds): news "as fresh" by ``updatedAt``
    #: can still be older when both carry the same second
    monotonic: ClassVar[frozenset[str]] = frozenset()
    #: fields a full, fresher object may clear (they are otherwise only ever filled in)
    clearable: ClassVar[frozenset[str]] = frozenset()
    #: named status groups (querysets, model properties, admin filters and billing helpers
    #: read them): every status outside the terminal tier (a session "open", a refund "in
    #: flight") or a subset of those (checked when the class is declared: invoices "unpaid")
    groups: ClassVar[Mapping[str, Group]] = {}
    #: a valid object of this resource, as Plugipay sends it: the tests apply every spec's
    #: example and derive their invalid variants from it (a new resource brings its own)
    example: ClassVar[Mapping[str, Any]] = {}
    #: a status not in ``tiers`` is stored as sent (ranked with the first tier, no signal)
    #: instead of failing validation: for resources whose status set Plugipay may grow
    open_statuses: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            spec = cls()
            for group, declared in spec.groups.items():
                stray = set(declared.statuses or ()) - set(spec.unsettled)
                if stray:
                    raise TypeError(
                        f"{cls.__name__}.groups[{group!r}] names {sorted(stray)}, which are "
                        "not among the statuses outside the terminal tier"
                    )
            register(spec)

    # status order and the status groups read from it

    @property
    def terminal(self) -> frozenset[str]:
        return frozenset(self.tiers[-1]) if self.tiers else frozenset()

    @property
    def unsettled(self) -> tuple[str, ...]:
        """Every status outside the terminal tier: still moving at Plugipay (a session
        "open", a refund "in flight", a subscription "live")."""
        return tuple(s for tier in self.tiers[:-1] for s in tier)

    def group(self, name: str) -> tuple[str, ...]:
        """The statuses of the named group (KeyError for a group the spec does not have)."""
        statuses = self.groups[name].statuses
        return self.unsettled if statuses is None else statuses

    @property
    def statuses(self) -> tuple[str, ...]:
        return tuple(s for tier in self.tiers for s in tier)

    def rank(self, status: str) -> int:
        return next((i for i, tier in enumerate(self.tiers) if status in tier), 0)

    def position(self, status: str) -> int:
        """Where ``status`` stands in the lifecycle order of ``tiers`` (an unknown status
        first): breaks a tie between two states of one tier stamped with the same instant."""
        order = [s for tier in self.tiers for s in tier]
        return order.index(status) if status in order else -1

    def tone(self, status: str) -> str:
        if status in self.outcomes:
            return self.outcomes[status]
        if status in self.terminal:
            return "closed"
        return "new" if self.tiers and status == self.tiers[0][0] else "waiting"

    # reading

    def read(self, obj: Any, action: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Validate ``obj``; return ``(values, refs)`` or raise :class:`InvalidObject`."""
        if not isinstance(obj, Mapping):
            raise InvalidObject(f"the {self.name} object must be a JSON object")
        plugipay_id = obj.get("id")
        if plugipay_id is None or plugipay_id == "":
            raise InvalidObject(f"the {self.name} object has no id", field="id")
        meta = self.model._meta
        values: dict[str, Any] = {
            "plugipay_id": ID.read(obj, getattr(meta.get_field("plugipay_id"), "max_length", None))
        }
        for name, spec in self.fields.items():
            column = meta.get_field(name)
            limit = getattr(column, "max_length", None)
            if limit is None and isinstance(spec.kind, Integer):  # bounded by its column
                limit = _largest(column.get_internal_type())
            values[name] = spec.read(obj, limit)
        refs = {name: spec.read(obj, 64) for name, spec in self.refs.items()}
        if self.tiers:
            values["status"] = self._status(obj.get("status"), action)
        mode = obj.get("mode")
        values["mode"] = "live" if mode == "live" else "test"
        values["data"] = dict(obj)
        return values, refs

    def _status(self, raw: Any, action: str | None) -> str:
        from django_plugipay.webhooks import normalise_status

        if raw is None or raw == "":
            return self.actions.get(action or "", self.initial or self.tiers[0][0])
        if not isinstance(raw, str):
            raise InvalidObject(f"status must be a string, not {_json_type(raw)}", field="status")
        status = normalise_status(raw)
        if status in self.statuses:
            return status
        if self.open_statuses and len(status) <= 32:
            return status
        raise InvalidObject(
            f"status {raw[:40]!r} is not one of {', '.join(self.statuses)}", field="status"
        )

    # hooks a resource may override (the shared advance calls them in this order)

    def lock_parent(self, values: dict[str, Any], refs: dict[str, Any], context: dict) -> Any:
        """Lock (and return) what must be locked before this row, in the lock order."""
        return None

    def find(self, values: dict[str, Any], refs: dict[str, Any]) -> Any:
        """A locked existing row matched other than by Plugipay id, or None (default)."""
        return None

    def changed(self, row: Any, moved_to: str | None, parent: Any) -> None:
        """Keep derived values true before the signal is sent (e.g. a parent's totals)."""

    def after(self, row: Any, moved_to: str | None, refs: dict, event: Any) -> Iterable[Step]:
        """What follows the signal inside the same transaction: the :class:`Apply` (child
        rows) and :class:`Move` (a related row's status) steps the engine carries out."""
        return ()

    def remember(self, row: Any) -> Any:
        """What :meth:`transitions` compares with: taken from an existing row before the
        object is applied (None by default)."""
        return None

    def transitions(self, row: Any, moved_to: str | None, before: Any) -> list[Signal]:
        """The signals to send for this change, in order; ``before`` is :meth:`remember`'s
        value, or None for a row created now. By default the signal of the status reached."""
        signal = self.signals.get(moved_to) if moved_to else None
        return [signal] if signal is not None else []

    def incomplete(self, obj: Mapping[str, Any]) -> bool:
        """Is this event object too partial to apply, so the whole object must be fetched
        first (outside the transaction)?"""
        return False

    def covers(self, whole: Mapping[str, Any], partial: Mapping[str, Any]) -> bool:
        """Does ``whole``, the object fetched earlier, already hold what the partial event
        object ``partial`` brings? Yes when every field ``partial`` carries is a monotonic one
        (a renewal's period) and ``whole``'s value of it is as far on; never for a partial
        object carrying none."""
        carried = [name for name, f in self.fields.items() if any(k in partial for k in f.keys)]
        if not carried or not self.monotonic.issuperset(carried):
            return False
        for name in carried:
            field = self.fields[name]
            new, have = field.read(partial, None), field.read(whole, None)
            if new is not None and (have is None or have < new):
                return False
        return True

    # the API

    def fetch(self, plugipay_id: str) -> Mapping[str, Any]:
        """Read the object from Plugipay (outside any transaction)."""
        raise NotImplementedError(f"{self.name} cannot be fetched from Plugipay")

    @property
    def fetchable(self) -> bool:
        return type(self).fetch is not ResourceSpec.fetch

    def synced_through(self, row: Any) -> list[Any] | None:
        """Rows whose sync brings this one's news (a payment through its session and
        refunds), or None when the row is fetched by its own id (default)."""
        return None

    def in_flight(self, now: dt.datetime) -> Any:
        """Rows reconciliation should sync (still moving at Plugipay), or None."""
        return None


def register(spec: ResourceSpec) -> ResourceSpec:
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def spec_for(resource: str) -> ResourceSpec | None:
    return _REGISTRY.get(resource)


def spec_for_model(model: type) -> ResourceSpec | None:
    return next((s for s in _REGISTRY.values() if s.model is model), None)


def registered(resource: str) -> ResourceSpec:
    """The spec named ``resource``; LookupError when no module declared it."""
    spec = _REGISTRY.get(resource)
    if spec is None:
        raise LookupError(f"no resource spec named {resource!r}")
    return spec


def status_group(model: type, name: str) -> tuple[str, ...]:
    """The statuses of group ``name`` of ``model``'s resource spec (querysets, model
    properties, admin filters and billing helpers read their groups here)."""
    spec = spec_for_model(model)
    if spec is None:
        raise LookupError(f"{model.__name__} has no resource spec")
    return spec.group(name)


def all_specs() -> Iterator[ResourceSpec]:
    return iter(sorted(_REGISTRY.values(), key=lambda s: (s.lock_rank, s.name)))


def status_tones() -> dict[str, str]:
    """Status → tone across every spec (the admin colours badges by tone)."""
    tones: dict[str, str] = {}
    for spec in all_specs():
        for status in spec.statuses:
            tones.setdefault(status, spec.tone(status))
    return tones


# ── the docs' reference, generated ────────────────────────────────────────────


def reference_markdown() -> str:
    """The "Resources" reference page, from the registry (kept in step by a test)."""
    lines = [
        "# Resources",
        "",
        "<!-- Generated from the resource specs (`django_plugipay.specs`); "
        "a test keeps it in step. -->",
        "",
        "Every mirrored Plugipay object is declared once as a resource spec. Events "
        "`<resource>.<action>` (both dialects) are applied through it; a value that does not "
        "match its type stores the event `failed` with the message and answers 422 (so does "
        "an event whose own time, `occurredAt` or `createdAt`, is not an ISO-8601 time).",
        "",
        "Lock order (rows are locked in this order within one transaction): "
        + " → ".join(f"`{s.name}`" for s in all_specs())
        + ".",
    ]
    for spec in all_specs():
        model = spec.model._meta
        lines += ["", f"## `{spec.name}`", "", f"Model: `{model.object_name}`."]
        if spec.fetchable:
            lines[-1] += " Syncable: fetched from the API by id."
        if spec.tiers:
            lines += ["", "| status | terminal | signal |", "|---|---|---|"]
            for status in spec.statuses:
                signal = spec.signals.get(status)
                name = _signal_name(signal) if signal is not None else "—"
                if status in spec.first_entry:
                    name = f"{_signal_name(spec.first_entry[status][1])} (first entry only)"
                terminal = "yes" if status in spec.terminal else "no"
                lines.append(f"| `{status}` | {terminal} | {name} |")
        if spec.groups:
            groups = "; ".join(
                f"`{name}`: " + ", ".join(f"`{status}`" for status in spec.group(name))
                for name in spec.groups
            )
            lines += ["", f"Status groups (querysets, the admin's filter): {groups}."]
        if spec.actions:
            actions = ", ".join(f"`{a}` → `{s}`" for a, s in spec.actions.items())
            lines += ["", f"Status from the event's action when the object has none: {actions}."]
        if spec.events:
            events = ", ".join(f"`{spec.name}.{action}`" for action in spec.events)
            lines += ["", f"Events (subscribed by `plugipay_webhooks create`): {events}."]
        lines += [
            "",
            "| field | read from | type |",
            "|---|---|---|",
            "| `plugipay_id` | `id` | string (required) |",
        ]
        for name, spec_field in [*spec.fields.items(), *spec.refs.items()]:
            keys = ", ".join(f"`{k}`" for k in spec_field.keys)
            label = spec_field.kind.label + (" (required)" if spec_field.required else "")
            stored = f"`{name}`" if name in spec.fields else f"({name})"
            length = (
                getattr(model.get_field(name), "max_length", None) if name in spec.fields else 64
            )
            kind = spec_field.kind
            free_text = isinstance(kind, Text) and not isinstance(kind, Choice)
            if free_text and length:
                label += f", ≤ {length} characters"
            lines.append(f"| {stored} | {keys} | {label} |")
    return "\n".join(lines) + "\n"


def _signal_name(signal: Any) -> str:
    from django_plugipay import signals

    return next((f"`{n}`" for n, v in vars(signals).items() if v is signal), "—")
