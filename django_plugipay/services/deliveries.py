"""Durable receivers: side effects recorded with the change they follow, run after commit,
retried until they return, and never run again once they have (the outbox).

A durable receiver is connected to a signal through a small recorder: when the signal is sent
(inside the transaction that records the transition), the recorder inserts one
:class:`~django_plugipay.models.Delivery` row in that same transaction. The row commits or rolls
back with the change, so a side effect is never promised for a change that did not happen and
never lost for one that did. After the commit, :func:`run_deliveries` claims the row (a lease),
calls the receiver with the object read afresh, and marks the row ``succeeded``, or stores the
error and schedules the next attempt, or gives up (``dead``) after ``DELIVERY_MAX_ATTEMPTS``.
A reconciliation page or a worker batch, which applies many events in one transaction, inserts
its deliveries together at its end, in that transaction (:func:`recorded_together`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.db.models import F
from django.dispatch import Signal
from django.utils import timezone

from django_plugipay import accounts, context, signals
from django_plugipay.accounts import acting_for, current_account_pk
from django_plugipay.conf import app_settings
from django_plugipay.context import acting_database
from django_plugipay.db import (
    connection_for,
    error_text,
    execute,
    insert_many,
    insert_new,
    read,
    read_many,
    run_atomic,
    run_statement,
    traceback_text,
    update_returning,
)
from django_plugipay.models import Account, Delivery, DeliveryStatus, WebhookEvent
from django_plugipay.services._queue import enqueue_gathered, mode

logger = logging.getLogger(__name__)

#: The longest wait between two attempts, whatever ``DELIVERY_BACKOFF`` and the attempt count.
BACKOFF_CAP = dt.timedelta(hours=6)
TASK = "django_plugipay.run_deliveries"
#: A delivery waiting longer than this past its due time means nothing runs deliveries.
OVERDUE_AFTER = dt.timedelta(hours=1)


@dataclass(frozen=True)
class DurableReceiver:
    signal: Signal
    signal_name: str
    name: str
    func: Callable[..., Any]


#: (signal name, receiver name) → the receiver; filled by :func:`durable_receiver` when the
#: module defining a receiver is imported (an app's ``ready()``), in every process.
_registry: dict[tuple[str, str], DurableReceiver] = {}


def signal_name(signal: Signal) -> str:
    """The name of one of :mod:`django_plugipay.signals`; TypeError for any other signal."""
    for name, value in vars(signals).items():
        if value is signal:
            return name
    raise TypeError("durable_receiver() takes one of the signals in django_plugipay.signals")


def durable_receiver(signal: Signal, *, name: str | None = None) -> Callable:
    """Decorate ``func(sender, instance, event, delivery, **kwargs)`` to run once, durably, for
    every transition ``signal`` announces.

    The delivery is recorded in the transaction of the change and run after it commits, with
    ``instance`` read afresh; a raise is retried with backoff (``DELIVERY_BACKOFF``) up to
    ``DELIVERY_MAX_ATTEMPTS`` times, a return is final. ``name`` (default: the function's
    dotted path) identifies the receiver in the database: keep it when moving the function.
    ``delivery.key`` is stable across attempts: give it to the services you call as their
    idempotency key.
    """

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        receiver = DurableReceiver(
            signal, signal_name(signal), name or f"{func.__module__}.{func.__qualname__}", func
        )
        if len(receiver.name) > Delivery._meta.get_field("receiver").max_length:  # type: ignore[operator]
            raise ValueError(f"durable receiver name {receiver.name!r} is too long (max 255)")
        _registry[(receiver.signal_name, receiver.name)] = receiver
        signal.connect(
            _recorder(receiver), weak=False, dispatch_uid=_uid(receiver.signal_name, receiver.name)
        )
        return func

    return decorator


def disconnect(signal: Signal, *, name: str) -> bool:
    """Undo :func:`durable_receiver` for ``name`` (tests; rows already recorded stay)."""
    key = (signal_name(signal), name)
    _registry.pop(key, None)
    return signal.disconnect(dispatch_uid=_uid(*key))


def _uid(signal: str, receiver: str) -> str:
    return f"plugipay_durable:{signal}:{receiver}"


def _recorder(receiver: DurableReceiver) -> Callable[..., None]:
    def record(sender, instance, event=None, **kwargs) -> None:
        record_delivery(receiver, instance, event)

    return record


def record_delivery(
    receiver: DurableReceiver, instance: models.Model, event: WebhookEvent | None
) -> Delivery | None:
    """Insert the delivery of ``receiver`` for this transition of ``instance`` (in the caller's
    transaction) and have it run after commit; None when it was recorded before. Inside
    :func:`recorded_together` it is inserted at the block's end (a duplicate then skipped)
    and returned unsaved."""
    # the content type of the database the delivery is written to (a tenant's has its own)
    content_type = ContentType.objects.db_manager(acting_database()).get_for_model(type(instance))
    delivery = Delivery(
        signal=receiver.signal_name,
        receiver=receiver.name,
        content_type_id=content_type.pk,
        object_id=instance.pk,
        event=event if event is not None and event.pk is not None else None,
        key=delivery_key(receiver, instance, event),
        account_id=getattr(instance, "account_id", None) or current_account_pk(),
        status=DeliveryStatus.PENDING,
        next_attempt_at=timezone.now(),
    )
    together = getattr(_together, "current", None)
    if together is not None and together.takes():  # inserted with the page's others
        together.add(delivery)
        return delivery
    if not insert_new(delivery, "key"):
        return None
    _run_after_commit(delivery)
    return delivery


def _run_after_commit(delivery: Delivery) -> None:
    # One task (or in-process run) for every delivery the transaction records; the task is
    # told the account acting, whose database (ACCOUNT_DATABASE) holds the rows.
    acting = context.acting.get()
    enqueue_gathered(
        TASK,
        delivery.pk,
        inline=lambda pks: run_deliveries(only=pks),
        on_failure=_unsent,
        args=() if acting is None else (acting.alias,),
    )


#: per thread, ``current``: the open :func:`recorded_together` block
_together = threading.local()


class _Together:
    """The deliveries recorded inside a :func:`recorded_together` block on database
    ``using``, each with a commit callback of its own that does nothing: Django drops the
    callbacks of a savepoint that rolls back, so a delivery whose callback is gone was
    recorded by work that rolled back (an event of the page that failed, or a receiver's
    nested ``atomic`` whose error it caught) and is not inserted. (As for Django's own
    ``on_commit``, a savepoint taken by hand with ``transaction.savepoint()`` instead of
    ``atomic()`` is not seen.)"""

    def __init__(self, using: str | None) -> None:
        self.using = using
        self.pending: list[tuple[Delivery, Callable[[], None]]] = []

    def takes(self) -> bool:
        """Recorded in this block's transaction: the same database, inside its transaction
        (a receiver acting for an account with a database of its own records there, now)."""
        connection = transaction.get_connection(self.using)
        if transaction.get_connection(acting_database()) is not connection:
            return False
        return connection.in_atomic_block

    def add(self, delivery: Delivery) -> None:
        marker = functools.partial(_kept)
        transaction.on_commit(marker, using=self.using)
        self.pending.append((delivery, marker))

    def insert(self) -> None:
        callbacks = transaction.get_connection(self.using).run_on_commit
        alive = {id(entry[1]) for entry in callbacks}
        kept = {d.key: d for d, marker in self.pending if id(marker) in alive}
        for delivery in insert_many(list(kept.values()), "key"):
            _run_after_commit(delivery)


def _kept() -> None:
    """A recorded delivery's commit callback: its presence is what counts (see _Together)."""


