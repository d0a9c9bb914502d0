"""Money out: the balance, payouts (create, cancel, mark), the ledger and receipts.

Every call reads Plugipay first and applies what it answers through the one apply path
(:func:`~django_plugipay.services.apply.advance`), so a webhook about the same change later is
a no-op and each signal is sent once. Each service acts for one account: ``account=`` names it,
a payout or receipt passed in carries its own, else the account acting now (the default
account outside :func:`~django_plugipay.accounts.acting_for`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import nullcontext
from typing import Any

import requests
from django.conf import settings
from django.db import IntegrityError
from django.db.models import Q, QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from django_plugipay import accounts, datetimes, permissions, signals
from django_plugipay.accounts import takes_account
from django_plugipay.client import RESEND_WINDOW, get_client
from django_plugipay.conf import app_settings
from django_plugipay.context import current_account_pk
from django_plugipay.db import lock, lock_scope, run_atomic, save_fields
from django_plugipay.exceptions import APIError, PayoutError, PlugipayError, TransientError
from django_plugipay.models import (
    CheckoutSession,
    Invoice,
    InvoiceStatus,
    Payout,
    PayoutMethod,
    PayoutStatus,
    Receipt,
    SessionStatus,
    SyncCursor,
)
from django_plugipay.money import check_amount, format_amount
from django_plugipay.resources.money import (
    LEDGER_ENTRY,
    MARK_ACTIONS,
    PAYOUT,
    RECEIPT,
    announcing_since,
)
from django_plugipay.services._queue import enqueue
from django_plugipay.services.apply import advance, move, sends_unsent, sync_object

logger = logging.getLogger(__name__)

#: ``SyncCursor`` names of the two list syncs
LEDGER_CURSOR = "ledger"
RECEIPTS_CURSOR = "receipts"
PAGE_SIZE = 100
#: bank fields of a one-off payout, as the API names them
BANK_FIELDS = ("bankCode", "bankName", "accountNumber", "accountHolder")
#: the other names a one-off's fields are given by: Python's, and the SDKs' (Plugipay takes
#: ``bankAccountNumber`` and ``bankAccountHolder`` too)
BANK_SPELLINGS = {
    "bank_code": "bankCode",
    "bank_name": "bankName",
    "account_number": "accountNumber",
    "account_holder": "accountHolder",
    "bankAccountNumber": "accountNumber",
    "bankAccountHolder": "accountHolder",
    "bank_account_number": "accountNumber",
    "bank_account_holder": "accountHolder",
    **{name: name for name in BANK_FIELDS},
}


def one_off_bank(bank_account: Mapping[str, object] | None) -> dict[str, str]:
    """A one-off payout's bank fields under the API's names (:data:`BANK_FIELDS`), read from
    ``bank_account`` written with any of :data:`BANK_SPELLINGS`; empty for None or ``{}`` (the
    saved account). A key it does not know, a field given twice, or a mapping left with no
    value is refused (:class:`PayoutError`, ``field="bank_account"``): the payout would
    otherwise go to the saved account, not the one the caller named."""
    if not bank_account:
        return {}
    unknown = sorted(str(k) for k in bank_account if k not in BANK_SPELLINGS)
    if unknown:
        raise PayoutError(
            _("Unknown bank account fields %(unknown)s: give %(fields)s.")
            % {"unknown": ", ".join(unknown), "fields": ", ".join(BANK_FIELDS)},
            code="bank_account",
            field="bank_account",
        )
    fields: dict[str, str] = {}
    for key, value in bank_account.items():
        name, text = BANK_SPELLINGS[key], "" if value is None else str(value).strip()
        if text and fields.get(name, text) != text:
            raise PayoutError(
                _("The bank account's %(field)s is given twice, differently.") % {"field": name},
                code="bank_account",
                field="bank_account",
            )
        if text:
            fields[name] = text
    if not fields:
        raise PayoutError(
            _("The bank account given has no values: give %(fields)s, or none for the saved one.")
            % {"fields": ", ".join(BANK_FIELDS)},
            code="bank_account",
            field="bank_account",
        )
    return fields


#: How far Plugipay's clock may be from ours when a payout is looked for by when it was made.
CLOCK_SKEW = dt.timedelta(minutes=10)
#: ``failure_code`` of a payout whose answer was lost, sent too long ago to be sent again, and
#: not found at Plugipay: it was never made there.
NOT_AT_PLUGIPAY = "not_at_plugipay"
#: ``failure_code`` of a pending payout whose last send got no answer (a timeout, a 5xx, the
#: connection lost): the same request made again with its key settles it. A send still under
#: way has no such mark, so a request made again meanwhile leaves it to that send.
NO_ANSWER = "no_answer"
#: The longest one send of a payout can last, the client's retries and Plugipay's
#: ``Retry-After`` waits included: a send made longer ago is over, answered or not (its process
#: may have died before it could mark the row :data:`NO_ANSWER`).
SEND_DEADLINE = dt.timedelta(minutes=15)
#: The statuses of Plugipay's refusals of a payout request itself (its values, the balance):
#: nothing was made. Any other 4xx (401, 403, 404…) was answered before the request was read.
REFUSALS = (400, 422)


class PayoutGone(PayoutError, Payout.DoesNotExist):
    """The payout's row no longer exists: Plugipay refused its creation (a request refused
    outright leaves no row) while another call held it. A :class:`PayoutError` for callers,
    and the model's ``DoesNotExist`` too."""

    @classmethod
    def of(cls, pk: Any) -> PayoutGone:
        return cls(
            _("Payout #%(pk)s no longer exists: Plugipay refused it, and nothing was paid out.")
            % {"pk": pk},
            code="refused",
        )


