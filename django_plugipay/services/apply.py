"""The apply engine: validate an object, lock its row, move it forward, send signals.

Every route that brings news of a remote change (webhook, sync, reconciliation, the response
to a create call) ends in :func:`advance`, whatever the resource: what varies between
resources is declared in their spec (``django_plugipay.resources``, one module per family).
``advance`` runs in one transaction, locks the rows it changes in the lock order (each spec's
``lock_rank``: customer → checkout session → payment → refund), applies only forward
transitions and sends the transition's signal inside that transaction, so a signal is sent
once per object per transition whatever the route or the number of deliveries.

Every status change goes through :func:`_update`: a remote object's (:func:`advance`), a
related row's that a spec's hook asks for (a session a pending payment moves, a
:class:`~django_plugipay.specs.Move`) and a refund Plugipay refused (:func:`mark_refund_failed`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.apps import apps
from django.db import models
from django.utils import timezone

from django_plugipay import datetimes
from django_plugipay.accounts import acting_for
from django_plugipay.context import current_account_pk
from django_plugipay.db import (
    find,
    forget_absent,
    in_lock_scope,
    lock,
    lock_scope,
    run_receivers,
    save_fields,
    take_lock,
    upsert_locked,
    write_atomic,
)
from django_plugipay.exceptions import InvalidObject
from django_plugipay.models import Customer, Payment, Refund, RefundStatus, WebhookEvent
from django_plugipay.specs import (
    Apply,
    Move,
    ResourceSpec,
    Step,
    UnresolvedReference,
    registered,
    spec_for_model,
)

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=models.Model)

__all__ = [
    "UnresolvedReference",
    "advance",
    "mark_refund_failed",
    "move",
    "raised_by_receiver",
    "send",
    "send_first_entry",
    "sends_unsent",
    "sync_object",
    "upsert_checkout_session",
    "upsert_customer",
    "upsert_payment",
    "upsert_refund",
]


def _stamp(row: models.Model) -> dt.datetime | None:
    value = (row.data or {}).get("updatedAt") if hasattr(row, "data") else None
    return datetimes.parse(value)


def _age(row: models.Model, refs: Mapping[str, Any]) -> int | None:
    """Is the object newer (1), as new (0) or older (-1) than what the row last took in, by
    ``updatedAt``? None when either has no ``updatedAt``."""
    new, old = refs.get("updated_at"), _stamp(row)
    if new is None or old is None:
        return None
    return (new > old) - (new < old)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == {}


def _behind(new: Any, old: Any) -> bool:
    return new is not None and old is not None and new < old


def _given(spec: ResourceSpec, name: str, values: dict) -> bool:
    """Does the (full) object carry the field, even as null?"""
    data = values.get("data")
    return isinstance(data, dict) and any(k in data for k in spec.fields[name].keys)


# ── advance: the one apply step ─────────────────────────────────────────────────


def advance(
    spec: ResourceSpec,
    obj: Any,
    *,
    event: WebhookEvent | None = None,
    action: str | None = None,
    partial: bool = False,
    context: dict[str, Any] | None = None,
) -> Any:
    """Apply a remote object through its spec; return the (locked) row.

    Validation comes first and touches nothing (:class:`InvalidObject`). Then, in one
    transaction: lock what the spec locks first (its parent), insert the row or lock the
    existing one, move its status forward only (terminal states never regress; a stale object,
    older than what the row holds, changes nothing), send the signal of the status reached,
    and let the spec do what follows (child rows). ``partial`` marks an object pieced together
    from another (a payment from its session): it moves status and fills blanks only.
    """
    values, refs = spec.read(obj, action)
    values["synced_at"] = timezone.now()
    if partial:
        values.pop("data")
    return _advance(spec, values, refs, event, partial, context or {})


@write_atomic(savepoint=False)
def _advance(spec, values, refs, event, partial, context) -> Any:
    """One transaction, retried whole on transient errors (so it starts from a fresh copy of
    the values and a fresh lock scope each time)."""
    values = dict(values)
    if not in_lock_scope():
        with lock_scope():
            return _advance_locked(spec, values, refs, event, partial, context)
    return _advance_locked(spec, values, refs, event, partial, context)


def _advance_locked(spec, values, refs, event, partial, context) -> Any:
    parent = spec.lock_parent(values, refs, context)
    fills = {**_links(spec, values, refs), **context.get("fill", {})}
    take_lock(spec)
    row = spec.find(values, refs)
    created = False
    if row is None:
        new = spec.model(**values, **{k: v for k, v in fills.items() if v is not None})
        row, created = upsert_locked(new, "plugipay_id")
    if not created:
        _same_account(spec, row)
    before = None if created else spec.remember(row)
    moved_to = values.get("status") if created else _update(spec, row, values, refs, fills, partial)
    forget_absent()  # the event's own lookups are done: receivers read the database again
    _hand_over(row, parent)
    spec.changed(row, moved_to, parent)
    for signal in spec.transitions(row, moved_to, before):
        send(signal, spec.model, row, event)
    for step in spec.after(row, moved_to, refs, event):
        _carry_out(step, event)
    send_first_entry(spec, row, event)
    return row


def send(signal: Any, sender: Any, instance: Any, event: Any, **extra: Any) -> None:
    """Send ``signal`` inside the change's transaction, its receivers' errors marked as
    theirs (:func:`~django_plugipay.db.run_receivers`)."""
    run_receivers(signal, sender, instance=instance, event=event, **extra)


def raised_by_receiver(exc: BaseException) -> bool:
    """Did ``exc`` come out of a signal receiver (sent through :func:`send`)?"""
    return getattr(exc, "plugipay_receiver", False)


def _hand_over(row: models.Model, parent: Any) -> None:
    """Give ``row`` its locked parent as the related object a receiver reads
    (``payment.checkout_session`` in a ``payment_succeeded`` receiver costs no query), when the
    parent was read whole or all but its raw ``data`` (``resources.common.parent_fields``); a
    parent read in part is left out, as each deferred field would be read back one query at a
    time."""
    if not isinstance(parent, models.Model) or parent.get_deferred_fields() - {"data"}:
        return
    for field in row._meta.concrete_fields:
        if (
            isinstance(field, models.ForeignKey)
            and field.related_model is type(parent)
            and getattr(row, field.attname) == parent.pk
        ):
            field.set_cached_value(row, parent)


def _same_account(spec: ResourceSpec, row: Any) -> None:
    """Refuse news of another account's row (accounts never mix): the row's own account must
    be the one acting (no query: the locked row carries it)."""
    owner = row.__dict__.get("account_id")
    if owner is not None and owner != current_account_pk():
        raise InvalidObject(
            f"{spec.name} {row.plugipay_id} belongs to another Plugipay account than the one "
            "this news came from; nothing was changed.",
            code="other_account",
        )


def _carry_out(step: Step, event: WebhookEvent | None) -> None:
    """Do what a spec's hook asked for, in the same transaction and lock scope."""
    spec = registered(step.resource)
    if isinstance(step, Apply):
        advance(spec, step.obj, event=event, partial=step.partial, context=dict(step.context))
    elif isinstance(step, Move):
        _move_locked(spec, step.row, step.status, dict(step.fields), event=event)


