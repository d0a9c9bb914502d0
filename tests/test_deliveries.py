"""Durable receivers: recorded with the change, run after commit, retried, never run twice."""

import datetime as dt

import pytest
from django.utils import timezone

from django_plugipay import durable_receiver, services, signals
from django_plugipay.client import get_client
from django_plugipay.models import Delivery, Payment, WebhookEvent
from django_plugipay.services import deliveries


@pytest.fixture
def durable():
    """Connect durable receivers for one test; disconnected afterwards."""
    connected = []

    def connect(signal, func, name=None):
        name = name or f"tests.{func.__name__}"
        durable_receiver(signal, name=name)(func)
        connected.append((signal, name))
        return func

    yield connect
    for signal, name in connected:
        deliveries.disconnect(signal, name=name)


@pytest.fixture
def no_backoff(plugipay_sandbox, settings):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "DELIVERY_BACKOFF": 0}


def fails_first(times, runs):
    def receiver(sender, instance, event, delivery, **kwargs):
        runs.append((instance.pk, delivery.attempt, delivery.key))
        if delivery.attempt <= times:
            raise ConnectionError(f"SMTP server down (attempt {delivery.attempt})")

    return receiver


def replay_every_event(plugipay_sandbox):
    """Have Plugipay send every event again (``POST /events/replay``); its answers' codes."""
    ids = [e["id"] for e in plugipay_sandbox.events()]
    get_client().request("POST", "/events/replay", json_body={"eventIds": ids})
    plugipay_sandbox.flush()
    return answers(plugipay_sandbox)


def answers(plugipay_sandbox):
    """Every HTTP status the webhook answered to the sandbox's deliveries."""
    return [
        attempt["responseCode"]
        for d in plugipay_sandbox.state()["deliveries"]
        for attempt in d["attemptLog"]
    ]


def test_a_failing_receiver_is_retried_until_it_returns_and_never_run_again(
    plugipay_sandbox, no_backoff, durable, signal_log
):
    runs, others = [], []
    durable(signals.payment_succeeded, fails_first(2, runs), name="tests.flaky_email")
    durable(
        signals.payment_succeeded,
        lambda sender, instance, delivery, **kw: others.append(instance.pk),
        name="tests.other_durable",
    )

    payment = plugipay_sandbox.paid_payment()

    assert [attempt for _, attempt, _ in runs] == [1]  # after commit, in the webhook's request
    flaky = Delivery.objects.get(receiver="tests.flaky_email")
    assert flaky.status == "failed" and flaky.attempts == 1
    assert flaky.last_error == "ConnectionError: SMTP server down (attempt 1)"
    assert "Traceback" in flaky.last_traceback and "fails_first" not in flaky.last_error
    assert services.run_deliveries() == 1
    assert services.run_deliveries() == 1
    assert services.run_deliveries() == 0
    assert [attempt for _, attempt, _ in runs] == [1, 2, 3]
    assert {pk for pk, _, _ in runs} == {payment.pk}
    assert len({key for _, _, key in runs}) == 1
    flaky.refresh_from_db()
    assert flaky.status == "succeeded" and flaky.attempts == 3 and flaky.succeeded_at
    assert flaky.event.kind in ("checkout_session.completed", "payment.succeeded")
    # The other receivers of the signal ran once, the plain one inside the transaction.
    assert others == [payment.pk]
    assert signal_log.names().count("payment_succeeded") == 1

    # Replaying every event, reconciling and forcing a run change nothing.
    assert set(replay_every_event(plugipay_sandbox)) == {200}
    services.replay_failed_events(event_ids=WebhookEvent.objects.values_list("event_id", flat=True))
    services.reconcile(since=timezone.now() - dt.timedelta(days=1))
    assert services.run_deliveries(force=True) == 0
    assert len(runs) == 3 and others == [payment.pk]
    assert Delivery.objects.count() == 2


