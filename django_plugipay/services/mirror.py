"""The single apply path: validate an object, lock its row, move it forward, send signals.

Every route that brings news of a remote change (webhook, sync, reconciliation, the response
to a create call) ends in :func:`advance`, whatever the resource: what varies between
resources is declared in their spec (below, one per resource; see ``django_plugipay.specs``).
``advance`` runs in one transaction, locks the rows it changes in the lock order (each spec's
``lock_rank``: customer → checkout session → payment → refund), applies only forward
transitions and sends the transition's signal inside that transaction, so a signal is sent
once per object per transition whatever the route or the number of deliveries.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar, cast

from django.apps import apps
from django.db import IntegrityError, connections, models, router, transaction
from django.db.models import OuterRef, Q, Subquery, Sum, sql
from django.db.models.functions import Coalesce
from django.utils import timezone

from django_plugipay import datetimes, signals
from django_plugipay.db import write_atomic
from django_plugipay.exceptions import InvalidObject
from django_plugipay.models import (
    CheckoutSession,
    Customer,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    SessionStatus,
    WebhookEvent,
)
from django_plugipay.signals import checkout_session_pending
from django_plugipay.specs import (
    Currency,
    Integer,
    Link,
    Object,
    OptionalText,
    ResourceSpec,
    Text,
    Timestamp,
    field,
    spec_for,
    spec_for_model,
)

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=models.Model)

REFUND_REFERENCE_KEY = "django_plugipay_refund"
STUCK_REQUEST_AGE = dt.timedelta(minutes=5)


class UnresolvedReference(Exception):
    """An object names another this database cannot place yet (e.g. an unknown payment).

    ``resource``/``plugipay_id`` name what to fetch from Plugipay (outside the transaction)
    before applying again, when that can help.
    """

    def __init__(self, message: str, *, resource: str | None = None, plugipay_id: str = ""):
        super().__init__(message)
        self.resource, self.plugipay_id = resource, plugipay_id


class LockOrderError(AssertionError):
    """A row of a lower lock rank was locked after a higher one in the same apply step."""


# ── the lock order ───────────────────────────────────────────────────────────────

_held = threading.local()


@contextlib.contextmanager
def lock_scope() -> Iterator[None]:
    """One apply step (one event): rows are locked in increasing ``lock_rank`` within it."""
    previous = getattr(_held, "ranks", None)
    _held.ranks = []
    try:
        yield
    finally:
        _held.ranks = previous


def _take(spec: ResourceSpec) -> None:
    ranks = getattr(_held, "ranks", None)
    if ranks is None:
        return
    if ranks and spec.lock_rank < ranks[-1]:
        raise LockOrderError(
            f"{spec.name} (rank {spec.lock_rank}) locked after rank {ranks[-1]}: "
            "see the lock order in docs/explanation/exactly-once.md"
        )
    ranks.append(spec.lock_rank)


def lock(spec: ResourceSpec, queryset: models.QuerySet) -> Any:
    """Lock and return the first row of ``queryset`` (a row of ``spec``'s model), or None."""
    _take(spec)
    return queryset.select_for_update(no_key=True).first()


# ── rows ─────────────────────────────────────────────────────────────────────────


def _column(field: Any) -> str:
    """A concrete field's column (the stubs also allow relations and column-less fields)."""
    if not isinstance(field, models.Field) or field.column is None:
        raise TypeError(f"{field!r} has no database column")
    return field.column


def _supports_insert_returning(connection) -> bool:
    return connection.vendor in ("postgresql", "sqlite") and bool(
        connection.features.can_return_columns_from_insert
    )


def insert_new(instance: models.Model, conflict: str) -> bool:
    """Insert ``instance`` unless a row with the same ``conflict`` value exists.

    One statement where the backend has it (``INSERT … ON CONFLICT DO NOTHING RETURNING``,
    PostgreSQL and SQLite ≥ 3.35); elsewhere a savepoint around a plain insert. Returns True
    (and sets the pk) when this call inserted the row.
    """
    model = type(instance)
    connection = connections[router.db_for_write(model)]
    if not _supports_insert_returning(connection):
        try:
            with transaction.atomic(using=connection.alias):
                instance.save(force_insert=True)
        except IntegrityError:
            return False
        return True
    qn = connection.ops.quote_name
    returned = _insert(
        instance, connection, "DO NOTHING", f"RETURNING {qn(_column(model._meta.pk))}", conflict
    )
    if returned is None:
        return False
    instance.pk = returned[0]
    instance._state.adding, instance._state.db = False, connection.alias
    return True


def _insert(instance, connection, action: str, returning: str, conflict: str):
    """``INSERT … ON CONFLICT (<conflict>) <action> <returning>``; the returned row or None."""
    rows = _insert_rows([instance], connection, action, returning, conflict)
    return rows[0] if rows else None


def _insert_rows(instances, connection, action: str, returning: str, conflict: str) -> list:
    meta, qn = instances[0]._meta, connection.ops.quote_name
    columns = [f for f in meta.concrete_fields if not f.primary_key]
    params = [
        f.get_db_prep_save(f.pre_save(instance, True), connection)
        for instance in instances
        for f in columns
    ]
    row = f"({', '.join(['%s'] * len(columns))})"
    sql = (
        f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in columns)}) "
        f"VALUES {', '.join([row] * len(instances))} "
        f"ON CONFLICT ({qn(_column(meta.get_field(conflict)))}) {action} {returning}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def insert_many(instances: list[M], conflict: str) -> list[M]:
    """Insert every instance whose ``conflict`` value is not taken yet; return those inserted
    (pk set). One statement where the backend has ``ON CONFLICT … RETURNING``."""
    if not instances:
        return []
    model = type(instances[0])
    connection = connections[router.db_for_write(model)]
    if not _supports_insert_returning(connection):
        return [instance for instance in instances if insert_new(instance, conflict)]
    qn, key = connection.ops.quote_name, model._meta.get_field(conflict)
    if not isinstance(key, models.Field):
        raise TypeError(f"{conflict!r} is not a concrete field of {model.__name__}")
    returned = _insert_rows(
        instances,
        connection,
        "DO NOTHING",
        f"RETURNING {qn(_column(model._meta.pk))}, {qn(_column(key))}",
        conflict,
    )
    by_key = {getattr(instance, key.attname): instance for instance in instances}
    inserted = []
    for pk, value in returned:
        instance = by_key[value]
        instance.pk = pk
        instance._state.adding, instance._state.db = False, connection.alias
        inserted.append(instance)
    return inserted


