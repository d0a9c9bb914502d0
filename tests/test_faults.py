"""Faults on Django's defaults: the database gone mid-request, a lost enqueue, a hook failing."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from django_plugipay import db, services, signals
from django_plugipay.admin import tokens
from django_plugipay.client import PlugipayClient
from django_plugipay.exceptions import APIError, TransientError
from django_plugipay.models import EventStatus, Refund, RefundStatus, WebhookEvent
from django_plugipay.services import _queue
from django_plugipay.services.refunds import NOT_SUBMITTED
from tests.test_admin import CHANGELIST, staff
from tests.test_webhook_view import completed, post


@pytest.fixture
def fast_backoff(monkeypatch):
    monkeypatch.setattr(db, "BACKOFF_BASE", 0.0)


@pytest.fixture
def database_down():
    """Every query fails as it does after ``pg_terminate_backend`` (no SQLSTATE: the driver's
    "connection is closed"), until the block ends."""

    def refuse(execute, sql, params, many, context):
        raise OperationalError("the connection is closed")

    return lambda: connection.execute_wrapper(refuse)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("processing", ["inline", "celery"])
def test_an_event_not_recorded_is_a_503_that_claims_nothing_and_logs_its_cause_once(
    client, settings, caplog, fast_backoff, database_down, processing
):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_PROCESSING": processing}
    with caplog.at_level(logging.WARNING), database_down():
        response = post(client, completed())
    assert response.status_code == 503 and response["Retry-After"]
    assert "was recorded" not in response.json()["error"]["message"]
    causes = [r for r in caplog.records if "connection is closed" in r.getMessage()]
    assert len(causes) == 1 and causes[0].exc_info is None  # an outage: no traceback
    assert not WebhookEvent.objects.exists()
    # Plugipay delivers it again once the database is back: recorded and applied once.
    assert post(client, completed()).status_code == 200
    assert WebhookEvent.objects.get().status == EventStatus.PROCESSED


@pytest.mark.django_db
def test_after_commit_work_never_raises_even_when_recording_its_failure_fails(
    django_capture_on_commit_callbacks, caplog
):
    def fail():
        raise OperationalError("the connection is closed")

    def note(exc):
        raise OperationalError("server closed the connection unexpectedly")

    with caplog.at_level(logging.WARNING), django_capture_on_commit_callbacks(execute=True):
        _queue.enqueue("django_plugipay.create_refund", 1, inline=fail, on_failure=note)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "connection is closed" in messages and "could not be recorded either" in messages


def _received(event_id: str, queued_at) -> WebhookEvent:
    payload = completed(event_id=event_id)
    return WebhookEvent.objects.create(
        event_id=event_id,
        type=payload["type"],
        kind="checkout_session.completed",
        payload=payload,
        queued_at=queued_at,
    )


@pytest.mark.django_db(transaction=True)
def test_the_sweeper_applies_events_whose_enqueue_failed_or_whose_task_died(settings):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "STRANDED_AFTER": 60}
    now = timezone.now()
    lost = _received("evt_lost", None)  # the broker was down: never queued
    dead = _received("evt_dead", now - dt.timedelta(seconds=61))  # its worker was killed
    busy = _received("evt_busy", now)  # queued a moment ago: its task is coming
    assert services.sweep()["events"] == 2
    statuses = dict(WebhookEvent.objects.values_list("event_id", "status"))
    assert statuses == {
        lost.event_id: EventStatus.PROCESSED,
        dead.event_id: EventStatus.PROCESSED,
        busy.event_id: EventStatus.RECEIVED,
    }
    assert services.sweep()["events"] == 0


def test_a_refund_whose_answer_was_lost_is_linked_by_the_sweeper_never_made_twice(
    plugipay_sandbox, settings
):
    payment = plugipay_sandbox.paid_payment(30_000)
    refund = services.refund_payment(payment=payment, amount=10_000, reason="duplicate")
    plugipay_sandbox.flush()  # the refund's own webhooks answered now, not after the rewrite
    refund.refresh_from_db()
    sent = refund.plugipay_id
    assert sent
    # As if the database went away after Plugipay answered: the row knows nothing of it.
    Refund.objects.filter(pk=refund.pk).update(
        plugipay_id=None, status=RefundStatus.REQUESTED, failure_code=NOT_SUBMITTED
    )
    assert services.sweep()["refunds"] == 1
    refund.refresh_from_db()
    assert refund.plugipay_id == sent and refund.failure_code == ""
    assert len(plugipay_sandbox.state()["refunds"]) == 1


@pytest.mark.parametrize("made", [True, False], ids=["made", "never made"])
def test_a_refund_unacknowledged_past_the_idempotency_window_is_looked_for_not_sent_again(
    plugipay_sandbox, made
):
    """Plugipay keeps a key 24 h: past that, sending again could refund twice. A refund Plugipay
    made is found by the reference it carries and linked; one it never made is sent, once."""
    payment = plugipay_sandbox.paid_payment(30_000)
    if made:
        refund = services.refund_payment(payment=payment, amount=10_000, reason="duplicate")
        plugipay_sandbox.flush()
        refund.refresh_from_db()
        sent = refund.plugipay_id
    else:
        plugipay_sandbox.fault("http_500", count=20, path_prefix="/api/v1/refunds")
        refund = services.refund_payment(payment=payment, amount=10_000, reason="duplicate")
        plugipay_sandbox.clear_faults()
        assert not plugipay_sandbox.state()["refunds"]
    a_day_ago = timezone.now() - dt.timedelta(hours=25)
    Refund.objects.filter(pk=refund.pk).update(
        plugipay_id=None,
        status=RefundStatus.REQUESTED,
        failure_code=NOT_SUBMITTED,
        created_at=a_day_ago,
    )
    plugipay_sandbox.advance(25 * 3600)  # Plugipay has forgotten the key
    assert services.sweep()["refunds"] == 1
    refund.refresh_from_db()
    remote = plugipay_sandbox.state()["refunds"]
    assert len(remote) == 1, remote
    assert refund.plugipay_id == remote[0]["id"] and refund.failure_code == ""
    if made:
        assert refund.plugipay_id == sent


def test_a_resubmitted_refund_page_returns_its_first_outcome_and_refunds_once(
    plugipay_sandbox, client
):
    payment = plugipay_sandbox.paid_payment(20_000)
    client.force_login(staff("refund_payment"))
    data = {"action": "refund_payments", "_selected_action": [payment.pk]}
    page = client.post(CHANGELIST, data)
    token = page.context["token"]
    assert f'name="{tokens.FIELD}" value="{token}"' in page.content.decode()
    confirm = {**data, "post": "yes", "amount": "8000", "reason": "duplicate", tokens.FIELD: token}
    first = client.post(CHANGELIST, confirm, follow=True)
    again = client.post(CHANGELIST, confirm, follow=True)  # a double submit, or the back button
    assert "Requested 1 refund" in first.content.decode()
    assert "already requested from this page" in again.content.decode()
    assert Refund.objects.get().amount == 8000
    assert [r["amount"] for r in plugipay_sandbox.state()["refunds"]] == [8000]
    # A fresh page is a fresh request: a second refund is possible on purpose.
    fresh = {**confirm, tokens.FIELD: client.post(CHANGELIST, data).context["token"]}
    client.post(CHANGELIST, fresh)
    assert Refund.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_an_outage_while_applying_is_a_503_logged_once_and_the_event_kept_failed(
    client, caplog, fast_backoff
):
    def lose_the_connection(sender, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    signals.checkout_session_completed.connect(lose_the_connection, dispatch_uid="outage")
    try:
        with caplog.at_level(logging.WARNING):
            response = post(client, completed())
    finally:
        signals.checkout_session_completed.disconnect(dispatch_uid="outage")
    assert response.status_code == 503 and response["Retry-After"]
    causes = [r for r in caplog.records if "server closed" in r.getMessage()]
    assert len(causes) == 1 and causes[0].exc_info is None
    event = WebhookEvent.objects.get()  # recorded as failed: the next delivery applies it
    assert event.status == EventStatus.FAILED and "server closed" in event.last_error
    assert post(client, completed()).status_code == 200
    assert WebhookEvent.objects.get().status == EventStatus.PROCESSED


def test_a_refund_task_retries_a_lost_database_on_a_fresh_connection(plugipay_sandbox, monkeypatch):
    from django_plugipay import tasks

    payment = plugipay_sandbox.paid_payment(30_000)
    plugipay_sandbox.hold()
    refund = Refund.objects.create(
        payment=payment, amount=5_000, currency="IDR", reason="duplicate", idempotency_key="k1"
    )
    submit, calls = services.submit_refund, []

    def lost_once(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OperationalError("the connection is closed")
        return submit(**kwargs)

    monkeypatch.setattr(services, "submit_refund", lost_once)
    monkeypatch.setattr(tasks, "backoff", lambda retries, retry_after=None: 0)
    result = tasks.create_refund.apply(args=(refund.pk,))
    assert result.get() in ("pending", "succeeded") and len(calls) == 2
    assert len(plugipay_sandbox.state()["refunds"]) == 1


@pytest.mark.django_db
def test_the_in_process_trigger_sweeps_once_per_half_period_and_rearms_when_not_sent(
    monkeypatch, django_capture_on_commit_callbacks
):
    from django_plugipay.services import sweeper

    runs = []
    monkeypatch.setattr(sweeper, "_last_sweep", float("-inf"))
    monkeypatch.setattr(sweeper, "sweep", lambda: runs.append("swept"))
    with django_capture_on_commit_callbacks(execute=True):
        sweeper.sweep_soon()
        sweeper.sweep_soon()  # within half of STRANDED_AFTER: nothing
    assert runs == ["swept"]
    sweeper._rearm(ConnectionError("the broker is down"))  # the sweep could not be sent
    with django_capture_on_commit_callbacks(execute=True):
        sweeper.sweep_soon()
    assert runs == ["swept", "swept"]


def _lost_then(status: int, code: str, monkeypatch):
    """Plugipay's create_refund: the first send makes the refund and its answer is lost; each
    send after it is answered ``status`` (before Plugipay reads it)."""
    real = PlugipayClient.create_refund
    calls = []

    def create_refund(self, body, idempotency_key=None):
        calls.append(idempotency_key)
        if len(calls) == 1:
            real(self, body, idempotency_key=idempotency_key)
            raise TransientError("read timed out")
        raise APIError("refused before it was read", code=code, status=status)

    monkeypatch.setattr(PlugipayClient, "create_refund", create_refund)
    return calls


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("status", "code"), [(401, "INVALID_TIMESTAMP"), (403, "forbidden")])
def test_a_send_refused_before_it_was_read_never_fails_a_refund_plugipay_made(
    plugipay_sandbox, monkeypatch, status, code
):
    """A 401 (the clock drifted, the key rotated) or a 403 answering a retry says
    nothing of whether the first send made the refund: failing it here would offer its amount
    again, and Plugipay would refund it twice."""
    payment = plugipay_sandbox.paid_payment(amount=100_000)
    plugipay_sandbox.hold()  # the refund's webhook comes late
    _lost_then(status, code, monkeypatch)
    refund = services.refund_payment(payment=payment, amount=30_000, reason="duplicate")
    refund = services.submit_refund(refund=refund)  # the sweeper's retry, the same key
    assert (refund.status, refund.failure_code) == ("requested", NOT_SUBMITTED)
    assert len(plugipay_sandbox.state()["refunds"]) == 1
    plugipay_sandbox.release()
    plugipay_sandbox.flush()
    refund.refresh_from_db()
    payment.refresh_from_db()
    assert (refund.status, services.refundable_amount(payment)) == ("succeeded", 70_000)


@pytest.mark.django_db(transaction=True)
def test_a_409_for_the_refund_s_key_links_the_refund_made_with_it(plugipay_sandbox, monkeypatch):
    payment = plugipay_sandbox.paid_payment(amount=100_000)
    plugipay_sandbox.hold()
    _lost_then(409, "idempotency_mismatch", monkeypatch)
    refund = services.refund_payment(payment=payment, amount=30_000, reason="duplicate")
    refund = services.submit_refund(refund=refund)
    [made] = plugipay_sandbox.state()["refunds"]
    assert refund.plugipay_id == made["id"] and refund.failure_code == ""


def _answered(status: int, code: str, message: str, monkeypatch) -> None:
    """Plugipay's create_refund answers every send ``status``."""

    def create_refund(self, body, idempotency_key=None):
        raise APIError(message, code=code, status=status)

    monkeypatch.setattr(PlugipayClient, "create_refund", create_refund)


