"""``plugipay_doctor``: the all-good case exits 0; each misconfiguration shows its fix."""

from __future__ import annotations

import io
import re
import socket

import pytest
from django.core.management import CommandError, call_command
from django.urls import clear_url_caches

from django_plugipay.client import get_client
from django_plugipay.models import WebhookEvent


def doctor(*args):
    out = io.StringIO()
    try:
        call_command("plugipay_doctor", "--wait", "10", *args, stdout=out)
    except CommandError as exc:
        return 1, out.getvalue() + str(exc)
    return 0, out.getvalue()


def line(output, name):
    """The report's line for one check, with its fix line when it failed."""
    lines = output.splitlines()
    for i, text in enumerate(lines):
        if re.match(r"\[\w+\]\s+" + re.escape(name) + ":", text):
            fix = lines[i + 1] if i + 1 < len(lines) and "fix:" in lines[i + 1] else ""
            return text + "\n" + fix
    raise AssertionError(f"no {name!r} line in:\n{output}")


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_all_good(plugipay_sandbox):
    status, output = doctor()
    assert status == 0, output
    for name in ("credentials", "clock", "webhook URL", "webhook endpoint", "test event"):
        assert line(output, name).startswith("[ok]"), output
    assert WebhookEvent.objects.filter(type="plugipay.doctor.ping.v1").count() == 1


def test_wrong_secret(plugipay_sandbox, settings):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "SECRET": "sk_test_wrong"}
    status, output = doctor()
    assert status != 0
    report = line(output, "credentials")
    assert report.startswith("[FAIL]") and "INVALID_SIGNATURE" in report
    assert "['SECRET']" in report and "KEY_ID" in report and plugipay_sandbox.base_url in report
    assert line(output, "test event").startswith("[skip]")


def test_base_url_on_a_closed_port(plugipay_sandbox, settings):
    url = f"http://127.0.0.1:{closed_port()}"
    settings.PLUGIPAY = {**settings.PLUGIPAY, "BASE_URL": url}
    status, output = doctor()
    report = line(output, "credentials")
    assert status != 0 and report.startswith("[FAIL]")
    assert url in report and "manage.py plugipay_sandbox" in report


def test_missing_url_include(plugipay_sandbox, settings):
    settings.ROOT_URLCONF = "tests.urls_without_plugipay"
    clear_url_caches()
    status, output = doctor()
    report = line(output, "webhook URL")
    assert status != 0 and report.startswith("[FAIL]")
    assert 'include("django_plugipay.urls")' in report


def test_unregistered_endpoint(plugipay_sandbox):
    status, output = doctor("--url", "https://shop.example/plugipay/webhook/")
    report = line(output, "webhook endpoint")
    assert status != 0 and report.startswith("[FAIL]")
    assert "no endpoint at Plugipay points at https://shop.example/plugipay/webhook/" in report
    assert "signing secret" in report


def test_wrong_webhook_secret(plugipay_sandbox, settings):
    settings.PLUGIPAY = {**settings.PLUGIPAY, "WEBHOOK_SECRETS": ["whsec_not_the_endpoints"]}
    status, output = doctor()
    report = line(output, "test event")
    assert status != 0 and report.startswith("[FAIL]")
    assert "signature was rejected" in report and "WEBHOOK_SECRETS" in report


@pytest.fixture(autouse=True)
def _reset_urlconf():
    yield
    clear_url_caches()


def test_a_disabled_endpoint_is_reported_with_the_sync_that_heals_the_gap(plugipay_sandbox):
    client = get_client()
    [endpoint] = client.list_webhook_endpoints()
    path = f"/webhooks/{endpoint['id']}"
    client.request("PATCH", path, json_body={"active": False})
    try:
        status, output = doctor()
    finally:  # the session's sandbox keeps its endpoint across tests
        client.request("PATCH", path, json_body={"active": True})
    report = line(output, "webhook endpoint")
    assert status != 0 and report.startswith("[FAIL]") and "disabled" in report
    assert "plugipay_sync" in report and "re-enable" in report


def test_the_report_is_english_whatever_the_language(plugipay_sandbox):
    from django.utils import translation

    from django_plugipay import services

    services.reconcile()
    with translation.override("id"):
        _code, output = doctor()
    assert re.search(r"last ran 0\xa0minutes ago", line(output, "reconciliation"))
    assert "menit" not in output


@pytest.mark.plugipay_worker  # the project's Celery app, not in-process
def test_the_tasks_line_names_a_broker_transport_that_cannot_be_loaded(
    make_celery_app, monkeypatch
):
    """``pip install celery redis`` without the ``[redis]`` extra can leave kombu's Redis
    transport failing to import (celery.md): the doctor names the extra, not a crash."""
    import sys

    from kombu import transport

    make_celery_app(broker_url="redis://127.0.0.1:6379/11", task_always_eager=False)
    monkeypatch.setitem(sys.modules, "packaging", None)  # a virtualenv without it
    monkeypatch.setitem(sys.modules, "packaging.version", None)
    monkeypatch.delitem(sys.modules, "kombu.transport.redis", raising=False)
    monkeypatch.setattr(transport, "_transport_cache", {})
    _, output = doctor()
    tasks = line(output, "tasks")
    assert "crashed" not in tasks and "report it if it is ours" not in tasks, tasks
    assert 'pip install "celery[redis]"' in tasks, tasks