def upsert_locked(instance: M, conflict: str) -> tuple[M, bool]:
    """Insert ``instance``, or lock and return the row that holds its ``conflict`` value.

    PostgreSQL: one statement (``INSERT … ON CONFLICT DO UPDATE SET synced_at … RETURNING``;
    the update locks the existing row, ``xmax = 0`` tells an insert). Elsewhere: an insert that
    ignores the conflict, then a locking read only when the row already existed.
    """
    model = type(instance)
    connection = connections[router.db_for_write(model)]
    if connection.vendor != "postgresql":
        if insert_new(instance, conflict):
            return instance, True
        locked = model._default_manager.select_for_update(no_key=True)
        return locked.get(**{conflict: getattr(instance, conflict)}), False
    qn = connection.ops.quote_name
    fields = list(model._meta.concrete_fields)
    # Set a column no unique index covers, so the existing row is locked FOR NO KEY UPDATE
    # (setting the key itself would take FOR UPDATE and block foreign-key checks).
    touched = qn(_column(model._meta.get_field("synced_at")))
    *values, created = _insert(
        instance,
        connection,
        f"DO UPDATE SET {touched} = EXCLUDED.{touched}",
        f"RETURNING {', '.join(qn(_column(f)) for f in fields)}, (xmax = 0)",
        conflict,
    )
    return _from_returned(model, connection, fields, values), created