def test_a_receiver_that_keeps_failing_dies_after_max_attempts_and_the_webhook_is_2xx(
    plugipay_sandbox, no_backoff, settings, durable
):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "DELIVERY_MAX_ATTEMPTS": 3}
    runs = []
    durable(signals.payment_succeeded, fails_first(99, runs), name="tests.broken")

    payment = plugipay_sandbox.paid_payment()

    codes = answers(plugipay_sandbox)
    assert codes and all(200 <= code < 300 for code in codes)
    assert Payment.objects.get(pk=payment.pk).status == "succeeded"  # never rolled back
    while services.run_deliveries():
        pass
    delivery = Delivery.objects.get()
    assert delivery.status == "dead" and delivery.attempts == 3 and len(runs) == 3
    assert delivery.next_attempt_at is None
    assert list(Delivery.objects.dead()) == [delivery]
    # Staff retry a dead one by hand: it runs once more.
    assert services.retry_deliveries(deliveries=[delivery]) == 1
    assert len(runs) == 4
    assert services.resolve_deliveries(deliveries=[delivery]) == 1
    assert Delivery.objects.get().status == "resolved"
    assert services.run_deliveries(force=True) == 0


def test_backoff_waits_before_the_next_attempt(plugipay_sandbox, settings, durable):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "DELIVERY_BACKOFF": 30}
    runs = []
    durable(signals.payment_succeeded, fails_first(1, runs), name="tests.later")
    plugipay_sandbox.paid_payment()
    delivery = Delivery.objects.get()
    waited = delivery.next_attempt_at - delivery.updated_at
    assert dt.timedelta(seconds=29) < waited <= dt.timedelta(seconds=30)
    assert services.run_deliveries() == 0  # not due yet
    Delivery.objects.update(next_attempt_at=timezone.now())
    assert services.run_deliveries() == 1 and len(runs) == 2
    assert deliveries.backoff(3) == dt.timedelta(seconds=120)
    assert deliveries.backoff(40) == deliveries.BACKOFF_CAP


def test_the_receiver_reads_the_instance_afresh_after_commit(plugipay_sandbox, durable):
    seen = []

    def receiver(sender, instance, event, delivery, **kwargs):
        seen.append((sender, type(instance), instance.status, instance.checkout_session_id))

    durable(signals.payment_succeeded, receiver)
    payment = plugipay_sandbox.paid_payment()
    assert seen == [(Payment, Payment, "succeeded", payment.checkout_session_id)]


def test_a_rolled_back_change_leaves_no_delivery(plugipay_sandbox, durable):
    runs = []
    durable(signals.payment_succeeded, fails_first(0, runs), name="tests.ok")

    def boom(sender, instance, **kwargs):
        raise RuntimeError("a plain receiver fails: the change rolls back")

    signals.payment_succeeded.connect(boom, dispatch_uid="tests.boom")
    try:
        session = services.create_checkout_session(
            amount=10_000, currency="IDR", success_url="https://s/ok", cancel_url="https://s/no"
        )
        plugipay_sandbox.pay(session)
        assert Delivery.objects.count() == 0 and runs == []
    finally:
        signals.payment_succeeded.disconnect(dispatch_uid="tests.boom")
    plugipay_sandbox.retry_deliveries()  # Plugipay redelivers; now it applies
    assert Delivery.objects.get().status == "succeeded" and len(runs) == 1


def test_a_receiver_no_process_knows_is_a_visible_failure(plugipay_sandbox, durable):
    runs = []
    durable(signals.payment_succeeded, fails_first(0, runs), name="tests.gone")
    # Recorded by a process that had it; run by one that does not (its module not imported).
    deliveries._registry.pop(("payment_succeeded", "tests.gone"))
    plugipay_sandbox.paid_payment()
    delivery = Delivery.objects.get()
    assert delivery.status == "failed" and runs == []
    assert "No durable receiver 'tests.gone'" in delivery.last_error


def test_only_the_app_signals_take_durable_receivers():
    from django.db.models.signals import post_save

    with pytest.raises(TypeError, match="django_plugipay.signals"):
        durable_receiver(post_save)(lambda **kw: None)


@pytest.mark.parametrize("vendor_event", [True, False])
def test_the_key_names_the_transition(db, vendor_event):
    receiver = deliveries.DurableReceiver(
        signals.payment_succeeded, "payment_succeeded", "r", print
    )
    payment = Payment(pk=7, status="succeeded", data={"updatedAt": "2026-01-01T00:00:00Z"})
    event = WebhookEvent(event_id="evt_1") if vendor_event else None
    other = WebhookEvent(event_id="evt_2") if vendor_event else None
    key = deliveries.delivery_key(receiver, payment, event)
    assert key == deliveries.delivery_key(receiver, payment, event) and len(key) == 64
    if vendor_event:
        assert key != deliveries.delivery_key(receiver, payment, other)
    else:
        payment.data = {"updatedAt": "2026-01-02T00:00:00Z"}
        assert key != deliveries.delivery_key(receiver, payment, None)