@pytest.mark.django_db(transaction=True)
def test_a_refusal_of_the_refund_itself_fails_it(plugipay_sandbox, monkeypatch):
    payment = plugipay_sandbox.paid_payment(amount=100_000)
    _answered(422, "invalid_amount", "amount exceeds refundable", monkeypatch)
    refund = services.refund_payment(payment=payment, amount=30_000, reason="duplicate")
    refund.refresh_from_db()
    assert (refund.status, refund.failure_code) == ("failed", "invalid_amount")


@pytest.mark.django_db(transaction=True)
def test_a_404_that_is_not_plugipay_s_answer_never_fails_a_refund_plugipay_made(
    plugipay_sandbox, monkeypatch
):
    """A proxy's page, or a BASE_URL with a wrong path (the client's "invalid_response"), was
    answered before Plugipay read the request, as a 401 is."""
    payment = plugipay_sandbox.paid_payment(amount=100_000)
    plugipay_sandbox.hold()
    _lost_then(404, "invalid_response", monkeypatch)
    refund = services.refund_payment(payment=payment, amount=30_000, reason="duplicate")
    refund = services.submit_refund(refund=refund)  # the sweeper's retry
    assert len(plugipay_sandbox.state()["refunds"]) == 1
    payment.refresh_from_db()
    assert refund.status == RefundStatus.REQUESTED
    assert services.refundable_amount(payment) == 70_000


