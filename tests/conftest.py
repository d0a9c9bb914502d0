import os

import pytest
from celery import Celery, _state
from celery.signals import task_prerun

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


#: the merchant account the ``two_accounts`` fixture provisions
MERCHANT = "acc_merchant_iso"


@pytest.fixture
def durable():
    """Connect durable receivers for one test; disconnected afterwards."""
    from django_plugipay import durable_receiver
    from django_plugipay.services import deliveries

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
def fulfilled(durable):
    """The Plugipay ids of the payments a durable ``payment_succeeded`` receiver ran for."""
    from django_plugipay import signals

    ran = []
    durable(
        signals.payment_succeeded,
        lambda sender, instance, **kwargs: ran.append(instance.plugipay_id),
        name="tests.fulfil",
    )
    return ran


@pytest.fixture
def two_accounts(plugipay_sandbox, live_server, settings):
    """The default account (the sandbox's own, through the platform key) and a merchant the
    platform provisioned, whose events reach the same webhook URL signed with its secret."""
    from django.urls import reverse

    from django_plugipay import services
    from django_plugipay.services import webhook_endpoints

    settings.PLUGIPAY = {**settings.PLUGIPAY, **plugipay_sandbox.platform_settings()}
    merchant = services.provision_account(
        account_id=MERCHANT, brand_name="Merchant", business_email="owner@merchant.test"
    )
    endpoint = webhook_endpoints.create_endpoint(
        url=live_server.url + reverse("plugipay:webhook"), account=merchant
    )
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "ACCOUNTS": {
            "merchant": {"ON_BEHALF_OF": MERCHANT, "WEBHOOK_SECRETS": [endpoint["secret"]]}
        },
    }
    return plugipay_sandbox, endpoint["secret"]


@pytest.fixture
def make_celery_app():
    """Create a project-style Celery app for one test, and forget it afterwards."""
    created = []
    saved = (_state.default_app, getattr(_state._tls, "current_app", None))

    def make(**conf):
        app = Celery("shop", set_as_current=True)
        app.conf.update(conf)
        app.set_default()  # what Celery's Django fix-up does for a project's app
        created.append(app)
        return app

    yield make
    for app in created:
        _state._deregister_app(app)
    _state.default_app, _state._tls.current_app = saved


@pytest.fixture
def celery_runs():
    """Names of the tasks Celery ran (eagerly) during the test."""
    names = []

    def record(sender=None, task=None, **kwargs):
        names.append(task.name)

    task_prerun.connect(record, weak=False)
    yield names
    task_prerun.disconnect(record)


@pytest.fixture(autouse=True)
def _receipts_only_with_a_sandbox(request, settings):
    """A completed session fetches its receipt after commit; a test without the sandbox has
    no Plugipay to answer, so it would only wait for the client's retries."""
    if "plugipay_sandbox" not in request.fixturenames:
        settings.PLUGIPAY = {**settings.PLUGIPAY, "SYNC_RECEIPTS": False}


#: the ``ACCOUNT_DATABASE`` hook of the tenant tests: account ``t`` lives in ``tenant``
TENANTS = "tests.test_accounts_background.tenant_database"


@pytest.fixture
def tenancy(settings):
    """Three accounts: ``t`` in the ``tenant`` database; the default account and ``u`` share
    the default database."""
    settings.DATABASE_ROUTERS = ["django_plugipay.routers.AccountRouter"]
    settings.PLUGIPAY = {
        **settings.PLUGIPAY,
        "WEBHOOK_SECRETS": ["whsec_one"],
        "ACCOUNTS": {
            "t": {"API_KEY": "sk_test_t", "WEBHOOK_SECRETS": ["whsec_t"]},
            "u": {"API_KEY": "sk_test_u", "WEBHOOK_SECRETS": ["whsec_u"]},
        },
        "ACCOUNT_DATABASE": TENANTS,
    }
