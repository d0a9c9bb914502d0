"""Receiving events: verify, record once, apply through the mirror path, mark the outcome."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import DataError, IntegrityError, transaction
from django.db.models import F, Q
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from django_plugipay import accounts, datetimes, signals
from django_plugipay.conf import app_settings
from django_plugipay.context import acting, acting_database, current_account_pk
from django_plugipay.db import (
    claim,
    connection_for,
    discard_lost_connection,
    error_text,
    find,
    forget_ids,
    insert_locking,
    insert_many,
    insert_values,
    is_transient,
    lock_scope,
    remember_locked,
    remembered_ids,
    run_atomic,
    run_statement,
    storable_text,
    write_atomic,
)
from django_plugipay.exceptions import (
    APIError,
    InvalidObject,
    InvalidPayload,
    NotRecorded,
    SignatureError,
)
from django_plugipay.models import EventSource, EventStatus, WebhookEvent
from django_plugipay.services import apply as engine
from django_plugipay.services import deliveries
from django_plugipay.services._queue import enqueue, enqueue_coalesced, row_args
from django_plugipay.specs import (
    Field,
    Timestamp,
    UnresolvedReference,
    all_specs,
    registered,
    spec_for,
)
from django_plugipay.webhooks import Event, parse_event, parse_time, verify_signature

logger = logging.getLogger(__name__)
T = TypeVar("T")

DONE = (EventStatus.PROCESSED, EventStatus.IGNORED)
#: Events about the account rather than a mirrored object: kind → the signal each sends once.
NOTICES = {"webhook_endpoint.disabled": signals.webhook_endpoint_disabled}
MAX_FETCHES = 4
#: nesting an event body may have (Plugipay's are a handful of levels deep)
MAX_DEPTH = 32


def ingest_webhook(
    *, body: bytes, signature: str | None, account: str | None = None
) -> WebhookEvent:
    """Verify a delivery, record its event once and apply it (inline) or queue it (celery).

    Queued, the answer costs the verification, one ``INSERT`` (a duplicate is told by its
    result) and, at most a few times a second per process, a batch task's message.

    The event belongs to the account its ``accountId`` names, verified with that account's
    ``WEBHOOK_SECRETS`` (``account``: the alias of a per-account URL, whose secrets alone are
    tried). Raises ``SignatureError`` or ``InvalidPayload`` before anything is stored, stores
    an event for an account the project does not know ``failed`` and raises
    :class:`InvalidObject` (``unknown_account``), re-raises whatever a signal receiver raised
    after marking the event ``failed``, and raises :class:`NotRecorded` (logged once) when the
    event could not be stored at all.
    """
    verified = _verify(body, signature, account)
    try:
        parsed = parse_event(body)
        _check_storable(parsed, body)
    except RecursionError:
        raise InvalidPayload(
            "The webhook body is nested too deeply.", code="invalid_payload", status=400
        ) from None
    owner, refusal = _owner(parsed, verified)
    with accounts.acting_for(owner):
        if refusal is not None:
            _record_failure_or_raise(parsed, EventSource.WEBHOOK, refusal)
            _log_failure(parsed.id, parsed.kind, refusal)
            raise refusal
        return _ingest(parsed)


def _verify(body: bytes, signature: str | None, alias: str | None) -> list[str]:
    """Verify the signature; return the aliases of the accounts whose secrets it verifies
    with (``[]``: the single-account case, every event the default account's)."""
    tolerance = app_settings.WEBHOOK_TOLERANCE
    if alias is None and not app_settings.many_accounts:
        verify_signature(body, signature, app_settings.WEBHOOK_SECRETS, tolerance)
        return []
    configured = app_settings.ACCOUNTS
    candidates = [alias] if alias is not None else list(configured)
    if alias is not None and alias not in configured:
        raise SignatureError(
            f"No Plugipay account {alias!r} is configured.", code="signature_invalid", status=401
        )
    verified, first_error = [], None
    for name in candidates:
        try:
            verify_signature(body, signature, configured[name]["WEBHOOK_SECRETS"], tolerance)
        except SignatureError as exc:
            first_error = first_error or exc
            continue
        verified.append(name)
    if not verified:
        assert first_error is not None
        raise first_error
    return verified


def _owner(parsed: Event, verified: list[str]) -> tuple[str | None, InvalidObject | None]:
    """The alias of the account an event belongs to (None: the default account), and why it
    is refused when no configured account it verified with is the one it names."""
    if not verified:
        return None, None
    named = _named_account(parsed.payload)
    if named is None:
        return verified[0], None
    for alias in verified:
        known = accounts.known(alias)
        if known.plugipay_id == named:
            return alias, None
    unnamed = [alias for alias in verified if accounts.known(alias).plugipay_id is None]
    try:
        taken = accounts.known(named)
    except Exception:  # no account has that id: the first event of an unnamed one teaches it
        taken = None
    if taken is not None and taken.alias in verified:  # learned meanwhile (a concurrent event)
        return taken.alias, None
    if taken is None and len(unnamed) == 1:
        accounts.learn_plugipay_id(accounts.known(unnamed[0]).pk, named)
        return unnamed[0], None
    return verified[0], InvalidObject(
        f"The event is for Plugipay account {named[:64]}, which is not the configured account "
        "whose webhook secret signed it, so it is not applied. Add the account to "
        "PLUGIPAY['ACCOUNTS'] (with its ON_BEHALF_OF or ACCOUNT_ID and WEBHOOK_SECRETS): "
        "Plugipay's next delivery of the event, signed with its secret, applies it.",
        code="unknown_account",
    )


def _ingest(parsed: Event) -> WebhookEvent:
    if app_settings.WEBHOOK_PROCESSING == "celery":
        try:
            validate_event(parsed)
        except InvalidObject as exc:
            # A redelivery of a recorded event is that event, whatever its own body says (the
            # first body recorded wins, as inline): only a new one is stored failed with this
            # error (one statement: a first delivery committing meanwhile is not touched).
            try:
                event, created = _record_failure(
                    parsed, EventSource.WEBHOOK, exc, recorded_stays=True
                )
            except Exception as failure:
                raise _not_recorded(parsed, exc, failure) from exc
            if created or (event.status == EventStatus.FAILED and not _valid(event.payload)):
                _log_failure(parsed.id, parsed.kind, exc)
                raise
        else:
            try:
                event, created = record_event(parsed, source=EventSource.WEBHOOK)
            except Exception as exc:
                raise _not_recorded(parsed, exc) from exc
        if created or event.status == EventStatus.RECEIVED:
            queue_event(event)
        elif event.status not in DONE:  # failed before: applied again by its own task
            _retry_event(event.pk)
        return event
    return process_event(parsed, source=EventSource.WEBHOOK)[0]


def _valid(payload: Mapping[str, Any]) -> bool:
    """Does a recorded event's body pass validation (what applying it again would meet)?"""
    try:
        validate_event(parse_event(payload))
    except (InvalidObject, InvalidPayload):
        return False
    return True


def _check_storable(parsed: Event, body: bytes | None = None) -> None:
    """Refuse (400, nothing stored) an event the database could not store at all: an id
    longer than the column, NUL characters, lone UTF-16 surrogates (``"\\ud800"``, which no
    UTF-8 database can hold) or NaN/Infinity anywhere in the body, or nesting deeper than
    :data:`MAX_DEPTH`. Given the raw ``body``, the parsed payload is walked only when the
    body could hold one of those (:func:`_surely_storable`)."""
    if len(parsed.id) > 64:
        raise InvalidPayload("The event id is too long.", code="invalid_payload", status=400)
    if body is not None and _surely_storable(body):
        return
    stack: list[tuple[Any, int]] = [(parsed.payload, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            bad = "\x00" in value or not _encodable(value)
        elif isinstance(value, float):
            bad = not math.isfinite(value)
        elif isinstance(value, (Mapping, list)):
            bad = depth >= MAX_DEPTH
            items = [*value.keys(), *value.values()] if isinstance(value, Mapping) else value
            stack.extend((item, depth + 1) for item in items)
        else:
            continue
        if bad:
            raise InvalidPayload(
                "The event contains NUL characters, lone surrogates, non-finite numbers or "
                "nesting deeper than "
                f"{MAX_DEPTH} levels.",
                code="invalid_payload",
                status=400,
            )


def _surely_storable(body: bytes) -> bool:
    """Can this JSON body hold nothing :func:`_check_storable` refuses? (False: walk it.)

    :func:`~django_plugipay.webhooks.parse_event` refused non-finite numbers and any body that
    is not UTF-8, and strict JSON has no raw control characters: a NUL or a lone surrogate
    needs a backslash-u escape."""
    return body.count(b"{") + body.count(b"[") < MAX_DEPTH and b"\\u" not in body


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: the envelope's time, in either dialect (stored as ``occurred_at``; orders reconciliation)
OCCURRED_AT = Field(Timestamp(), ("occurredAt", "createdAt"))


def validate_event(parsed: Event) -> None:
    """Check the envelope's time and a handled event's object against its resource's spec
    (no database access); raise :class:`InvalidObject`."""
    OCCURRED_AT.read(parsed.payload, None)
    spec = spec_for(parsed.resource)
    if spec is not None:
        spec.read(parsed.object, parsed.action)


class _AlreadyRecorded(Exception):
    """The event id is in the log already (a duplicate, or a redelivery of a failed event);
    ``recorded`` holds the fields of its row the insert read (:data:`RECORDED`), if it could."""

    def __init__(self, recorded: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.recorded = recorded


def _fields(parsed: Event, source: str) -> dict[str, Any]:
    return {
        "type": parsed.type[:128],
        "kind": parsed.kind[:128],
        "mode": parsed.mode or "",
        "object_id": (parsed.object_id or "")[:64],
        "payload": dict(parsed.payload),
        "occurred_at": datetimes.to_project(parsed.occurred_at) if parsed.occurred_at else None,
        "source": source,
    }


def process_event(parsed: Event, *, source: str) -> tuple[WebhookEvent, bool]:
    """Record and apply a verified event exactly once; return ``(event, applied_now)``.

    A new event is inserted with its outcome and applied in one transaction. A duplicate that
    was applied is acknowledged and changes nothing; one that failed before is applied again
    under a row lock. If applying raises (an invalid object, a receiver), the change rolls
    back, the event is stored as ``failed`` with the error (in its own transaction) and the
    exception propagates.
    """
    complete = _completing(parsed)
    if complete:  # a fetch first: not for a duplicate of an event applied already
        done = WebhookEvent.objects.filter(event_id=parsed.id, status__in=DONE).first()
        if done is not None:
            return done, False
    try:
        return _fetching(lambda prefetched: _record_and_apply(parsed, source, prefetched), complete)
    except _AlreadyRecorded as duplicate:
        try:
            event = _recorded(parsed, duplicate.recorded)
        except Exception as exc:  # the database went away after the insert found it
            discard_lost_connection(exc)
            _log_failure(parsed.id, parsed.kind, exc)
            raise
        if event.status in DONE:
            return event, False
        return apply_event(event=_owned_by_deliverer(event, parsed, source)), True
    except Exception as exc:
        _record_failure_or_raise(parsed, source, exc)
        _log_failure(parsed.id, parsed.kind, exc)
        raise


def queue_event(event: WebhookEvent) -> None:
    """After commit, make sure a batch task (``process_pending_events``) runs after this
    commit and takes the event (or apply it in-process when no worker exists).

    No message is sent per event: a process sends at most two per
    :data:`~django_plugipay.services._queue.COALESCE_WINDOW`, the second due at the window's
    end, and the task claims every queued event. If the broker cannot be reached, every event
    relying on that message is marked (``queued_at`` emptied) and
    :func:`requeue_stranded_events` sends it again; it never raises.
    """
    enqueue_coalesced(
        "django_plugipay.process_pending_events",
        event.pk,
        inline=lambda: apply_event(event=event),
        on_failure=_note_not_queued,
    )


#: seconds before a worker applies again an event its batch stored ``failed``
RETRY_FAILED_AFTER = 2.0


def _retry_event(event_pk: int, countdown: float = 0) -> None:
    """After commit, send the task that applies one recorded event, retried with backoff
    while it fails (in-process: apply it now)."""
    enqueue(
        "django_plugipay.process_webhook_event",
        *row_args(event_pk),
        inline=lambda: apply_recorded_event(event_pk),
        on_failure=lambda exc: _note_not_queued(exc, [event_pk]),
        countdown=countdown,
    )


def _note_not_queued(exc: Exception, event_pks: list[int]) -> None:
    """Mark recorded events whose task was not sent: the sweeper sends them first."""
    WebhookEvent.objects.filter(pk__in=event_pks, status=EventStatus.RECEIVED).update(
        queued_at=None, last_error=f"Not queued yet: {_describe(exc)}"[:2000]
    )


def events_not_sent() -> Any:
    """The acting account's events recorded ``received`` whose task could not be sent (the
    broker was down); the sweeper sends them first (:func:`requeue_stranded_events`)."""
    return accounts.own(
        WebhookEvent.objects.filter(status=EventStatus.RECEIVED, queued_at__isnull=True)
    )


def requeue_stranded_events(*, limit: int = 500) -> int:
    """Queue again every event still ``received`` whose task was never sent (the broker was
    down) or was sent over ``STRANDED_AFTER`` seconds ago and never ran to the end (its worker
    was killed, its message lost); return how many. Applying is idempotent, so an event queued
    twice is applied once."""
    now = timezone.now()
    stale = now - dt.timedelta(seconds=app_settings.STRANDED_AFTER)
    stranded = list(
        accounts.own(WebhookEvent.objects.stranded(stale))
        .order_by("received_at")
        .values_list("pk", flat=True)[:limit]
    )
    if not stranded:
        return 0
    WebhookEvent.objects.filter(pk__in=stranded, status=EventStatus.RECEIVED).update(queued_at=now)
    for pk in stranded:
        queue_event(WebhookEvent(pk=pk))
    logger.info(
        "plugipay requeued %s stranded events", len(stranded), extra={"count": len(stranded)}
    )
    return len(stranded)


def _record_failure_or_raise(parsed: Event, source: str, exc: Exception) -> None:
    """Store the event ``failed`` with ``exc``; when even that fails, nothing about the event
    is stored: raise :class:`NotRecorded` (logged once, with both causes)."""
    try:
        _record_failure(parsed, source, exc)
    except Exception as failure:
        raise _not_recorded(parsed, exc, failure) from exc


def _not_recorded(parsed: Event, exc: Exception, failure: Exception | None = None) -> NotRecorded:
    """Log, once, why an event could not be stored, and the exception that says so."""
    failure = failure or exc
    discard_lost_connection(failure)
    extra = {"event_id": parsed.id, "kind": parsed.kind}
    cause = f"{type(failure).__name__}: {failure}"
    if failure is not exc:
        cause += f" (after {type(exc).__name__}: {exc})"
    if is_transient(failure):  # an outage: expected, and Plugipay delivers it again
        logger.warning("plugipay event %s not recorded: %s", parsed.id, cause, extra=extra)
    else:
        logger.error(
            "plugipay event %s not recorded: %s", parsed.id, cause, exc_info=failure, extra=extra
        )
    return NotRecorded("The event could not be recorded now; deliver it again later.")


def _record_and_apply(parsed: Event, source: str, prefetched) -> tuple[WebhookEvent, bool]:
    return run_atomic(_insert_and_apply, parsed, source, prefetched), True


def _insert_and_apply(parsed: Event, source: str, prefetched) -> WebhookEvent:
    """One transaction (retried whole on transient errors): insert the event with its outcome
    (no read first: a duplicate's insert does nothing) and apply it.

    On PostgreSQL the insert's statement also locks and reads whole the rows the event names
    (as a page's do, in the lock order), and they are held for the transaction: the apply
    then sends only the statements that change rows. With whole objects fetched first (applied
    before the event's own, perhaps in a lower lock rank), it locks nothing up front."""
    [row] = _new_rows([parsed], source)
    named = [] if prefetched else _named_rows(parsed)
    with remembered_ids():
        inserted, recorded = insert_locking(row, "event_id", named, recorded=RECORDED)
        if not inserted:
            raise _AlreadyRecorded(recorded)
        _apply(parsed, row, prefetched)
    return row


#: the fields of a recorded event a duplicate delivery's insert reads (the rest load on use)
RECORDED = ("id", "account_id", "kind", "status")


def _named_rows(parsed: Event) -> list[tuple[Any, str]]:
    """``(model, Plugipay id)`` of the rows an event names, in the lock order."""
    named = [(registered(resource), object_id) for resource, object_id in locked_ahead(parsed)]
    named.sort(key=lambda item: (item[0].lock_rank, item[0].name))
    return [(spec.model, object_id) for spec, object_id in named]


def _recorded(parsed: Event, recorded: Mapping[str, Any] | None) -> WebhookEvent:
    """The recorded event a duplicate delivery found, with the fields its insert read (read
    now when it could not: recorded by a transaction that committed meanwhile)."""
    if recorded is None:
        return WebhookEvent.objects.get(event_id=parsed.id)
    values = {**recorded, "event_id": parsed.id}
    names = [f.attname for f in WebhookEvent._meta.concrete_fields if f.attname in values]
    alias = connection_for(WebhookEvent).alias
    return WebhookEvent.from_db(alias, names, [values[name] for name in names])


def _savepoint() -> Any:
    """A savepoint in the transaction of the account acting (its database)."""
    return transaction.atomic(using=acting_database())


class _PageFailed(Exception):
    """An event of a page applied without savepoints failed: the page is applied again."""


def _page_failed(parsed: Event, exc: Exception) -> _PageFailed:
    """Say why an event failed its page's (or batch's) first pass, which is then applied again
    with a savepoint per event, and return the exception that starts that pass. The event may
    well apply the second time (a receiver that failed once): its first failure is logged here,
    or nothing would tell of it. An event waiting for an object it names is expected, not
    logged (the caller raises the result ``from exc``)."""
    if not isinstance(exc, UnresolvedReference):
        logger.warning(
            "plugipay event %s failed in its batch, applied again with one savepoint per event: "
            "%s: %s",
            parsed.id,
            type(exc).__name__,
            exc,
            exc_info=not isinstance(exc, InvalidObject),
            extra={"event_id": parsed.id, "kind": parsed.kind},
        )
    return _PageFailed()


def apply_page(
    events: list[Event], *, source: str, fetched: dict[tuple[str, str], Any] | None = None
) -> tuple[int, int, list[Event]]:
    """Apply a page of new events in one transaction, after one read of the event log and one
    locking read per resource (in the lock order).

    The page is applied first without savepoints (two round trips fewer per event); when an
    event fails, that transaction rolls back and the page is applied again with each event in
    its own savepoint, so the failing one is stored ``failed`` and the others apply (receivers
    of the rolled-back attempt ran in a transaction that never committed, as on a retry).

    An event that carries too little of its object (a renewal's) is applied with the whole
    object, fetched before the transaction begins (no HTTP call holds a lock) and applied last
    on the page (fetched after the page was read, it is at least as fresh as every event on
    it, so the others' transitions come first). ``fetched``, kept by the caller across the
    pages of one run, lets a later page use such an object again instead of fetching it anew
    (see :func:`_fetch_whole`).

    Returns ``(applied, already_known, left)``: ``left`` are the events to take one by one
    through :func:`process_event` — seen and failed before, failing now (an invalid object, a
    receiver), naming an object that must be fetched first (never inside this transaction), or
    whose whole object could not be fetched now.
    """
    known = dict(
        WebhookEvent.objects.filter(event_id__in=[e.id for e in events]).values_list(
            "event_id", "status"
        )
    )
    partial = [e for e in events if e.id not in known and _completing(e)]
    whole = _fetch_whole(partial, events, {} if fetched is None else fetched)

    def one_by_one(parsed: Event) -> bool:
        if parsed.id in known:
            return known[parsed.id] not in DONE
        return parsed.id not in whole and bool(_completing(parsed))

    fresh = list({e.id: e for e in events if e.id not in known and not one_by_one(e)}.values())
    # A whole object fetched after the page was read is its newest state: applied after every
    # other event of the page (each of theirs still moves the row, in order, and sends its
    # signal first), as when it was taken one by one after the page.
    fresh.sort(key=lambda parsed: parsed.id in whole)
    left = list({e.id: e for e in events if one_by_one(e)}.values())

    def run(isolated: bool) -> tuple[int, list[Event], list[Event]]:
        with remembered_ids(), deliveries.recorded_together():
            return _run(isolated)

    def _run(isolated: bool) -> tuple[int, list[Event], list[Event]]:
        # Event rows first, in one statement (as a webhook inserts its event before it locks
        # anything), then the mirror rows in the lock order.
        rows = {row.event_id: row for row in insert_many(_new_rows(fresh, source), "event_id")}
        _lock_page([e for e in fresh if e.id in rows])
        applied, failed = 0, []
        for parsed in fresh:
            row = rows.get(parsed.id)
            if row is None:
                continue
            try:
                with _savepoint() if isolated else contextlib.nullcontext():
                    _apply(parsed, row, whole.get(parsed.id, ()))
                applied += 1
            except Exception as exc:
                forget_ids()  # what the savepoint wrote is gone
                if is_transient(exc):  # the whole page is retried
                    raise
                if not isolated:
                    raise _page_failed(parsed, exc) from exc
                WebhookEvent.objects.filter(pk=row.pk).update(
                    status=EventStatus.FAILED, last_error=_describe(exc)
                )
                _log_failure(parsed.id, parsed.kind, exc)
                failed.append(parsed)
        raced = [e for e in fresh if e.id not in rows]  # a webhook recorded it meanwhile
        return applied, failed, raced

    try:
        applied, failed, raced = run_atomic(run, False)
    except _PageFailed:
        applied, failed, raced = run_atomic(run, True)
    already = len({e.id for e in events}) - len(fresh) - len(left)
    return applied, already, left + failed + raced


def queue_page(events: list[Event], *, source: str) -> tuple[list[Event], int, int]:
    """Record a page of events for the workers to apply, as queued acceptance records one: in
    one statement outside a transaction, each new event ``received`` and queued now (a batch
    task is sent, at most two messages per coalescing window), or, when its object is invalid,
    ``failed`` with the error, as the webhook view stores it. The workers apply the page as
    they apply queued webhooks, in batches and side by side. An event recorded before and
    stored ``failed`` is queued again, ``received``, unless its own recorded body is invalid
    (applying it again would fail the same way); one still queued is left to the drain (and to
    the sweeper, if its message was lost). A message that cannot be sent leaves its events
    marked ``received`` for the sweeper, as a webhook's.

    Returns ``(queued, already_known, failed)``: the events handed to the workers, how many
    were known already, and how many have invalid objects (stored so now or before)."""
    now = timezone.now()
    unique = {parsed.id: parsed for parsed in events}
    known = dict(
        WebhookEvent.objects.filter(event_id__in=list(unique)).values_list("event_id", "status")
    )
    fresh, refused = [], {}
    for parsed in unique.values():
        if parsed.id in known:
            continue
        row = WebhookEvent(event_id=parsed.id, **_fields(parsed, source), received_at=now)
        try:
            validate_event(parsed)
        except InvalidObject as exc:
            refused[parsed.id] = exc
            row.status, row.attempts, row.last_error = EventStatus.FAILED, 1, _describe(exc)
        else:
            row.queued_at = now
        fresh.append(row)
    handed: list[Event] = []
    failed = 0
    for row in run_statement(insert_many, fresh, "event_id"):
        if row.event_id in refused:
            _log_failure(row.event_id, row.kind, refused[row.event_id])
            failed += 1
        else:
            queue_event(row)
            handed.append(unique[row.event_id])
    again = [event_id for event_id, status in known.items() if status == EventStatus.FAILED]
    if again:
        recorded = WebhookEvent.objects.filter(event_id__in=again, status=EventStatus.FAILED)
        valid = {}
        for pk, event_id, payload in recorded.values_list("pk", "event_id", "payload"):
            if _valid(payload):
                valid[pk] = event_id
            else:
                failed += 1
        for pk in run_atomic(_queue_again, list(valid), now):
            handed.append(unique[valid[pk]])
    return handed, len(unique) - len(handed) - failed, failed


def _queue_again(pks: list[int], now: dt.datetime) -> list[int]:
    """Queue again, ``received``, those of the events ``pks`` still ``failed`` (one that a
    task applied meanwhile keeps what it did); return their pks. Their message is sent after
    the commit."""
    failed = list(
        WebhookEvent.objects.select_for_update()
        .filter(pk__in=pks, status=EventStatus.FAILED)
        .values_list("pk", flat=True)
    )
    WebhookEvent.objects.filter(pk__in=failed).update(status=EventStatus.RECEIVED, queued_at=now)
    for pk in failed:
        queue_event(WebhookEvent(pk=pk))
    return failed


def _fetch_whole(
    partial: list[Event], page: list[Event], fetched: dict[tuple[str, str], Any]
) -> dict[str, list[tuple[Any, Any]]]:
    """The whole objects of a page's partial events, each fetched once, by event id; an event
    whose object cannot be fetched now is missing (it is taken one by one, which records why).

    ``fetched`` holds the objects fetched for earlier pages of the same run (it gains this
    page's). One is used again, instead of a new request, when it already holds what the
    partial event brings (:meth:`~django_plugipay.specs.ResourceSpec.covers`: a renewal's
    period) and every event of this page occurred before the object's last change (its
    ``updatedAt``, by Plugipay's clock like the events' times): it then holds everything this
    page brings, as a fetch made now would. A catch-up over months of renewals fetches each
    subscription about once.
    """
    occurred = [parsed.occurred_at for parsed in page if parsed.occurred_at is not None]
    newest = max(occurred) if occurred and len(occurred) == len(page) else None
    whole, this_page = {}, set()
    for parsed in partial:
        try:
            for spec, object_id in _completing(parsed):
                key = (spec.name, object_id)
                earlier = fetched.get(key)
                if key not in this_page and not (
                    earlier is not None
                    and spec.covers(earlier, parsed.object)
                    and _changed_after(earlier, newest)
                ):
                    fetched[key] = spec.fetch(object_id)
                this_page.add(key)
        except Exception:  # noqa: BLE001 - process_event fetches it again and records a failure
            continue
        whole[parsed.id] = [(spec, fetched[spec.name, oid]) for spec, oid in _completing(parsed)]
    return whole


def _changed_after(obj: Mapping[str, Any], moment: dt.datetime | None) -> bool:
    """Did ``obj`` last change after ``moment`` (both aware, by Plugipay's clock)?"""
    changed = parse_time(obj.get("updatedAt"))
    return moment is not None and changed is not None and moment < changed


def _new_rows(events: list[Event], source: str) -> list[WebhookEvent]:
    now = timezone.now()
    return [
        WebhookEvent(
            event_id=parsed.id,
            **_fields(parsed, source),
            attempts=1,
            status=EventStatus.PROCESSED if handled(parsed) else EventStatus.IGNORED,
            processed_at=now,
        )
        for parsed in events
    ]


def _lock_page(events: list[Event]) -> None:
    """Lock and read every existing row the page's events will lock, resource by resource in
    the lock order (rows by pk), so the page's events never wait on each other's order, and
    hold them for the page (:func:`~django_plugipay.db.remember_locked`)."""
    if not connection_for(WebhookEvent).features.has_select_for_update:  # SQLite: all locked
        return
    wanted: dict[str, set[str]] = {}
    for parsed in events:
        for resource, plugipay_id in locked_ahead(parsed):
            wanted.setdefault(resource, set()).add(plugipay_id)
    for spec in all_specs():
        ids = wanted.get(spec.name)
        if ids:
            rows = spec.model._default_manager.select_for_update(no_key=True).filter(
                plugipay_id__in=ids
            )
            # read whole and held for the page: its events lock and read none of them again
            remember_locked(rows.order_by("pk"))


def _completing(parsed: Event) -> list[tuple[Any, str]]:
    """The event's own object, to fetch before applying, when the event carries too little of
    it (a renewal job's ``subscription.renewed`` has only the id and the period)."""
    spec = spec_for(parsed.resource)
    if spec is None or not parsed.object_id or not spec.incomplete(parsed.object):
        return []
    return [(spec, parsed.object_id)]


def _fetching(
    run: Callable[[list[tuple[Any, Any]]], T],
    complete: Sequence[tuple[Any, str]] = (),
    owner: Callable[[], Any] | None = None,
    fetched: Sequence[tuple[Any, Any]] = (),
) -> T:
    """Run an apply step; when it names an object not known here, fetch that object from
    Plugipay (outside any transaction: no HTTP call holds a lock) and run it again with it.
    ``complete`` names objects to fetch before the first run (an event's partial object);
    ``owner`` gives the event's account when fetching (default: the account acting now);
    ``fetched`` holds whole objects the caller fetched already, as ``(spec, object)``."""

    def fetch(spec: Any, object_id: str) -> tuple[Any, Any]:
        with accounts.acting_for(owner() if owner is not None else None):
            return spec, spec.fetch(object_id)

    def fetch_own(spec: Any, object_id: str) -> tuple[Any, Any]:
        try:
            return fetch(spec, object_id)
        except APIError as refused:
            if refused.status != 404:
                raise
            raise UnresolvedReference(  # Plugipay knows no such object: the event waits
                f"The event's {spec.name} {object_id} is not known at Plugipay.",
                resource=spec.name,
                plugipay_id=object_id,
            ) from refused

    prefetched = [*fetched, *(fetch_own(spec, oid) for spec, oid in complete)]
    while True:
        try:
            return run(prefetched)
        except UnresolvedReference as exc:
            spec = spec_for(exc.resource) if exc.resource else None
            if spec is None or not spec.fetchable or len(prefetched) >= MAX_FETCHES:
                raise
            try:
                prefetched.append(fetch(spec, exc.plugipay_id))
            except APIError as refused:
                if refused.status != 404:
                    raise
                raise exc from refused  # Plugipay has no such object either: unresolved


def _apply(parsed: Event, row: WebhookEvent, prefetched=()) -> None:
    """Apply a handled event's object through its spec (after any object fetched for it, in
    the lock order), then announce the event (inside the transaction).

    A constraint of the database that the event's values break (a second successful payment
    for one session, refunds beyond the payment, a price's amount and model at odds) is
    :class:`InvalidObject` like any other bad value: stored ``failed`` with the database's
    message, answered 422, replayable once fixed. A deadlock or a lost connection is not (the
    transaction is run again), nor is what a signal receiver raised (the project's code: the
    event is failed as for any receiver's error, and applied again)."""
    try:
        _apply_object(parsed, row, prefetched)
    except (IntegrityError, DataError) as exc:
        if is_transient(exc) or engine.raised_by_receiver(exc):
            raise
        message = " ".join(str(exc).split())[:500]
        raise InvalidObject(
            f"the database refused it: {message}", code="refused_by_database"
        ) from exc


def _apply_object(parsed: Event, row: WebhookEvent, prefetched=()) -> None:
    OCCURRED_AT.read(parsed.payload, None)
    spec = spec_for(parsed.resource)
    own = None
    with accounts.acting_for(_named_owner(parsed, row)), lock_scope():
        # Fetched objects are applied in the lock order (a customer before its subscription).
        for fetched_spec, obj in sorted(prefetched, key=lambda item: item[0].lock_rank):
            if fetched_spec is spec and obj.get("id") == parsed.object_id:
                own = obj  # the event's own object, fetched whole: applied as the event's
                continue
            engine.advance(fetched_spec, obj)
        if spec is not None:
            obj = dict(own if own is not None else parsed.object)
            obj.setdefault("mode", parsed.mode or app_settings.MODE)
            engine.advance(spec, obj, event=row, action=parsed.action)
        notice = NOTICES.get(parsed.kind)
        if notice is not None:
            engine.send(notice, WebhookEvent, row, row, endpoint=parsed.object)
    engine.send(signals.webhook_received, WebhookEvent, row, row)
    if transaction.get_connection(acting_database()).needs_rollback:
        # A receiver caught a database error inside the transaction: what the event wrote is
        # rolled back at its end, so it must not count as applied.
        raise TransactionManagementError(
            "A signal receiver caught a database error inside the event's transaction, so "
            "Django rolls its changes back. Wrap the code that may fail in its own "
            "transaction.atomic() block, then replay the event."
        )


def _named_owner(parsed: Event, row: WebhookEvent) -> Any:
    """The account an event is applied for: its row's. With ``ACCOUNTS`` configured, an event
    naming another account by its ``acc_…`` id — one refused when it arrived, signed with this
    account's secret (two accounts' secrets swapped in the settings, or a secret misused) —
    is refused again (:class:`InvalidObject`) when applied again: never applied for the
    account whose secret signed it, nor for the one it names on the strength of that
    signature. A delivery signed with the named account's secret applies it
    (:func:`_owned_by_deliverer`)."""
    named = _named_account(parsed.payload)
    if named is None or not app_settings.many_accounts:
        return row.account_id
    stored = accounts.known(row.account_id)
    if stored.plugipay_id == named:
        return row.account_id
    other = accounts.cached(named)
    if stored.plugipay_id is None and (other is None or other.pk == stored.pk):
        return row.account_id  # an account whose id is not known yet: its own (see _owner)
    raise InvalidObject(
        f"The event is for Plugipay account {named[:64]}, not account {stored.alias!r} whose "
        "webhook secret signed it, so it is not applied. Configure that account in "
        "PLUGIPAY['ACCOUNTS'] with its own WEBHOOK_SECRETS: Plugipay's next delivery of the "
        "event, signed with its secret, applies it.",
        code="unknown_account",
    )


def _named_account(payload: Mapping[str, Any]) -> str | None:
    """The ``acc_…`` id an event's envelope names, in either dialect, or None."""
    named = payload.get("accountId") or payload.get("workspaceId")
    return named if isinstance(named, str) and named else None


def _owned_by_deliverer(event: WebhookEvent, parsed: Event, source: str) -> WebhookEvent:
    """A recorded event not applied yet, delivered again for the account acting now — the
    one whose webhook secret verified this delivery, or whose credentials read it from
    Plugipay — is that account's when its recorded body named that account too: it was
    refused then, a secret of another account having signed it (:func:`_named_owner`). Its
    row moves to the account acting (same database), with this delivery's body: the body the
    other account's secret vouched for is not applied. An event whose recorded body names
    its own account stays its own, whoever delivers the same id."""
    acting = current_account_pk()
    if event.account_id == acting or not app_settings.many_accounts:
        return event
    deliverer = accounts.known(acting).plugipay_id
    if deliverer is None or not (
        _named_account(parsed.payload) == deliverer == _named_account(event.payload)
    ):
        return event
    fields = {**_fields(parsed, source), "account_id": acting}
    WebhookEvent.objects.filter(pk=event.pk).exclude(status__in=DONE).update(**fields)
    for name, value in fields.items():
        setattr(event, name, value)
    return event


def handled(parsed: Event) -> bool:
    """Whether the app applies this event (a mirrored resource's, or a notice)."""
    return spec_for(parsed.resource) is not None or parsed.kind in NOTICES


def _describe(exc: Exception) -> str:
    if isinstance(exc, InvalidObject):
        return storable_text(f"Invalid object: {exc.message}")[:2000]
    return error_text(exc)[:2000]


def _log_failure(event_id: str, kind: str, exc: Exception) -> None:
    extra = {"event_id": event_id, "kind": kind}
    if isinstance(exc, InvalidObject):  # the sender's data, not our bug: no traceback
        logger.warning("plugipay event %s is invalid: %s", event_id, exc.message, extra=extra)
    elif isinstance(exc, UnresolvedReference):  # out of order: the next delivery applies
        logger.warning("plugipay event %s waits: %s", event_id, exc, extra=extra)
    elif is_transient(exc):  # the database went away: expected in an outage, retried
        logger.warning(
            "plugipay event %s failed: %s: %s", event_id, type(exc).__name__, exc, extra=extra
        )
    else:
        logger.exception("plugipay event %s failed", event_id, extra=extra)


@write_atomic
def _record_failure(
    parsed: Event, source: str, exc: Exception, *, recorded_stays: bool = False
) -> tuple[WebhookEvent, bool]:
    """Store the event ``failed`` with ``exc``; return ``(event, created)``. An event recorded
    already is marked failed too (its apply failed), unless it is done (a concurrent
    delivery's success) or ``recorded_stays`` (``exc`` is about another delivery's body)."""
    error = _describe(exc)
    event, created = WebhookEvent.objects.get_or_create(
        event_id=parsed.id,
        defaults={
            **_fields(parsed, source),
            "status": EventStatus.FAILED,
            "attempts": 1,
            "last_error": error,
        },
    )
    if not created and not recorded_stays:  # never overwrite a concurrent delivery's success
        WebhookEvent.objects.filter(pk=event.pk).exclude(status__in=DONE).update(
            status=EventStatus.FAILED, attempts=F("attempts") + 1, last_error=error
        )
    return event, created


def record_event(parsed: Event, *, source: str) -> tuple[WebhookEvent, bool]:
    """Store the event (status ``received``, queued now) once per event id, to apply later;
    return ``(event, created)``.

    One statement outside a transaction (no ``BEGIN``/``COMMIT`` round trips), retried on
    transient errors; a duplicate is told by that statement's result, and only then is the
    recorded event's id and status read.
    """
    now = timezone.now()
    account = current_account_pk()  # the account acting: no query
    values = {"event_id": parsed.id, **_fields(parsed, source), "received_at": now}
    pk = run_statement(
        insert_values, WebhookEvent, {**values, "account": account, "queued_at": now}, "event_id"
    )
    if pk is not None:
        row = WebhookEvent(pk=pk, **values, account_id=account, queued_at=now)
        row._state.adding = False
        return row, True
    known = find(WebhookEvent, only=("status", "queued_at", "account"), event_id=parsed.id)
    if known is None:  # deleted since the insert saw it: nothing to answer for
        raise WebhookEvent.DoesNotExist(f"webhook event {parsed.id} vanished")
    row = WebhookEvent(
        pk=known.pk,
        **values,
        account_id=known.account_id,
        status=known.status,
        queued_at=known.queued_at,
    )
    row._state.adding = False
    return row, False


def apply_event(*, event: WebhookEvent) -> WebhookEvent:
    """Apply a recorded event exactly once (a queued, failed or replayed one).

    The event row is locked, so concurrent attempts apply it once. If anything raises (an
    invalid object, a receiver, the database), the change rolls back, the event is marked
    ``failed`` with the error and attempt count in its own transaction, and the exception
    propagates.
    """
    row = apply_recorded_event(event.pk)
    if row is None:
        raise WebhookEvent.DoesNotExist(f"webhook event {event.pk} no longer exists")
    return row


def apply_recorded_event(
    event_id: int, *, fetched: Sequence[tuple[Any, Any]] = ()
) -> WebhookEvent | None:
    """:func:`apply_event` by primary key (what the queued task calls: nothing is read before
    the locking statement); None when no such event exists. ``fetched``: whole objects, as
    ``(spec, object)``, fetched after the event was recorded (a batch's renewals share one)."""
    try:
        return _fetching(
            lambda prefetched: _apply_recorded(event_id, prefetched),
            owner=lambda: WebhookEvent.objects.values_list("account_id", flat=True).get(
                pk=event_id
            ),
            fetched=fetched,
        )
    except WebhookEvent.DoesNotExist:
        return None
    except Exception as exc:
        discard_lost_connection(exc)
        _mark_failed(event_id, exc)
        raise


def _mark_failed(event_id: int, exc: Exception) -> None:
    """Store the recorded event ``failed`` with ``exc`` (its attempt counted) and log it,
    unless it is done by now: a concurrent task applied it, or staff dismissed it, after this
    attempt rolled back. When the database is gone, the event stays as it was."""
    try:
        WebhookEvent.objects.filter(pk=event_id).exclude(status__in=DONE).update(
            status=EventStatus.FAILED,
            attempts=F("attempts") + 1,
            last_error=_describe(exc),
        )
        kind = WebhookEvent.objects.filter(pk=event_id).values_list("event_id", "kind").first()
    except Exception as failure:
        discard_lost_connection(failure)
        kind = None
    _log_failure(*(kind or (str(event_id), "")), exc)


@write_atomic
def _apply_recorded(event_id: int, prefetched) -> WebhookEvent:
    row, claimed = _claim(event_id)
    if not claimed:
        return row  # applied before (a duplicate task, a concurrent replay)
    parsed = parse_event(row.payload)
    have = {(spec.name, obj.get("id")) for spec, obj in prefetched}
    for spec, object_id in _completing(parsed):
        if (spec.name, object_id) not in have:  # partial: fetched whole, outside a transaction
            message = f"{spec.name} {object_id} is fetched first"
            raise UnresolvedReference(message, resource=spec.name, plugipay_id=object_id)
    _apply(parsed, row, prefetched)
    if not handled(parsed) and row.status != EventStatus.IGNORED:
        row.status = EventStatus.IGNORED
        WebhookEvent.objects.filter(pk=row.pk).update(status=EventStatus.IGNORED)
    return row


def _claim(event_id: int) -> tuple[WebhookEvent, bool]:
    """Lock the event row and, unless it was applied already, mark it applied now (the
    transaction takes that back if applying fails); return ``(row, claimed)``. One statement
    where the backend has ``UPDATE … RETURNING``."""
    now = timezone.now()
    claimed = claim(
        WebhookEvent,
        event_id,
        {"status": EventStatus.PROCESSED, "last_error": "", "processed_at": now},
        increment=("attempts",),
        unless={"status": DONE},
    )
    if claimed is not None:
        return claimed, True
    return WebhookEvent.objects.select_for_update().get(pk=event_id), False


def replay_failed_events(
    *, limit: int | None = None, event_ids: Iterable[str] | None = None
) -> dict[str, int]:
    """Apply every failed (or stuck unprocessed) event again — or the events named by
    ``event_ids`` — oldest first; return counts by outcome.

    Acting for an account (``acting_for``), its events alone. With
    ``PLUGIPAY["ACCOUNT_DATABASE"]``, called outside any account, every account's database in
    turn (``limit`` in all)."""
    counts = {"processed": 0, "failed": 0}
    wanted = None if event_ids is None else list(event_ids)
    if app_settings.raw("ACCOUNT_DATABASE") is not None and acting.get() is None:
        for account in accounts.every():
            left = None if limit is None else limit - counts["processed"] - counts["failed"]
            if left is not None and left <= 0:
                break
            with accounts.acting_for(account.pk):
                done = replay_failed_events(limit=left, event_ids=wanted)
            counts = {outcome: counts[outcome] + done[outcome] for outcome in counts}
        return counts
    events = accounts.own(
        WebhookEvent.objects.filter(event_id__in=wanted)
        if wanted is not None
        else WebhookEvent.objects.unprocessed()
    ).order_by("occurred_at", "received_at")
    for event in events[:limit] if limit else events:
        try:
            apply_event(event=event)
            counts["processed"] += 1
        except Exception:  # already recorded on the event by apply_event
            counts["failed"] += 1
    return counts


def dismiss_events(*, events: Iterable[WebhookEvent]) -> int:
    """Mark failed events staff decided not to apply as ``ignored`` (never replayed, and no
    longer counted by :func:`event_health`); return how many. Events that are not ``failed``
    (one a retry applied meanwhile among them) are left as they are; the error stays.

    Each event is dismissed in the database it was read from (``.using(alias)``, or the
    acting account's), so a tenant database's event is never confused with one of the same
    primary key elsewhere."""
    by_database: dict[str, list[int]] = {}
    for event in events:
        database = event._state.db or connection_for(WebhookEvent).alias
        by_database.setdefault(database, []).append(event.pk)

    def dismiss(database: str, pks: list[int]) -> int:
        failed = WebhookEvent.objects.using(database).filter(pk__in=pks, status=EventStatus.FAILED)
        return failed.update(status=EventStatus.IGNORED)

    return sum(
        run_atomic(dismiss, database, pks, using=database) for database, pks in by_database.items()
    )


@dataclass(frozen=True)
class EventHealth:
    #: stored ``failed`` and received over ``deliveries.OVERDUE_AFTER`` ago
    failed: int
    #: recorded (queued), not applied, received over ``deliveries.OVERDUE_AFTER`` ago and not
    #: handed to the workers within the last :data:`IN_FLIGHT`
    waiting: int
    #: the earliest of the ``failed`` ones, or None
    oldest_failed: WebhookEvent | None


#: an event handed to the workers this recently is in flight, however old it is (a failed one
#: that reconciliation or a replay just queued again)
IN_FLIGHT = dt.timedelta(minutes=1)


def _first_received(event: WebhookEvent) -> tuple:
    return (event.occurred_at is None, event.occurred_at or event.received_at, event.received_at)


def event_health() -> EventHealth:
    """Events that need someone: failed ones no retry has applied within the hour (a broken
    receiver, a bug, an object Plugipay sent with bad values) and recorded ones that wait over
    the hour with nothing applying them (no worker, or its message never sent).

    With ``PLUGIPAY["ACCOUNT_DATABASE"]``, asked outside any account (the doctor, the checks),
    it adds up every account's (a database several accounts share is read for each of its own
    events; one that cannot be read raises, naming the account)."""
    if app_settings.raw("ACCOUNT_DATABASE") is not None and acting.get() is None:
        each = accounts.read_every_account(event_health)
        oldest = [health.oldest_failed for health in each if health.oldest_failed is not None]
        return EventHealth(
            failed=sum(health.failed for health in each),
            waiting=sum(health.waiting for health in each),
            oldest_failed=min(oldest, key=_first_received, default=None),
        )
    now = timezone.now()
    old = accounts.own(WebhookEvent.objects).filter(received_at__lt=now - deliveries.OVERDUE_AFTER)
    failed = old.filter(status=EventStatus.FAILED)
    handed_before = now - IN_FLIGHT
    waiting = old.filter(status=EventStatus.RECEIVED).filter(
        Q(queued_at__isnull=True) | Q(queued_at__lt=handed_before)
    )
    return EventHealth(
        failed=failed.count(),
        waiting=waiting.count(),
        oldest_failed=failed.order_by(
            F("occurred_at").asc(nulls_last=True), "received_at", "pk"
        ).first(),
    )


#: queued events one transaction applies (``apply_queued_events``)
BATCH_SIZE = 100


def apply_queued_events(*, batch_size: int = BATCH_SIZE, limit: int | None = None) -> int:
    """Apply the queued (``received``) events, oldest first, a batch per transaction, until
    none is left or ``limit`` were taken; return how many were taken.

    A batch is claimed with ``FOR UPDATE SKIP LOCKED``, so two workers draining the queue take
    different batches and an event a per-event task holds is skipped (and applied once by
    whichever holds it). The batch's mirror rows are locked resource by resource in the lock
    order, then its events are applied without savepoints and marked in one statement per
    outcome. When one fails, the batch is applied again with a savepoint per event: the failing
    one is stored ``failed`` with its error and the others commit. An event that names an object
    to fetch first is applied on its own after the batch (no HTTP call inside a transaction),
    each such object asked of Plugipay once for the batch (:func:`_fetch_left`).

    With ``PLUGIPAY["ACCOUNT_DATABASE"]``, called outside any account (the batch task), it
    drains every account's database in turn (``limit`` per account).
    """
    if app_settings.raw("ACCOUNT_DATABASE") is not None and acting.get() is None:
        drained = accounts.each_account(
            lambda: apply_queued_events(batch_size=batch_size, limit=limit), what="queued events"
        )
        return sum(drained.values())
    taken = 0
    while limit is None or taken < limit:
        size = batch_size if limit is None else min(batch_size, limit - taken)
        try:
            claimed, alone, failed, waiting = run_atomic(_apply_batch, size, False)
        except _PageFailed:
            claimed, alone, failed, waiting = run_atomic(_apply_batch, size, True)
        if alone:
            _wait_for_running_batches()
        whole, unavailable = _fetch_left(alone)
        for event_id in alone:
            if event_id in unavailable:  # asked once for the batch: not again for each event
                _mark_failed(event_id, unavailable[event_id])
                failed.append(event_id)
                continue
            try:
                apply_recorded_event(event_id, fetched=whole.get(event_id, ()))
            except Exception:  # recorded on the event by apply_recorded_event
                failed.append(event_id)
        for event_id in failed:
            _retry_failed(event_id)
        taken += claimed - waiting
        if claimed < size and not waiting:
            break
    return taken


def _fetch_left(
    left: Mapping[int, tuple[Any, list[tuple[Any, str]]]],
) -> tuple[dict[int, list[tuple[Any, Any]]], dict[int, Exception]]:
    """The whole objects of the partial events a batch left (renewals that carry only the
    period), each object asked of Plugipay once for the batch; return them by event pk, and
    by event pk why an object could not be fetched (a timeout, a 404: the batch does not ask
    again for each of its events, which are stored ``failed`` with it and retried by their own
    tasks). Fetched after the batch claimed them, an object is at least as fresh as every one
    of them, as a page's is (:func:`_fetch_whole`).

    ``left`` is the batch's ``{event pk: (account id, [(spec, object id) to fetch])}``, read
    from the events it parsed (an event left for an object not known here has none to fetch:
    its own apply finds or fetches it)."""
    fetched: dict[tuple[Any, str, str], Any] = {}
    refused: dict[tuple[Any, str, str], Exception] = {}
    whole: dict[int, list[tuple[Any, Any]]] = {}
    unavailable: dict[int, Exception] = {}
    for pk, (account_id, completing) in left.items():
        for spec, object_id in completing:
            key = (account_id, spec.name, object_id)
            if key not in fetched and key not in refused:
                try:
                    with accounts.acting_for(account_id):
                        fetched[key] = spec.fetch(object_id)
                except Exception as exc:  # noqa: BLE001 - stored on the events that need it
                    refused[key] = exc
            if key in refused:
                unavailable[pk] = refused[key]
        if completing and pk not in unavailable:
            whole[pk] = [(spec, fetched[account_id, spec.name, oid]) for spec, oid in completing]
    return whole, unavailable


#: the PostgreSQL advisory lock (class, key) every batch holds shared until it commits
BATCH_LOCK = (0x504C4750, 25)


def _hold_batch_lock() -> None:
    """Hold :data:`BATCH_LOCK` shared until this batch's transaction ends (PostgreSQL)."""
    connection = connection_for(WebhookEvent)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", BATCH_LOCK)


def _wait_for_running_batches() -> None:
    """Wait until every batch other workers were applying has committed (PostgreSQL, outside
    a transaction: the exclusive lock is released as the statement ends).

    An event this batch left because it names an object not known here (a refund whose
    payment another worker's batch is creating) is then applied one by one: the object is
    found, where it would otherwise be fetched from Plugipay — or, when that fails, stored
    ``failed`` and applied again seconds later."""
    connection = connection_for(WebhookEvent)
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", BATCH_LOCK)


def _retry_failed(event_pk: int) -> None:
    """A worker's batch stored the event ``failed``: its own task applies it again after
    :data:`RETRY_FAILED_AFTER` seconds and retries with backoff while it fails, as a failing
    receiver's task always did. In-process (no worker) it waits, ``failed``, for Plugipay's
    redelivery or ``plugipay_replay``."""
    enqueue(
        "django_plugipay.process_webhook_event",
        *row_args(event_pk),
        inline=lambda: None,
        countdown=RETRY_FAILED_AFTER,
    )


def _apply_batch(size: int, isolated: bool) -> tuple[int, dict[int, Any], list[int], int]:
    """One transaction: claim up to ``size`` queued events and apply them; return
    ``(claimed, left, failed, waiting)``: ``left`` the events to apply one by one after the
    commit (``{pk: (account id, [(spec, object id) to fetch first])}``, for
    :func:`_fetch_left`), ``failed`` the ids stored ``failed``, ``waiting`` how many were
    claimed but left queued for the next batch (their objects were another batch's)."""
    with remembered_ids(), deliveries.recorded_together():
        return _apply_claimed(size, isolated)


def _apply_claimed(size: int, isolated: bool) -> tuple[int, dict[int, Any], list[int], int]:
    _hold_batch_lock()  # first: nothing else is held while it waits
    rows = list(
        accounts.own(WebhookEvent.objects.select_for_update(skip_locked=True))
        .filter(status=EventStatus.RECEIVED)
        .order_by("pk")[:size]
    )
    parsed = {row.pk: parse_event(row.payload) for row in rows}
    left = {
        row.pk: (row.account_id, completing)
        for row in rows
        if (completing := _completing(parsed[row.pk]))
    }
    ready, waiting = _objects_free([row for row in rows if row.pk not in left], parsed)
    _lock_page([parsed[row.pk] for row in ready])
    now = timezone.now()
    done: dict[str, list[int]] = {EventStatus.PROCESSED: [], EventStatus.IGNORED: []}
    failed: list[int] = []
    for row in ready:
        event = parsed[row.pk]
        status = EventStatus.PROCESSED if handled(event) else EventStatus.IGNORED
        row.status, row.attempts, row.processed_at = status, row.attempts + 1, now
        try:
            with _savepoint() if isolated else contextlib.nullcontext():
                _apply(event, row)
        except Exception as exc:
            forget_ids()  # what the savepoint wrote is gone
            if is_transient(exc):  # the whole batch is retried
                raise
            if not isolated:
                raise _page_failed(event, exc) from exc
            if isinstance(exc, UnresolvedReference):  # fetched outside, after the commit
                left[row.pk] = (row.account_id, [])
                continue
            WebhookEvent.objects.filter(pk=row.pk).update(
                status=EventStatus.FAILED, attempts=F("attempts") + 1, last_error=_describe(exc)
            )
            _log_failure(event.id, event.kind, exc)
            failed.append(row.pk)
            continue
        done[status].append(row.pk)
    for outcome, ids in done.items():
        if ids:
            WebhookEvent.objects.filter(pk__in=ids).update(
                status=outcome, attempts=F("attempts") + 1, last_error="", processed_at=now
            )
    return len(rows), left, failed, len(waiting)


#: the class of the PostgreSQL advisory locks a batch takes on the objects its events name
OBJECT_LOCK = 0x504C4751


def _objects_free(
    rows: list[WebhookEvent], parsed: Mapping[int, Event]
) -> tuple[list[WebhookEvent], list[WebhookEvent]]:
    """Split a batch's events into those whose objects no other worker's batch holds, to apply
    now, and those to leave queued for a later batch (PostgreSQL).

    Each object an event names (its own and those it locks with, as :func:`_lock_page` reads
    them) is claimed with a transaction-level advisory lock, tried without waiting, all in one
    statement. An event is applied only when every object it names is this batch's; once one
    is left, every later event of the batch naming any of its objects is left too, so within
    a batch the events of an object keep their queue order (across two batches they may not,
    as before: the engine applies out-of-order news forward only). Two workers thus apply
    events of different objects side by side instead of one waiting on the other's row locks
    until its batch commits. When no event is free, the whole batch is applied (waiting for
    the row locks, as before), so a batch always makes progress.
    """
    connection = connection_for(WebhookEvent)
    if connection.vendor != "postgresql" or not rows:
        return rows, []
    keys = {row.pk: _object_keys(parsed[row.pk], row.account_id) for row in rows}
    wanted = sorted({key for named in keys.values() for key in named})
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT k, pg_try_advisory_xact_lock(%s, k) FROM unnest(%s::integer[]) AS k",
            [OBJECT_LOCK, wanted],
        )
        ours = {key for key, taken in cursor.fetchall() if taken}
    ready: list[WebhookEvent] = []
    waiting: list[WebhookEvent] = []
    blocked: set[int] = set()
    for row in rows:
        named = keys[row.pk]
        if named <= ours and not named & blocked:
            ready.append(row)
        else:
            waiting.append(row)
            blocked |= named
    if not ready:
        return rows, []
    return ready, waiting


def _object_keys(parsed: Event, account_id: Any) -> set[int]:
    """The advisory-lock keys (signed 32-bit) of the objects an event names."""
    return {
        zlib.crc32(f"{account_id}:{resource}:{plugipay_id}".encode()) - 2**31
        for resource, plugipay_id in named_objects(parsed)
    }


def named_objects(parsed: Event) -> list[tuple[str, str]]:
    """``(resource, plugipay id)`` of the objects an event's apply locks: its own and those
    its spec locks with (a payment's session), as far as the event's object names them."""
    spec = spec_for(parsed.resource)
    if spec is None:
        return []
    obj, named = parsed.object, []
    for resource, keys in [(spec.name, ("id",))] + [
        (other, spec.refs[ref].keys) for ref, other in spec.locks_with.items()
    ]:
        value = next((obj.get(k) for k in keys if isinstance(obj.get(k), str)), None)
        if value:
            named.append((resource, value))
    return named


def locked_ahead(parsed: Event) -> list[tuple[str, str]]:
    """The objects whose rows are locked ahead of applying an event (by its insert, or its
    page's): those it names (:func:`named_objects`), but none when its spec locks with a
    parent the event does not name (a refund naming its payment only by the session it paid):
    the spec finds and locks that parent first, and the object's own row after it (the lock
    order)."""
    named = named_objects(parsed)
    spec = spec_for(parsed.resource)
    if spec is not None and spec.locks_with and len(named) == 1:
        return []
    return named