def update_returning(
    model: type[M], pk: Any, values: dict[str, Any], *, unless: dict[str, Any]
) -> M | None:
    """Update (and so lock) row ``pk`` unless one of ``unless``'s fields holds one of its
    values; return the updated row, or None when no row matched.

    One statement where the backend has ``UPDATE … RETURNING`` (PostgreSQL, SQLite ≥ 3.35);
    elsewhere a locking read, then the update.
    """
    connection = connections[router.db_for_write(model)]
    manager = model._default_manager
    matching = manager.filter(pk=pk).exclude(
        **{f"{name}__in": list(choices) for name, choices in unless.items()}
    )
    if not _supports_insert_returning(connection):
        if not matching.select_for_update().exists():
            return None
        matching.update(**values)
        return manager.get(pk=pk)
    query = cast(sql.UpdateQuery, matching.query.chain(sql.UpdateQuery))
    query.add_update_values(values)
    update_sql, params = query.get_compiler(connection.alias).as_sql()
    fields = list(model._meta.concrete_fields)
    qn = connection.ops.quote_name
    returning = ", ".join(f"{qn(model._meta.db_table)}.{qn(_column(f))}" for f in fields)
    with connection.cursor() as cursor:
        cursor.execute(f"{update_sql} RETURNING {returning}", params)
        found = cursor.fetchone()
    return None if found is None else _from_returned(model, connection, fields, found)


def _from_returned(model: type[M], connection, fields: list, values) -> M:
    """A model instance from a ``RETURNING`` row (values converted as a query would)."""
    converted = [
        f.from_db_value(v, None, connection) if hasattr(f, "from_db_value") else v
        for f, v in zip(fields, values, strict=True)
    ]
    return model.from_db(connection.alias, [f.attname for f in fields], converted)


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
    if getattr(_held, "ranks", None) is None:
        with lock_scope():
            return _advance_locked(spec, values, refs, event, partial, context)
    return _advance_locked(spec, values, refs, event, partial, context)


def _advance_locked(spec, values, refs, event, partial, context) -> Any:
    parent = spec.lock_parent(values, refs, context)
    fills = {**_links(spec, values, refs), **context.get("fill", {})}
    _take(spec)
    row = spec.find(values, refs)
    created = False
    if row is None:
        new = spec.model(**values, **{k: v for k, v in fills.items() if v is not None})
        row, created = upsert_locked(new, "plugipay_id")
    before = None if created else spec.remember(row)
    moved_to = values.get("status") if created else _update(spec, row, values, refs, fills, partial)
    spec.changed(row, moved_to, parent)
    for signal in spec.transitions(row, moved_to, before):
        signal.send(sender=spec.model, instance=row, event=event)
    spec.after(row, moved_to, refs, event)
    send_first_entry(spec, row, event)
    return row


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
    row.save(update_fields=[field_name, "updated_at"])
    signal.send(sender=spec.model, instance=row, event=event)


def _links(spec: ResourceSpec, values: dict, refs: dict) -> dict[str, Any]:
    """Foreign keys from related Plugipay ids (filled only where the row has none)."""
    fills = {}
    for name, link in spec.links.items():
        attname = f"{name}_id"
        if values.get(attname) is not None:
            continue
        related = refs.get(link.ref)
        model = apps.get_model(link.model)
        fills[attname] = (
            model.objects.filter(plugipay_id=related).values_list("pk", flat=True).first()
            if related
            else None
        )
    foreign_keys = {f.attname for f in spec.model._meta.concrete_fields if f.is_relation}
    for attname in [k for k in values if k in foreign_keys]:
        fills[attname] = values.pop(attname)
    return fills


