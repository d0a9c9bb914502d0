"""Refunds: request one safely, submit it to Plugipay once, and sync it."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

from django.conf import settings
from django.db import IntegrityError
from django.db.models import Q, QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from django_plugipay import accounts
from django_plugipay.accounts import takes_account
from django_plugipay.client import RESEND_WINDOW, RETRY_AFTER_CAP, get_client
from django_plugipay.conf import app_settings
from django_plugipay.context import current_account_pk
from django_plugipay.db import run_atomic
from django_plugipay.exceptions import APIError, RefundError
from django_plugipay.models import Payment, PaymentStatus, Refund, RefundReason, RefundStatus
from django_plugipay.models.querysets import NOT_SUBMITTED
from django_plugipay.money import check_amount, format_amount
from django_plugipay.resources.refunds import REFUND_REFERENCE_KEY
from django_plugipay.services._queue import enqueue, row_args
from django_plugipay.services.apply import (
    mark_refund_failed,
    sends_unsent,
    sync_object,
    upsert_refund,
)

logger = logging.getLogger(__name__)


def refundable_amount(payment: Payment) -> int:
    """What may still be refunded: see :meth:`Payment.remaining_to_refund`."""
    return payment.remaining_to_refund()


def refund_refusal(
    *,
    payment: Payment | None = None,
    amount: object = None,
    reason: str | None = None,
    description: str = "",
    remaining: int | None = None,
) -> RefundError | None:
    """Why this refund may not be made, or None: the one eligibility rule, read by
    :func:`refund_payment` (under the payment's lock), the admin's refund form and the API's
    refund serializer.

    A reason must be one of :class:`RefundReason` and "Other" needs a description;
    ``amount`` (None: everything left) must be a whole number from 1 to
    :data:`~django_plugipay.money.MAX_AMOUNT`. The payment's state — succeeded, something
    left, ``amount`` within it — is checked when ``remaining`` is given (what
    :meth:`Payment.remaining_to_refund` says); ``payment`` is needed with ``amount`` or
    ``remaining``. ``reason=None`` skips the reason checks (a
    payment listed before a reason is chosen). The error's ``field`` names the input at fault.
    """
    if reason is not None:
        if reason not in RefundReason.values:
            return RefundError(
                _("Choose a reason: %(reasons)s.") % {"reasons": ", ".join(RefundReason.values)},
                code="reason",
                field="reason",
            )
        if reason == RefundReason.OTHER and not description.strip():
            return RefundError(
                _("Describe the reason when it is “Other”."),
                code="description",
                field="description",
            )
    if amount is None and remaining is None:
        return None
    if payment is None:
        raise TypeError("refund_refusal() needs the payment to check an amount or remaining.")
    if amount is not None:
        if isinstance(amount, int) and not isinstance(amount, bool) and amount <= 0:
            return RefundError(_("Enter an amount above zero."), code="amount", field="amount")
        try:
            check_amount(amount, payment.currency)
        except ValueError as exc:
            return RefundError(str(exc), code="amount", field="amount")
    if remaining is None:
        return None
    if payment.status != PaymentStatus.SUCCEEDED:
        return RefundError(
            _("Payment %(payment)s is %(status)s; only succeeded payments can be refunded.")
            % {"payment": payment.plugipay_id, "status": payment.get_status_display().lower()},
            code="not_paid",
        )
    if remaining <= 0:
        return RefundError(
            _("Nothing is left to refund on this payment."), code="over_refund", field="amount"
        )
    if isinstance(amount, int) and amount > remaining:
        return RefundError(
            _("The amount %(amount)s is more than the %(left)s left to refund on this payment.")
            % {
                "amount": format_amount(amount, payment.currency),
                "left": format_amount(remaining, payment.currency),
            },
            code="over_refund",
            field="amount",
        )
    return None


@takes_account
def refund_payment(
    *,
    payment: Payment,
    amount: int | None = None,
    reason: str,
    description: str = "",
    requested_by=None,
    currency: str | None = None,
    idempotency_key: str | None = None,
) -> Refund:
    """Record a refund request and queue its creation at Plugipay after commit.

    The payment row is locked while the remainder is checked, so concurrent requests can never
    refund more than was paid. ``amount`` defaults to the whole remainder. The returned Refund
    is ``requested``; after commit the ``create_refund`` task (or, without Celery, this
    process) sends it with its idempotency key. If that cannot happen now (broker down,
    Plugipay unreachable) the refund stays ``requested`` with the reason in
    ``failure_message`` and reconciliation sends it later.
    With an ``idempotency_key`` already used, the same request returns the refund it made
    (``refund.replayed`` is True) and a different one raises :class:`RefundError` with code
    ``idempotency_mismatch``; two concurrent requests with one key make one refund.
    Raises :class:`RefundError` with a message fit to show staff.
    """
    request = {"payment": payment, "amount": amount, "reason": reason, "description": description}
    # the key is the account's (Plugipay scopes keys to the workspace), as the constraint says
    mine = Refund.objects.filter(account_id=current_account_pk(), idempotency_key=idempotency_key)
    if idempotency_key:
        existing = mine.first()
        if existing is not None:
            return _replay(existing, **request)
    refused = refund_refusal(payment=payment, amount=amount, reason=reason, description=description)
    if refused is not None:
        raise refused
    try:
        refund = run_atomic(
            _request_refund,
            payment=payment,
            amount=amount,
            reason=reason,
            description=description,
            requested_by=requested_by,
            currency=currency,
            idempotency_key=idempotency_key,
        )
    except IntegrityError:
        if not idempotency_key:
            raise
        return _replay(mine.get(), **request)
    except _MadeMeanwhile as made:
        return _replay(made.refund, **request)
    refund.replayed = False
    return refund


class _MadeMeanwhile(Exception):
    """A request with the same key made its refund while this one waited for the payment's
    lock: this request is that one, not a second (whose remainder may be gone)."""

    def __init__(self, refund: Refund) -> None:
        super().__init__()
        self.refund = refund


def _replay(refund: Refund, *, payment, amount, reason, description) -> Refund:
    """The refund an earlier request with the same key made, if this request is the same."""
    same = (
        refund.payment_id == payment.pk
        and refund.reason == reason
        and refund.description == description
        and amount in (None, refund.amount)
    )
    if not same:
        raise RefundError(
            _("This Idempotency-Key was used for a different refund request."),
            code="idempotency_mismatch",
        )
    refund.replayed = True
    return refund


def _request_refund(
    *, payment, amount, reason, description, requested_by, currency, idempotency_key
) -> Refund:
    """The locked part of :func:`refund_payment`: one transaction, re-run whole on a retry."""
    locked = Payment.objects.select_for_update().get(pk=payment.pk)
    if idempotency_key:
        made = Refund.objects.filter(
            account_id=current_account_pk(), idempotency_key=idempotency_key
        ).first()
        if made is not None:
            raise _MadeMeanwhile(made)
    if currency and currency.upper() != locked.currency:
        raise RefundError(
            _("The payment is in %(currency)s, not %(other)s.")
            % {"currency": locked.currency, "other": currency.upper()},
            code="currency",
            field="amount",
        )
    remaining = refundable_amount(locked)
    refused = refund_refusal(
        payment=locked,
        amount=amount,
        reason=reason,
        description=description,
        remaining=remaining,
    )
    if refused is not None:
        raise refused
    amount = remaining if amount is None else amount
    refund = Refund.objects.create(
        payment=locked,
        amount=amount,
        currency=locked.currency,
        reason=reason,
        description=description,
        requested_by=requested_by,
        mode=locked.mode,
        idempotency_key=idempotency_key or f"idem_{uuid.uuid4()}",
    )
    enqueue(
        "django_plugipay.create_refund",
        *row_args(refund.pk),
        inline=lambda: submit_refund(refund=refund),
        on_failure=lambda exc: _note_not_submitted(refund.pk, exc),
    )
    return refund


def refunds_not_submitted() -> QuerySet[Refund]:
    """The acting account's refunds still ``requested`` and marked not submitted over an hour
    after they were asked for: no send reached Plugipay (the broker down) or each was refused
    before Plugipay read it (a 401 after a key was rotated, a 403). The sweeper keeps sending
    them with their key and their amount stays held, so someone must fix the cause
    (``plugipay_doctor``'s refunds line and check W045 name them)."""
    return accounts.own(Refund.objects).filter(
        status=RefundStatus.REQUESTED,
        failure_code=NOT_SUBMITTED,
        created_at__lt=timezone.now() - NOT_SUBMITTED_FOR,
    )


#: how long a refund may stay not submitted before it is reported
NOT_SUBMITTED_FOR = dt.timedelta(hours=1)


def _note_not_submitted(refund_id: int, exc: Exception) -> None:
    """Say on the refund why it is still only ``requested``; the sweeper submits it. Stored,
    the note is in the project's language (``LANGUAGE_CODE``), whoever's request sent it."""
    with translation.override(settings.LANGUAGE_CODE):
        message = _(
            "Not sent to Plugipay yet (%(error)s); it stays requested and the sweeper (or "
            "manage.py plugipay_sync) sends it with the same idempotency key."
        ) % {"error": f"{type(exc).__name__}: {exc}"}
    Refund.objects.filter(pk=refund_id, status=RefundStatus.REQUESTED, plugipay_id=None).update(
        failure_code=NOT_SUBMITTED, failure_message=message[:2000]
    )


@takes_account
def submit_refund(*, refund: Refund) -> Refund:
    """Create a requested refund at Plugipay with its stored key (safe to call again).

    Terminal refunds are left alone. A refusal of the refund itself (:data:`REFUSALS`: its
    values, the payment) marks it failed with the API's message. Any other 4xx (credentials,
    the clock, a 409 for this key with another body) was answered before Plugipay read the
    request, so it says nothing of whether an earlier send made the refund: the refund stays
    ``requested``, marked not submitted, for the sweeper to send again with the same key (a
    409 first looks for the refund made with it). Transient errors propagate for the caller
    (the task) to retry with the same key.
    """
    refund = Refund.objects.select_related("payment__checkout_session", "payment__invoice").get(
        pk=refund.pk
    )
    if refund.status != RefundStatus.REQUESTED:
        return refund
    if timezone.now() - refund.created_at < RESEND_WINDOW:
        return _send(refund)
    # Plugipay may have forgotten the key: a repeat could refund twice. Look first, and let
    # no other process (a sweep of another web process, beat's) look and send meanwhile.
    mark = _claim_submission(refund.pk)
    if mark is None:
        logger.info(
            "plugipay refund %s is being sent by another process",
            refund.pk,
            extra={"refund_id": refund.pk},
        )
        return refund
    try:
        made = _made_at_plugipay(refund)
        if made is not None:
            return _link_made(refund, made)
        return _send(refund)
    finally:  # this process's mark only (another's, after this one lapsed, stays)
        Refund.objects.filter(pk=refund.pk, submitting_until=mark).update(submitting_until=None)


#: the most pages of a payment's refunds a look reads (:data:`LOOKUP_LIMIT` at 100 a page)
LOOKUP_PAGES = 10


def _claim_submission(refund_pk: int) -> dt.datetime | None:
    """Mark the refund as being looked for and sent by this process, unless another holds
    the mark; return the mark (its lapse), or None. It lapses after the longest the look and
    the send can take — every request of them retried, each retry after the longest wait
    Plugipay may ask for — so only a process that died holding it is overtaken."""
    now = timezone.now()
    attempts = app_settings.MAX_RETRIES + 1
    per_request = attempts * (app_settings.TIMEOUT + RETRY_AFTER_CAP)
    lapses = now + dt.timedelta(seconds=60 + (LOOKUP_PAGES + 1) * per_request)
    claimed = (
        Refund.objects.filter(pk=refund_pk, status=RefundStatus.REQUESTED, plugipay_id=None)
        .filter(Q(submitting_until__isnull=True) | Q(submitting_until__lt=now))
        .update(submitting_until=lapses)
    )
    return lapses if claimed == 1 else None


def _send(refund: Refund) -> Refund:
    """Create the refund at Plugipay with its key and link the row to the answer."""
    payment = refund.payment
    body = {
        "amount": refund.amount,
        "reason": refund.reason or None,
        "metadata": {REFUND_REFERENCE_KEY: refund.idempotency_key},
    }
    if payment.checkout_session is not None:
        body.update(sourceType="checkout_session", sourceId=payment.checkout_session.plugipay_id)
    elif payment.invoice is not None:
        body.update(sourceType="invoice", sourceId=payment.invoice.plugipay_id)
    else:
        body["chargeId"] = payment.plugipay_id
    body = {k: v for k, v in body.items() if v is not None}
    try:
        obj = get_client().create_refund(body, idempotency_key=refund.idempotency_key)
    except APIError as exc:
        if not _refuses_the_refund(exc):
            return _not_refused(refund, exc)
        logger.warning(
            "plugipay refund %s refused: %s",
            refund.pk,
            exc,
            extra={"refund_id": refund.pk, "request_id": exc.request_id},
        )
        data = exc.details.get("refund")
        return mark_refund_failed(
            refund, code=exc.code or "refused", message=exc.message, data=data
        )
    return _link_made(refund, obj)


#: The statuses of Plugipay's refusals of a refund request itself (its amount or reason, the
#: payment it names): nothing was made. Any other 4xx (401, 403, a 409 but ``conflict``…)
#: answered before the request was read, and leaves the refund to be sent again.
REFUSALS = (400, 404, 422)


def _refuses_the_refund(exc: APIError) -> bool:
    """Did Plugipay refuse the refund itself (nothing made, nothing to send again)? Its
    values or payment (:data:`REFUSALS`), or the payment's state: a 409 ``conflict`` (refunded
    in full meanwhile, from the dashboard say). A 409 for this key sent with another body
    (``idempotency_mismatch``, or no code) may hide a refund made: not a refusal."""
    if exc.code == "invalid_response":
        return False
    if exc.status in REFUSALS:
        return True
    return exc.status == 409 and (exc.code or "").lower() == "conflict"


def _not_refused(refund: Refund, exc: APIError) -> Refund:
    """An answer that refused the send, not the refund (see :func:`submit_refund`)."""
    logger.warning(
        "plugipay refund %s not sent (%s), left requested for the sweeper: %s",
        refund.pk,
        exc.status,
        exc,
        extra={"refund_id": refund.pk, "request_id": exc.request_id},
    )
    if exc.status == 409:  # this key was sent with another body: the refund may exist
        made = _made_at_plugipay(refund)
        if made is not None:
            return _link_made(refund, made)
    _note_not_submitted(refund.pk, exc)
    return Refund.objects.get(pk=refund.pk)


def _link_made(refund: Refund, obj: dict) -> Refund:
    """Link the row to the refund Plugipay made (a transaction retried on a fresh
    connection): if the database went away during the call, that is what must survive."""
    row = upsert_refund(obj)
    run_atomic(_clear_not_submitted, refund.pk)
    if row.failure_code == NOT_SUBMITTED:  # read before the mark was cleared
        row.failure_code = row.failure_message = ""
    return row


#: at most this many of a payment's refunds are read looking for one made for a row
LOOKUP_LIMIT = 1000


def _made_at_plugipay(refund: Refund) -> dict | None:
    """The refund Plugipay made for this row, found among its payment's refunds by the
    reference every refund made here carries (``metadata``), or None: it was never made, and
    sending it now makes it once."""
    payment = refund.payment
    session = payment.checkout_session
    filters = {"chargeId": payment.plugipay_id}
    if session is not None:  # the older API filters by source; both are sent
        filters["sourceId"] = session.plugipay_id
    for seen, obj in enumerate(get_client().list_refunds(**filters)):
        if seen >= LOOKUP_LIMIT:
            break
        metadata = obj.get("metadata")
        if (
            isinstance(metadata, dict)
            and metadata.get(REFUND_REFERENCE_KEY) == refund.idempotency_key
        ):
            logger.info(
                "plugipay refund %s found at Plugipay as %s",
                refund.pk,
                obj.get("id"),
                extra={"refund_id": refund.pk, "plugipay_id": obj.get("id")},
            )
            return obj
    return None


def _clear_not_submitted(refund_id: int) -> None:
    Refund.objects.filter(pk=refund_id, failure_code=NOT_SUBMITTED).update(
        failure_code="", failure_message=""
    )


def submit_stranded_refunds(*, limit: int = 100) -> int:
    """Submit, with its stored key, every refund still ``requested`` that Plugipay has not
    confirmed: one whose submission failed (``NOT_SUBMITTED``) and one requested over
    ``STRANDED_AFTER`` seconds ago (its task lost, or its answer never stored). A refund
    Plugipay made already is replayed by its idempotency key and linked, never made twice.
    Returns how many were submitted; a failure leaves the refund for the next sweep."""
    stale = timezone.now() - dt.timedelta(seconds=app_settings.STRANDED_AFTER)
    stranded = accounts.own(Refund.objects.stranded(stale)).order_by("created_at")[:limit]
    submitted = 0
    for refund in stranded:
        try:
            submit_refund(refund=refund)
        except Exception as exc:  # Plugipay or the database unavailable: the next sweep
            logger.warning(
                "plugipay refund %s not submitted: %s: %s",
                refund.pk,
                type(exc).__name__,
                exc,
                extra={"refund_id": refund.pk},
            )
            continue
        submitted += 1
    return submitted


sends_unsent(Refund, lambda refund: submit_refund(refund=refund))


@takes_account
def sync_refund(*, refund: Refund) -> Refund:
    """Fetch the refund from Plugipay and apply it through the same path as webhooks (one
    not yet created there is submitted with its stored key)."""
    return sync_object(refund)