def move(
    spec: ResourceSpec,
    row: Any,
    status: str,
    fields: Mapping[str, Any] | None = None,
    *,
    data: Mapping[str, Any] | None = None,
    event: WebhookEvent | None = None,
) -> str | None:
    """Move ``row`` (locked by the caller) to ``status`` with ``fields``, forward only, as
    news as fresh as any: through the same :func:`_update` and signals as :func:`advance`.
    ``data`` is the object Plugipay answered with, when it answered. Returns the status
    reached, or None when the row stays (a terminal one never moves)."""
    return _move_locked(spec, row, status, dict(fields or {}), data=data, event=event)


def _move_locked(spec, row, status, fields, *, data=None, event=None) -> str | None:
    values: dict[str, Any] = {**fields, "status": status, "synced_at": row.synced_at}
    values["plugipay_id"] = row.plugipay_id or (data or {}).get("id")
    if data:
        values["data"], values["mode"] = dict(data), row.mode
    before = spec.remember(row)
    moved_to = _update(spec, row, values, {}, {}, partial=False, fresher=True)
    for signal in spec.transitions(row, moved_to, before):
        send(signal, spec.model, row, event)
    send_first_entry(spec, row, event)
    return moved_to


def send_first_entry(spec: ResourceSpec | None, row: Any, event: WebhookEvent | None) -> None:
    """Send the spec's first-entry signal for the row's status unless its field says it was
    sent before; the row is locked, so concurrent deliveries send it once."""
    if spec is None:
        return
    entry = spec.first_entry.get(getattr(row, "status", ""))
    if entry is None:
        return
    field_name, signal = entry
    if getattr(row, field_name) is not None:
        return
    setattr(row, field_name, timezone.now())
    save_fields(row, [field_name, "updated_at"])
    send(signal, spec.model, row, event)


def _links(spec: ResourceSpec, values: dict, refs: dict) -> dict[str, Any]:
    """Foreign keys from related Plugipay ids (filled only where the row has none)."""
    fills = {}
    for name, link in spec.links.items():
        attname = f"{name}_id"
        if values.get(attname) is not None:
            continue
        related = refs.get(link.ref)
        model = apps.get_model(link.model)
        found = find(model, plugipay_id=related) if related else None
        fills[attname] = None if found is None else found.pk
    foreign_keys = {f.attname for f in spec.model._meta.concrete_fields if f.is_relation}
    for attname in [k for k in values if k in foreign_keys]:
        fills[attname] = values.pop(attname)
    return fills


