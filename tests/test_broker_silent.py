"""A broker that takes the connection and then says nothing (stuck, or cut off midway) holds
no request: a message it does not take within ``PLUGIPAY["PUBLISH_TIMEOUT"]`` is given up as
unsent, for the sweeper to send, as when the broker refuses the connection. A receiver's
failure recorded meanwhile carries its own traceback, not the broker's."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from django_plugipay import services, signals
from django_plugipay.models import Delivery, Refund, WebhookEvent
from django_plugipay.services import _queue
from django_plugipay.services.refunds import NOT_SUBMITTED

DOWN_BROKER = "redis://127.0.0.1:1/0"


@pytest.fixture
def silent_broker(monkeypatch, settings):
    """A Redis URL whose server accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(50)
    accepted = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)

    threading.Thread(target=serve, daemon=True).start()
    settings.PLUGIPAY = {**settings.PLUGIPAY, "PUBLISH_TIMEOUT": 1}
    monkeypatch.setattr(_queue, "_waiting", [], raising=False)
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    server.close()
    for conn in accepted:
        conn.close()


def within(seconds, work):
    """``work()``'s result, failing the test when it has not returned after ``seconds``."""
    done, failed = [], []

    def run():
        try:
            done.append(work())
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if failed:
        raise failed[0]
    assert done, f"still waiting on the silent broker after {seconds} s"
    return done[0]


@pytest.mark.plugipay_worker  # the project's Celery app, not in-process
@pytest.mark.django_db(transaction=True)
def test_a_refund_request_returns_while_the_broker_is_silent(
    plugipay_sandbox, make_celery_app, silent_broker
):
    payment = plugipay_sandbox.paid_payment(30_000)
    make_celery_app(broker_url=silent_broker, task_always_eager=False)
    began = time.monotonic()
    refund = within(
        8,
        lambda: services.refund_payment(
            payment=payment, amount=10_000, reason="requested_by_customer"
        ),
    )
    assert time.monotonic() - began < 5
    refund = Refund.objects.get(pk=refund.pk)
    assert refund.failure_code == NOT_SUBMITTED  # waiting visibly, for the sweeper to send
    # a second request, while the first publish still waits, is not held at all
    began = time.monotonic()
    within(8, lambda: services.refund_payment(payment=payment, amount=1_000, reason="duplicate"))
    assert time.monotonic() - began < 1


@pytest.mark.plugipay_worker
@pytest.mark.django_db(transaction=True)
def test_a_queued_webhook_is_answered_while_the_broker_is_silent(
    settings, make_celery_app, silent_broker
):
    """faults.md: a webhook in the "celery" mode is answered 200 because it is recorded."""
    from django.test import Client

    from tests.test_webhook_view import completed, post

    settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_PROCESSING": "celery"}
    make_celery_app(broker_url=silent_broker, task_always_eager=False)
    answer = within(8, lambda: post(Client(), completed()))
    assert answer.status_code == 200
    assert WebhookEvent.objects.get().status == "received"  # recorded, to be applied later


@pytest.mark.plugipay_worker
@pytest.mark.django_db(transaction=True)
def test_a_receivers_traceback_is_its_own_when_the_broker_is_down(
    plugipay_sandbox, make_celery_app, durable
):
    """The Deliveries page shows the receiver's own error, not a broker error it was raised
    while handling ("During handling of the above exception, another exception occurred")."""

    def ship(sender, instance, **kwargs):
        raise RuntimeError("warehouse down")

    durable(signals.payment_succeeded, ship, name="tests.ship")
    make_celery_app(broker_url=DOWN_BROKER, task_always_eager=False)
    plugipay_sandbox.paid_payment(30_000)
    delivery = Delivery.objects.get(receiver="tests.ship")
    assert delivery.status == "failed" and "warehouse down" in delivery.last_error
    assert "another exception occurred" not in delivery.last_traceback
    assert "Connection refused" not in delivery.last_traceback


def test_sends_at_the_same_moment_each_wait_once_and_later_ones_not_at_all(monkeypatch, settings):
    """Two requests sending at once while the broker says nothing each give up after the
    timeout; a send after that, while both publishes still wait, gives up at once and
    leaves no thread of its own."""
    settings.PLUGIPAY = {**settings.PLUGIPAY, "PUBLISH_TIMEOUT": 0.3}
    monkeypatch.setattr(_queue, "_publishing", {})
    release = threading.Event()
    started = []

    def publish():
        started.append(threading.current_thread())
        release.wait(10)

    barrier = threading.Barrier(2)
    outcomes = []

    def request():
        barrier.wait()
        try:
            _queue._within_timeout(publish)
        except _queue.BrokerSilent as exc:
            outcomes.append(exc)

    try:
        callers = [threading.Thread(target=request) for _ in range(2)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(5)
        assert len(outcomes) == 2 and len(started) == 2
        began = time.monotonic()
        with pytest.raises(_queue.BrokerSilent, match="still waits"):
            _queue._within_timeout(publish)
        assert time.monotonic() - began < 0.1 and len(started) == 2
    finally:
        release.set()
    for thread in started:
        thread.join(5)
    assert _queue._publishing == {}  # each publish, once done, is forgotten
    _queue._within_timeout(lambda: None)  # and sends go through again


def test_a_publish_keeps_the_senders_context_and_a_tasks_message_its_parent(make_celery_app):
    """The publish thread runs in the sender's context (a tracing hook's context variables
    see the request's); a message sent from a running task is sent from the task's own
    thread, so Celery links it to its parent task."""
    import contextvars

    from celery._state import _task_stack

    marker = contextvars.ContextVar("marker", default=None)
    marker.set("the request's")
    seen = []
    _queue._within_timeout(lambda: seen.append((marker.get(), threading.current_thread())))
    assert seen[0][0] == "the request's" and seen[0][1] is not threading.current_thread()

    app = make_celery_app(task_always_eager=False, broker_url=DOWN_BROKER)
    sent = []

    @app.task(bind=True, name="tests.parent")
    def parent(self):  # pragma: no cover - never run
        return None

    task = app.tasks["django_plugipay.sweep"]
    task.apply_async = lambda *a, **k: sent.append(threading.current_thread())
    parent.push_request(id="parent-1", called_directly=False)
    _task_stack.push(parent)
    try:
        _queue._send("django_plugipay.sweep", ())
    finally:
        _task_stack.pop()
        parent.pop_request()
        del task.apply_async
    assert sent == [threading.current_thread()]


def test_a_publish_left_by_a_forked_parent_does_not_stop_the_childs_sends(monkeypatch):
    """A process forked while a publish waited inherits the entry but not the thread (it is
    not alive there): the child's own sends go through."""
    gone = threading.Thread(target=lambda: None)
    gone.start()
    gone.join()
    monkeypatch.setattr(_queue, "_publishing", {gone: time.monotonic() - 60})
    sent = []
    _queue._within_timeout(lambda: sent.append(True))
    assert sent == [True]