@dataclasses.dataclass(frozen=True)
class Balance:
    """What Plugipay holds for the merchant, in minor units: ``ledger_balance`` (the cash
    account), ``locked`` (in payouts not settled yet) and ``available`` (what may be paid out)."""

    ledger_balance: int
    locked: int
    available: int
    currency: str

    def formatted(self) -> dict[str, str]:
        """The three amounts in the active language's formatting (``Rp 250.000``)."""
        return {
            name: format_amount(getattr(self, name), self.currency)
            for name in ("available", "locked", "ledger_balance")
        }


@takes_account
def balance(*, currency: str = "IDR") -> Balance:
    """The balance as Plugipay reports it now (``GET /payouts/balance``)."""
    data, _meta = get_client().request("GET", "/payouts/balance", params={"currency": currency})
    return Balance(
        ledger_balance=int(data.get("ledgerBalance") or 0),
        locked=int(data.get("locked") or 0),
        available=int(data.get("available") or 0),
        currency=str(data.get("currency") or currency),
    )


@takes_account
def bank_account() -> dict[str, Any]:
    """The saved payout destination, masked: ``configured``, ``bank_code``, ``bank_name``,
    ``last4``, ``holder`` (the full number is never kept or shown)."""
    data, _meta = get_client().request("GET", "/payouts/bank-account")
    number = str(data.get("accountNumber") or "")
    return {
        "configured": bool(data.get("configured")),
        "bank_code": data.get("bankCode") or "",
        "bank_name": data.get("bankName") or "",
        "last4": number[-4:],
        "holder": data.get("accountHolder") or "",
    }


def payout_refusal(*, amount: object, currency: str, available: int | None) -> PayoutError | None:
    """Why a payout of ``amount`` may not be made, or None: the one rule read by
    :func:`create_payout`, the admin's form and the API's serializer (``available`` None
    skips the balance check)."""
    try:
        check_amount(amount, currency)
    except ValueError as exc:
        return PayoutError(str(exc), code="amount", field="amount")
    if available is not None and isinstance(amount, int) and amount > available:
        return PayoutError(
            _(
                "The amount %(amount)s is more than the available balance %(available)s: "
                "pay out at most the available balance."
            )
            % {
                "amount": format_amount(amount, currency),
                "available": format_amount(max(available, 0), currency),
            },
            code="insufficient_balance",
            field="amount",
        )
    return None


@takes_account
def create_payout(
    *,
    amount: int,
    currency: str = "IDR",
    bank_account: Mapping[str, str] | None = None,
    note: str | None = None,
    idempotency_key: str | None = None,
) -> Payout:
    """Pay ``amount`` out to the saved bank account (or to ``bank_account``, a one-off:
    ``bankCode``, ``bankName``, ``accountNumber``, ``accountHolder``, or their Python or SDK
    names: :func:`one_off_bank`; a key it does not know is refused, not dropped).

    Refused with :class:`PayoutError` (``code="insufficient_balance"``) above the available
    balance. The row is stored with an idempotency key (``idempotency_key``, or a fresh one)
    before Plugipay is called, and every attempt sends that key, so Plugipay makes one payout
    whatever the retries; a second call with the same key (in the same account, as at
    Plugipay) returns the first payout (``payout.replayed`` is True), also when the two race,
    and with another amount, currency, note or bank account raises :class:`PayoutError`
    ``idempotency_mismatch``. When the first call never got Plugipay's answer (a timeout, a
    5xx), the second settles it as :func:`submit_payout` does: it is sent again with the same
    key (a one-off too, with the bank details given again), so Plugipay makes it once, and it
    is the call that carried the request out (``replayed`` False).
    """
    currency = (currency or "IDR").upper()
    inline = one_off_bank(bank_account)
    request = {"amount": amount, "currency": currency, "note": note or "", "inline": inline}
    if idempotency_key:
        earlier = Payout.objects.filter(
            account_id=current_account_pk(), idempotency_key=idempotency_key
        ).first()
        if earlier is not None:
            return _replayed(_replay(earlier, **request), inline)
    refusal = payout_refusal(amount=amount, currency=currency, available=None)
    if refusal is None:
        refusal = payout_refusal(
            amount=amount, currency=currency, available=balance(currency=currency).available
        )
    if refusal is not None:
        raise refusal
    try:
        payout = run_atomic(
            Payout.objects.create,
            amount=amount,
            currency=currency,
            note=note or "",
            status=PayoutStatus.PENDING,
            idempotency_key=idempotency_key or f"payout_{uuid.uuid4().hex}",
            submitted_at=timezone.now(),  # sent right below: from now on it may exist there
            one_off=bool(inline),
            bank_code=inline.get("bankCode", ""),
            bank_name=inline.get("bankName", ""),
            bank_account_last4=inline.get("accountNumber", "")[-4:],
            bank_account_holder=inline.get("accountHolder", ""),
        )
    except IntegrityError:
        if not idempotency_key:
            raise
        # a concurrent request with the same key stored its payout first and is sending it
        # now: that one is it
        winner = Payout.objects.filter(
            account_id=current_account_pk(), idempotency_key=idempotency_key
        ).first()
        if winner is None:  # Plugipay refused that one meanwhile, and its row went with it
            raise PayoutError(
                _(
                    "Plugipay refused the payout requested with this idempotency key a moment "
                    "ago, and nothing was paid out."
                ),
                code="refused",
            ) from None
        return _replay(winner, **request)
    row = _submit(payout, inline)
    row.replayed = False
    return row