def _update(spec, row, values, refs, fills, partial) -> str | None:
    age = None if partial else _age(row, refs)
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
    row.synced_at = values["synced_at"]
    row.save(update_fields=[*dict.fromkeys(changed), "updated_at"])
    return moved_to


# ── the resources ───────────────────────────────────────────────────────────────


def _client():
    from django_plugipay.client import get_client

    return get_client()


UPDATED_AT = field(Timestamp(), "updatedAt")


class CustomerSpec(ResourceSpec):
    name = "customer"
    events = ("created", "updated")
    model = Customer
    lock_rank = 0
    fields = {
        "email": field(Text(), "email"),
        "name": field(Text(), "name"),
        "phone": field(Text(), "phone"),
        "external_id": field(OptionalText(), "externalId"),
        "metadata": field(Object(), "metadata"),
    }
    refs = {"updated_at": UPDATED_AT}

    def fetch(self, plugipay_id: str) -> Mapping[str, Any]:
        return _client().get_customer(plugipay_id)


class CheckoutSessionSpec(ResourceSpec):
    name = "checkout_session"
    events = (
        "created",
        "completed",
        "expired",
        "canceled",
        "async_payment_succeeded",
        "async_payment_failed",
    )
    model = CheckoutSession
    lock_rank = 10
    fields = {
        "amount": field(Integer(0), "amount", default=0),
        "currency": field(Currency(), "currency"),
        "url": field(Text(), "hostedUrl", "url"),
        "success_url": field(Text(), "successUrl"),
        "cancel_url": field(Text(), "cancelUrl"),
        "expires_at": field(Timestamp(), "expiresAt"),
        "completed_at": field(Timestamp(), "completedAt"),
        "payment_method": field(Text(), "paymentMethod"),
        "metadata": field(Object(), "metadata"),
    }
    refs = {
        "updated_at": UPDATED_AT,
        "customer_id": field(Text(), "customerId"),
        "payment_id": field(Text(), "paymentId"),
    }
    links = {"customer": Link("django_plugipay.Customer", "customer_id")}
    locks_with = {"payment_id": "payment"}
    tiers = (
        (SessionStatus.OPEN, SessionStatus.PENDING, SessionStatus.PENDING_REVIEW),
        (
            SessionStatus.COMPLETED,
            SessionStatus.EXPIRED,
            SessionStatus.CANCELED,
            SessionStatus.FAILED,
        ),
    )
    signals = {
        SessionStatus.COMPLETED: signals.checkout_session_completed,
        SessionStatus.EXPIRED: signals.checkout_session_expired,
        SessionStatus.CANCELED: signals.checkout_session_canceled,
    }
    first_entry = {
        SessionStatus.PENDING: ("pending_at", checkout_session_pending),
        SessionStatus.PENDING_REVIEW: ("pending_at", checkout_session_pending),
    }
    actions = {
        "completed": SessionStatus.COMPLETED,
        "expired": SessionStatus.EXPIRED,
        "canceled": SessionStatus.CANCELED,
        "async_payment_succeeded": SessionStatus.COMPLETED,
    }
    outcomes = {SessionStatus.COMPLETED: "success", SessionStatus.FAILED: "failure"}

    def after(self, row, moved_to, refs, event) -> None:
        """A completed session's charge becomes its Payment (once, whichever comes first)."""
        if row.status != SessionStatus.COMPLETED or not refs.get("payment_id"):
            return
        payment_obj = {
            "id": refs["payment_id"],
            "status": PaymentStatus.SUCCEEDED,
            "amount": row.amount,
            "currency": row.currency or None,
            "method": row.payment_method or None,
            "paidAt": datetimes.to_api(row.completed_at) if row.completed_at else None,
            "mode": row.mode,
        }
        advance(PAYMENT, payment_obj, event=event, partial=True, context={"session": row})

    def fetch(self, plugipay_id: str) -> Mapping[str, Any]:
        return _client().get_checkout_session(plugipay_id)

    def in_flight(self, now: dt.datetime) -> models.QuerySet:
        return CheckoutSession.objects.stale(now)


