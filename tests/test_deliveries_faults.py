"""Durable receivers whose attempts cannot end normally: an error the database cannot store
as it is, and a receiver that takes its process down with it. Each delivery still ends
``failed`` or ``dead``, and the deliveries claimed with it still run."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from django_plugipay import services, signals
from django_plugipay.conf import app_settings
from django_plugipay.models import Delivery
from django_plugipay.services import deliveries
from tests.factories import PaymentFactory, WebhookEventFactory

pytestmark = pytest.mark.django_db(transaction=True)


def record(name: str, payment=None) -> Delivery:
    """A delivery of the durable receiver ``name`` for a succeeded payment, committed (and
    so run at once)."""
    registered = deliveries._registry[("payment_succeeded", name)]
    with transaction.atomic():
        payment = payment or PaymentFactory(status="succeeded")
        return deliveries.record_delivery(registered, payment, WebhookEventFactory())


def expire_leases() -> None:
    """Time passes: every lease runs out (as after a runner's process died)."""
    Delivery.objects.filter(status="running").update(
        leased_until=timezone.now() - dt.timedelta(seconds=1)
    )


class Unprintable(Exception):
    """A library's exception whose ``__str__`` fails for the arguments it was raised with."""

    def __str__(self):
        return f"{self.args[0]} (code {self.args[1]})"


ERRORS = {
    # bytes decoded with surrogateescape (a file name, a subprocess's output)
    "lone surrogate": lambda: OSError("open " + b"r\xe9sum\xe9".decode("utf-8", "surrogateescape")),
    # a C library's message, a binary body quoted in an HTTP error (PostgreSQL's text refuses)
    "NUL": lambda: ValueError("warehouse answered 502: \x00\x01"),
    "unprintable": lambda: Unprintable("warehouse refused"),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(ERRORS))
def test_an_error_the_database_cannot_store_as_it_is_is_recorded_escaped(durable, kind):
    """A receiver's error whose text holds a lone surrogate or a NUL, or whose ``str()``
    raises, is recorded (escaped) and the delivery ends ``failed`` with its backoff; the
    runner does not raise, and the next receiver of the same commit runs."""
    shipped = []

    def a_broken(sender, instance, event, delivery, **kwargs):
        raise ERRORS[kind]()

    def b_ship(sender, instance, event, delivery, **kwargs):
        shipped.append(instance.pk)

    durable(signals.payment_succeeded, a_broken, name="tests.a_broken")
    durable(signals.payment_succeeded, b_ship, name="tests.b_ship")
    payment = PaymentFactory(status="succeeded")
    with transaction.atomic():  # one commit, one chunk: the broken receiver first
        for name in ("tests.a_broken", "tests.b_ship"):
            deliveries.record_delivery(
                deliveries._registry[("payment_succeeded", name)], payment, WebhookEventFactory()
            )
    broken = Delivery.objects.get(receiver="tests.a_broken")
    assert (broken.status, broken.attempts) == ("failed", 1), broken.last_error
    assert broken.next_attempt_at is not None and broken.last_error
    assert "\x00" not in broken.last_error + broken.last_traceback
    assert shipped == [payment.pk]
    assert services.run_deliveries(only=[broken.pk], force=True) == 1  # recorded, not raised


class ProcessDied(BaseException):
    """The process ending inside a receiver (SystemExit from a worker timeout, a
    cancellation)."""


def test_a_receiver_that_takes_its_process_down_is_given_up_and_spares_the_others(
    durable, monkeypatch
):
    """A receiver that ends its process on every attempt: the deliveries claimed with it
    that did not start are given back (their attempt not counted) and run next time; taken
    over after each lease on its own, it is ``dead`` after ``DELIVERY_MAX_ATTEMPTS``, so
    the doctor sees it. A killed process gives nothing back (SIGKILL): its deliveries are
    taken over one by one, the fewest attempts first, so the others still run."""
    ran, poison = [], []

    def ship(sender, instance, event, delivery, **kwargs):
        if instance.pk in poison:
            raise ProcessDied
        ran.append(instance.pk)

    durable(signals.payment_succeeded, ship, name="tests.ship")
    registered = deliveries._registry[("payment_succeeded", "tests.ship")]

    def record_both(first, second):
        with transaction.atomic():  # one commit: the two are claimed together after it
            for payment in (first, second):
                deliveries.record_delivery(registered, payment, WebhookEventFactory())

    def commit_two():
        first, second = PaymentFactory(status="succeeded"), PaymentFactory(status="succeeded")
        poison.append(first.pk)
        with pytest.raises(ProcessDied):
            record_both(first, second)
        return first, second

    first, second = commit_two()
    spared = Delivery.objects.get(object_id=second.pk)
    assert (spared.status, spared.attempts) == ("pending", 0)  # given back
    monkeypatch.setattr(deliveries, "_release", lambda claimed: None)  # now SIGKILL: no finally
    third, fourth = commit_two()
    for _ in range(4 * app_settings.DELIVERY_MAX_ATTEMPTS):  # a sweep after each lease
        expire_leases()
        try:
            deliveries.run_deliveries()
        except ProcessDied:
            continue
        break  # a sweep that ran to its end: nothing takes its process down any more
    assert sorted(ran) == sorted([second.pk, fourth.pk])
    rows = {d.object_id: d for d in Delivery.objects.all()}
    assert rows[first.pk].status == rows[third.pk].status == "dead"
    assert rows[fourth.pk].attempts <= 2  # one attempt taken by the crash, one that ran
    assert "ended before the receiver returned" in rows[first.pk].last_error
    assert deliveries.delivery_health().dead == 2


@pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="PostgreSQL's text refuses NUL; SQLite stores it",
)
def test_on_postgresql_a_nul_in_the_error_is_stored_escaped(durable):
    def broken(sender, instance, event, delivery, **kwargs):
        raise ValueError("binary body: \x00")

    durable(signals.payment_succeeded, broken, name="tests.nul")
    row = Delivery.objects.get(pk=record("tests.nul").pk)
    assert row.status == "failed" and "\\x00" in row.last_error


