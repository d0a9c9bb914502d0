"""Reconciliation: apply events missed by webhooks, then sync what is still in flight."""

from __future__ import annotations

import contextvars
import dataclasses
import datetime as dt
import functools
import itertools
import logging
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from typing import Any

from django.db import Error
from django.db.models import Q
from django.utils import timezone

from django_plugipay import datetimes
from django_plugipay.accounts import current_account_pk, takes_account
from django_plugipay.client import get_client
from django_plugipay.conf import app_settings
from django_plugipay.db import connection_for, write_atomic
from django_plugipay.exceptions import InvalidObject, InvalidPayload, PlugipayError
from django_plugipay.models import EventSource, EventStatus, SyncCursor, WebhookEvent
from django_plugipay.services import _queue
from django_plugipay.services.apply import sync_object
from django_plugipay.services.events import (
    DONE,
    apply_page,
    named_objects,
    process_event,
    queue_page,
)
from django_plugipay.services.payouts import (
    LEDGER_CURSOR,
    RECEIPTS_CURSOR,
    sync_ledger,
    sync_receipts,
)
from django_plugipay.specs import all_specs
from django_plugipay.webhooks import Event, parse_event

logger = logging.getLogger(__name__)

CURSOR_NAME = "events"
LEASE = dt.timedelta(minutes=15)
PAGE_SIZE = 100
#: read the next page of events from Plugipay while the current one is applied
READ_AHEAD = True


@dataclasses.dataclass
class ReconcileResult:
    events_seen: int = 0
    events_applied: int = 0
    #: recorded for the workers to apply (the queued mode: :func:`queued`)
    events_queued: int = 0
    events_already_known: int = 0
    events_failed: int = 0
    #: resource name → rows whose status a sync changed (stale sessions, refunds in flight)
    synced: dict[str, int] = dataclasses.field(default_factory=dict)
    dry_run: bool = False
    skipped_locked: bool = False

    @property
    def changed(self) -> int:
        return self.events_applied + self.events_queued + sum(self.synced.values())


def queued() -> bool:
    """Does reconciliation hand its events to the workers? In the queued mode
    (``WEBHOOK_PROCESSING = "celery"``) with a queue to send them to (a Celery app, or a
    queuing ``django.tasks`` backend): each page is recorded in one statement and the workers
    apply it, as they apply queued webhooks, in batches and side by side. Otherwise the run
    applies each page itself, in one transaction."""
    return app_settings.WEBHOOK_PROCESSING == "celery" and _queue.mode() != "inline"


@takes_account
def last_reconciled() -> dt.datetime | None:
    """When reconciliation of the account last ran (took its cursor), or None when it never
    did."""
    return (
        SyncCursor.objects.filter(name=CURSOR_NAME, account_id=current_account_pk())
        .values_list("updated_at", flat=True)
        .first()
    )


def held_at() -> WebhookEvent | None:
    """The event the account's reconciliation reads the log again from on every run, or None:
    the oldest event stored ``failed`` that occurred no earlier than the cursor (the cursor
    waits at an event that failed for any reason but its own invalid object)."""
    cursor = (
        SyncCursor.objects.filter(name=CURSOR_NAME, account_id=current_account_pk())
        .values_list("occurred_at", flat=True)
        .first()
    )
    if cursor is None:
        return None
    return (
        WebhookEvent.objects.filter(
            account_id=current_account_pk(), status=EventStatus.FAILED, occurred_at__gte=cursor
        )
        .order_by("occurred_at", "pk")
        .first()
    )


@write_atomic
def _claim(cursor_name: str) -> SyncCursor | None:
    """Take the account's reconciliation lease, or None when another run holds it. The cursor
    returned is read from the database it is written to (a replica may not have it yet); its
    ``locked_until`` is this run's hold on the lease (see :func:`_hold`)."""
    now = timezone.now()
    account_id = current_account_pk()
    cursors = SyncCursor.objects.db_manager(connection_for(SyncCursor).alias)
    cursors.get_or_create(name=cursor_name, account_id=account_id)
    claimed = cursors.filter(
        Q(locked_until__isnull=True) | Q(locked_until__lt=now),
        name=cursor_name,
        account_id=account_id,
    ).update(locked_until=now + LEASE, updated_at=now)  # when it last ran: last_reconciled()
    return cursors.get(name=cursor_name, account_id=account_id) if claimed else None


def _peek(cursor_name: str) -> SyncCursor:
    """The account's cursor as it stands, unsaved when no run has made it: what a dry run
    reads from, without taking the lease."""
    account_id = current_account_pk()
    cursors = SyncCursor.objects.db_manager(connection_for(SyncCursor).alias)
    found = cursors.filter(name=cursor_name, account_id=account_id).first()
    return found or SyncCursor(name=cursor_name, account_id=account_id)


class _LeaseLost(Exception):
    """The run held its lease past ``LEASE`` and another run took it over."""