def _replay(payout: Payout, *, amount, currency, note, inline) -> Payout:
    """The payout an earlier request with the same key made, if this request is the same
    (a one-off's bank: code, holder and the last four digits the row keeps of the number)."""
    same = (
        payout.amount == amount
        and payout.currency == currency
        and payout.note == note
        and payout.one_off == bool(inline)
        and (not inline or _same_bank(payout, inline))
    )
    if not same:
        raise PayoutError(
            _("This Idempotency-Key was used for a different payout request."),
            code="idempotency_mismatch",
        )
    payout.replayed = True
    return payout


def _same_bank(payout: Payout, inline: Mapping[str, str]) -> bool:
    """Written as the first request wrote it (Plugipay compares bodies exactly, so a holder
    spelled otherwise is another request there too)."""
    return (
        payout.bank_code == inline.get("bankCode", "")
        and payout.bank_account_holder == inline.get("accountHolder", "")
        and payout.bank_account_last4 == inline.get("accountNumber", "")[-4:]
    )


def _replayed(payout: Payout, inline: Mapping[str, str]) -> Payout:
    """A replayed request whose first attempt Plugipay never acknowledged (no Plugipay id,
    still pending: its answer was lost, or it failed before reaching Plugipay) is settled now
    with the same key, as the caller meant by asking again: this call carries it out
    (``replayed`` False). One whose send may still be under way (:func:`_unanswered`) is left
    to it, and one another request merged meanwhile into the row its webhook made is that
    row."""
    if payout.plugipay_id or payout.status != PayoutStatus.PENDING:
        return payout
    try:
        row, act = _settle(payout, inline, replay=True)
    except Payout.DoesNotExist:
        merged = _merged_into(payout)
        if merged is None:
            raise
        row, act = merged, "done"
    row.replayed = act == "done"
    return row


def _merged_into(payout: Payout) -> Payout | None:
    """The row that holds ``payout``'s key now that its own is gone, if it is the one its
    webhook made while its answer was lost, which settling merged it into (it took the
    request's key and creation time, see :func:`_link`); not a later request's row with the
    same key (made after Plugipay refused this one and its row was dropped)."""
    if not payout.idempotency_key:
        return None
    return Payout.objects.filter(
        account_id=payout.account_id,
        idempotency_key=payout.idempotency_key,
        created_at=payout.created_at,
    ).first()


def _on_its_row(act: Callable[[Payout], Payout], payout: Payout) -> Payout:
    """``act(payout)``, or, the row merged meanwhile into the one its webhook made (code
    holding the row from before: a list, a loop), ``act`` on that row: a live payout, not
    one "refused, nothing paid out"."""
    try:
        return act(payout)
    except PayoutGone:
        merged = _merged_into(payout)
        if merged is None:
            raise
        return act(merged)


def left_unanswered() -> QuerySet[Payout]:
    """Pending payouts Plugipay never answered for that nothing will settle by itself: marked
    :data:`NO_ANSWER` over ``STRANDED_AFTER`` seconds ago, or sent over
    :data:`SEND_DEADLINE` ago (``plugipay_doctor``'s ``payouts`` line)."""
    now = timezone.now()
    stale = now - dt.timedelta(seconds=app_settings.STRANDED_AFTER)
    return Payout.objects.filter(
        Q(failure_code=NO_ANSWER, submitted_at__lt=stale) | Q(submitted_at__lt=now - SEND_DEADLINE),
        status=PayoutStatus.PENDING,
        plugipay_id=None,
    )


def _unanswered(row: Payout, now: dt.datetime) -> bool:
    """Is the row's last send over without an answer from Plugipay: marked
    :data:`NO_ANSWER`, or made over :data:`SEND_DEADLINE` ago (never sent: nothing under way)?"""
    return (
        row.failure_code == NO_ANSWER
        or row.submitted_at is None
        or now - row.submitted_at >= SEND_DEADLINE
    )


@takes_account
def submit_payout(payout: Payout) -> Payout:
    """Settle a payout Plugipay has not acknowledged (its create answer lost): the row is
    locked and read again, and only a ``pending`` one without a Plugipay id is acted on.

    Within :data:`~django_plugipay.client.RESEND_WINDOW` of its creation it is sent again with
    its idempotency key, so Plugipay answers with the payout it made, or makes it now; a
    refusal (4xx) marks it ``failed``. An older one is never sent again (Plugipay has forgotten
    the key: a repeat would pay out twice): it is looked for at Plugipay and linked when found,
    else marked ``failed`` with ``failure_code`` :data:`NOT_AT_PLUGIPAY`. A canceled or failed
    row is refused with :class:`PayoutError`, as is a one-off payout that was never sent
    (its bank details were not kept)."""
    return _on_its_row(lambda row: _settle(row, {})[0], payout)


def _settle(
    payout: Payout, inline: Mapping[str, str], *, replay: bool = False
) -> tuple[Payout, str]:
    """:func:`submit_payout`, and what it did (:func:`_claim_unsent`'s act). ``inline``, a
    one-off's bank details given again by a replayed request, lets a one-off be sent again
    too; ``replay``: one whose send may be under way is left to it."""
    row, act = run_atomic(
        _claim_unsent, payout.pk, canceling=False, inline=bool(inline), replay=replay
    )
    if act == "send":
        row = _send_again(row, refused=PayoutStatus.FAILED, inline=inline)
    elif act == "look":
        row = _look_for(row, missing=PayoutStatus.FAILED)
    return row, act