@contextlib.contextmanager
def recorded_together() -> Iterator[None]:
    """Record the deliveries of everything applied inside in one ``INSERT`` when the block
    ends (a page's or a worker batch's events): open it inside their transaction and end it
    before the commit. An exception discards them with the work that recorded them, and a
    savepoint that rolls back inside the block discards those recorded within it. Nested
    blocks record with the outermost one."""
    if getattr(_together, "current", None) is not None:
        yield
        return
    together = _Together(acting_database())
    _together.current = together
    try:
        yield
        together.insert()
    finally:
        _together.current = None


def _unsent(exc: Exception, pks: list[int]) -> None:
    """When the task cannot be sent (the broker is down), run the deliveries here after all:
    the side effect should not wait for the next scheduled run."""
    if mode() == "inline":
        return  # they ran in-process already; their outcome is recorded on the rows
    try:
        run_deliveries(only=pks)
    except Exception:  # the rows stay due; the next run_deliveries takes them
        logger.exception("plugipay deliveries %s could not run in-process", pks)


def delivery_key(
    receiver: DurableReceiver, instance: models.Model, event: WebhookEvent | None
) -> str:
    """The same for the same receiver, object and transition, whatever route announced it.

    The transition is the event that brought it; without one (a sync), the object's status and
    Plugipay's ``updatedAt`` for it (or, lacking that, when this row recorded the change).
    """
    if event is not None:
        transition = f"event:{event.event_id}"
    else:
        data = getattr(instance, "data", None) or {}
        stamp = data.get("updatedAt") if isinstance(data, dict) else None
        if not isinstance(stamp, str):
            updated = getattr(instance, "updated_at", None)
            stamp = updated.isoformat() if updated is not None else ""
        transition = f"sync:{getattr(instance, 'status', '')}:{stamp}"
    parts = (receiver.signal_name, receiver.name, instance._meta.label_lower, str(instance.pk))
    return hashlib.sha256("\x1f".join((*parts, transition)).encode()).hexdigest()