def _hold(cursor: SyncCursor, **changes: Any) -> None:
    """Write ``changes`` to the cursor and renew the lease, while this run still holds it
    (its ``locked_until`` unchanged); raise :class:`_LeaseLost` when another run took it."""
    renewed = timezone.now() + LEASE
    held = SyncCursor.objects.filter(pk=cursor.pk, locked_until=cursor.locked_until).update(
        locked_until=renewed, **changes
    )
    if not held:
        raise _LeaseLost
    cursor.locked_until = renewed


def _release(cursor: SyncCursor) -> None:
    """Give the lease back, if this run still holds it. A database error is logged, not
    raised (it would hide what the run raised): the lease then ends after ``LEASE``."""
    try:
        SyncCursor.objects.filter(pk=cursor.pk, locked_until=cursor.locked_until).update(
            locked_until=None
        )
    except Error as exc:
        logger.warning("plugipay reconcile could not release its lease: %s", exc)


@takes_account
def reconcile(
    *,
    since: dt.datetime | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ReconcileResult:
    """Read Plugipay's events from the stored cursor (or ``since``; one later than the cursor
    leaves the cursor where it is, the events between unread) and apply each one through
    the webhook path (deduplicated by event id), then sync sessions open past their expiry and
    refunds still in flight, and mirror the ledger entries and receipts posted since — all of
    one account (``account=``, default: the default account), with its cursor and its
    credentials. Runs once at a time per account: a second run is a no-op
    (``skipped_locked``); a dry run only reads, takes no lease and changes nothing. The lease
    is renewed after each page; a run that held it past ``LEASE`` without renewing (another
    took it over) stops there, ``skipped_locked`` too.

    In the queued mode (:func:`queued`) the run records each page and the workers apply it
    (``events_queued``); the cursor moves past what was recorded, as a webhook's 200 does: the
    drain applies it, the sweeper sends again what a lost message stranded, and one that fails
    is retried by its own task, then waits ``failed`` for a replay — where the run applying
    pages itself stops its cursor at such an event and reads it again next run.
    """
    result = ReconcileResult(dry_run=dry_run)
    # a dry run only reads: it takes no lease (which would stamp when reconciliation last ran)
    cursor = _peek(CURSOR_NAME) if dry_run else _claim(CURSOR_NAME)
    if cursor is None:
        result.skipped_locked = True
        return result
    try:
        start = since or cursor.occurred_at
        # read from later than the cursor: the events between stay unread, so the cursor stays
        # for the next run (on a new cursor, ``since`` is where the mirror starts)
        moves = not dry_run and (
            since is None
            or cursor.occurred_at is None
            or datetimes.to_utc(since) <= datetimes.to_utc(cursor.occurred_at)
        )
        # the objects named by events handed to the workers: theirs to move, not the sync's
        pending: set[tuple[str, str]] = set()
        _apply_events(cursor, start, result, dry_run, progress, moves, pending)
        if not dry_run:  # the lease was renewed with the last page
            _sync_in_flight(result, pending)
            _hold(cursor)
            _sync_money(result)
    except _LeaseLost:
        logger.warning("plugipay reconcile stopped: another run took over its lease")
        result.skipped_locked = True
    finally:
        if not dry_run:
            _release(cursor)
    logger.info("plugipay reconcile: %s", dataclasses.asdict(result))
    return result


def _apply_events(cursor, start, result, dry_run, progress, moves: bool, pending: set) -> None:
    filters = {"order": "asc", "limit": PAGE_SIZE}
    if start is not None:
        filters["occurredAfter"] = datetimes.to_api(start)
    newest, newest_id = cursor.occurred_at, cursor.last_event_id
    held: dt.datetime | None = None  # the oldest event this run must leave to the next
    handing_over = queued()
    items = get_client().list_events(**filters)
    # whole objects fetched for partial events, used again by later pages while fresh enough
    fetched: dict[tuple[str, str], Any] = {}
    # Each page is read from Plugipay before its transaction opens (no HTTP inside it).
    for page in (_parsed(raw, result) for raw in _pages(items)):
        if dry_run:  # what a run would apply (queued: hand over; one queued already is left)
            settled = (*DONE, EventStatus.RECEIVED) if handing_over else DONE
            known = WebhookEvent.objects.filter(
                event_id__in=[p.id for p in page], status__in=settled
            )
            already = len(set(known.values_list("event_id", flat=True)))
            result.events_already_known += already
            if handing_over:
                result.events_queued += len(page) - already
            else:
                result.events_applied += len(page) - already
        elif handing_over:  # recorded and queued: the cursor may pass them (see reconcile())
            handed, already, failed = queue_page(page, source=EventSource.RECONCILE)
            result.events_queued += len(handed)
            result.events_already_known += already
            result.events_failed += failed
            for parsed in handed:
                pending.update(named_objects(parsed))
        else:
            applied, already, left = apply_page(page, source=EventSource.RECONCILE, fetched=fetched)
            result.events_applied += applied
            result.events_already_known += already
            for parsed in left:  # failed before, failing now, or naming an unknown object
                if not _apply_one(parsed, result) and parsed.occurred_at is not None:
                    again = datetimes.to_project(parsed.occurred_at)
                    held = again if held is None else min(held, again)
        for parsed in page:
            result.events_seen += 1
            occurred = datetimes.to_project(parsed.occurred_at) if parsed.occurred_at else None
            # up to the oldest event to read again, not past it (occurredAfter includes it)
            if (
                occurred
                and (newest is None or occurred >= newest)
                and (held is None or occurred <= held)
            ):
                newest, newest_id = occurred, parsed.id
            if progress:
                progress(result.events_seen)
        if moves and newest is not None:
            _hold(cursor, occurred_at=newest, last_event_id=newest_id)
        elif not dry_run:
            _hold(cursor)


def _parsed(raw: list[dict], result: ReconcileResult) -> list[Event]:
    """The page's events; an item that is no event at all (no id or type) is counted failed
    and logged, never stored (it could not be applied), and does not stop the run."""
    page = []
    for item in raw:
        try:
            page.append(parse_event(item))
        except InvalidPayload as exc:
            result.events_seen += 1
            result.events_failed += 1
            logger.warning("plugipay reconcile skipped an item that is no event: %s", exc.message)
    return page


def _pages(items: Iterator[dict]) -> Generator[list[dict], None, None]:
    """``items`` in pages of :data:`PAGE_SIZE`, the next page read in a thread while the
    caller applies this one, so the wait for Plugipay overlaps the database's work (the thread
    only reads: parsing and applying stay with the caller). A read that fails raises when its
    page is asked for, after the pages before it were applied, as without the thread."""

    def read() -> list[dict]:
        return list(itertools.islice(items, PAGE_SIZE))

    if not READ_AHEAD:
        while page := read():
            yield page
        return
    # with the caller's context variables (the account acting, a logging or tracing context)
    read_here = functools.partial(contextvars.copy_context().run, read)
    ahead = _reading(read_here)
    while page := ahead():
        ahead = _reading(read_here)
        yield page


def _reading(read: Callable[[], list[dict]]) -> Callable[[], list[dict]]:
    """Start ``read()`` in a thread of its own; return a function that waits for the page
    read (or raises what the read raised). The thread is a daemon: a caller that stops early
    (an error applying a page, Ctrl-C) drops the read in flight, which never keeps the process
    from exiting."""
    done: queue.SimpleQueue[tuple[list[dict] | None, BaseException | None]] = queue.SimpleQueue()

    def work() -> None:
        try:
            done.put((read(), None))
        except BaseException as exc:  # handed to the caller, who raises it
            done.put((None, exc))

    threading.Thread(target=work, name="plugipay-reconcile-read", daemon=True).start()

    def result() -> list[dict]:
        page, error = done.get()
        if error is not None:
            raise error
        return page or []

    return result


def _apply_one(parsed, result: ReconcileResult) -> bool:
    """Apply one event on its own; return whether the cursor may move past it. It may not
    when it failed for any reason but its own invalid object (stored ``failed`` with the
    message, for staff to fix and replay): an object not known here yet, a receiver or
    Plugipay failing, or the event not stored at all. Nothing else applies such an event
    again (Plugipay's webhook for it went missing), so the next run reads it again."""
    try:
        _event, applied = process_event(parsed, source=EventSource.RECONCILE)
    except InvalidObject:  # recorded on the event, visible and replayable
        result.events_failed += 1
        return True
    except Exception:  # recorded on the event (or not stored); read again next run
        result.events_failed += 1
        return False
    if applied:
        result.events_applied += 1
    else:
        result.events_already_known += 1
    return True


def _sync_in_flight(result: ReconcileResult, pending: set[tuple[str, str]]) -> None:
    """Sync every row a spec says is still moving at Plugipay (open past expiry, refunds in
    flight) but those the events handed to the workers name (``pending``: (resource, Plugipay
    id); those events move them); each fetch happens before, never inside, the transaction
    that applies it."""
    now = timezone.now()
    for spec in all_specs():
        rows = spec.in_flight(now)
        if rows is None:
            continue
        rows = rows.filter(account_id=current_account_pk())
        for row in rows:
            if (spec.name, row.plugipay_id) in pending:
                continue
            before = row.status
            try:
                synced = sync_object(row)
            except PlugipayError as exc:
                logger.warning("plugipay sync of %s %s failed: %s", spec.name, row.pk, exc)
                continue
            if synced.status != before:
                result.synced[spec.name] = result.synced.get(spec.name, 0) + 1


def _sync_money(result: ReconcileResult) -> None:
    """Mirror the ledger entries and receipts posted since the account's last sync (each list
    read before the transactions applying it); counted under the names of their cursors,
    ``ledger`` and ``receipts``."""
    if not app_settings.SYNC_RECEIPTS:
        return
    syncs = ((LEDGER_CURSOR, sync_ledger), (RECEIPTS_CURSOR, lambda: len(sync_receipts())))
    for name, sync in syncs:
        try:
            count = sync()
        except PlugipayError as exc:
            logger.warning("plugipay sync of %s failed: %s", name, exc)
            continue
        if count:
            result.synced[name] = result.synced.get(name, 0) + count