def _update(spec, row, values, refs, fills, partial, fresher=None) -> str | None:
    """The one status change: move ``row`` forward to ``values`` (terminal states never
    regress; within a tier only fresher news moves it), fill what it lacks, save what
    changed. ``fresher=True`` takes the values as news as fresh as any (a local decision)."""
    age = None if partial or fresher else _age(row, refs)
    if fresher is None:
        fresher = not partial and (age is None or age >= 0)
    moved_to = None
    same = True
    if spec.tiers:
        old, new = row.status, values["status"]
        same = old == new
        if old not in spec.terminal and not same:
            old_rank, new_rank = spec.rank(old), spec.rank(new)
            if new_rank == old_rank and age == 0:
                # Two states stamped with the same instant (a subscription created incomplete
                # and charged within one millisecond): their order is unknown, so the later
                # one in the lifecycle wins, whichever arrives first; the loser changes nothing.
                fresher = spec.position(new) > spec.position(old)
            if new_rank > old_rank or (new_rank == old_rank and fresher):
                moved_to = new
    changed = ["synced_at"]
    if moved_to is not None or (same and fresher):
        for name in ("status", *spec.fields):
            if name not in values or getattr(row, name) == values[name]:
                continue
            if name in spec.monotonic and _behind(values[name], getattr(row, name)):
                continue
            if not _empty(values[name]) or (name in spec.clearable and _given(spec, name, values)):
                setattr(row, name, values[name])
                changed.append(name)
    if "data" in values and (moved_to is not None or fresher) and row.data != values["data"]:
        row.data = values["data"]
        changed += ["data", "mode"]
        row.mode = values["mode"]
    for name, value in {"plugipay_id": values["plugipay_id"], **fills}.items():
        if value is not None and getattr(row, name) is None:
            setattr(row, name, value)
            changed.append(name)
    if values["synced_at"] is not None:
        row.synced_at = values["synced_at"]
    save_fields(row, [*dict.fromkeys(changed), "updated_at"])
    return moved_to


# ── the named entry points (callers and tests use them) ─────────────────────────


def upsert_customer(obj: Mapping[str, Any], *, event=None, user=None) -> Customer:
    fill = {"user_id": user.pk} if user is not None else {}
    return advance(registered("customer"), obj, event=event, context={"fill": fill})


def upsert_checkout_session(obj: Mapping[str, Any], *, event=None) -> Any:
    """Take in a remote session; on completion, create its payment (once)."""
    return advance(registered("checkout_session"), obj, event=event)


def upsert_payment(obj, *, event=None, session=None, from_session=False) -> Payment:
    """Take in a remote charge; ``payment_succeeded``/``payment_failed`` fire once."""
    return advance(
        registered("payment"), obj, event=event, partial=from_session, context={"session": session}
    )


def upsert_refund(obj: Mapping[str, Any], *, event=None) -> Refund:
    """Take in a remote refund; keep ``payment.amount_refunded`` true; signal settlement once.

    Raises :class:`UnresolvedReference` when the refunded payment is not known here.
    """
    return advance(registered("refund"), obj, event=event)


#: model → how a row of it that was never sent to Plugipay is sent (see :func:`sends_unsent`)
_SENDERS: dict[type[models.Model], Callable[[Any], Any]] = {}


def sends_unsent(model: type[M], send: Callable[[M], M]) -> None:
    """Declare how :func:`sync_object` sends a row of ``model`` that Plugipay has not heard of
    yet (no ``plugipay_id``: a refund requested here), instead of fetching it."""
    _SENDERS[model] = send


def sync_object(row: M) -> M:
    """Fetch any mirrored row's object from Plugipay and apply it through its spec (fetch
    first, then lock); a row Plugipay has no read for is synced through the rows its spec
    names (a payment through its session and refunds), and one never sent is sent."""
    spec = spec_for_model(type(row))
    if spec is None:
        raise TypeError(f"{type(row).__name__} is not a mirrored Plugipay resource")
    with acting_for(getattr(row, "account_id", None)):
        return _sync_object(spec, row)


def _sync_object(spec: ResourceSpec, row: M) -> M:
    plugipay_id: str = getattr(row, "plugipay_id", None) or ""
    if not plugipay_id and type(row) in _SENDERS:
        return _SENDERS[type(row)](row)
    through = spec.synced_through(row)
    if through is None:
        return advance(spec, spec.fetch(plugipay_id))
    for other in through:
        sync_object(other)
    row.refresh_from_db()
    return row


@write_atomic
def mark_refund_failed(
    refund: Refund, *, code: str, message: str, data: Mapping[str, Any] | None = None
) -> Refund:
    """A refund Plugipay refused outright: failed, once, with the API's message."""
    with lock_scope():
        lock(registered("payment"), pk=refund.payment_id, only=())
        spec = registered("refund")
        row = lock(spec, pk=refund.pk)
        if row.status not in spec.terminal:  # settled meanwhile: its outcome stands
            fields = {"failure_code": code, "failure_message": message}
            move(spec, row, RefundStatus.FAILED, fields, data=data)
        return row
