import os

import pytest

if os.environ.get("CELERY_BROKER_URL"):  # the service suite: a Celery app, tasks to a worker
    from tests.celery import app as celery_app  # noqa: F401

from tests.signal_log import SignalLog


@pytest.fixture
def signal_log(tmp_path, monkeypatch):
    """Every django_plugipay signal sent during the test, as (signal name, plugipay id); its
    ``committed()`` also sees what a Celery worker of the service suite committed."""
    log = SignalLog(tmp_path / "signals.log")
    monkeypatch.setenv("PLUGIPAY_SIGNAL_LOG", str(log.path))
    log.connect()
    yield log
    log.disconnect()
