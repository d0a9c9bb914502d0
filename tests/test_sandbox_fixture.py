"""The ``plugipay_sandbox`` fixture in a project that runs its task work on a Celery worker:
a test's work stays in the test's process unless the test asks for the worker."""

from __future__ import annotations

import pytest

from django_plugipay.models import Payment
from django_plugipay.services import _queue
from tests.test_end_to_end import start

BROKER = "redis://127.0.0.1:1/0"  # the project's broker: nothing answers it from a test


@pytest.fixture
def celery_project(settings, make_celery_app):
    """A project that followed the Celery how-to: a Celery app, events queued for it."""
    make_celery_app(broker_url=BROKER, broker_connection_timeout=1)
    settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_PROCESSING": "celery"}


def test_pay_applies_the_payment_in_the_test_s_process(celery_project, plugipay_sandbox):
    failed_before = _queue.failed_sends()
    plugipay_sandbox.pay(start())  # when it returns the receivers have run
    assert Payment.objects.filter(status="succeeded").count() == 1
    assert _queue.mode() == "inline"
    assert _queue.failed_sends() == failed_before  # no message tried for the project's broker


@pytest.mark.plugipay_worker
def test_a_test_marked_for_the_worker_keeps_the_project_s_settings(
    celery_project, plugipay_sandbox, settings
):
    assert settings.PLUGIPAY["WEBHOOK_PROCESSING"] == "celery"
    assert _queue.mode() == "celery"