def _claim_unsent(
    pk: int, *, canceling: bool, inline: bool = False, replay: bool = False
) -> tuple[Payout, str]:
    """What to do with an unacknowledged payout, decided under its lock: ``"done"`` (known to
    Plugipay, or ended here), ``"send"`` (sent again now: ``submitted_at`` is stamped in this
    transaction, before the call), ``"look"`` (look for it at Plugipay) or, ``canceling``,
    ``"canceled"`` (never sent: canceled here, in this transaction). A row created longer ago
    than :data:`RESEND_WINDOW` is looked for, never sent, even with ``submitted_at`` empty
    (rows older than that field may have been sent); a one-off row is sent again only with
    its bank details given again (``inline``: they are not kept). A row whose last send may
    still be under way (not :func:`_unanswered`) is neither sent again nor looked for: a
    ``replay`` leaves it to that send (``"done"``), anything else is refused
    (:class:`PayoutError` ``under_way``), as looking now could find nothing and end a payout
    Plugipay is making. Sending clears the :data:`NO_ANSWER` mark, and a send that gets no
    answer again sets it again."""
    with lock_scope():
        row = lock(PAYOUT, pk=pk)
        if row is None:
            raise PayoutGone.of(pk)
        if row.plugipay_id:
            return row, "done"
        if row.status != PayoutStatus.PENDING:
            if canceling:
                return row, "done"
            raise PayoutError(
                _("Payout #%(pk)s is %(status)s here; it is not sent to Plugipay again.")
                % {"pk": row.pk, "status": row.get_status_display().lower()},
                code="not_pending",
            )
        resendable = not row.one_off or inline
        if row.submitted_at is None and (canceling or not resendable):
            if not canceling:
                raise _one_off_refusal(row)
            move(PAYOUT, row, PayoutStatus.CANCELED, {"completed_at": timezone.now()})
            return row, "canceled"
        now = timezone.now()
        if not _unanswered(row, now):
            if replay:
                return row, "done"
            raise _under_way(row)
        if not resendable or now - row.created_at >= RESEND_WINDOW:
            if row.submitted_at is not None and now - row.submitted_at < _look_after():
                # its last send ended without an answer moments ago: Plugipay may be making
                # it still, and a look now would find nothing and end a payout being paid
                if replay:
                    return row, "done"
                raise _under_way(row)
            return row, "look"
        row.submitted_at = now
        row.failure_code = "" if row.failure_code == NO_ANSWER else row.failure_code
        save_fields(row, ["submitted_at", "failure_code", "updated_at"])
        return row, "send"


def _look_after() -> dt.timedelta:
    """How long after a send that got no answer a payout that is not sent again may be
    looked for at Plugipay (and ended when not found): ``STRANDED_AFTER``."""
    return dt.timedelta(seconds=app_settings.STRANDED_AFTER)


def _under_way(payout: Payout) -> PayoutError:
    said = _(
        "Payout #%(pk)s was sent to Plugipay moments ago and may still be on its way; try "
        "again in a few minutes."
    )
    return PayoutError(said % {"pk": payout.pk}, code="under_way")


def _one_off_refusal(payout: Payout) -> PayoutError:
    said = _(
        "Payout #%(pk)s was sent to a one-off bank account whose details are not kept; "
        "cancel it and create a new payout."
    )
    return PayoutError(said % {"pk": payout.pk}, code="one_off")