class _Opaque:
    """An argument whose text cannot be had: a model instance whose ``__str__`` reads a
    related row that is gone (``Model.__repr__`` calls ``__str__``)."""

    def __str__(self):
        raise LookupError("related row is gone")

    __repr__ = __str__


def test_an_error_neither_whose_message_nor_arguments_can_be_read_is_recorded(durable):
    """``ValueError(instance)`` with a model whose ``__str__`` fails: neither the error's
    text nor its arguments' can be read, and the failure is still recorded (by the error's
    type) and the next receiver of the commit runs."""
    shipped = []

    def a_broken(sender, instance, event, delivery, **kwargs):
        raise ValueError(_Opaque())

    def b_ship(sender, instance, event, delivery, **kwargs):
        shipped.append(instance.pk)

    durable(signals.payment_succeeded, a_broken, name="tests.a_opaque")
    durable(signals.payment_succeeded, b_ship, name="tests.b_ship_too")
    payment = PaymentFactory(status="succeeded")
    with transaction.atomic():
        for name in ("tests.a_opaque", "tests.b_ship_too"):
            deliveries.record_delivery(
                deliveries._registry[("payment_succeeded", name)], payment, WebhookEventFactory()
            )
    broken = Delivery.objects.get(receiver="tests.a_opaque")
    assert (broken.status, shipped) == ("failed", [payment.pk])
    assert broken.last_error == "ValueError (its message could not be read)"


def test_a_slow_receiver_given_up_as_crashed_that_returns_is_succeeded(
    durable, monkeypatch, settings
):
    """A runner still alive past its lease, on the last allowed attempt: the sweeper takes
    it for crashed and marks it ``dead``; when its receiver then returns, the delivery is
    ``succeeded`` (it did run), not left ``dead`` for staff to run a second time."""

    def ship(sender, instance, event, delivery, **kwargs):
        pass

    durable(signals.payment_succeeded, ship, name="tests.slow_ship")
    monkeypatch.setattr(deliveries, "_run", lambda delivery, instance=None: None)  # still running
    record("tests.slow_ship")
    monkeypatch.undo()
    settings.PLUGIPAY = {**settings.PLUGIPAY, "DELIVERY_MAX_ATTEMPTS": 1}
    expire_leases()
    claimed = Delivery.objects.get()
    assert deliveries._due_chunks(force=False) == []  # given up, not taken over
    assert Delivery.objects.get().status == "dead"
    deliveries._record_success(claimed, {})  # the slow receiver returns
    assert Delivery.objects.get().status == "succeeded"