@pytest.mark.django_db(transaction=True)
def test_a_refund_not_sent_for_an_hour_is_reported_with_its_error(plugipay_sandbox, monkeypatch):
    """A 403 (the key lost its refund permission) leaves the refund requested, its amount
    held, sent again by every sweep: the doctor and W045 name it."""
    from django.core.checks import run_checks

    from django_plugipay.management.commands.plugipay_doctor import Doctor

    payment = plugipay_sandbox.paid_payment(amount=100_000)
    _answered(403, "forbidden", "the key may not create refunds", monkeypatch)
    refund = services.refund_payment(payment=payment, amount=30_000, reason="duplicate")
    services.sweep()
    refund.refresh_from_db()
    assert refund.status == RefundStatus.REQUESTED and "forbidden" in refund.failure_message
    assert Doctor(url=None, wait=0).stuck_refunds().ok is True  # not an hour yet
    Refund.objects.update(created_at=timezone.now() - dt.timedelta(hours=2))
    line = Doctor(url=None, wait=0).stuck_refunds()
    assert line.ok is False and f"refund #{refund.pk}" in line.detail
    assert "the key may not create refunds" in line.detail
    [warning] = [m for m in run_checks(databases=["default"]) if m.id == "django_plugipay.W045"]
    assert warning.msg.startswith("Refunds requested over an hour ago and not sent to Plugipay")
    assert "yet: 1;" in warning.msg