# ── running ──────────────────────────────────────────────────────────────────────


def run_deliveries(
    *, force: bool = False, only: Iterable[int] | None = None, limit: int | None = None
) -> int:
    """Run every due delivery; return how many ran (succeeded or not).

    Due: pending (not run yet, e.g. after a crash between commit and run), failed past its
    backoff, or running with an expired lease (its process died). ``force=True`` ignores the
    backoff and gives dead deliveries one more attempt. ``only`` limits the run to those
    delivery ids. Each delivery is claimed by one statement, so concurrent runners never run
    the same attempt twice; a receiver's exception is recorded, never raised.

    Called outside any account (``acting_for``) without ``only``, it runs every account's
    due deliveries, each account in turn in its own database; one account's failure is
    logged and does not stop the others.
    """
    if only is None and context.acting.get() is None and len(accounts.every()) > 1:
        each = accounts.each_account(
            lambda: run_deliveries(force=force, limit=limit), what="deliveries"
        )
        return sum(each.values())
    # what a commit queued is claimed without reading the due ids first
    chunks = _chunks(sorted(set(only)), CLAIM_CHUNK) if only is not None else _due_chunks(force)
    ran = 0
    for chunk in chunks:
        if limit is not None and ran >= limit:
            break
        claimed = _claim(chunk[: None if limit is None else limit - ran], force)
        # Objects read afresh, once per object for the chunk (a second delivery for the same
        # object reads it again, after the first receiver ran).
        first = _instances(claimed)
        for n, delivery in enumerate(claimed):
            if _lease_left(delivery) < app_settings.DELIVERY_LEASE / 2:
                # slow receivers before it: hold the rest of the chunk for another lease, and
                # leave any another runner took over meanwhile (it runs them)
                held = _renew(claimed[n:])
                if delivery.pk not in held:
                    continue
            try:
                _run(delivery, first.pop((delivery.content_type_id, delivery.object_id), _UNREAD))
            except BaseException:
                # the process is going (SystemExit, a cancellation): what it claimed and did
                # not start waits for the next runner, its attempt not counted
                _release(claimed[n + 1 :])
                raise
            ran += 1
    return ran


