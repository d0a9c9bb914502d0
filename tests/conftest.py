import pytest

from tests.celery import app as celery_app  # noqa: F401 - binds shared tasks to the test app
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