def _body(payout: Payout, inline: Mapping[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {"amount": payout.amount, "currency": payout.currency}
    if payout.note:
        body["note"] = payout.note
    body.update(inline)
    return body


def _submit(payout: Payout, inline: Mapping[str, str]) -> Payout:
    """The first attempt of :func:`create_payout`."""
    try:
        obj = get_client().create_payout(
            _body(payout, inline), idempotency_key=payout.idempotency_key
        )
    except APIError as exc:
        if exc.after_retry and exc.status not in REFUSALS:
            # the client's own retry after an unanswered attempt, refused before Plugipay read
            # it (credentials, clock, a 409): that attempt may have made the payout, so the
            # row keeps its key, unanswered, as a send again refused so does
            _note_no_answer(payout)
            raise PayoutError(exc.message, code=exc.code, status=exc.status) from exc
        # Refused outright: nothing was created at Plugipay; the request leaves no row.
        Payout.objects.filter(pk=payout.pk, plugipay_id=None).delete()
        raise PayoutError(exc.message, code=exc.code, status=exc.status, field=exc.field) from exc
    except Exception:
        _note_no_answer(payout)
        raise
    return _link(payout, obj)


def _note_no_answer(payout: Payout) -> None:
    """Mark a send that got no answer (:data:`NO_ANSWER`); linked later, the mark is cleared."""
    Payout.objects.filter(pk=payout.pk, plugipay_id=None, status=PayoutStatus.PENDING).update(
        failure_code=NO_ANSWER
    )


def _send_again(payout: Payout, *, refused: str, inline: Mapping[str, str] | None = None) -> Payout:
    """Send an unacknowledged payout again with its key (within the window; a one-off with
    its bank details ``inline``); a refusal (4xx) ends the row in ``refused`` — nothing exists
    at Plugipay — instead of deleting it."""
    try:
        obj = get_client().create_payout(
            _body(payout, inline or {}), idempotency_key=payout.idempotency_key
        )
    except APIError as exc:
        if exc.status not in REFUSALS:
            # Not a refusal of this request (credentials, clock, the account acted for; or a
            # 409: another body with this key, a one-off's number differing past the last four
            # digits kept): it says nothing of whether the payout exists, so the row stays
            # unanswered and the caller's request is refused
            _note_no_answer(payout)
            mismatch = (exc.code or "").lower() == "idempotency_mismatch"
            code = "idempotency_mismatch" if mismatch else exc.code
            raise PayoutError(exc.message, code=code, status=exc.status) from exc
        logger.warning(
            "plugipay payout %s refused when sent again: %s",
            payout.pk,
            exc,
            extra={"payout_id": payout.pk, "request_id": exc.request_id},
        )
        return run_atomic(
            _end_unsent,
            payout.pk,
            refused,
            code=exc.code or "refused",
            reason=exc.message,
            sent_at=payout.submitted_at,
        )
    except Exception:
        _note_no_answer(payout)
        raise
    return _link(payout, obj)


def _link(payout: Payout, obj: Mapping[str, Any]) -> Payout:
    """Apply the payout Plugipay answered with to the row that asked for it."""
    try:
        row = advance(PAYOUT, obj, context={"local_pk": payout.pk})
    except IntegrityError:
        # Its webhook stored the payout as a row of its own meanwhile (the id is unique): read
        # again, that row is found by its id and is the payout.
        row = advance(PAYOUT, obj, context={"local_pk": payout.pk})
    if row.pk != payout.pk:  # a webhook mirrored it first: that row is the payout
        # it takes what only the request knew: the key, when it was asked for (which also
        # tells the request's row, read before the merge, by :func:`_merged_into`), and
        # whether it went to a one-off account (so the same request made again is recognised)
        local: dict[str, Any] = {
            "idempotency_key": payout.idempotency_key,
            "created_at": payout.created_at,
            "submitted_at": payout.submitted_at,
            "one_off": payout.one_off,
        }
        try:
            run_atomic(_merge, payout.pk, row.pk, local)
        except _Taken:
            # another request's row already holds that payout (two look-ups matched it at
            # once): this row keeps its key, unanswered, for staff
            logger.warning(
                "plugipay payout %s matched %s, which payout %s already holds",
                payout.pk,
                row.plugipay_id,
                row.pk,
                extra={"payout_id": payout.pk, "plugipay_id": row.plugipay_id},
            )
            _note_no_answer(payout)
            payout.refresh_from_db()
            return payout
        for name, value in local.items():
            setattr(row, name, value)
    if row.failure_code == NO_ANSWER:  # answered at last
        Payout.objects.filter(pk=row.pk, failure_code=NO_ANSWER).update(failure_code="")
        row.failure_code = ""
    return row


class _Taken(Exception):
    """The row a payout was found in holds another request's key: nothing is merged."""


def _merge(request_pk: int, webhook_pk: int, local: dict[str, Any]) -> None:
    """Drop the request's row and give its key to the row the webhook made, in one
    transaction (the key is unique: never both, never neither); :class:`_Taken`, and nothing
    done, when that row is another request's."""
    Payout.objects.filter(pk=request_pk, plugipay_id=None).delete()
    if not Payout.objects.filter(pk=webhook_pk, idempotency_key=None).update(**local):
        raise _Taken


def _look_for(payout: Payout, *, missing: str) -> Payout:
    """Link an unacknowledged payout that may not be sent again to the one Plugipay made for
    it, found by amount, currency, note and time; none found: it was never made, and the row
    ends in ``missing``."""
    found = _find_at_plugipay(payout)
    if found is not None:
        logger.info(
            "plugipay payout %s found at Plugipay as %s",
            payout.pk,
            found.get("id"),
            extra={"payout_id": payout.pk, "plugipay_id": found.get("id")},
        )
        return _link(payout, found)
    logger.warning(
        "plugipay payout %s was not made at Plugipay; it is %s here",
        payout.pk,
        missing,
        extra={"payout_id": payout.pk, "failure_code": NOT_AT_PLUGIPAY},
    )
    with translation.override(settings.LANGUAGE_CODE):  # stored: the project's language
        reason = _(
            "Plugipay has no payout of this amount from when it was sent: it was never made."
        )
    return run_atomic(
        _end_unsent,
        payout.pk,
        missing,
        code=NOT_AT_PLUGIPAY,
        reason=reason,
        sent_at=payout.submitted_at,
    )


def _find_at_plugipay(payout: Payout) -> dict[str, Any] | None:
    """The oldest payout at Plugipay made between this row's creation and its last send
    (give or take :data:`CLOCK_SKEW`) with its amount, currency and note, that no other
    payout made here already claims. The API keeps no reference of ours on a payout (no
    metadata), so these are what identify it."""
    since = payout.created_at - CLOCK_SKEW
    until = (payout.submitted_at or payout.created_at) + SEND_DEADLINE + CLOCK_SKEW
    candidates = []
    for obj in get_client().list_payouts(limit=PAGE_SIZE):  # newest first
        made = datetimes.parse(obj.get("createdAt") or "")
        if made is None or made > until:
            continue
        if made < since:
            break
        if (
            obj.get("amount") == payout.amount
            and (obj.get("currency") or "IDR") == payout.currency
            and (obj.get("note") or "") == payout.note
            and (not payout.one_off or _to_its_bank(payout, obj))
        ):
            candidates.append(obj)
    claimed = set(
        Payout.objects.filter(plugipay_id__in=[c.get("id") for c in candidates])
        .exclude(idempotency_key=None)
        .values_list("plugipay_id", flat=True)
    )
    free = [c for c in candidates if c.get("id") not in claimed]
    return free[-1] if free else None


def _to_its_bank(payout: Payout, obj: Mapping[str, Any]) -> bool:
    """Was ``obj`` paid to the one-off bank account the row keeps (code, last four)?"""
    number = str(obj.get("accountNumber") or obj.get("bankAccountNumber") or "")
    return obj.get("bankCode") == payout.bank_code and number[-4:] == payout.bank_account_last4


def _end_unsent(
    pk: int, status: str, *, code: str, reason: str, sent_at: dt.datetime | None
) -> Payout:
    """End a payout Plugipay never made (``failed`` or ``canceled``), unless it got its
    Plugipay id, ended, or was sent again since ``sent_at`` (its send as the caller decided:
    another request's send may be making it now)."""
    with lock_scope():
        row = lock(PAYOUT, pk=pk)
        if row.plugipay_id or row.status != PayoutStatus.PENDING or row.submitted_at != sent_at:
            return row
        fields: dict[str, Any] = {"completed_at": timezone.now()}
        if status == PayoutStatus.FAILED:
            fields["failure_reason"] = reason
        move(PAYOUT, row, status, fields)
        if status == PayoutStatus.FAILED or row.failure_code == NO_ANSWER:
            row.failure_code = code if status == PayoutStatus.FAILED else ""
            save_fields(row, ["failure_code", "updated_at"])
        return row


@takes_account
def sync_payout(*, payout: Payout, send: bool = False) -> Payout:
    """Fetch the payout from Plugipay and apply it. One Plugipay has not acknowledged is
    settled by :func:`submit_payout` — which may send it — only with ``send`` True (the
    caller may pay out); else :class:`PayoutError` ``not_submitted``. One that ended here
    (canceled, failed) is returned as it is."""
    return _on_its_row(lambda row: _sync_payout(row, send), payout)


def _sync_payout(payout: Payout, send: bool) -> Payout:
    try:
        payout.refresh_from_db(fields=["status", "plugipay_id"])  # a stale row is not sent
    except Payout.DoesNotExist:
        raise PayoutGone.of(payout.pk) from None
    if payout.plugipay_id:
        return sync_object(payout)
    if payout.status != PayoutStatus.PENDING:
        return payout
    if not send:
        raise PayoutError(
            _(
                "Payout #%(pk)s has not reached Plugipay; only staff who may manage payouts "
                "can send it again."
            )
            % {"pk": payout.pk},
            code="not_submitted",
        )
    return submit_payout(payout)


# ``sync_object`` of a payout Plugipay never acknowledged: a code path, trusted to pay out.
sends_unsent(Payout, lambda payout: sync_payout(payout=payout, send=True))


@takes_account
def cancel_payout(*, payout: Payout) -> Payout:
    """Cancel a pending payout at Plugipay (409 :class:`APIError` once it left).

    A payout Plugipay never acknowledged is canceled here only when it was never sent. One
    that was sent may exist there: within the idempotency window it is sent again with its
    key to learn its id (made now if it never arrived), past it looked for; then it is
    canceled at Plugipay. Refused when sent again, or not found, it is canceled here."""
    return _on_its_row(_cancel_payout, payout)


def _cancel_payout(payout: Payout) -> Payout:
    if not payout.plugipay_id:
        row, act = run_atomic(_claim_unsent, payout.pk, canceling=True)
        if act == "send":
            row = _send_again(row, refused=PayoutStatus.CANCELED)
        elif act == "look":
            row = _look_for(row, missing=PayoutStatus.CANCELED)
        if not row.plugipay_id:  # canceled here, or ended: nothing exists at Plugipay
            return row
        payout = row
    obj = get_client().cancel_payout(payout.plugipay_id)
    return advance(PAYOUT, obj)


def move_refusal(payout: Payout, status: str, exc: PlugipayError) -> str:
    """Why ``payout`` could not be moved to ``status`` (marked, or canceled), in the active
    language: Plugipay's own message is a developer's, in English. The admin's actions and
    the API say it; a refusal of this app's own (a payout not sent yet) is said as it is."""
    target = PayoutStatus(status).label.lower()
    if not isinstance(exc, TransientError) and exc.status is None:
        return exc.message  # this app's, in the active language already
    if isinstance(exc, TransientError):
        return _(
            "Plugipay could not be reached, so payout %(payout)s is not marked %(target)s; "
            "try again shortly."
        ) % {"payout": payout, "target": target}
    if status == PayoutStatus.CANCELED:
        if exc.code == "invalid_transition":
            return _(
                "Payout %(payout)s can no longer be canceled: it has left the pending state "
                "at Plugipay (Re-sync it to see where it is)."
            ) % {"payout": payout}
        return _("Plugipay refused to cancel payout %(payout)s (%(code)s).") % {
            "payout": payout,
            "code": exc.code or exc.status or "?",
        }
    if exc.code != "invalid_transition":
        return _("Plugipay refused to mark payout %(payout)s %(target)s (%(code)s).") % {
            "payout": payout,
            "target": target,
            "code": exc.code or exc.status or "?",
        }
    if payout.method != PayoutMethod.MANUAL:
        return _(
            "Payout %(payout)s is a %(method)s: it moves by itself; only manual payouts are "
            "marked by staff."
        ) % {"payout": payout, "method": payout.get_method_display().lower()}
    return _("Payout %(payout)s is %(status)s: it cannot be marked %(target)s.") % {
        "payout": payout,
        "status": payout.get_status_display().lower(),
        "target": target,
    }


@takes_account
def mark_payout(
    *,
    payout: Payout,
    status: str,
    reference: str | None = None,
    failure_reason: str | None = None,
) -> Payout:
    """Move a ``manual`` payout: ``in_transit`` and ``paid`` (with the bank's ``reference``),
    or ``failed`` (with ``failure_reason``). Plugipay answers 409 (:class:`APIError`) to a
    move the payout cannot make."""
    action = MARK_ACTIONS.get(status)  # type: ignore[call-overload]
    if action is None:
        raise PayoutError(
            _("A payout is marked in transit, paid or failed, not %(status)s.")
            % {"status": status},
            code="status",
            field="status",
        )
    if not payout.plugipay_id:
        raise PayoutError(
            _(
                "Payout #%(pk)s has not reached Plugipay yet: sync it (Re-sync in the admin), "
                "then mark it."
            )
            % {"pk": payout.pk},
            code="not_submitted",
        )
    body: dict[str, Any] = {}
    if status == PayoutStatus.FAILED:
        if not (failure_reason or "").strip():
            raise PayoutError(
                _("Say why the payout failed."), code="failure_reason", field="failure_reason"
            )
        body["failureReason"] = failure_reason
    elif reference:
        body["reference"] = reference
    obj = get_client().payout_action(payout.plugipay_id, action, body)
    return advance(PAYOUT, obj)


# ── syncs with a cursor ───────────────────────────────────────────────────────


def _newest_first(pages: Iterator[dict], known: str, since) -> list[dict]:
    """The items before the first one already known (``known``: the cursor's id) or older
    than ``since``, newest first as listed."""
    fresh = []
    since = datetimes.to_utc(since) if since is not None else None  # naive: project time
    for item in pages:
        if known and item.get("id") == known:
            break
        posted = datetimes.parse(item.get("postedAt") or item.get("issuedAt") or "")
        if since is not None and posted is not None and posted < since:
            break
        fresh.append(item)
    return fresh


def _list_sync(name: str, items: Iterator[dict], spec, since) -> list[Any]:
    """Mirror the items listed newest first down to the cursor (or to ``since``: then the
    cursor stays where it is, as the items between it and ``since`` were not read)."""
    cursor, _created = SyncCursor.objects.get_or_create(name=name, account_id=current_account_pk())
    known = "" if since is not None else cursor.last_event_id
    fresh = _newest_first(items, known, since)
    rows = []
    for obj in reversed(fresh):  # oldest first: the cursor moves forward only
        rows.append(advance(spec, obj))
    if fresh and since is None:
        newest = fresh[0]
        stamp = datetimes.parse(newest.get("postedAt") or newest.get("issuedAt") or "")
        SyncCursor.objects.filter(pk=cursor.pk).update(
            last_event_id=newest["id"],
            occurred_at=datetimes.to_project(stamp) if stamp else cursor.occurred_at,
        )
    return rows


def _unsynced(name: str, items: Iterator[dict], since) -> int:
    cursor = SyncCursor.objects.filter(name=name, account_id=current_account_pk()).first()
    known = "" if since is not None or cursor is None else cursor.last_event_id
    return len(_newest_first(items, known, since))


@takes_account
def unsynced_money(*, since=None) -> dict[str, int]:
    """How many ledger entries and receipts the next :func:`sync_ledger` and
    :func:`sync_receipts` would mirror (``{"ledger": n, "receipts": m}``); reads, writes
    nothing (``plugipay_sync --money --dry-run``)."""
    client = get_client()
    return {
        "ledger": _unsynced(
            LEDGER_CURSOR, client.list_ledger_entries(order="desc", limit=PAGE_SIZE), since
        ),
        "receipts": _unsynced(
            RECEIPTS_CURSOR, client.list_receipts(order="desc", limit=PAGE_SIZE), since
        ),
    }


@takes_account
def sync_ledger(*, since=None) -> int:
    """Mirror the ledger entries posted since the last sync (or since ``since``); returns how
    many were read. Entries are immutable: each is stored once."""
    items = get_client().list_ledger_entries(order="desc", limit=PAGE_SIZE)
    return len(_list_sync(LEDGER_CURSOR, items, LEDGER_ENTRY, since))


@takes_account
def sync_receipts(*, since=None, source_id: str | None = None) -> list[Receipt]:
    """Mirror receipts issued since the last sync (or since ``since``; or the receipts of one
    session or invoice, ``source_id``); ``receipt_issued`` is sent once for each new one."""
    client = get_client()
    if source_id:
        # One page, newest first, and only the source's receipts: a server that ignored the
        # ``sourceId`` filter would otherwise have every receipt read here.
        items = client.list_receipts(sourceId=source_id, order="desc", limit=PAGE_SIZE)
        page = itertools.islice(items, PAGE_SIZE)
        return [advance(RECEIPT, obj) for obj in page if obj.get("sourceId") == source_id]
    items = client.list_receipts(order="desc", limit=PAGE_SIZE)
    account_id = current_account_pk()
    first = (
        not SyncCursor.objects.filter(name=RECEIPTS_CURSOR, account_id=account_id).exists()
        and not Receipt.objects.filter(account_id=account_id).exists()
    )
    # The first sync of an account that never mirrored a receipt (an upgrade, SYNC_RECEIPTS
    # turned on later) reads every receipt ever issued: only those of the last RECEIPT_WINDOW
    # (this project's own recent sales among them) are announced.
    quiet = announcing_since(timezone.now() - RECEIPT_WINDOW) if first else nullcontext()
    with quiet:
        return _list_sync(RECEIPTS_CURSOR, items, RECEIPT, since)


# ── receipts arriving by themselves ───────────────────────────────────────────────

#: How long after its session completed (or its invoice was paid) the sweeper still looks for
#: a receipt that was not mirrored: past it, a source without one is left alone.
RECEIPT_WINDOW = dt.timedelta(days=1)


def sync_receipts_soon(source_id: str) -> None:
    """After the current transaction commits, mirror the receipts Plugipay issued for the
    session or invoice ``source_id`` (a task, or in-process), for the account acting now.

    Called when a session completes or an invoice is paid, so ``receipt_issued`` fires with
    no sync run by anyone; a lost task leaves the source without a receipt, which
    :func:`sync_missing_receipts` (a sweeper step) finds."""
    account = accounts.current().alias
    enqueue(
        "django_plugipay.sync_receipts",
        source_id,
        account,
        inline=lambda: sync_receipts(source_id=source_id, account=account),
    )


def _receipt_due(sender, instance, **kwargs) -> None:
    if instance.plugipay_id and app_settings.SYNC_RECEIPTS:
        sync_receipts_soon(instance.plugipay_id)


signals.checkout_session_completed.connect(
    _receipt_due, dispatch_uid="django_plugipay.receipt_for_session"
)
signals.invoice_paid.connect(_receipt_due, dispatch_uid="django_plugipay.receipt_for_invoice")


def sync_missing_receipts(*, limit: int = 20) -> int:
    """Mirror the receipts of the acting account's sessions completed and invoices paid in
    the last :data:`RECEIPT_WINDOW` but over ``STRANDED_AFTER`` seconds ago that have none yet
    (their after-commit sync lost or failed); the sweeper runs it for every account. Returns
    how many receipts were mirrored. Plugipay unreachable ends the step (the next sweep tries
    again); another failure leaves that source for the next sweep."""
    if not app_settings.SYNC_RECEIPTS:
        return 0
    now = timezone.now()
    stale = now - dt.timedelta(seconds=app_settings.STRANDED_AFTER)
    window = now - RECEIPT_WINDOW
    account_id = current_account_pk()
    sources: list[str] = []
    for model, status, stamp in (
        (CheckoutSession, SessionStatus.COMPLETED, "completed_at"),
        (Invoice, InvoiceStatus.PAID, "paid_at"),
    ):
        rows = (
            model.objects.filter(
                account_id=account_id,
                status=status,
                **{f"{stamp}__gte": window, f"{stamp}__lt": stale},
            )
            .exclude(plugipay_id__in=Receipt.objects.values("source_id"))
            .exclude(plugipay_id__isnull=True)
            .order_by(stamp)
            .values_list("plugipay_id", flat=True)[:limit]
        )
        sources.extend(rows)
    mirrored = 0
    for source_id in sources[:limit]:
        try:
            mirrored += len(sync_receipts(source_id=source_id))
        except Exception as exc:  # Plugipay or the database unavailable: the next sweep
            logger.warning(
                "plugipay receipts of %s not synced: %s: %s",
                source_id,
                type(exc).__name__,
                exc,
                extra={"source_id": source_id},
            )
            if isinstance(exc, TransientError):  # unreachable: no use trying the others now
                break
    return mirrored


def ledger_is_balanced(entries) -> dict[str, int]:
    """The transactions of ``entries`` whose debits and credits differ: ``{tx_id: debits −
    credits}`` (empty when every one balances)."""
    totals: dict[str, int] = {}
    for entry in entries:
        sign = 1 if entry.direction == "debit" else -1
        totals[entry.tx_id] = totals.get(entry.tx_id, 0) + sign * entry.amount
    return {tx: total for tx, total in totals.items() if total}


# ── receipts ───────────────────────────────────────────────────────────────────

DOCUMENT_FORMATS = ("pdf", "html")


def receipt_for(*, plugipay_id: str, user) -> Receipt | None:
    """The receipt ``user`` may read by its id, or by the id of the checkout session or
    invoice it was issued for (synced first when not mirrored yet); None when there is none
    or it is not theirs (staff who may view receipts read every one, by any of the three ids,
    without the permission to view sessions or invoices). Looked for in every database the
    accounts' rows are kept in (``ACCOUNT_DATABASE``)."""
    for account in accounts.one_per_database():
        with accounts.acting_for(account.pk):
            receipt = _receipt_for(plugipay_id, user)
        if receipt is not None:
            return receipt
    return None


def _receipt_for(plugipay_id: str, user) -> Receipt | None:
    receipt = Receipt.objects.filter(plugipay_id=plugipay_id).first()
    if receipt is not None:
        return receipt if permissions.can_read(user, receipt) else None
    source = (
        CheckoutSession.objects.filter(plugipay_id=plugipay_id).first()
        or Invoice.objects.filter(plugipay_id=plugipay_id).first()
    )
    if source is None:
        return None
    if not (permissions.sees_everything(user, "receipt") or permissions.can_read(user, source)):
        return None
    receipt = Receipt.objects.filter(source_id=plugipay_id).first()
    if receipt is None:
        sync_receipts(source_id=plugipay_id, account=source.account_id)
        receipt = Receipt.objects.filter(source_id=plugipay_id).first()
    return receipt if receipt is not None and permissions.can_read(user, receipt) else None


@takes_account
def receipt_document(*, receipt: Receipt, format: str = "pdf") -> requests.Response:  # noqa: A002
    """The receipt's document from Plugipay (``"pdf"`` or ``"html"``): a streamed
    ``requests.Response`` the caller reads and closes."""
    if format not in DOCUMENT_FORMATS:
        raise PlugipayError("format must be 'pdf' or 'html'.", code="format")
    return get_client().receipt_document(receipt.plugipay_id, format)


@takes_account
def email_receipt(*, receipt: Receipt, to: str | None = None) -> Receipt:
    """Have Plugipay e-mail the receipt (to the customer's address unless ``to``); the row
    takes in ``emailed_at``."""
    obj = get_client().email_receipt(receipt.plugipay_id, {"to": to} if to else {})
    return advance(RECEIPT, obj)


__all__ = [
    "Balance",
    "balance",
    "bank_account",
    "cancel_payout",
    "create_payout",
    "email_receipt",
    "ledger_is_balanced",
    "mark_payout",
    "payout_refusal",
    "receipt_document",
    "receipt_for",
    "submit_payout",
    "sync_payout",
    "sync_ledger",
    "sync_missing_receipts",
    "sync_receipts",
    "sync_receipts_soon",
]