class PaymentSpec(ResourceSpec):
    """A charge. Plugipay has no payments endpoint: it is synced through its session."""

    name = "payment"
    events = ("succeeded", "failed", "updated", "captured")
    model = Payment
    lock_rank = 20
    fields = {
        "amount": field(Integer(0), "amount"),
        "currency": field(Currency(), "currency"),
        "method": field(Text(), "method", "paymentMethod"),
        "failure_code": field(Text(), "failureCode"),
        "failure_message": field(Text(), "failureMessage"),
        "paid_at": field(Timestamp(), "paidAt"),
    }
    refs = {
        "updated_at": UPDATED_AT,
        "session_id": field(Text(), "checkoutSessionId"),
        "invoice_id": field(Text(), "invoiceId"),
        "customer_id": field(Text(), "customerId"),
    }
    links = {"customer": Link("django_plugipay.Customer", "customer_id")}
    locks_with = {"session_id": "checkout_session", "invoice_id": "invoice"}
    tiers = ((PaymentStatus.PENDING,), (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED))
    signals = {
        PaymentStatus.SUCCEEDED: signals.payment_succeeded,
        PaymentStatus.FAILED: signals.payment_failed,
    }
    actions = {
        "succeeded": PaymentStatus.SUCCEEDED,
        "failed": PaymentStatus.FAILED,
        "captured": PaymentStatus.SUCCEEDED,
        "updated": PaymentStatus.PENDING,
    }
    outcomes = {PaymentStatus.SUCCEEDED: "success", PaymentStatus.FAILED: "failure"}

    def lock_parent(self, values, refs, context) -> CheckoutSession | None:
        """The session (or invoice) first (lock order), so a payment and what it paid never
        deadlock."""
        session = context.get("session")
        if session is None and refs.get("session_id"):
            session = lock(
                CHECKOUT_SESSION, CheckoutSession.objects.filter(plugipay_id=refs["session_id"])
            )
        invoice = context.get("invoice")
        if session is None and invoice is None and refs.get("invoice_id"):
            from django_plugipay.models import Invoice

            invoice = lock(
                _registered("invoice"), Invoice.objects.filter(plugipay_id=refs["invoice_id"])
            )
        if invoice is not None:
            values["invoice_id"] = invoice.pk
            if invoice.customer_id is not None:
                values["customer_id"] = invoice.customer_id
            values["currency"] = values["currency"] or invoice.currency
        if session is not None:
            values["checkout_session_id"] = session.pk
            if session.customer_id is not None:
                values["customer_id"] = session.customer_id
            if values["amount"] is None:
                values["amount"] = session.amount
            values["currency"] = values["currency"] or session.currency
        if values["amount"] is None:
            values["amount"] = 0
        return session

    def after(self, row: Payment, moved_to, refs, event) -> None:
        """A new pending charge of an open session (its ``payment.updated`` may be all that
        arrived): the session waits for the money (``pending``) or for staff confirming a
        manual transfer (``pending_review``)."""
        if moved_to != PaymentStatus.PENDING or row.checkout_session_id is None:
            return
        # lock_parent locked this session row in this transaction already (lock order).
        session = CheckoutSession.objects.get(pk=row.checkout_session_id)
        if session.status != SessionStatus.OPEN:
            return
        manual = row.method == "manual"
        session.status = SessionStatus.PENDING_REVIEW if manual else SessionStatus.PENDING
        session.payment_method = row.method or session.payment_method
        session.save(update_fields=["status", "payment_method", "updated_at"])
        send_first_entry(CHECKOUT_SESSION, session, event)

    def sync(self, row: Payment) -> Payment:
        if row.checkout_session_id is not None:
            CHECKOUT_SESSION.sync(row.checkout_session)
        for refund in row.refunds.exclude(plugipay_id=None):
            REFUND.sync(refund)
        row.refresh_from_db()
        return row