def _chunks(ids: list[int], size: int) -> list[list[int]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def _due_chunks(force: bool) -> list[list[int]]:
    """The acting account's due deliveries in claims: those waiting (by due time) in chunks,
    then those whose runner died (an expired lease) one by one, the fewest attempts first.

    A receiver that kills its process on every attempt (a hard time limit, the OOM killer)
    is thus taken over alone, never again with deliveries it would keep from running; after
    ``DELIVERY_MAX_ATTEMPTS`` such attempts it is ``dead`` (``force`` tries it once more)."""
    now = timezone.now()
    due = accounts.own(Delivery.objects.due(now, force=force)).order_by("next_attempt_at", "pk")
    rows = list(due.only("pk", "status", "attempts", "leased_until", "receiver"))
    waiting = [row.pk for row in rows if row.status != DeliveryStatus.RUNNING]
    crashed = [row for row in rows if row.status == DeliveryStatus.RUNNING]
    limit = app_settings.DELIVERY_MAX_ATTEMPTS
    given_up = {
        row.pk for row in crashed if not force and row.attempts >= limit and _give_up(row, now)
    }
    taken_over = sorted(
        (row for row in crashed if row.pk not in given_up), key=lambda row: (row.attempts, row.pk)
    )
    return [*_chunks(waiting, CLAIM_CHUNK), *([row.pk] for row in taken_over)]


def _give_up(delivery: Delivery, now: dt.datetime) -> bool:
    """Mark ``dead`` a delivery whose runner died on its last allowed attempt (unless another
    runner moved it meanwhile); whether it did."""
    message = (
        f"The process running attempt {delivery.attempts} ended before the receiver "
        "returned (killed, timed out, or out of memory): given up."
    )
    marked = Delivery.objects.filter(
        pk=delivery.pk,
        status=DeliveryStatus.RUNNING,
        attempts=delivery.attempts,
        leased_until=delivery.leased_until,
    ).update(status=DeliveryStatus.DEAD, leased_until=None, last_error=message, updated_at=now)
    if marked:
        logger.error(
            "plugipay delivery %s (%s) given up: %s",
            delivery.pk,
            delivery.receiver,
            message,
            extra={"delivery_id": delivery.pk, "receiver": delivery.receiver},
        )
    return bool(marked)


def _release(claimed: list[Delivery]) -> None:
    """Give back deliveries this runner claimed and never started: due again now, the
    attempt they were claimed for not counted. Never raises (the process is going)."""
    for delivery in claimed:
        try:
            _current(delivery).filter(leased_until=delivery.leased_until).update(
                status=DeliveryStatus.FAILED if delivery.attempts > 1 else DeliveryStatus.PENDING,
                attempts=F("attempts") - 1,
                leased_until=None,
                next_attempt_at=timezone.now(),
            )
        except Exception:  # noqa: BLE001 - the lease runs out and the sweeper takes it over
            logger.warning("plugipay delivery %s not released", delivery.pk, exc_info=True)


def _lease_left(delivery: Delivery) -> float:
    """Seconds left of the lease this runner holds ``delivery`` by."""
    assert delivery.leased_until is not None
    return (delivery.leased_until - timezone.now()).total_seconds()


def _renew(claimed: list[Delivery]) -> set[int]:
    """Extend the lease of the deliveries this runner still holds among ``claimed`` (still
    running, on the attempt it claimed, by the lease it took: its ``leased_until``); return
    their pks. A delivery whose lease ran out and that another runner claimed is not held."""
    lease = timezone.now() + dt.timedelta(seconds=app_settings.DELIVERY_LEASE)
    held = set()
    for delivery in claimed:
        still = Delivery.objects.filter(
            pk=delivery.pk,
            status=DeliveryStatus.RUNNING,
            attempts=delivery.attempts,
            leased_until=delivery.leased_until,
        )
        if run_statement(still.update, leased_until=lease):
            delivery.leased_until = lease
            held.add(delivery.pk)
    return held


#: deliveries one claim takes (all leased together: the chunk's receivers run within a lease)
CLAIM_CHUNK = 20
_UNREAD = object()


def _claim(pks: list[int], force: bool) -> list[Delivery]:
    """Lease the due deliveries among ``pks`` to this runner, in their order: one
    ``UPDATE … RETURNING`` outside a transaction (a row another runner is claiming is waited
    for, then skipped unless still due), or a locking read and an update elsewhere."""
    now = timezone.now()
    lease = now + dt.timedelta(seconds=app_settings.DELIVERY_LEASE)
    values = {
        "status": DeliveryStatus.RUNNING,
        "leased_until": lease,
        "next_attempt_at": None,
        "updated_at": now,
    }
    connection = connection_for(Delivery)
    stamp = Delivery._meta.get_field("leased_until").get_db_prep_value(now, connection)
    waiting = [DeliveryStatus.PENDING, DeliveryStatus.FAILED]
    if force:
        waiting.append(DeliveryStatus.DEAD)

    def due(column: Callable[[str], str]) -> str:
        status, listed = column("status"), ", ".join(["%s"] * len(waiting))
        backoff = "" if force else f" AND {column('next_attempt_at')} <= %s"
        return (
            f"({status} IN ({listed}){backoff}) "
            f"OR ({status} = %s AND {column('leased_until')} < %s)"
        )

    params = [*waiting, *([] if force else [stamp]), DeliveryStatus.RUNNING, stamp]
    rows = run_statement(
        update_returning,
        Delivery,
        "forced" if force else "due",
        pks,
        values,
        increment=("attempts",),
        where=due,
        where_params=params,
    )
    if rows is None:
        rows = run_atomic(_claim_locking, pks, force, now, values)
    order = {pk: n for n, pk in enumerate(pks)}
    rows.sort(key=lambda row: order[row.pk])
    types = ContentType.objects.db_manager(connection.alias)  # a tenant database has its own
    for row in rows:  # from the content types' cache: no query
        row.content_type = types.get_for_id(row.content_type_id)
    events = {row.event_id for row in rows if row.event_id is not None}
    if events:  # the receivers take the event: read once for the chunk
        known = read_many(WebhookEvent, events)
        for row in rows:
            if row.event_id is not None:
                row.event = known.get(row.event_id)  # type: ignore[assignment]
    return rows


def _claim_locking(pks: list[int], force: bool, now, values: dict) -> list[Delivery]:
    rows = list(
        Delivery.objects.due(now, force=force)
        .filter(pk__in=pks)
        .select_for_update(skip_locked=True, of=("self",))
    )
    if not rows:
        return []
    Delivery.objects.filter(pk__in=[row.pk for row in rows]).update(
        **values, attempts=F("attempts") + 1
    )
    for row in rows:
        for name, value in values.items():
            setattr(row, name, value)
        row.attempts += 1
    return rows


def _instances(deliveries: list[Delivery]) -> dict[tuple[int, Any], Any]:
    """(content type id, object id) → the object, one query per model of the chunk. Each
    object is read with the mirrored rows it belongs to (a payment's session, a refund's
    payment), joined, so receivers reading
    ``instance.checkout_session`` cost no query each (:func:`~django_plugipay.db.read_many`)."""
    wanted: dict[int, set[Any]] = {}
    for delivery in deliveries:
        wanted.setdefault(delivery.content_type_id, set()).add(delivery.object_id)
    found: dict[tuple[int, Any], Any] = {}
    types = ContentType.objects.db_manager(connection_for(Delivery).alias)
    for content_type_id, object_ids in wanted.items():
        model = types.get_for_id(content_type_id).model_class()
        if model is None:
            continue
        for pk, instance in read_many(model, object_ids, _parents(model)).items():
            found[(content_type_id, pk)] = instance
    return found


@functools.cache
def _parents(model: type[models.Model]) -> tuple[str, ...]:
    """The foreign keys of ``model`` to this app's mirrored rows (not to its account)."""
    return tuple(
        field.name
        for field in model._meta.concrete_fields
        if isinstance(field, models.ForeignKey)
        and field.related_model is not Account
        and field.related_model._meta.app_label == Delivery._meta.app_label
    )


def _run(delivery: Delivery, instance: Any = _UNREAD) -> None:
    extra = {
        "delivery_id": delivery.pk,
        "receiver": delivery.receiver,
        "signal": delivery.signal,
        "object_id": delivery.object_id,
        "attempt": delivery.attempt,
    }
    receiver = _registry.get((delivery.signal, delivery.receiver))
    model = delivery.content_type.model_class()
    if instance is _UNREAD:
        instance = None if model is None else read(model, delivery.object_id)
    try:
        if receiver is None:
            raise LookupError(
                f"No durable receiver {delivery.receiver!r} for {delivery.signal} is registered "
                "in this process (is the module that defines it imported in an app's ready()?)."
            )
        if instance is None:
            raise LookupError(f"{delivery.content_type} {delivery.object_id} no longer exists.")
        with acting_for(delivery.account_id):  # the services it calls act for its account
            receiver.func(
                sender=model,
                instance=instance,
                event=delivery.event,
                delivery=delivery,
                signal=receiver.signal,
            )
    except Exception as exc:
        _record_failure(delivery, exc, extra)
    else:
        _record_success(delivery, extra)


def _current(delivery: Delivery) -> models.QuerySet[Delivery]:
    """The row, if this runner still holds it (no one took it over after the lease)."""
    return Delivery.objects.filter(
        pk=delivery.pk, status=DeliveryStatus.RUNNING, attempts=delivery.attempts
    )


def _record_success(delivery: Delivery, extra: dict[str, Any]) -> None:
    now = timezone.now()
    connection = connection_for(Delivery)
    stamp = Delivery._meta.get_field("updated_at").get_db_prep_value(now, connection)
    params = [
        DeliveryStatus.SUCCEEDED.value,
        stamp,
        stamp,
        delivery.pk,
        DeliveryStatus.RUNNING.value,
        DeliveryStatus.DEAD.value,
        delivery.attempts,
    ]
    updated = run_statement(execute, Delivery, "delivery_succeeded", _succeeded_sql, params)
    if not updated:
        logger.warning(
            "plugipay delivery %s returned after its lease was taken over", delivery.pk, extra=extra
        )


def _succeeded_sql(connection) -> str:
    """Mark a delivery succeeded if this runner still holds it (as :func:`_current` finds it),
    or it was given up on this attempt while its slow runner went on (:func:`_give_up`:
    the receiver did return): one statement, compiled once per connection."""
    qn, meta = connection.ops.quote_name, Delivery._meta

    def column(name: str) -> str:
        return qn(meta.get_field(name).column)  # type: ignore[union-attr]

    return (
        f"UPDATE {qn(meta.db_table)} SET {column('status')} = %s, {column('succeeded_at')} = %s, "
        f"{column('leased_until')} = NULL, {column('last_error')} = '', "
        f"{column('last_traceback')} = '', {column('updated_at')} = %s "
        f"WHERE {column('id')} = %s AND {column('status')} IN (%s, %s) "
        f"AND {column('attempts')} = %s"
    )


def _record_failure(delivery: Delivery, exc: Exception, extra: dict[str, Any]) -> None:
    now = timezone.now()
    dead = delivery.attempts >= app_settings.DELIVERY_MAX_ATTEMPTS
    said, trace = error_text(exc)[:2000], traceback_text(exc)[-20000:]
    run_atomic(
        lambda: _current(delivery).update(
            status=DeliveryStatus.DEAD if dead else DeliveryStatus.FAILED,
            next_attempt_at=None if dead else now + backoff(delivery.attempts),
            leased_until=None,
            last_error=said,
            last_traceback=trace,
            updated_at=now,
        )
    )
    log = logger.error if dead else logger.warning
    log(
        "plugipay delivery %s (%s) failed on attempt %s%s: %s",
        delivery.pk,
        delivery.receiver,
        delivery.attempts,
        ", giving up" if dead else "",
        said,
        extra=extra,
        exc_info=exc,
    )


def backoff(attempt: int) -> dt.timedelta:
    """The wait after the ``attempt``-th failure: ``DELIVERY_BACKOFF`` doubled each time."""
    seconds = app_settings.DELIVERY_BACKOFF * 2 ** max(0, min(attempt - 1, 30))
    return min(dt.timedelta(seconds=seconds), BACKOFF_CAP)


def resolve_deliveries(*, deliveries: Iterable[Delivery]) -> int:
    """Mark deliveries staff handled by hand as resolved (never run again); return how many.
    Succeeded ones are left as they are."""
    now = timezone.now()
    pks = [d.pk for d in deliveries]
    return run_atomic(
        lambda: (
            Delivery.objects.filter(pk__in=pks)
            .exclude(status__in=DeliveryStatus.finished_states())
            .update(
                status=DeliveryStatus.RESOLVED, resolved_at=now, leased_until=None, updated_at=now
            )
        )
    )


def retry_deliveries(*, deliveries: Iterable[Delivery]) -> int:
    """Run these failed, dead or waiting deliveries now, whatever their backoff; how many ran."""
    return run_deliveries(force=True, only=[d.pk for d in deliveries])


@dataclass(frozen=True)
class DeliveryHealth:
    dead: int
    overdue: int
    #: the receiver and last error of the delivery that gave up last, when any did
    latest_dead: str | None = None


def delivery_health() -> DeliveryHealth:
    """How many deliveries gave up (``dead``) and how many wait over :data:`OVERDUE_AFTER` past
    their due time (no worker, beat or ``plugipay_sync`` runs them). With
    ``PLUGIPAY["ACCOUNT_DATABASE"]``, asked outside any account, every account's database (each
    account's rows once; one that cannot be read raises, naming the account)."""
    if app_settings.raw("ACCOUNT_DATABASE") is not None and context.acting.get() is None:
        each = accounts.read_every_account(delivery_health)
        return DeliveryHealth(
            dead=sum(health.dead for health in each),
            overdue=sum(h.overdue for h in each),
            latest_dead=next((h.latest_dead for h in each if h.latest_dead), None),
        )
    now = timezone.now()
    dead = accounts.own(Delivery.objects.dead())
    count = dead.count()
    latest = dead.order_by("-updated_at").first() if count else None
    return DeliveryHealth(
        dead=count,
        overdue=accounts.own(Delivery.objects.overdue(now, OVERDUE_AFTER)).count(),
        latest_dead=_said(latest) if latest is not None else None,
    )


def _said(delivery: Delivery) -> str:
    """A delivery's receiver and the first line of its last error, for a report's line."""
    error = (delivery.last_error or "").strip().splitlines()
    return f"{delivery.receiver} ({error[0][:200] if error else 'no error recorded'})"
