"""Refund tasks on a real Celery worker (Redis) against the sandbox, on PostgreSQL."""

import time

from django_plugipay import services
from django_plugipay.models import Refund
from django_plugipay.testing import wait_for


def settled(refund_pk, status="succeeded"):
    return lambda: Refund.objects.get(pk=refund_pk).status == status


def test_refund_through_a_real_worker(plugipay_sandbox, celery_worker, signal_log):
    payment = plugipay_sandbox.paid_payment()
    refund = services.refund_payment(payment=payment, amount=25_000, reason="duplicate")
    assert refund.status == "requested"
    wait_for(settled(refund.pk), message="the worker to create the refund")
    plugipay_sandbox.flush()  # refund.created / refund.succeeded webhooks
    refund.refresh_from_db()
    payment.refresh_from_db()
    assert refund.plugipay_id.startswith("rfd_") and payment.amount_refunded == 25_000
    # the worker writes its signal line just after its commit
    wait_for(lambda: ("refund_succeeded", refund.plugipay_id) in signal_log.committed())
    assert signal_log.committed().count(("refund_succeeded", refund.plugipay_id)) == 1
    assert len(plugipay_sandbox.state()["refunds"]) == 1


def test_dropped_connection_after_commit_is_retried_with_the_same_key(
    plugipay_sandbox, celery_worker
):
    payment = plugipay_sandbox.paid_payment()
    plugipay_sandbox.fault("drop_after_commit", path_prefix="/api/v1/refunds")
    plugipay_sandbox.hold()  # no webhook may settle the row: only the task's retry can
    refund = services.refund_payment(payment=payment, reason="requested_by_customer")
    wait_for(settled(refund.pk), message="the retried task")
    # The first answer was dropped, so a retry settled the row; the sandbox holds one refund,
    # so the retry sent the same idempotency key.
    assert plugipay_sandbox.state()["faults"] == []
    assert [r["id"] for r in plugipay_sandbox.state()["refunds"]] == [
        Refund.objects.get(pk=refund.pk).plugipay_id
    ]


def test_429_retry_after_is_honoured(plugipay_sandbox, celery_worker):
    payment = plugipay_sandbox.paid_payment()
    plugipay_sandbox.fault("http_429", path_prefix="/api/v1/refunds", retry_after=3)
    before = time.monotonic()
    refund = services.refund_payment(payment=payment, amount=1_000, reason="duplicate")
    wait_for(settled(refund.pk), message="the task after Retry-After")
    # Without Retry-After the first retry comes after a jittered 0–2 s; honoured, never
    # before 3 s (load only makes it later, so this cannot flake).
    assert time.monotonic() - before >= 3
    assert len(plugipay_sandbox.state()["refunds"]) == 1


def test_worker_killed_mid_task_redelivers_and_plugipay_holds_one_refund(
    plugipay_sandbox, celery_worker
):
    payment = plugipay_sandbox.paid_payment()
    # The sandbox commits the refund 2 s after the request arrives; the worker dies meanwhile.
    plugipay_sandbox.fault("delay", path_prefix="/api/v1/refunds", delay=2)
    plugipay_sandbox.hold()  # only the redelivered task can tell us about this refund
    refund = services.refund_payment(payment=payment, amount=7_000, reason="fraudulent")
    wait_for(  # the fault is taken when the task's request reaches the sandbox
        lambda: plugipay_sandbox.state()["faults"] == [],
        message="the task's request to reach the sandbox",
    )
    celery_worker.kill()
    wait_for(
        lambda: len(plugipay_sandbox.state()["refunds"]) == 1,
        timeout=10,
        message="the sandbox to commit the refund",
    )
    assert Refund.objects.get(pk=refund.pk).status == "requested"
    celery_worker.start()  # unacked (acks_late) message is redelivered after its visibility
    wait_for(settled(refund.pk), timeout=60, message="the redelivered task")
    assert len(plugipay_sandbox.state()["refunds"]) == 1
    payment.refresh_from_db()
    assert payment.amount_refunded == 7_000


def test_the_doctor_sees_a_worker_consume_the_queue_and_misses_it_once_stopped(celery_worker):
    from django_plugipay.management.commands.plugipay_doctor import Doctor
    from tests.celery import app

    queue = app.conf.task_default_queue
    line = Doctor(url=None, wait=0).tasks()
    assert line.ok is True, line
    assert f"1 Celery worker(s) consume queue {queue!r}" in line.detail
    celery_worker.stop()
    line = Doctor(url=None, wait=0).tasks()
    assert line.ok is False and f"no Celery worker consumes queue {queue!r}" in line.detail
    assert "celery -A <your project> worker" in line.fix