class RefundSpec(ResourceSpec):
    name = "refund"
    events = ("created", "updated", "succeeded", "failed", "canceled")
    model = Refund
    lock_rank = 30
    fields = {
        "amount": field(Integer(1), "amount", required=True),
        "currency": field(Currency(), "currency"),
        "reason": field(Text(), "reason"),
        "failure_code": field(Text(), "failureCode"),
        "failure_message": field(Text(), "failureMessage", "failureReason"),
    }
    refs = {
        "updated_at": UPDATED_AT,
        "charge_id": field(Text(), "chargeId", "paymentId"),
        "source_id": field(Text(), "sourceId"),
        "source_type": field(Text(), "sourceType"),
        "metadata": field(Object(), "metadata"),
    }
    locks_with = {"charge_id": "payment"}
    tiers = (
        (RefundStatus.REQUESTED,),
        (RefundStatus.PENDING,),
        (RefundStatus.SUCCEEDED, RefundStatus.FAILED, RefundStatus.CANCELED),
    )
    signals = {
        RefundStatus.SUCCEEDED: signals.refund_succeeded,
        RefundStatus.FAILED: signals.refund_failed,
    }
    actions = {
        "created": RefundStatus.PENDING,
        "succeeded": RefundStatus.SUCCEEDED,
        "failed": RefundStatus.FAILED,
        "canceled": RefundStatus.CANCELED,
    }
    initial = RefundStatus.PENDING
    outcomes = {RefundStatus.SUCCEEDED: "success", RefundStatus.FAILED: "failure"}

    def lock_parent(self, values, refs, context) -> Payment:
        """The refunded payment, locked: ``amount_refunded`` is recounted under this lock."""
        payment = None
        if refs["charge_id"]:
            payment = lock(PAYMENT, Payment.objects.filter(plugipay_id=refs["charge_id"]))
        by_invoice = refs["source_type"] == "invoice"
        if payment is None and refs["source_id"]:
            source = "invoice__plugipay_id" if by_invoice else "checkout_session__plugipay_id"
            payment = lock(
                PAYMENT,
                Payment.objects.filter(
                    **{source: refs["source_id"]}, status=PaymentStatus.SUCCEEDED
                ),
            )
        if payment is None:
            source_resource = "invoice" if by_invoice else "checkout_session"
            raise UnresolvedReference(
                f"Refund {values['plugipay_id']} names payment "
                f"{refs['charge_id'] or refs['source_id']}, which is not known here yet.",
                resource=source_resource if refs["source_id"] else None,
                plugipay_id=refs["source_id"],
            )
        values["payment_id"] = payment.pk
        values["currency"] = values["currency"] or payment.currency
        return payment

    def find(self, values, refs) -> Refund | None:
        """Our own refund (created by ``submit_refund``) is matched by its reference too."""
        reference = refs["metadata"].get(REFUND_REFERENCE_KEY)
        if reference is None:
            return None
        if not isinstance(reference, str):
            raise InvalidObject(f"metadata.{REFUND_REFERENCE_KEY} must be a string")
        return lock(self, Refund.objects.filter(plugipay_id=values["plugipay_id"])) or lock(
            self, Refund.objects.filter(idempotency_key=reference)
        )

    def changed(self, row, moved_to, parent) -> None:
        if moved_to == RefundStatus.SUCCEEDED:
            recount_refunded(parent, row)

    def fetch(self, plugipay_id: str) -> Mapping[str, Any]:
        return _client().get_refund(plugipay_id)

    def sync(self, row: Refund) -> Refund:
        if not row.plugipay_id:
            from django_plugipay.services.refunds import submit_refund

            return submit_refund(refund=row)
        return advance(self, self.fetch(row.plugipay_id))

    def in_flight(self, now: dt.datetime) -> models.QuerySet:
        """Pending refunds, requested ones stuck for a while, and requested ones that could
        not be queued or sent (``NOT_SUBMITTED``) — a retry sends the same key."""
        from django_plugipay.services.refunds import NOT_SUBMITTED

        return Refund.objects.filter(
            Q(status=RefundStatus.PENDING)
            | Q(status=RefundStatus.REQUESTED, created_at__lt=now - STUCK_REQUEST_AGE)
            | Q(status=RefundStatus.REQUESTED, plugipay_id=None, failure_code=NOT_SUBMITTED)
        ).select_related("payment")


