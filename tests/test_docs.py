"""The reference pages stay in step with the code."""

import inspect
import re
from pathlib import Path

import pytest

from django_plugipay import checks, signals, tasks
from django_plugipay.conf import DEFAULTS

DOCS = Path(__file__).resolve().parents[1] / "docs" / "reference"


def page(name):
    return (DOCS / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("key", sorted(DEFAULTS))
def test_every_setting_is_documented(key):
    assert f"`{key}`" in page("settings.md")


def test_every_signal_is_documented():
    names = [n for n, v in vars(signals).items() if type(v).__name__ == "Signal"]
    assert names and len(names) == inspect.getsource(signals).count("= Signal(")
    for name in names:
        assert f"`{name}`" in page("signals.md"), name


def test_every_check_id_is_documented():
    ids = set(re.findall(r"django_plugipay\.[EW]\d{3}", inspect.getsource(checks)))
    documented = set(re.findall(r"`(django_plugipay\.[EW]\d{3})`", page("checks.md")))
    assert ids, "no check id found in django_plugipay/checks.py"
    assert ids <= documented, sorted(ids - documented)


def test_every_task_is_documented():
    names = {t.name for t in vars(tasks).values() if hasattr(t, "delay")}
    assert names and len(names) == inspect.getsource(tasks).count("@shared_task(")
    for name in names:
        assert f"`{name}`" in page("tasks.md"), name


COMMANDS = sorted(
    path.stem
    for path in (Path(tasks.__file__).parent / "management" / "commands").glob("plugipay_*.py")
)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_documented(command):
    assert f"`{command}`" in page("commands.md")


def test_every_sandbox_fault_and_control_route_is_documented():
    from plugipay_sandbox.state import FAULT_KINDS

    for kind in FAULT_KINDS:
        assert f"`{kind}`" in page("sandbox.md"), kind


def test_every_billing_and_control_route_is_documented():
    import re as regex

    from plugipay_sandbox.app import SandboxApp, api, pages
    from plugipay_sandbox.state import SandboxConfig, Store

    SandboxApp(Store(SandboxConfig()))  # registers every route module
    text = page("sandbox.md")

    def path(route):
        return regex.sub(r"\(\?P<(\w+)>\[\^/\]\+\)", r"<\1>", route[1].pattern)[1:-1]

    billing = ("/plans", "/prices", "/subscriptions", "/invoices", "/portal-sessions", "/test/")
    paths = [path(r) for r in api.routes if path(r).startswith(billing)]
    paths += [path(r) for r in pages.routes if path(r).startswith(("/_sandbox/", "/dashboard/"))]
    assert len(paths) >= 40
    for route in paths:
        assert f"{route}`" in text or f"{route} " in text, route


def test_every_billing_helper_model_and_url_is_documented():
    from django_plugipay import billing
    from django_plugipay.models import Invoice, Plan, Price, Subscription

    text = page("billing.md")
    for name in billing.__all__:
        assert f"`{name}(" in text, name
    for model in (Plan, Price, Subscription, Invoice):
        assert f"| `{model.__name__}` |" in text
        for field in model._meta.concrete_fields:
            known = ("id", "plugipay_id", "mode", "data", "created_at", "updated_at", "synced_at")
            assert field.name in known or f"`{field.name}`" in text, (model, field.name)
    for url_name in ("plugipay:portal", "plugipay:invoice_document"):
        assert f"`{url_name}`" in text


def test_every_service_is_documented():
    from django_plugipay import services

    reference = page("services.md") + page("signals.md")  # durable_receiver: with the signals
    undocumented = [
        name
        for name in services.__all__
        if not re.search(rf"(`|-> ){re.escape(name)}[`( |]", reference)
    ]
    assert not undocumented, undocumented