def _registered(name: str) -> ResourceSpec:
    spec = spec_for(name)
    if spec is None:  # pragma: no cover - each class above registers itself when defined
        raise LookupError(f"no resource spec named {name!r}")
    return spec


CUSTOMER = _registered("customer")
CHECKOUT_SESSION = _registered("checkout_session")
PAYMENT = _registered("payment")
REFUND = _registered("refund")


# ── the named entry points (kept: callers and tests use them) ───────────────────


def upsert_customer(obj: Mapping[str, Any], *, event=None, user=None) -> Customer:
    fill = {"user_id": user.pk} if user is not None else {}
    return advance(CUSTOMER, obj, event=event, context={"fill": fill})


def upsert_checkout_session(obj: Mapping[str, Any], *, event=None) -> CheckoutSession:
    """Take in a remote session; on completion, create its payment (once)."""
    return advance(CHECKOUT_SESSION, obj, event=event)


def upsert_payment(obj, *, event=None, session=None, from_session=False) -> Payment:
    """Take in a remote charge; ``payment_succeeded``/``payment_failed`` fire once."""
    return advance(PAYMENT, obj, event=event, partial=from_session, context={"session": session})


def upsert_refund(obj: Mapping[str, Any], *, event=None) -> Refund:
    """Take in a remote refund; keep ``payment.amount_refunded`` true; signal settlement once.

    Raises :class:`UnresolvedReference` when the refunded payment is not known here.
    """
    return advance(REFUND, obj, event=event)


def sync_object(row: M) -> M:
    """Fetch any mirrored row's object from Plugipay and apply it through its spec."""
    spec = spec_for_model(type(row))
    if spec is None:
        raise TypeError(f"{type(row).__name__} is not a mirrored Plugipay resource")
    return spec.sync(row)


def recount_refunded(payment: Payment, settled: Refund) -> None:
    """Set ``amount_refunded`` to the sum of succeeded refunds, in one statement (the payment
    is locked; ``settled`` has just succeeded, so the in-memory value grows by its amount)."""
    succeeded = (
        Refund.objects.filter(payment=OuterRef("pk"), status=RefundStatus.SUCCEEDED)
        .values("payment")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    now = timezone.now()
    Payment.objects.filter(pk=payment.pk).update(
        amount_refunded=Coalesce(Subquery(succeeded), 0), updated_at=now
    )
    payment.amount_refunded += settled.amount
    payment.updated_at = now


@write_atomic
def mark_refund_failed(
    refund: Refund, *, code: str, message: str, data: Mapping[str, Any] | None = None
) -> Refund:
    """A refund Plugipay refused outright: failed, once, with the API's message."""
    with lock_scope():
        lock(PAYMENT, Payment.objects.filter(pk=refund.payment_id))
        row = lock(REFUND, Refund.objects.filter(pk=refund.pk))
        if row.status in REFUND.terminal:
            return row
        row.status = RefundStatus.FAILED
        row.failure_code, row.failure_message = code, message
        if data:
            row.plugipay_id = row.plugipay_id or data.get("id")
            row.data = dict(data)
        row.save()
        REFUND.signals[RefundStatus.FAILED].send(sender=Refund, instance=row, event=None)
        return row


# The billing resources register themselves (plan, price, subscription, invoice).
from django_plugipay.services import billing_specs  # noqa: E402, F401
